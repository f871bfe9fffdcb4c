import { errno as errnoValues, events, fs } from '../core/builtins.js';
import { SystemdError, systemError } from '../core/errors.js';
import { native, type NotifyDatagram } from '../native/addon.js';
import { encodeSockaddr } from '../core/sockaddr.js';
import { show } from '../core/quote.js';

const { ETIMEDOUT } = errnoValues;

/** Messages read per readable event before the loop gets a turn; the watcher fires again for the rest. */
const BATCH = 64;

/**
 * systemd's NOTIFY_BUFFER_MAX (PIPE_BUF): its manager reads at most this many bytes of a notify
 * datagram and ignores a longer one whole (manager_dispatch_notify_fd(), "exceeded maximum size").
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export const NOTIFY_BUFFER_MAX = 4096;

/**
 * One datagram as a service manager receives it on its notify socket.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export class NotifyMessage {
  /** The exact bytes sent. */
  readonly data: Buffer;
  /** fds that came with SCM_RIGHTS, close-on-exec. They are the receiver's now: close them. */
  readonly fds: number[];
  /** The sender's pid (SCM_CREDENTIALS: the kernel fills in a sender's own; a privileged sender may claim another). */
  readonly pid: number;
  /** The sender's uid (SCM_CREDENTIALS). */
  readonly uid: number;
  /** The sender's gid (SCM_CREDENTIALS). */
  readonly gid: number;
  /** True when the datagram was longer than what was read (only when another reader raced this one). */
  readonly truncated: boolean;
  /** True when the kernel had to drop some of the fds (more than the receiver had room for). */
  readonly controlTruncated: boolean;
  private parsed: Map<string, string> | undefined;

  /** @internal */
  constructor(raw: NotifyDatagram) {
    this.data = raw.data;
    this.fds = raw.fds;
    this.pid = raw.pid ?? 0;
    this.uid = raw.uid ?? -1;
    this.gid = raw.gid ?? -1;
    this.truncated = raw.truncated;
    this.controlTruncated = raw.controlTruncated;
  }

  /** The bytes as UTF-8 text. */
  get text(): string {
    return this.data.toString('utf8');
  }

  /**
   * The fields, as systemd reads them: lines split on '\n', each `KEY=VALUE` (lines without '='
   * are ignored). When a key repeats, the first one counts, as in systemd's own lookups.
   */
  get fields(): ReadonlyMap<string, string> {
    if (!this.parsed) {
      this.parsed = new Map();
      for (const line of this.text.split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0 && !this.parsed.has(line.slice(0, eq))) this.parsed.set(line.slice(0, eq), line.slice(eq + 1));
      }
    }
    return this.parsed;
  }
}

/**
 * A datagram a {@link NotifyReceiver} dropped for its size: who sent it and how long it was, never
 * what it said.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface DroppedNotifyMessage {
  /** Its length in bytes, more than the receiver's `maxMessageBytes`. */
  bytes: number;
  /** How many fds came with it (all closed). */
  fds: number;
  /** The sender (SCM_CREDENTIALS), 0 / -1 when the kernel gave none. */
  pid: number;
  uid: number;
  gid: number;
  /** The limit it exceeded. */
  maxMessageBytes: number;
}

/**
 * Events of a {@link NotifyReceiver}: `'message'` for each datagram, `'error'` when reading fails,
 * `'dropped'` for the first datagram dropped for its size (later ones are only counted, in
 * {@link NotifyReceiver.droppedMessages}: a sender that floods the socket cannot flood a log).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface NotifyReceiverEvents {
  message: [NotifyMessage];
  error: [Error];
  dropped: [DroppedNotifyMessage];
}

/**
 * Options of {@link NotifyReceiver}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface NotifyReceiverOptions {
  /**
   * The longest datagram taken, in bytes (default 4096, systemd's own limit); a longer one is
   * dropped, its fds closed, as systemd drops it. `Infinity` takes every datagram whole (to compare
   * what senders send, whatever its size).
   */
  maxMessageBytes?: number;
}

