/*
 * What the connection hand-over of an upgrade needs of a worker pool: its workers that take part,
 * each with its channel (pool-handover.ts, worker-handover.ts). The upgrade and the pool are
 * loaded as files of their own (scripts/bundle.mjs), so the hand-over finds a pool among the
 * servers by a registered symbol, not by its class: this module holds no state, and both files
 * may carry a copy of it.
 */
import type { HandoverChannel } from './handover-channel.js';

/** The key of a pool's {@link PoolLink}. @internal */
export const POOL_LINK: unique symbol = Symbol.for('sd-activate.pool-link');

/** A worker of a pool, as the hand-over sees it. @internal */
export interface PoolWorker {
  index: number;
  pid: number;
  /** Its seqpacket channel to the primary. */
  channel: HandoverChannel;
}

/** A pool's side of the hand-over. @internal */
export interface PoolLink {
  /** The workers running now, ready, that take connections and hand them over (their upgrader() said so). */
  workers(): PoolWorker[];
  /** The hand-over to this pool (its primary was started by an upgrade) is over: every worker is told. */
  over(): void;
}

/** The pools among `servers`, in order. @internal */
export function poolLinks(servers: readonly object[]): PoolLink[] {
  const out: PoolLink[] = [];
  for (const server of servers) {
    const link = (server as { [POOL_LINK]?: PoolLink })[POOL_LINK];
    if (link !== undefined) out.push(link);
  }
  return out;
}
