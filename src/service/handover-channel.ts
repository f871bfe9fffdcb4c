/*
 * A message channel between the old and the new process of an upgrade: one SOCK_SEQPACKET socket,
 * JSON messages, each with up to SCM_MAX_FD fds. Seqpacket, because each message arrives whole and
 * in order with its fds, and the peer's end (or its death) is seen as the end of the channel.
 *
 * Reading runs in the event loop (a libuv poll on the fd, src/native/notify_receiver.c's watcher);
 * a send that finds the socket full waits for room the same way, on the same watcher (libuv takes
 * one per fd): neither blocks the loop.
 */
import { events } from '../core/builtins.js';
import { SystemdError, systemError, isNativeErrno } from '../core/errors.js';
import { native } from '../native/addon.js';

/** Messages read per readable event before the loop gets a turn; the watcher fires again for the rest. */
const BATCH = 64;
/** libuv's poll events, as the watcher reports them. */
const READABLE = 1;
const WRITABLE = 2;

/** Events of a {@link HandoverChannel}. */
export interface HandoverChannelEvents {
  /** A message and the fds that came with it (this process's now: close what is not used). */
  message: [message: unknown, fds: number[]];
  /** The peer is gone: it closed its end, or died (with messages of ours unread: ECONNRESET). */
  end: [];
  /** Reading failed, or a message was not JSON, or the kernel cut its fds: the channel is closed. */
  error: [Error];
}

/**
 * One end of the hand-over channel. Owns its fd: {@link HandoverChannel.close} closes it.
 *
 * @internal
 */
export class HandoverChannel extends events.EventEmitter<HandoverChannelEvents> {
  readonly fd: number;
  #watcher: object | undefined;
  #waitingForRoom: Array<() => void> = [];
  #closed = false;

  constructor(fd: number) {
    super();
    this.fd = fd;
    this.#watcher = native().watchReadable(fd, (errno, events) => {
      // Room first: a waiting send goes out before what the read may answer.
      if (errno === 0 && events & WRITABLE) this.#room();
      if (errno !== 0 || events & READABLE) this.#readable(errno);
    });
  }

  /** Whether the channel keeps the event loop alive (default true). */
  ref(on: boolean): void {
    if (this.#watcher) native().watchRef(this.#watcher, on);
  }

  /**
   * Sends `message` (JSON) with `fds` (at most 253), which stay open in this process. Waits for
   * room when the socket is full: `fds` must stay valid meanwhile (see {@link trySend}).
   *
   * @throws (rejects) EPIPE when the peer is gone, ERR_SD_UPGRADE_FAILED once closed
   */
  async send(message: unknown, fds: readonly number[] = []): Promise<void> {
    while (!this.trySend(message, fds)) await this.writable();
  }

  /**
   * Sends now, or returns false when the socket is full (then wait with {@link writable}, and
   * read the fds again: a socket closed meanwhile may have left its number to another).
   *
   * @throws EPIPE when the peer is gone, ERR_SD_UPGRADE_FAILED once closed
   */
  trySend(message: unknown, fds: readonly number[] = []): boolean {
    if (this.#closed) throw new SystemdError('ERR_SD_UPGRADE_FAILED', 'the hand-over channel is closed');
    try {
      native().sendFds(this.fd, Buffer.from(JSON.stringify(message)), fds);
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === 'EAGAIN') return false;
      throw error;
    }
  }

  /** Resolves once there is room to send (or the channel is closed). */
  writable(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#closed) {
        resolve();
        return;
      }
      this.#waitingForRoom.push(resolve);
      if (this.#waitingForRoom.length === 1) native().watchEvents(this.#watcher!, true, true);
    });
  }

  #room(): void {
    if (this.#closed) return;
    native().watchEvents(this.#watcher!, true, false);
    for (const wake of this.#waitingForRoom.splice(0)) wake();
  }

  #readable(errno: number): void {
    if (this.#closed) return;
    if (errno !== 0) {
      // libuv reports a socket error (POLLERR) as EBADF, and stops watching: the peer died with
      // messages of ours unread shows here first, and reading says so (ECONNRESET).
      let error: unknown;
      try {
        native().receiveFds(this.fd);
      } catch (e) {
        error = e;
      }
      if ((error as { code?: string } | undefined)?.code === 'ECONNRESET') this.#end();
      else this.#fail(systemError(errno, 'poll', { fd: this.fd }));
      return;
    }
    for (let i = 0; i < BATCH && !this.#closed; i++) {
      let received;
      try {
        received = native().receiveFds(this.fd);
      } catch (error) {
        // The peer died with messages of ours unread: the end of the channel, as a close would be.
        if ((error as { code?: string }).code === 'ECONNRESET') this.#end();
        else this.#fail(isNativeErrno(error) ? systemError(error.errno, error.syscall, { fd: this.fd }) : (error as Error));
        return;
      }
      if (received === null) return;
      if (received.data.length === 0) {
        this.#end();
        return;
      }
      if (received.controlTruncated) {
        this.#fail(new SystemdError('ERR_SD_UPGRADE_FAILED', 'a hand-over message lost its fds (this process is out of fds: raise LimitNOFILE=)'));
        return;
      }
      let message: unknown;
      try {
        message = JSON.parse(received.data.toString('utf8'));
      } catch (cause) {
        for (const fd of received.fds) native().close(fd);
        this.#fail(new SystemdError('ERR_SD_UPGRADE_FAILED', 'a hand-over message is not JSON', { cause }));
        return;
      }
      this.emit('message', message, received.fds);
    }
  }

  #end(): void {
    this.close();
    this.emit('end');
  }

  #fail(error: Error): void {
    this.close();
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else this.emit('end');
  }

  /** Stops reading and closes the fd; a send waiting for room rejects. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const n = native();
    if (this.#watcher) n.unwatch(this.#watcher);
    this.#watcher = undefined;
    n.close(this.fd);
    for (const wake of this.#waitingForRoom.splice(0)) wake();
  }
}
