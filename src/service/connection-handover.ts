/*
 * Passing established connections from one process to another over a HandoverChannel, each with
 * a state record, so that at every moment exactly one process owns each connection.
 *
 * Per batch of at most 253 connections:
 *
 *   old                                        new
 *   pause each socket, read its fd
 *   batch {seq, states} + fds       ------>    keeps the fds, reads nothing
 *                                   <------    held {seq}
 *   for each: ready? (the caller's check)
 *     yes: take what Node buffered, destroy
 *          the socket (close(), no shutdown():
 *          no FIN, the new process holds it)
 *     no:  keep it, resume it
 *   release {seq, take, keep}       ------>    closes the copies kept; wraps each taken fd in a
 *                                              net.Socket, bytes the old one had buffered first
 *                                   <------    adopted {seq} (when it took any)
 *   the batch is done
 *
 * Ownership: the old process until it destroys its socket on `held`; the new process from then
 * on. The new process never reads a connection before `release`, so the old one may take back
 * anything not released: when the channel ends before `held` (the new process died), every
 * connection of that batch is resumed by the old process, which serves on. What was released is
 * the new process's, and dies with it. The old process never reads after the pause that matters:
 * what Node read into the socket's buffer after it is carried in `release`; what the kernel holds
 * stays there for the new reader. `adopted` tells the old process that the new one has taken what
 * was released, and is alive after it: an upgrade waits for it before telling the service manager
 * that the new process is the main one.
 */
import type { Socket } from 'node:net';
import { connectionFd } from './node-private.js';
import { faultPoint } from './fault.js';
import type { HandoverChannel } from './handover-channel.js';
import { native } from '../native/addon.js';

/** fds a message can carry (SCM_MAX_FD). */
export const MAX_BATCH = 253;

/** One connection to pass and the state the receiving side gets with it (JSON). */
export interface OutgoingConnection {
  socket: Socket;
  state: unknown;
}

/** What became of the connections given to {@link sendConnections}. */
export interface SendResult {
  /** Now the other process's: destroyed here. */
  passed: Socket[];
  /** Still this process's, reading again: not ready at the release, or the other process ended first. */
  kept: Socket[];
}

export interface SendOptions {
  /**
   * Checked at the release, for each connection, with reading stopped: false keeps it here (an
   * HTTP connection whose parser holds part of a request, say). Default: always ready.
   */
  ready?: (socket: Socket) => boolean;
  /** Connections per message, at most 253 (default). */
  batchSize?: number;
  /**
   * How long a batch may wait for `held` (default 10000 ms). Then its connections are kept, and a
   * release keeping them all tells the other side to close its copies, should it answer late.
   */
  heldTimeoutMs?: number;
  /**
   * Checked when a batch is held, before anything is given away: false (the other process is
   * gone, its `held` was its last word) keeps the whole batch here.
   */
  peerAlive?: () => boolean;
  /** Called for each connection right before it is let go (still open, reading stopped). */
  beforePass?: (socket: Socket) => void;
}

interface Batch {
  items: Array<OutgoingConnection & { wasFlowing: boolean }>;
  settled: boolean;
  timer?: NodeJS.Timeout;
  /** Released with connections taken; `adopted` not come yet. */
  adopting?: boolean;
}

type Wire =
  | { t: 'batch'; seq: number; states: unknown[] }
  | { t: 'held'; seq: number }
  | { t: 'release'; seq: number; take: Array<{ i: number; data?: string }>; keep: number[] }
  | { t: 'adopted'; seq: number };

/**
 * Passes `connections` to the process at the other end of `channel`, in batches, and resolves
 * once each one is passed or kept. Never rejects for one connection: a socket whose fd cannot be
 * read (destroyed meanwhile, TLS) is kept.
 *
 * @internal
 */
