/*
 * The 'handover' event's pass(socket, state): the application's connections, each handed over
 * when the application says so, at a boundary of its protocol (handover-sender.ts sends them).
 * Calls made in one turn go in one batch; a socket goes once what the application wrote to it is
 * in the kernel, since destroying it with writes still in Node would lose them.
 */
import type { Socket } from 'node:net';
import { connectionFd } from './node-private.js';
import type { PassOptions, PassOutcome } from './upgrade-types.js';

/** The largest state one connection may carry (its JSON): a batch goes in one message, which the kernel bounds. */
export const MAX_STATE_BYTES = 65_536;

/** How often a pass() waiting for its socket's writes to reach the kernel looks again. */
const WRITES_POLL_MS = 10;

/** The longest `to` (see PassOptions.to): it is sent with every connection. */
const MAX_TO_LENGTH = 64;

/** A connection to send: the application's socket, state and options. */
export interface PassItem extends PassOptions {
  socket: Socket;
  state: unknown;
}

/** A pass() call, until it has its outcome. */
interface Queued extends PassItem {
  resolve: (outcome: PassOutcome) => void;
}

/**
 * @throws TypeError when `to` is not a string of 1 to {@link MAX_TO_LENGTH} characters
 */
export function checkTo(to: unknown): asserts to is string | undefined {
  if (to !== undefined && (typeof to !== 'string' || to.length === 0 || to.length > MAX_TO_LENGTH)) {
    throw new TypeError(`to must be a string of 1 to ${MAX_TO_LENGTH} characters`);
  }
}

/**
 * @throws TypeError when `options` are not PassOptions
 */
function checkOptions(options: unknown): asserts options is PassOptions | undefined {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { to, ready } = options as PassOptions;
  checkTo(to);
  if (ready !== undefined && typeof ready !== 'function') throw new TypeError('options.ready must be a function');
}

/**
 * @throws TypeError when `state` is not JSON, or its JSON is over {@link MAX_STATE_BYTES} bytes
 */
function checkState(state: unknown): void {
  let text: string | undefined;
  try {
    text = JSON.stringify(state);
  } catch (error) {
    throw new TypeError(`the state of a connection must be JSON: ${(error as Error).message}`);
  }
  if (text !== undefined && Buffer.byteLength(text) > MAX_STATE_BYTES) {
    throw new TypeError(`the state of a connection must be at most ${MAX_STATE_BYTES} bytes of JSON; this one is ${Buffer.byteLength(text)}`);
  }
}

/** @internal */
export class PassQueue {
  /** Sends connections with the application's states; resolves with those passed. */
  readonly #send: (items: PassItem[]) => Promise<Set<Socket>>;
  /** Whether a socket is in a batch already (an HTTP one the application passes too). */
  readonly #busy: (socket: Socket) => boolean;
  readonly #queue: Queued[] = [];
  /** Calls waiting for their socket: writes not in the kernel yet, or in a batch already. */
  readonly #waiting = new Set<Queued>();
  readonly #passing = new Map<Socket, Promise<PassOutcome>>();
  #active = true;

  constructor(send: (items: PassItem[]) => Promise<Set<Socket>>, busy: (socket: Socket) => boolean) {
    this.#send = send;
    this.#busy = busy;
  }

  /**
   * Hands `socket` over with `state` (see HandoverEvent.pass).
   *
   * @throws (rejects) TypeError when `socket` is not a net.Socket, `state` is not JSON or `options` not valid;
   *   SystemdError `ERR_SD_FD_UNSUITABLE` for a TLS socket, `ERR_SD_FD_INVALID` for one that is
   *   destroyed or not connected, `ERR_SD_NODE_UNSUPPORTED` when this Node keeps the fd elsewhere
   */
  pass(socket: Socket, state: unknown, options?: PassOptions): Promise<PassOutcome> {
    try {
      connectionFd(socket);
      checkState(state);
      checkOptions(options);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const already = this.#passing.get(socket);
    if (already) return already;
    const { to, ready } = options ?? {};
    const outcome = new Promise<PassOutcome>((resolve) => this.#enqueue({ socket, state, to, ready, resolve }));
    this.#passing.set(socket, outcome);
    void outcome.then(() => this.#passing.delete(socket));
    return outcome;
  }

  /** The hand-over is over: every call not sent yet has its outcome, 'kept'. */
  stop(): void {
    this.#active = false;
    for (const item of [...this.#queue.splice(0), ...this.#waiting]) item.resolve('kept');
    this.#waiting.clear();
  }

  #enqueue(item: Queued): void {
    if (!this.#active) {
      item.resolve('kept');
      return;
    }
    this.#queue.push(item);
    if (this.#queue.length === 1) setImmediate(() => void this.#flush());
  }

  /** Tries `item` again a moment from now. */
  #later(item: Queued): void {
    this.#waiting.add(item);
    setTimeout(() => {
      if (this.#waiting.delete(item)) this.#enqueue(item);
    }, WRITES_POLL_MS);
  }

  /** Sends what was collected so far, as one call (batches of 253). */
  async #flush(): Promise<void> {
    const now: Queued[] = [];
    for (const item of this.#queue.splice(0)) {
      if (!this.#active || item.socket.destroyed) item.resolve('kept');
      else if (this.#busy(item.socket) || item.socket.writableLength > 0) this.#later(item);
      else now.push(item);
    }
    if (now.length === 0) return;
    const passed = await this.#send(now.map(({ socket, state, to, ready }) => ({ socket, state, to, ready })));
    for (const item of now) {
      if (passed.has(item.socket)) item.resolve('passed');
      else if (this.#active && !item.socket.destroyed && item.socket.writableLength > 0) this.#later(item);
      else item.resolve('kept');
    }
  }
}
