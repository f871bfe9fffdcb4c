/*
 * The NOTIFY_SOCKET a manager gives its service, out of other users' reach: a path socket in a
 * directory of this process's own (mode 0700), both removed on close. An abstract name would do
 * for the protocol, but any local user can connect to one (they are listed in /proc/net/unix), and
 * a manager acts on what it hears there: MAINPID= decides which process a stop signals. Each
 * message is checked for its sender as well (notify-dispatch.ts), as systemd checks it against
 * the unit's cgroup.
 */
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NOTIFY_BUFFER_MAX, NotifyReceiver } from '../shared/notify-receiver.js';
import { dispatchNotify, type NotifyTarget } from './notify-dispatch.js';

/** A service's notify socket, as its manager holds it. */
export interface NotifySocket {
  /** NOTIFY_SOCKET, as the service gets it: an absolute path. */
  readonly address: string;
  /** Closes the socket and removes it and its directory. Idempotent. */
  close(): void;
}

/** sun_path holds 108 bytes, the last one the terminating NUL. */
const SUN_PATH_MAX = 107;
/** What a directory name from mkdtemp() and the socket's name add to the base: `/sd-activate-XXXXXX/notify`. */
const ADDED = '/sd-activate-XXXXXX/notify'.length;

/** A new directory of this process's own (mkdtemp makes it 0700), short enough for a socket path. */
function privateDirectory(): string {
  let lastError: unknown;
  for (const base of new Set([tmpdir(), '/tmp'])) {
    if (Buffer.byteLength(base) + ADDED > SUN_PATH_MAX) continue;
    try {
      return mkdtempSync(join(base, 'sd-activate-'));
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError ?? new Error(`no directory for the notify socket: the temporary directory's path is over ${SUN_PATH_MAX - ADDED} bytes`);
}

/**
 * Opens the NOTIFY_SOCKET of a service: every message it receives is dispatched to `target`.
 *
 * @throws a Node-style error when the directory or the socket cannot be made
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export function openNotifySocket(target: NotifyTarget): NotifySocket {
  const dir = privateDirectory();
  const removeDir = (): void => {
    try {
      rmdirSync(dir);
    } catch {
      // gone already
    }
  };
  let receiver: NotifyReceiver;
  try {
    receiver = new NotifyReceiver(join(dir, 'notify'));
  } catch (error) {
    removeDir();
    throw error;
  }
  receiver.on('message', (message) => dispatchNotify(message, target));
  receiver.on('error', (error) => target.emit('warning', new Error(`notify socket: ${error.message}`, { cause: error })));
  // As systemd, which says "Received notify message exceeded maximum size. Ignoring.": once; the
  // rest are counted by the receiver, so that a sender cannot flood the log.
  receiver.on('dropped', ({ bytes, pid }) =>
    target.emit('warning', new Error(`ignored a notify message of ${bytes} bytes from pid ${pid}: more than ${NOTIFY_BUFFER_MAX} (later ones are ignored silently)`)),
  );
  return {
    address: receiver.address,
    close() {
      // The receiver removes the socket file; the directory is empty then.
      receiver.close();
      removeDir();
    },
  };
}