export function sendConnections(channel: HandoverChannel, connections: readonly OutgoingConnection[], options: SendOptions = {}): Promise<SendResult> {
  const size = Math.min(MAX_BATCH, Math.max(1, options.batchSize ?? MAX_BATCH));
  const ready = options.ready ?? (() => true);
  const result: SendResult = { passed: [], kept: [] };
  const batches = new Map<number, Batch>();

  return new Promise<SendResult>((resolve) => {
    let sending = true;
    /** Releases on their way: the other process needs each one to take what was let go here. */
    let releasing = 0;
    const release = (message: Wire): void => {
      releasing++;
      channel
        .send(message)
        .catch(() => undefined)
        .finally(() => {
          releasing--;
          finish();
        });
    };
    const finish = (): void => {
      if (sending || releasing > 0 || [...batches.values()].some((b) => !b.settled || b.adopting)) return;
      channel.off('message', onMessage);
      channel.off('end', onEnd);
      channel.off('error', onEnd);
      resolve(result);
    };
    const keep = (items: Batch['items']): void => {
      for (const item of items) {
        result.kept.push(item.socket);
        if (item.wasFlowing && !item.socket.destroyed) item.socket.resume();
      }
    };
    const onMessage = (message: unknown, fds: number[]): void => {
      for (const fd of fds) native().close(fd);
      const m = message as Wire;
      if (m?.t === 'adopted') {
        const batch = batches.get(m.seq);
        if (!batch?.adopting) return;
        batch.adopting = false;
        clearTimeout(batch.timer);
        finish();
        return;
      }
      if (m?.t !== 'held') return;
      const batch = batches.get(m.seq);
      if (!batch || batch.settled) return;
      batch.settled = true;
      clearTimeout(batch.timer);
      // One synchronous block, so that Node reads nothing more between the check and the destroy.
      const take: Array<{ i: number; data?: string }> = [];
      const kept: number[] = [];
      const peerGone = options.peerAlive !== undefined && !options.peerAlive();
      batch.items.forEach((item, i) => {
        const { socket } = item;
        if (peerGone || socket.destroyed || !ready(socket)) {
          kept.push(i);
          keep([item]);
          return;
        }
        // What Node read after the pause (it reads on up to the high-water mark), taken without
        // a 'data' event: the listeners of a socket that is passed are done with it.
        // (read() of an empty buffer would only start the handle reading again.)
        const buffered: Buffer[] = [];
        if (socket.readableLength > 0) {
          socket.removeAllListeners('data');
          // Strings when the application called setEncoding(): back to the bytes they were.
          const encoding = socket.readableEncoding ?? undefined;
          for (let chunk: Buffer | string | null; (chunk = socket.read() as Buffer | string | null) !== null; ) {
            buffered.push(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk);
          }
        }
        options.beforePass?.(socket);
        socket.destroy();
        result.passed.push(socket);
        take.push(buffered.length ? { i, data: Buffer.concat(buffered).toString('base64') } : { i });
      });
      if (take.length > 0) {
        // Done once the other process says it took them (or is gone), or after the same timeout.
        batch.adopting = true;
        batch.timer = setTimeout(() => {
          batch.adopting = false;
          finish();
        }, options.heldTimeoutMs ?? 10_000);
      }
      release({ t: 'release', seq: m.seq, take, keep: kept });
    };
    const onEnd = (): void => {
      for (const batch of batches.values()) {
        if (batch.adopting) {
          batch.adopting = false;
          clearTimeout(batch.timer);
        }
        if (batch.settled) continue;
        batch.settled = true;
        clearTimeout(batch.timer);
        keep(batch.items);
      }
      // The sending loop finds the channel closed and keeps what it has not sent.
      finish();
    };
    const late = (seq: number): void => {
      const batch = batches.get(seq);
      if (!batch || batch.settled) return;
      batch.settled = true;
      keep(batch.items);
      release({ t: 'release', seq, take: [], keep: batch.items.map((_item, i) => i) });
    };
    channel.on('message', onMessage);
    channel.once('end', onEnd);
    channel.once('error', onEnd);

    void (async () => {
      const paused: Batch['items'] = connections.map(({ socket, state }) => {
        const wasFlowing = !socket.isPaused();
        socket.pause();
        return { socket, state, wasFlowing };
      });
      const groups = batchesOf(paused, size);
      for (let g = 0; g < groups.length; g++) {
        let items = groups[g]!;
        const seq = nextSeq++;
        try {
          // fds are read right before each try: a socket closed meanwhile (its number perhaps
          // another's by now) is never sent.
          for (;;) {
            const fds: number[] = [];
            items = items.filter((item) => {
              try {
                fds.push(connectionFd(item.socket));
                return true;
              } catch {
                keep([item]);
                return false;
              }
            });
            if (items.length === 0) break;
            const batch: Batch = { items, settled: false };
            batches.set(seq, batch);
            if (channel.trySend({ t: 'batch', seq, states: items.map((item) => item.state) } satisfies Wire, fds)) {
              batch.timer = setTimeout(() => late(seq), options.heldTimeoutMs ?? 10_000);
              faultPoint('old:handing');
              break;
            }
            batches.delete(seq);
            await channel.writable();
          }
        } catch {
          // The other process is gone: nothing of this batch or after it leaves this process.
          batches.delete(seq);
          keep(items);
          keep(groups.slice(g + 1).flat());
          break;
        }
      }
      sending = false;
      finish();
    })();
  });
}

