/*
 * The connection hand-over of a worker pool's upgrade: each old worker's connections go to a
 * worker of the new pool, straight from worker to worker.
 *
 *   old primary ──upgrade's hand-over socket── new primary
 *     │ pool channel (one per worker)               │ pool channel
 *   old worker k ══ a socket of its own ══════ new worker j      (connection-handover.ts on it)
 *
 * At an upgrade whose new primary serves pools (its hello says how many), the old primary makes
 * one seqpacket pair per old worker: one end goes to that worker over its pool channel ('send'),
 * the other to the new primary ('pool'), which gives it to one of its workers, round robin
 * ('receive'). The old worker then hands its connections over on that socket exactly as a lone
 * process hands them to its successor (handover-sender.ts, handover-receiver.ts, run in the
 * workers by worker-handover.ts): HTTP/1.1 connections by themselves, the application's through
 * its 'handover' event, so the same code serves in a pool and alone.
 *
 * Why so, rather than old workers -> old primary -> new primary -> new workers:
 * - a connection crosses one socket and is held by two processes, as without a pool, with the
 *   ownership rules of connection-handover.ts unchanged (the old worker gives a connection away
 *   only once the new worker holds it; the new worker reads nothing before it is released). A
 *   relay would need them at each of three hops, and a primary dying in the middle would strand
 *   batches that neither end could take back;
 * - the primaries never hold a connection: they pass one socket end per old worker, once, and
 *   close it (fds: the old primary two per old worker for a moment, the new one one; each worker
 *   one more fd for good, its pool channel). Latency is that of one process to another;
 * - the old primary makes the pairs because it knows its workers: the new primary answers
 *   nothing, and every end has one owner at every moment; a process that dies closes its ends,
 *   and the process at the other end sees the end of its channel.
 *
 * Ordering and faults. The old primary waits until each of its workers has handed over what was
 * ready ('first': its batches adopted by the new worker) before it tells the manager MAINPID=, as
 * a lone process does. Until then:
 * - a new worker that dies: its old worker's socket ends; that worker keeps every connection it
 *   had not passed, serves on, and says 'gone'; the old primary rolls the upgrade back;
 * - the new primary that dies: the old primary's socket ends, and it rolls back;
 * - on a rollback the old primary tells each old worker 'stop': what it has not passed stays
 *   with it. The new workers see their lifeline end and stop (what they were passed ends with them).
 * After MAINPID=, a new worker's death is the new pool's (it starts another); its old worker
 * keeps what it had not passed, and finishes it as a stop does. A new pool none of whose workers
 * takes part (they do not call upgrader()) declines each socket, and the old workers' connections
 * drain as towards a version without the hand-over.
 */
import { native } from '../native/addon.js';
import { faultPoint } from './fault.js';
import { HandoverChannel } from './handover-channel.js';
import type { PoolLink, PoolWorker } from './pool-link.js';

/** Messages on a worker's pool channel (worker-handover.ts is the worker's side). */
export type PoolMessage =
  /** worker -> primary: its upgrader() takes part in hand-overs. */
  | { t: 'hello' }
  /** primary -> old worker, with one fd: hand your connections over on this socket. */
  | { t: 'send'; seq: number }
  /** old worker -> primary: what was ready is handed over; `gone`: the new worker ended first (or never answered). */
  | { t: 'first'; seq: number; gone: boolean }
  /** old worker -> primary: the new worker ended during the hand-over. */
  | { t: 'gone'; seq: number }
  /** primary -> old worker: the upgrade is rolled back; keep what is not passed. */
  | { t: 'stop'; seq: number }
  /** primary -> new worker, with one fd: connections come on this socket. */
  | { t: 'receive' }
  /** primary -> new worker: no more sockets come (the old primary is done or gone). */
  | { t: 'over' };

/** The message on the upgrade's hand-over socket that carries one old worker's socket, for the new primary's pool number `pool`. */
export interface PoolSocketMessage {
  t: 'pool';
  seq: number;
  pool: number;
}

