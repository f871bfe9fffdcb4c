/*
 * The one stop sequence of a service, shared by lifecycle() and upgrader(): tell the service
 * manager (when this process still speaks for the service), finish what is served within the
 * deadline, run the application's own clean-up, stop the watchdog last, exit.
 *
 * This module holds no state of its own: the lazily loaded upgrade code may carry a copy.
 */
import type { Drain } from './drain.js';

/**
 * How a service stops, the options lifecycle() and upgrader() share. Durations are in milliseconds.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.kill.html
 */
export interface StopOptions {
  /** How long in-flight work may take after a stop signal (or an upgrade's hand-over) before connections are cut (default 10000). */
  stopTimeoutMs?: number;
  /** The signals that stop (default SIGTERM, which systemd sends, and SIGINT, for a terminal). */
  stopSignals?: readonly NodeJS.Signals[];
  /** Runs once the servers are closed, before the exit: flush logs, close databases. A throw makes the exit status 1. */
  onStop?: () => unknown;
  /**
   * The handle startWatchdog() returned: stopped last on a stop, as systemd applies the watchdog
   * until the process is gone (and at an upgrade's hand-over, when the new process pings instead).
   */
  watchdog?: { stop(): void };
  /** Exit the process once stopped (default true; exit status 0, or 1 when onStop threw). */
  exit?: boolean;
  /**
   * Stop by itself after this long with no connection open and no datagram read, as on SIGTERM
   * (exit status 0): the .socket unit (or `sd-activate run --lazy`) holds the sockets, and starts the
   * service again on the next connection, which waits in the backlog meanwhile. Only for a service
   * whose sockets were all passed by the service manager, and whose servers are net or http
   * servers or dgram sockets: otherwise SystemdError `ERR_SD_IDLE_EXIT_UNSAFE`. Default: never.
   */
  idleTimeoutMs?: number;
}

/** The steps of a stop, in the order {@link runStop} takes them. @internal */
export interface StopSteps {
  /**
   * STOPPING=1 to the service manager. Left out by a process that no longer speaks for the
   * service: after an upgrade's hand-over, a STOPPING=1 would stop the service (NotifyAccess=all).
   * A failed send is reported through `warn` and the stop goes on.
   */
  notifyStopping?: () => void;
  /** What must end before the servers close (an upgrade's new process, rolled back). */
  before?: () => Promise<void>;
  drain: Drain;
  /** How the drain treats idle keep-alive connections this time (default: as it was made). */
  idleConnections?: 'close' | 'drain';
  /** How long in-flight work may take before what is left is cut. */
  stopTimeoutMs: number;
  /** What must end after the servers closed and before the exit (an old process's last word to the new one). */
  after?: () => Promise<void>;
  /** The application's clean-up: flush logs, close databases. A throw makes the exit status 1. */
  onStop?: () => unknown;
  /** The pinger of startWatchdog(): stopped last, as systemd applies the watchdog until the process is gone. */
  watchdog?: { stop(): void };
  /** Removes the signal handlers. */
  dispose: () => void;
  /** Exit the process at the end. */
  exit: boolean;
  /** The exit status when nothing else fails: 0, or the reason for the stop. */
  exitCode: number;
  /** Where a failure that does not stop the stop goes. */
  warn: (error: Error) => void;
}

/**
 * Runs a stop to its end. Never rejects: every step's failure is reported and the next step runs,
 * since a process that stops halfway keeps its sockets and its clients waiting.
 *
 * @internal
 */
export async function runStop(steps: StopSteps): Promise<void> {
  const warn = (error: unknown): void => steps.warn(error instanceof Error ? error : new Error(String(error)));
  try {
    steps.notifyStopping?.();
  } catch (error) {
    warn(error);
  }
  try {
    await steps.before?.();
  } catch (error) {
    warn(error);
  }
  await steps.drain.close(steps.stopTimeoutMs, steps.idleConnections);
  try {
    await steps.after?.();
  } catch (error) {
    warn(error);
  }
  let failed = steps.exitCode !== 0;
  try {
    await steps.onStop?.();
  } catch (error) {
    failed = true;
    console.error(error);
  }
  steps.dispose();
  steps.watchdog?.stop();
  if (steps.exit) process.exit(failed ? steps.exitCode || 1 : 0);
}