let nextSeq = 1;

/** The most JSON one batch carries: the kernel refuses a seqpacket message over its send buffer (about 208 KiB by default). */
const MAX_BATCH_BYTES = 128 * 1024;

/** `items` cut into batches of at most `size` connections and {@link MAX_BATCH_BYTES} of states. */
function batchesOf<T extends { state: unknown }>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const length = Buffer.byteLength(JSON.stringify(item.state) ?? 'null') + 1;
    if (current.length > 0 && (current.length === size || bytes + length > MAX_BATCH_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += length;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** A connection as the receiving side gets it: its fd, not read by anyone until open(). */
export interface IncomingConnection {
  /** The state the old process sent with it. */
  state: unknown;
  /**
   * A net.Socket on the connection, with what the old process had read and not consumed
   * unshifted first. Call it when the socket is wanted at once: Node starts reading as soon as
   * the socket exists, and an http.Server must be given it (`emit('connection')`) before then.
   */
  open(options?: { allowHalfOpen?: boolean }): Socket;
  /** Closes the fd instead (no shutdown(): the client sees nothing if another process holds it). */
  close(): void;
}

/**
 * Receives connections on `channel`: answers each batch with `held`, and calls `onConnection`
 * for each connection released to this process, which must open() or close() it. Returns a function that stops receiving. fds of
 * batches not released when the channel ends are closed (their old process died holding them).
 * `options.others` is offered every message of another protocol on the same channel first: it
 * returns true when it took the message and its fds; the fds of those it does not take are closed.
 *
 * @internal
 */
export function receiveConnections(
  channel: HandoverChannel,
  onConnection: (connection: IncomingConnection) => void,
  options: { net: typeof import('node:net'); others?: (message: unknown, fds: number[]) => boolean },
): () => void {
  const held = new Map<number, { fds: number[]; states: unknown[] }>();
  const onMessage = (message: unknown, fds: number[]): void => {
    const m = message as Wire;
    if (m?.t === 'batch' && Array.isArray(m.states) && m.states.length === fds.length && !held.has(m.seq)) {
      held.set(m.seq, { fds, states: m.states });
      faultPoint('new:holding');
      channel.send({ t: 'held', seq: m.seq } satisfies Wire).then(() => faultPoint('new:held'), () => undefined);
      return;
    }
    if (m?.t !== 'batch' && m?.t !== 'release' && options.others?.(message, fds)) return;
    for (const fd of fds) native().close(fd);
    if (m?.t !== 'release') return;
    const batch = held.get(m.seq);
    if (!batch) return;
    held.delete(m.seq);
    const taken = new Set<number>();
    for (const { i, data } of m.take) {
      const fd = batch.fds[i];
      if (fd === undefined || taken.has(i)) continue;
      taken.add(i);
      let used = false;
      onConnection({
        state: batch.states[i],
        open: (opts = {}) => {
          if (used) throw new Error('this connection was opened or closed already');
          used = true;
          const socket = new options.net.Socket({ fd, readable: true, writable: true, allowHalfOpen: opts.allowHalfOpen ?? false });
          if (data) socket.unshift(Buffer.from(data, 'base64'));
          return socket;
        },
        close: () => {
          if (used) return;
          used = true;
          native().close(fd);
        },
      });
    }
    batch.fds.forEach((fd, i) => {
      if (!taken.has(i)) native().close(fd);
    });
    if (taken.size > 0) {
      faultPoint('new:adopted');
      channel.send({ t: 'adopted', seq: m.seq } satisfies Wire).catch(() => undefined);
    }
  };
  const onEnd = (): void => {
    for (const batch of held.values()) for (const fd of batch.fds) native().close(fd);
    held.clear();
  };
  channel.on('message', onMessage);
  channel.once('end', onEnd);
  return () => {
    channel.off('message', onMessage);
    channel.off('end', onEnd);
  };
}
