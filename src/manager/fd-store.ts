/*
 * The fd store of a service, as systemd keeps it (FileDescriptorStoreMax=): fds sent with FDSTORE=1
 * are kept under their FDNAME= and passed again at the next start; FDSTOREREMOVE=1 drops them; a
 * stored fd that hangs up (POLLHUP/POLLERR) is dropped, unless it was stored with FDPOLL=0.
 */
import { quote } from '../core/quote.js';
import { native } from '../native/addon.js';
import { ReadinessWaiter } from './readiness.js';
import type { StoredFd } from './supervisor-options.js';

function closeQuietly(fd: number): void {
  try {
    native().close(fd);
  } catch {
    // already closed
  }
}

/** The fds a service stored, and the watch on them. */
export class FdStore {
  readonly #max: number;
  readonly #warn: (error: Error) => void;
  readonly #stored: StoredFd[] = [];
  /** Watches the stored fds for hang-ups. */
  readonly #waiter: ReadinessWaiter | undefined;
  #watch: Promise<void> | undefined;
  /** The poll in progress, if any: an fd must not be closed under it. */
  #poll: Promise<number[]> | undefined;
  #warnedOff = false;
  #closing = false;

  /** @param max FileDescriptorStoreMax=; 0 keeps nothing, as systemd keeps nothing. */
  constructor(max: number, warn: (error: Error) => void) {
    this.#max = max;
    this.#warn = warn;
    if (max > 0) this.#waiter = new ReadinessWaiter();
  }

  /** The fds in the store, in the order they are passed. */
  get fds(): readonly StoredFd[] {
    return this.#stored;
  }

  /** FDSTORE=1: keeps what there is room for, closes the rest and says so. */
  store(fds: readonly number[], name = 'stored', poll = true): void {
    const room = Math.max(0, this.#max - this.#stored.length);
    for (const fd of fds.slice(0, room)) this.#stored.push({ fd, name, poll });
    if (room > 0) this.#watchHangUps();
    const dropped = fds.slice(room);
    for (const fd of dropped) closeQuietly(fd);
    if (dropped.length > 0 && (this.#max > 0 || !this.#warnedOff)) {
      this.#warnedOff = true;
      this.#warn(
        new Error(
          this.#max === 0
            ? `dropped ${dropped.length} fd(s) sent with FDSTORE=1: the fd store is off (use --fd-store N, FileDescriptorStoreMax=)`
            : `dropped ${dropped.length} fd(s) sent with FDSTORE=1: the fd store is full (${this.#max})`,
        ),
      );
    }
  }

  /** FDSTOREREMOVE=1 with FDNAME=. */
  remove(name: string | undefined): void {
    if (name === undefined) {
      this.#warn(new Error('ignored FDSTOREREMOVE=1 without FDNAME='));
      return;
    }
    const dropped: StoredFd[] = [];
    for (let i = this.#stored.length - 1; i >= 0; i--) if (this.#stored[i]!.name === name) dropped.push(...this.#stored.splice(i, 1));
    if (dropped.length === 0) return;
    const close = (): void => {
      for (const { fd } of dropped) closeQuietly(fd);
    };
    // Closed once the hang-up watch no longer polls them: an fd closed under a poll(2) could be
    // reused for something else before the poll returns.
    if (this.#poll) {
      this.#waiter!.cancel();
      void this.#poll.then(close, close);
    } else {
      close();
    }
  }

  /** As systemd, drops the stored fds that report POLLHUP/POLLERR (unless stored with FDPOLL=0). */
  #watchHangUps(): void {
    if (!this.#waiter || this.#closing) return;
    if (this.#watch) {
      // Already watching: poll again with the new set.
      this.#waiter.cancel();
      return;
    }
    this.#watch = (async () => {
      for (;;) {
        const watched = this.#stored.filter((s) => s.poll).map((s) => s.fd);
        if (this.#closing || watched.length === 0) return;
        this.#poll = this.#waiter!.wait(watched, { hangupOnly: true });
        let hung: number[];
        try {
          hung = await this.#poll;
        } finally {
          this.#poll = undefined;
        }
        if (this.#closing) return;
        for (const fd of hung) {
          const entry = this.#stored.find((s) => s.fd === fd);
          if (!entry) continue;
          this.#stored.splice(this.#stored.indexOf(entry), 1);
          closeQuietly(fd);
          this.#warn(new Error(`fd store: dropped ${quote(entry.name)}, which hung up (store it with FDPOLL=0 to keep such an fd)`));
        }
      }
    })().finally(() => {
      this.#watch = undefined;
      // An fd stored while the loop was ending would otherwise go unwatched.
      if (!this.#closing && this.#stored.some((s) => s.poll)) this.#watchHangUps();
    });
  }

  /** Ends the watch, then closes every stored fd. */
  async close(): Promise<void> {
    this.#closing = true;
    // The poll must be over before its fds are closed.
    await this.#waiter?.close();
    await this.#watch;
    for (const { fd } of this.#stored.splice(0)) closeQuietly(fd);
  }
}
