import { fs } from '../core/builtins.js';

const { chmodSync, unlinkSync } = fs;
import { native } from '../native/addon.js';
import { encodeSockaddr, type BindAddress } from '../core/sockaddr.js';
import { show } from '../core/quote.js';

/** A socket to create the way a .socket unit would, outside Node's event loop. */
export interface SocketDescription {
  type: 'stream' | 'dgram' | 'seqpacket';
  address: BindAddress;
  /** listen(2) backlog for stream and seqpacket sockets (default 4096, systemd's Backlog= default SOMAXCONN). */
  backlog?: number;
  /** SO_REUSEADDR (default true for IP sockets, as systemd sets it). */
  reuseAddress?: boolean;
  /** SO_REUSEPORT (ReusePort=, default false). */
  reusePort?: boolean;
  /** IPV6_V6ONLY (BindIPv6Only=); left at the kernel default when undefined. */
  v6Only?: boolean;
  /** Mode of a unix socket file (SocketMode=, default 0o666). */
  mode?: number;
}

const TYPES = ['stream', 'dgram', 'seqpacket'] as const;

function checkDescription(desc: SocketDescription): void {
  if (typeof desc !== 'object' || desc === null) throw new TypeError('openSocket() takes a socket description object');
  if (!TYPES.includes(desc.type)) throw new TypeError(`type must be 'stream', 'dgram' or 'seqpacket', got ${show(desc.type)}`);
  const family: unknown = typeof desc.address === 'object' && desc.address !== null ? desc.address.family : undefined;
  if (family !== 'ipv4' && family !== 'ipv6' && family !== 'unix') {
    throw new TypeError(`address must be { family: 'ipv4' | 'ipv6' | 'unix', ... }, got ${show(desc.address)}`);
  }
  for (const key of ['reuseAddress', 'reusePort', 'v6Only'] as const) {
    if (desc[key] !== undefined && typeof desc[key] !== 'boolean') throw new TypeError(`${key} must be a boolean`);
  }
  if (desc.backlog !== undefined && (!Number.isInteger(desc.backlog) || desc.backlog < 0)) {
    throw new TypeError(`backlog must be a non-negative integer, got ${show(desc.backlog)}`);
  }
  if (desc.mode !== undefined && (!Number.isInteger(desc.mode) || desc.mode < 0 || desc.mode > 0o7777)) {
    throw new TypeError(`mode must be an integer 0 to 0o7777, got ${show(desc.mode)}`);
  }
}

/**
 * Creates, binds and (for stream and seqpacket) listens a socket, returning its fd. The fd is
 * close-on-exec and not registered in Node's event loop, so this process never accepts on it:
 * it is for handing to a child (at fd 3+) and for tests. Close it with `closeFd()`.
 *
 * @throws TypeError for a description that is not one (unknown type or family, bad IP text, a
 *   unix path too long); a Node-style error (`EADDRINUSE`, `EACCES`, ...) from the failing syscall
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html
 */
export function openSocket(desc: SocketDescription): number {
  checkDescription(desc);
  // Encoded first, so a bad address fails before there is an fd to clean up.
  const sockaddr = encodeSockaddr(desc.address);
  const n = native();
  const c = n.constants;
  const family = desc.address.family;
  const domain = family === 'ipv4' ? c.AF_INET : family === 'ipv6' ? c.AF_INET6 : c.AF_UNIX;
  const type = desc.type === 'stream' ? c.SOCK_STREAM : desc.type === 'dgram' ? c.SOCK_DGRAM : c.SOCK_SEQPACKET;
  const fd = n.socket(domain, type | c.SOCK_CLOEXEC, 0);
  let boundPath: string | undefined;
  try {
    if (family !== 'unix' && (desc.reuseAddress ?? true)) n.setsockopt(fd, c.SOL_SOCKET, c.SO_REUSEADDR, 1);
    if (desc.reusePort) n.setsockopt(fd, c.SOL_SOCKET, c.SO_REUSEPORT, 1);
    if (family === 'ipv6' && desc.v6Only !== undefined) n.setsockopt(fd, c.IPPROTO_IPV6, c.IPV6_V6ONLY, desc.v6Only ? 1 : 0);
    n.bind(fd, sockaddr);
    if ('path' in desc.address) {
      boundPath = desc.address.path;
      chmodSync(boundPath, desc.mode ?? 0o666);
    }
    if (desc.type !== 'dgram') n.listen(fd, desc.backlog ?? 4096);
    return fd;
  } catch (error) {
    n.close(fd);
    // The socket file bind(2) made is ours; a failure after it must not leave it to block the next try.
    if (boundPath !== undefined) {
      try {
        unlinkSync(boundPath);
      } catch {
        // already gone: nothing to clean up
      }
    }
    throw error;
  }
}

/** Closes an fd made by {@link openSocket} (or any fd this process owns outside Node's loop). */
export function closeFd(fd: number): void {
  native().close(fd);
}
