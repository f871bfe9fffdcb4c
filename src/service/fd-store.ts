import { checkFdName, isValidFdName } from '../core/fd-name.js';
import { addOpenedFds, claimName, claimedNames, heldFds, ListenFd, releaseFd } from './activation.js';
import { handoverPending, whenMain } from './handover.js';
import { native } from '../native/addon.js';
import { notify } from './notify.js';
import { closeFd, openSocket, type SocketDescription } from '../shared/open-socket.js';
import { encodeSockaddr } from '../core/sockaddr.js';
import { toFdInfo, type FdInfo } from '../core/socket-info.js';

/**
 * Options of {@link openStoredSocket}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#FileDescriptorStoreMax=
 */
export interface OpenStoredSocketOptions {
  /** Put the sockets it opens in the fd store (default true). Inherited ones are never stored again. */
  store?: boolean;
}

const TYPES = { stream: 'stream', dgram: 'dgram', seqpacket: 'seqpacket' } as const;

/** Whether an fd is the socket `desc` describes: same type, family and address (port 0: any port). */
function matches(info: FdInfo, desc: SocketDescription): boolean {
  if (info.kind !== 'socket' || info.type !== TYPES[desc.type]) return false;
  const address = desc.address;
  if (address.family === 'unix') {
    if (info.family !== 'unix') return false;
    const local = info.local;
    if ('abstract' in address) return local.kind === 'abstract' && local.name === address.abstract;
    return local.kind === 'path' && local.path === address.path;
  }
  if (info.family !== address.family) return false;
  const port = address.port === 0 ? info.local.port : address.port;
  // Compared as bytes, so '::0:1' and '::1' are the same address.
  const wanted = encodeSockaddr({ ...address, port });
  const have = encodeSockaddr(
    address.family === 'ipv4'
      ? { family: 'ipv4', address: info.local.address, port: info.local.port }
      : { family: 'ipv6', address: info.local.address, port: info.local.port, flowinfo: address.flowinfo ?? 0, scopeId: info.local.scopeId },
  );
  return wanted.equals(have);
}

/** Each description has its own fd among `fds`, and there is no other. */
function sameSockets(fds: readonly ListenFd[], descriptions: readonly SocketDescription[]): boolean {
  if (fds.length !== descriptions.length) return false;
  const left = [...fds];
  for (const desc of descriptions) {
    const i = left.findIndex((fd) => matches(fd.info, desc));
    if (i === -1) return false;
    left.splice(i, 1);
  }
  return true;
}

function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // already closed
  }
}

/**
 * The sockets named `name`, whoever made them: those the service manager passed (a .socket unit's
 * `FileDescriptorName=`, the fd store after a restart, the old process of an upgrade), or else
 * new ones, opened here as described (outside Node's event loop, see openSocket()) and put in
 * systemd's fd store under `name` (FDSTORE=1, FDNAME=), so that a restart or a crash hands them
 * back and clients wait in the backlog meanwhile instead of being refused.
 *
 * Either way the sockets are then found by name like inherited ones: `systemdFd(name)`,
 * `systemdFds(name)` and every adapter serve them. When the inherited sockets of that name are
 * not the ones described (the address changed in the configuration), they are closed, removed
 * from the store (FDSTOREREMOVE=1) and new ones opened.
 *
 * The store needs `FileDescriptorStoreMax=` above 0 in the unit (systemd drops the fds silently
 * otherwise) and a Type=notify service: NOTIFY_SOCKET is how they travel. Without NOTIFY_SOCKET
 * (no service manager) nothing is stored and the sockets simply serve. In a process started by an
 * upgrade the store is updated once it is the main process, since systemd would drop the message
 * before that.
 *
 * @example
 * ```js
 * openStoredSocket('web', { type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 8080 } });
 * const servers = await listen('web', handler); // sd-activate/http
 * ```
 * @returns the sockets, one per description, in the registry under `name`
 * @throws TypeError for a name that is not an FDNAME or a description that is not one; the
 *   errors of openSocket() (`EADDRINUSE`, ...) and of notify() (a receiver gone), with nothing
 *   left open
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#FDSTORE=1
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#FileDescriptorStoreMax=
 */
export function openStoredSocket(
  name: string,
  description: SocketDescription | readonly SocketDescription[],
  options: OpenStoredSocketOptions = {},
): ListenFd[] {
  checkFdName(name, 'name');
  const descriptions: readonly SocketDescription[] = Array.isArray(description) ? description : [description as SocketDescription];
  if (descriptions.length === 0) throw new TypeError('openStoredSocket() needs at least one socket description');
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (options.store !== undefined && typeof options.store !== 'boolean') throw new TypeError('options.store must be a boolean');
  claimName(name);
  const held = heldFds().filter((f) => f.name === name);
  if (held.length > 0) {
    if (sameSockets(held, descriptions)) return held;
    for (const fd of held) {
      releaseFd(fd);
      closeQuietly(fd.fd);
    }
    whenMain(() => notify.fdStoreRemove(name));
  }
  const binding = native();
  const fds: number[] = [];
  try {
    for (const desc of descriptions) fds.push(openSocket(desc));
  } catch (error) {
    for (const fd of fds) closeQuietly(fd);
    throw error;
  }
  const opened = fds.map((fd) => new ListenFd(fd, name, toFdInfo(fd, binding.inspect(fd), binding.constants)));
  addOpenedFds(opened);
  if (options.store ?? true) {
    const store = (): void => {
      // Only those still open: a later call may have replaced them before this process became main.
      const open = opened.filter((fd) => heldFds().includes(fd)).map((fd) => fd.fd);
      if (open.length > 0) notify.fdStore(name, open);
    };
    if (handoverPending()) {
      whenMain(store);
    } else {
      try {
        store();
      } catch (error) {
        for (const fd of opened) {
          releaseFd(fd);
          closeQuietly(fd.fd);
        }
        throw error;
      }
    }
  }
  return opened;
}

/**
 * Options of {@link fdStoreRemoveUnused}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#FDSTOREREMOVE=1
 */
export interface FdStoreRemoveUnusedOptions {
  /** Names to keep although nothing asked for them through this library. */
  keep?: readonly string[];
}

/**
 * Drops the inherited fds whose names this program no longer uses: removes them from systemd's
 * fd store (FDSTOREREMOVE=1 with FDNAME=) and closes them here, so that a socket the previous
 * version stored is not kept (and passed again, and its port held) for ever. A name is in use
 * once asked for with systemdFd(), systemdFds(), an adapter or openStoredSocket(); call this
 * after every socket is served. fds of a .socket unit are closed here too; the unit keeps its own.
 *
 * @returns the names removed
 * @throws TypeError for a bad `keep`; the errors of notify() (a receiver gone)
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#FDSTOREREMOVE=1
 */
export function fdStoreRemoveUnused(options: FdStoreRemoveUnusedOptions = {}): string[] {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const keep = options.keep ?? [];
  if (!Array.isArray(keep) || keep.some((n) => typeof n !== 'string')) throw new TypeError('options.keep must be an array of names');
  const used = claimedNames();
  const removed: string[] = [];
  for (const fd of heldFds()) {
    if (used.has(fd.name) || keep.includes(fd.name)) continue;
    if (!removed.includes(fd.name)) removed.push(fd.name);
    releaseFd(fd);
    closeQuietly(fd.fd);
  }
  for (const name of removed) {
    // systemd takes any name but refuses to send an invalid one; "unknown" and "stored" are valid.
    if (isValidFdName(name)) whenMain(() => notify.fdStoreRemove(name));
  }
  return removed;
}
