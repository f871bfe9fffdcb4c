/*
 * Waiting until a passed fd has something to read, without taking it: what a .socket unit does
 * between activations. The poll(2) runs on a libuv worker thread (src/native/watch.c), so the fds
 * stay out of this process's event loop and only a child ever accepts on them.
 */
import { readSync, writeSync } from 'node:fs';
import { systemError, isNativeErrno } from '../core/errors.js';
import { native } from '../native/addon.js';

/**
 * Waits for readability on sets of fds, one wait at a time, cancellable: {@link cancel} wakes a
 * pending wait (it resolves with an empty list), and {@link close} does so for good.
 */
export class ReadinessWaiter {
  private readonly wakeRead: number;
  private readonly wakeWrite: number;
  private pending: Promise<number[]> | undefined;
  private closed = false;

  constructor() {
    [this.wakeRead, this.wakeWrite] = native().pipe();
  }

  /**
   * Resolves with the fds of `fds` that are readable (or hung up), or with `[]` when woken by
   * {@link cancel}: the caller then checks why, and waits again if it still should. With
   * `hangupOnly`, only POLLHUP/POLLERR count: how systemd watches its fd store.
   *
   * @throws a Node-style error from poll(2) (rejects)
   */
  async wait(fds: readonly number[], options: { hangupOnly?: boolean } = {}): Promise<number[]> {
    if (this.closed) return [];
    if (this.pending) throw new Error('ReadinessWaiter.wait() is already waiting');
    const b = native();
    this.pending = b.pollReadable([this.wakeRead, ...fds], -1, options.hangupOnly ? fds : undefined);
    try {
      const ready = await this.pending;
      if (ready.includes(this.wakeRead)) {
        this.drain();
        return [];
      }
      return ready;
    } catch (error) {
      if (isNativeErrno(error)) throw systemError(error.errno, error.syscall, {}, error.message);
      throw error;
    } finally {
      this.pending = undefined;
    }
  }

  /** Wakes the pending wait, if any. */
  cancel(): void {
    if (!this.pending || this.closed) return;
    try {
      writeSync(this.wakeWrite, Buffer.from([1]));
    } catch {
      // the pipe is full: a wake-up is already pending
    }
  }

  private drain(): void {
    // poll(2) said the pipe is readable, so this read does not block. A byte left over from a
    // cancel() that raced a ready fd wakes the next wait early: callers check their state on [].
    try {
      readSync(this.wakeRead, Buffer.alloc(1), 0, 1, null);
    } catch {
      // closed meanwhile
    }
  }

  /** Wakes any pending wait, then closes the pipe once that wait has returned. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.cancel();
    this.closed = true;
    if (this.pending) await this.pending.catch(() => undefined);
    const b = native();
    b.close(this.wakeRead);
    b.close(this.wakeWrite);
  }
}

/**
 * accept4(2) on a listening socket (SOCK_CLOEXEC), for Accept=yes. Call it when the socket is
 * readable: it blocks otherwise.
 *
 * @throws a Node-style error (EAGAIN, EMFILE, ...)
 */
export function acceptConnection(fd: number): number {
  return native().accept(fd);
}
