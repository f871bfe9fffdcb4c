/*
 * The connections an upgrade's old process handed over with a state of the application's (its
 * 'handover' event's pass()), as the new process's application gets them: each one once, through
 * the Upgrader's 'connection' event or its connections() iterator, whichever is there first; those
 * passed with a `to` only through connections(to), so that a library (sd-activate/ws) and the
 * application never get each other's.
 *
 * They come while the new process is not the main process yet, before upgrader() resolves, when
 * the application cannot listen yet: they wait here, unread (what the client sends meanwhile
 * waits in the kernel), until a listener or an iterator takes them. Those nobody takes within the
 * grace after the hand-over ended are closed, with a warning: the client sees its connection end.
 */
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { IncomingConnection } from './connection-handover.js';
import { checkTo } from './handover-pass.js';
import type { HandedOverConnection, UpgraderEvents } from './upgrade-types.js';

/** The queue of the connections passed without `to`. */
const UNNAMED = '';

type Waiter = (result: IteratorResult<HandedOverConnection>) => void;

/** @internal */
export class IncomingConnections {
  readonly #events: EventEmitter<UpgraderEvents>;
  readonly #warn: (error: Error) => void;
  readonly #graceMs: number;
  /** Told of each socket given to the application: a stop waits for it as for one it accepted. */
  readonly #opened: (socket: Socket) => void;
  /** What waits for a taker, by `to` (UNNAMED: the 'connection' event or connections()). */
  readonly #queues = new Map<string, Array<{ connection: IncomingConnection; state: unknown }>>();
  readonly #waiting = new Map<string, Waiter[]>();
  #ended: boolean;

  /** `expecting`: this process was started by an upgrade that hands connections over, and it is not over yet. */
  constructor(events: EventEmitter<UpgraderEvents>, warn: (error: Error) => void, graceMs: number, expecting: boolean, opened: (socket: Socket) => void = () => undefined) {
    this.#events = events;
    this.#warn = warn;
    this.#graceMs = graceMs;
    this.#ended = !expecting;
    this.#opened = opened;
    (events as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'connection' && (this.#queues.get(UNNAMED)?.length ?? 0) > 0) setImmediate(() => this.#deliver(UNNAMED));
    });
  }

  /** A connection released to this process, passed with `to` (or none). */
  add(connection: IncomingConnection, state: unknown, to: string = UNNAMED): void {
    const queue = this.#queues.get(to) ?? [];
    this.#queues.set(to, queue);
    queue.push({ connection, state });
    this.#deliver(to);
  }

  /** No more will come (the old process is gone): iterators end once they have taken what is here. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const to of new Set([...this.#queues.keys(), ...this.#waiting.keys()])) this.#deliver(to);
    if (![...this.#queues.values()].some((queue) => queue.length > 0)) return;
    setTimeout(() => {
      const left = [...this.#queues.values()].flatMap((queue) => queue.splice(0));
      for (const { connection } of left) connection.close();
      if (left.length > 0) {
        this.#warn(new Error(`${left.length} connection(s) handed over by the previous process were closed: nothing took them (listen to the upgrader's 'connection' event, or iterate connections())`));
      }
    }, this.#graceMs).unref();
  }

  #open(connection: IncomingConnection): Socket {
    const socket = connection.open();
    this.#opened(socket);
    return socket;
  }

  #deliver(to: string): void {
    const queue = this.#queues.get(to) ?? [];
    const waiting = this.#waiting.get(to) ?? [];
    while (queue.length > 0) {
      if (to === UNNAMED && this.#events.listenerCount('connection') > 0) {
        const { connection, state } = queue.shift()!;
        try {
          this.#events.emit('connection', this.#open(connection), state);
        } catch (error) {
          this.#warn(error instanceof Error ? error : new Error(String(error)));
        }
        continue;
      }
      const waiter = waiting.shift();
      if (!waiter) break;
      const { connection, state } = queue.shift()!;
      waiter({ done: false, value: { socket: this.#open(connection), state } });
    }
    if (this.#ended && queue.length === 0) for (const waiter of waiting.splice(0)) waiter({ done: true, value: undefined });
  }

  /**
   * The connections passed with `to` (or without one), as they come, until the hand-over is over.
   *
   * @throws TypeError when `to` is not a string of 1 to 64 characters
   */
  iterate(to?: string): AsyncIterableIterator<HandedOverConnection> {
    checkTo(to);
    const key = to ?? UNNAMED;
    const iterator: AsyncIterableIterator<HandedOverConnection> = {
      next: () =>
        new Promise((resolve) => {
          const waiting = this.#waiting.get(key) ?? [];
          this.#waiting.set(key, waiting);
          waiting.push(resolve);
          this.#deliver(key);
        }),
      return: (value?: unknown) => Promise.resolve({ done: true, value: value as undefined }),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
}