/** The old primary's side of one upgrade of its pools. */
export interface PoolSender {
  /** Resolves once every old worker has said 'first', ended, or the time is up. */
  readonly first: Promise<void>;
  /** True once a new worker ended during the hand-over (an old worker said so). */
  readonly peerGone: boolean;
  /** The hand-over is over: listeners off, and every old worker still handing over is told 'stop' (harmless once it is done). */
  close(): void;
}

let nextSeq = 1;

/**
 * Old primary: gives each ready worker of `pools` a socket to a worker of the new primary's pool
 * of the same rank, over `channel` (the upgrade's hand-over socket).
 */
export function handOverPools(channel: HandoverChannel, pools: readonly PoolLink[], timeoutMs: number): PoolSender {
  const seq = nextSeq++;
  let gone = false;
  let closed = false;
  const cleanups: Array<() => void> = [];
  const given: PoolWorker[] = [];

  const one = (pool: number, worker: PoolWorker): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const onMessage = (message: unknown): void => {
        const m = message as Partial<{ t: string; seq: number; gone: boolean }> | null;
        if (m?.seq !== seq) return;
        if (m.t === 'gone' || (m.t === 'first' && m.gone === true)) gone = true;
        if (m.t === 'first') done();
      };
      // The old worker died: its connections died with it, nothing to wait for.
      const onEnd = (): void => done();
      const timer = setTimeout(done, timeoutMs);
      worker.channel.on('message', onMessage);
      worker.channel.on('end', onEnd);
      cleanups.push(() => {
        worker.channel.off('message', onMessage);
        worker.channel.off('end', onEnd);
        done();
      });
      const [mine, theirs] = native().seqpacketPair();
      void (async () => {
        try {
          await worker.channel.send({ t: 'send', seq } satisfies PoolMessage, [mine]);
          given.push(worker);
          // If the new primary is gone, `theirs` closes below, and the worker sees its socket end.
          await channel.send({ t: 'pool', seq, pool } satisfies PoolSocketMessage, [theirs]);
        } catch {
          if (!given.includes(worker)) done();
        } finally {
          native().close(mine);
          native().close(theirs);
        }
      })();
    });

  const first = Promise.all(pools.flatMap((pool, p) => pool.workers().map((worker) => one(p, worker)))).then(() => undefined);
  return {
    first,
    get peerGone() {
      return gone;
    },
    close() {
      if (closed) return;
      closed = true;
      for (const cleanup of cleanups.splice(0)) cleanup();
      for (const worker of given) worker.channel.send({ t: 'stop', seq } satisfies PoolMessage).catch(() => undefined);
    },
  };
}

/**
 * No worker of that pool takes connections (its workers do not call upgrader()): the old worker
 * is told so, as by a version without the hand-over (a first message that is no hello), and its
 * connections drain. Closing the socket alone would say that the new worker died.
 */
function decline(fd: number): void {
  const channel = new HandoverChannel(fd);
  channel.ref(false);
  channel
    .send({ t: 'none' })
    .catch(() => undefined)
    .finally(() => channel.close());
}

/**
 * New primary: what takes the old primary's 'pool' messages on the upgrade's hand-over socket
 * (receiveConnections' `others`): each socket goes to a worker of the pool of that rank, round
 * robin, and is closed here once sent (when there is no such worker, see decline()).
 */
export function forwardToWorkers(pools: readonly PoolLink[]): (message: unknown, fds: number[]) => boolean {
  const turns = pools.map(() => 0);
  return (message, fds) => {
    const m = message as Partial<PoolSocketMessage> | null;
    if (m?.t !== 'pool') return false;
    const [fd, ...extra] = fds;
    for (const other of extra) native().close(other);
    if (fd === undefined) return true;
    faultPoint('new:forwarding');
    const p = typeof m.pool === 'number' && Number.isInteger(m.pool) ? m.pool : -1;
    const workers = pools[p]?.workers() ?? [];
    if (workers.length === 0) {
      decline(fd);
      return true;
    }
    const worker = workers[turns[p]!++ % workers.length]!;
    worker.channel
      .send({ t: 'receive' } satisfies PoolMessage, [fd])
      .then(
        () => faultPoint('new:forwarded'),
        () => undefined,
      )
      .finally(() => native().close(fd));
    return true;
  };
}