/**
 * The receiving end of sd_notify(3): a bound AF_UNIX datagram socket with SO_PASSCRED, read in
 * the event loop. What a service manager does with NOTIFY_SOCKET, for tests and for running
 * services outside systemd.
 *
 * Every message is emitted as `'message'`. A message that arrives while there is neither a
 * `'message'` listener nor a waiting {@link NotifyReceiver.receive} is kept for the next
 * receive() (or iteration), in order.
 *
 * As systemd's manager, it ignores a datagram longer than 4096 bytes (`maxMessageBytes`) and
 * closes the fds that came with it: such a message never reaches `'message'`. The first one is
 * told as `'dropped'` (its size and sender, not its content), the rest counted.
 *
 * @example
 * ```ts
 * const receiver = new NotifyReceiver(`@my-test-${process.pid}`);
 * process.env.NOTIFY_SOCKET = receiver.address;
 * notify.ready();
 * const message = await receiver.receive({ timeoutMs: 1000 });
 * message.fields.get('READY'); // '1'
 * ```
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export class NotifyReceiver extends events.EventEmitter<NotifyReceiverEvents> {
  /** The address in NOTIFY_SOCKET's form: an absolute path, or '@' and an abstract name. */
  readonly address: string;
  /** The socket's fd, owned by the receiver: closed by {@link NotifyReceiver.close}. */
  readonly fd: number;
  private watcher: object | undefined;
  private closed = false;
  private readonly backlog: NotifyMessage[] = [];
  private readonly waiters: Array<{ resolve: (m: NotifyMessage) => void; reject: (e: Error) => void }> = [];
  /** The longest datagram taken (see {@link NotifyReceiverOptions.maxMessageBytes}). */
  readonly maxMessageBytes: number;
  /** How many datagrams were dropped for their size so far. */
  droppedMessages = 0;

  /**
   * Binds the socket and starts reading. The watcher keeps the process alive until
   * {@link NotifyReceiver.close} or {@link NotifyReceiver.unref}.
   *
   * @param address - an absolute path (created; removed again by close()) or '@' and an abstract name
   * @throws TypeError for any other address, or a `maxMessageBytes` that is not a whole number above 0
   * @throws SystemError when socket(2), setsockopt(2) or bind(2) fail (EADDRINUSE, ...)
   */
  constructor(address: string, options: NotifyReceiverOptions = {}) {
    super();
    if (typeof address !== 'string' || !(address.startsWith('@') || address.startsWith('/')) || address.length < 2) {
      throw new TypeError(`a notify socket address is an absolute path or '@' and a name, got ${show(address)}`);
    }
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    const max = options.maxMessageBytes ?? NOTIFY_BUFFER_MAX;
    if (!(max === Infinity || (Number.isSafeInteger(max) && max > 0))) {
      throw new TypeError(`options.maxMessageBytes must be a whole number of bytes above 0, or Infinity; got ${show(max)}`);
    }
    this.maxMessageBytes = max;
    const sockaddr = address.startsWith('@') ? encodeSockaddr({ family: 'unix', abstract: address.slice(1) }) : encodeSockaddr({ family: 'unix', path: address });
    const b = native();
    this.address = address;
    this.fd = b.notifyReceiverOpen(sockaddr);
    try {
      this.watcher = b.watchReadable(this.fd, (errno) => this.readable(errno));
    } catch (error) {
      b.close(this.fd);
      this.unlink();
      throw error;
    }
  }

  private readable(errno: number): void {
    if (this.closed) return;
    if (errno !== 0) {
      this.fail(systemError(errno, 'epoll_wait', { fd: this.fd }));
      return;
    }
    const b = native();
    for (let i = 0; i < BATCH && !this.closed; i++) {
      let raw: NotifyDatagram | null;
      try {
        // No datagram is longer than this (the kernel caps a send buffer far below it).
        raw = b.notifyReceive(this.fd, Math.min(this.maxMessageBytes, 0x7fffffff));
      } catch (error) {
        this.fail(error as Error);
        return;
      }
      if (raw === null) return;
      if (raw.size > this.maxMessageBytes) this.drop(raw);
      else this.deliver(new NotifyMessage(raw));
    }
  }

  private deliver(message: NotifyMessage): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(message);
    // Nobody to take it now: kept for the next receive(), as a socket keeps unread data.
    else if (this.listenerCount('message') === 0) this.backlog.push(message);
    this.emit('message', message);
  }

  /** What systemd does with a datagram over its limit: ignores it whole and closes its fds. */
  private drop(raw: NotifyDatagram): void {
    const b = native();
    for (const fd of raw.fds) b.close(fd);
    if (this.droppedMessages++ > 0) return;
    this.emit('dropped', {
      bytes: raw.size,
      fds: raw.fds.length,
      pid: raw.pid ?? 0,
      uid: raw.uid ?? -1,
      gid: raw.gid ?? -1,
      maxMessageBytes: this.maxMessageBytes,
    });
  }

  private fail(error: Error): void {
    const waiters = this.waiters.splice(0);
    for (const waiter of waiters) waiter.reject(error);
    // Told to someone, always: to the waiting receive() calls, or as 'error' (thrown when nobody listens).
    if (waiters.length === 0 || this.listenerCount('error') > 0) this.emit('error', error);
  }

  /**
   * The next message not yet taken by an earlier receive().
   *
   * @throws SystemdError `ERR_SD_NOTIFY_RECEIVER_CLOSED` (rejects) when closed before one came
   * @throws SystemError `ETIMEDOUT` (rejects) when `timeoutMs` passed first
   */
  receive(options: { timeoutMs?: number } = {}): Promise<NotifyMessage> {
    const queued = this.backlog.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter = {
        resolve: (m: NotifyMessage) => {
          if (timer) clearTimeout(timer);
          resolve(m);
        },
        reject: (e: Error) => {
          if (timer) clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(waiter);
      const { timeoutMs } = options;
      if (timeoutMs !== undefined && timeoutMs !== Infinity) {
        timer = setTimeout(() => {
          const at = this.waiters.indexOf(waiter);
          if (at !== -1) this.waiters.splice(at, 1);
          reject(systemError(ETIMEDOUT, 'recvmsg', { fd: this.fd }, `no notify message on ${this.address} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  /** Iterates over the messages, in order, until the receiver is closed. */
  async *[Symbol.asyncIterator](): AsyncGenerator<NotifyMessage, void, undefined> {
    for (;;) {
      try {
        yield await this.receive();
      } catch (error) {
        if ((error as SystemdError).code === 'ERR_SD_NOTIFY_RECEIVER_CLOSED') return;
        throw error;
      }
    }
  }

  /** Lets the process exit while the receiver is open. */
  unref(): this {
    if (this.watcher && !this.closed) native().watchRef(this.watcher, false);
    return this;
  }

  /** Keeps the process alive while the receiver is open (the default). */
  ref(): this {
    if (this.watcher && !this.closed) native().watchRef(this.watcher, true);
    return this;
  }

  /**
   * Stops reading, closes the socket, removes its path, closes the fds of messages still queued
   * for receive(), and rejects the receive() calls still waiting. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const b = native();
    // The watcher first: the fd must not be closed while epoll still holds it.
    if (this.watcher) b.unwatch(this.watcher);
    this.watcher = undefined;
    b.close(this.fd);
    this.unlink();
    for (const message of this.backlog.splice(0)) for (const fd of message.fds) b.close(fd);
    for (const waiter of this.waiters.splice(0)) waiter.reject(closedError());
  }

  /** `using receiver = new NotifyReceiver(...)` closes it at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }

  private unlink(): void {
    if (this.address.startsWith('@')) return;
    try {
      fs.unlinkSync(this.address);
    } catch {
      // already gone: nothing to clean up
    }
  }
}

function closedError(): SystemdError {
  return new SystemdError('ERR_SD_NOTIFY_RECEIVER_CLOSED', 'the notify receiver was closed');
}
