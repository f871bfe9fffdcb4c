/*
 * The connections an upgrade's old process handed over with a state of the application's (its
 * 'handover' event's pass()), as the new process's application gets them: each one once, through
 * the Upgrader's 'connection' event or its connections() iterator, whichever is there first.
 *
 * They come while the new process is not the main process yet, before upgrader() resolves, when
 * the application cannot listen yet: they wait here, unread (what the client sends meanwhile
 * waits in the kernel), until a listener or an iterator takes them. Those nobody takes within the
 * grace after the hand-over ended are closed, with a warning: the client sees its connection end.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingConnection } from './connection-handover.js';
import type { HandedOverConnection, UpgraderEvents } from './upgrade-types.js';

/** @internal */
export class IncomingConnections {
  readonly #events: EventEmitter<UpgraderEvents>;
  readonly #warn: (error: Error) => void;
  readonly #graceMs: number;
  readonly #queue: Array<{ connection: IncomingConnection; state: unknown }> = [];
  readonly #waiting: Array<(result: IteratorResult<HandedOverConnection>) => void> = [];
  #ended: boolean;

  /** `expecting`: this process was started by an upgrade that hands connections over, and it is not over yet. */
  constructor(events: EventEmitter<UpgraderEvents>, warn: (error: Error) => void, graceMs: number, expecting: boolean) {
    this.#events = events;
    this.#warn = warn;
    this.#graceMs = graceMs;
    this.#ended = !expecting;
    (events as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'connection' && this.#queue.length > 0) setImmediate(() => this.#deliver());
    });
  }

  /** A connection released to this process. */
  add(connection: IncomingConnection, state: unknown): void {
    this.#queue.push({ connection, state });
    this.#deliver();
  }

  /** No more will come (the old process is gone): iterators end once they have taken what is here. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#deliver();
    if (this.#queue.length === 0) return;
    setTimeout(() => {
      const left = this.#queue.splice(0);
      for (const { connection } of left) connection.close();
      if (left.length > 0) {
        this.#warn(new Error(`${left.length} connection(s) handed over by the previous process were closed: nothing took them (listen to the upgrader's 'connection' event, or iterate connections())`));
      }
    }, this.#graceMs).unref();
  }

  #deliver(): void {
    while (this.#queue.length > 0) {
      if (this.#events.listenerCount('connection') > 0) {
        const { connection, state } = this.#queue.shift()!;
        try {
          this.#events.emit('connection', connection.open(), state);
        } catch (error) {
          this.#warn(error instanceof Error ? error : new Error(String(error)));
        }
        continue;
      }
      const waiter = this.#waiting.shift();
      if (!waiter) break;
      const { connection, state } = this.#queue.shift()!;
      waiter({ done: false, value: { socket: connection.open(), state } });
    }
    if (this.#ended && this.#queue.length === 0) for (const waiter of this.#waiting.splice(0)) waiter({ done: true, value: undefined });
  }

  /** The connections, as they come, until the hand-over is over. */
  iterate(): AsyncIterableIterator<HandedOverConnection> {
    const iterator: AsyncIterableIterator<HandedOverConnection> = {
      next: () =>
        new Promise((resolve) => {
          this.#waiting.push(resolve);
          this.#deliver();
        }),
      return: (value?: unknown) => Promise.resolve({ done: true, value: value as undefined }),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
}
