/*
 * A worker's side of its pool's upgrades (pool-handover.ts says how the two pools meet): on its
 * pool channel the primary gives it sockets.
 *
 * - In the old pool it gets one ('send'), and hands its connections over on it exactly as a lone
 *   process hands them to its successor (handover-sender.ts): HTTP/1.1 connections by
 *   themselves, the application's through the upgrader's 'handover' event. It tells the primary
 *   once what was ready has passed ('first'), and if the new worker ends meanwhile or later
 *   ('gone'); on 'stop' (the upgrade is rolled back) it keeps what it has not passed. Otherwise
 *   the hand-over lasts until the worker's own stop, which the old pool's stop brings.
 * - In the new pool it gets one per old worker sent its way ('receive'), and takes connections on
 *   each as a lone new process does (handover-receiver.ts): the application's arrive through the
 *   upgrader's 'connection' event and connections(), which ends once the primary says no more
 *   sockets come ('over') and every one of them has ended.
 */
import { native } from '../native/addon.js';
import type { Drain } from './drain.js';
import { HandoverChannel } from './handover-channel.js';
import { receiveHandover } from './handover-receiver.js';
import { HandoverSender } from './handover-sender.js';
import type { PoolMessage } from './pool-handover.js';
import type { UpgraderProcess } from './upgrader-process.js';

/** What a worker's hand-over needs. */
export interface WorkerHandoverContext {
  up: UpgraderProcess;
  servers: readonly object[];
  drain: Drain;
  warn: (error: Error) => void;
  /** How long a batch may wait for the new worker to hold it. */
  heldTimeoutMs: number;
}

/**
 * Serves the pool channel `fd` (this worker's, see handover.ts) from now on; `expecting`: this
 * worker was started while an upgrade hands connections over to its pool. Call it before READY=1.
 *
 * @internal
 */
export function serveWorkerHandover(fd: number, expecting: boolean, context: WorkerHandoverContext): void {
  const { up, servers, warn } = context;
  const channel = new HandoverChannel(fd);
  // It never keeps this process alive: the lifeline says when the primary is gone.
  channel.ref(false);
  const tell = (message: PoolMessage): void => void channel.send(message).catch(() => undefined);

  // New pool: the application's connections() ends once no socket is open or can come.
  const receiving = new Set<() => void>();
  let over = !expecting;
  const settle = (): void => {
    if (over && receiving.size === 0) up.incoming.end();
  };

  // Old pool: the hand-over of the upgrade in progress, by its number.
  let sending: { seq: number; sender: HandoverSender | undefined; stopped: boolean } | undefined;
  const send = async (socket: number, seq: number): Promise<void> => {
    if (up.handover?.active) {
      // One hand-over at a time: the primary runs one upgrade at a time, so this is a stale one.
      native().close(socket);
      tell({ t: 'first', seq, gone: false });
      return;
    }
    const current: NonNullable<typeof sending> = { seq, sender: undefined, stopped: false };
    sending = current;
    let first = false;
    let gone = false;
    const ended = (): void => {
      if (first) tell({ t: 'gone', seq });
      else gone = true;
    };
    const sender = await HandoverSender.start({ fd: socket, pid: undefined, drain: context.drain, events: up, warn, heldTimeoutMs: context.heldTimeoutMs, ended });
    first = true;
    current.sender = sender;
    if (sender && current.stopped) void sender.close();
    else if (sender) up.handover = sender;
    // The new worker may be gone before the end of its socket is read: the primary must know now.
    tell({ t: 'first', seq, gone: gone || (sender?.peerGone ?? false) });
  };
  const stop = (seq: number): void => {
    if (sending?.seq !== seq) return;
    sending.stopped = true;
    const { sender } = sending;
    if (sender && up.handover === sender) void up.endHandover();
  };

  channel.on('message', (message, fds) => {
    const m = message as Partial<PoolMessage & { seq: number }> | null;
    const [socket, ...extra] = fds;
    for (const other of extra) native().close(other);
    if (m?.t === 'receive' && socket !== undefined) {
      if (primaryIsGone) {
        native().close(socket);
        return;
      }
      const incoming = {
        add: up.incoming.add.bind(up.incoming),
        end: () => {
          receiving.delete(end);
          settle();
        },
      };
      const end = receiveHandover(socket, servers, incoming, warn);
      receiving.add(end);
      return;
    }
    if (m?.t === 'send' && socket !== undefined && typeof m.seq === 'number') {
      void send(socket, m.seq);
      return;
    }
    if (socket !== undefined) native().close(socket);
    if (m?.t === 'over') {
      over = true;
      settle();
    } else if (m?.t === 'stop' && typeof m.seq === 'number') {
      stop(m.seq);
    }
  });
  // The primary is gone (killed, or rolled back): this worker is finishing, and takes nothing more.
  // What the old workers have not released yet stays with them.
  let primaryIsGone = false;
  const primaryGone = (): void => {
    primaryIsGone = true;
    over = true;
    for (const end of [...receiving]) end();
    settle();
  };
  channel.once('end', primaryGone);
  channel.once('error', (error) => {
    warn(error);
    primaryGone();
  });
  tell({ t: 'hello' });
}
