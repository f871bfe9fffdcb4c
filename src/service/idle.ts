/*
 * Exit when idle: the point of starting on the first connection is not to run while nobody uses
 * the service. After `idleTimeoutMs` with no connection open and no datagram read, the service
 * stops as on SIGTERM; its sockets stay with the service manager (the .socket unit), which starts
 * it again on the next connection, and that connection waits in the backlog meanwhile: nothing is
 * refused. A connection that comes during the stop is accepted and answered before the exit, or
 * left in the backlog for the next start.
 *
 * This module holds no state of its own: the lazily loaded upgrade code may carry a copy.
 */
import type { Drain } from './drain.js';

/** What the check of {@link watchIdle} needs to know of the process's fds. */
export interface HeldSockets {
  /** Every fd the process holds by name (inherited, or opened by it). */
  held: readonly object[];
  /** Those the service manager passed. */
  inherited: readonly object[];
}

/**
 * Why the sockets would not outlive the process, or undefined when they would: every socket is one
 * the service manager passed (a .socket unit, or `sd-activate run --lazy`, holds it, and starts
 * the service again on the next connection).
 */
export function idleExitUnsafe(sockets: HeldSockets, drain: Drain): string | undefined {
  if (sockets.held.length === 0) return 'this process was not socket-activated: its sockets would close with it, and nothing would start it again';
  if (sockets.held.some((fd) => !sockets.inherited.includes(fd))) {
    return 'it opened sockets of its own (openStoredSocket()): the fd store keeps them across a restart, not across a stop, and nothing would start it again';
  }
  if (!drain.observable) return 'its servers are not all net or http servers or dgram sockets, whose connections it can see (a Fastify instance, a worker pool)';
  return undefined;
}

/**
 * Calls `onIdle` once, after `timeoutMs` with no connection open and no datagram read. Returns a
 * function that stops watching.
 */
export function watchIdle(drain: Drain, timeoutMs: number, onIdle: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const arm = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (done || drain.busy) return;
    timer = setTimeout(() => {
      if (done || drain.busy) return;
      done = true;
      onIdle();
    }, timeoutMs);
    // Idleness alone keeps nothing alive.
    timer.unref();
  };
  drain.onActivity(arm);
  arm();
  return () => {
    done = true;
    if (timer) clearTimeout(timer);
  };
}
