/*
 * Opening what `--listen` specs describe, the way a .socket unit does, outside Node's event loop:
 * the fds are for children (at fd 3+), and this process must never accept on them itself.
 */
import { constants as fsConstants, lstatSync, mkdirSync, openSync, unlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ListenSpec, SocketSpec } from './listen-spec.js';
import { describeSpec } from './listen-spec.js';
import { SystemdError, type SystemError } from '../core/errors.js';
import { native } from '../native/addon.js';
import { openSocket } from '../shared/open-socket.js';
import { encodeSockaddr, InetAddress } from '../core/sockaddr.js';
import { describeFdInfo, toFdInfo, type FdInfo } from '../core/socket-info.js';

/** An fd opened from a {@link ListenSpec}, with what it turned out to be (the port the kernel chose, ...). */
export interface OpenedListener {
  spec: ListenSpec;
  fd: number;
  info: FdInfo;
  /** Filesystem entries this process created for it, which closeListener() removes by default (a socket file, a FIFO, a queue). */
  cleanup: { path?: string; mqueue?: string };
  /** Every entry it names, created here or found: what RemoveOnStop=yes removes. */
  names: { path?: string; mqueue?: string };
}

/**
 * One line for a person: `fd 3 "web": tcp 127.0.0.1:8080 (ipv4 stream, listening)`, with the fd
 * number the service sees (`childFd`), not ours.
 */
export function describeListener(listener: OpenedListener, childFd: number): string {
  return `fd ${childFd} "${listener.spec.name}": ${describeFdInfo(listener.info)}`;
}

const HINTS: Record<string, string> = {
  EADDRINUSE: 'address already in use; another process listens there',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EADDRNOTAVAIL: 'no interface on this host has that address',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a component of the path is not a directory',
  EROFS: 'read-only file system',
  EAFNOSUPPORT: 'address family not supported on this host',
  ENAMETOOLONG: 'name too long',
  EEXIST: 'exists already, and is not what was asked for',
};

function reason(error: unknown, spec: ListenSpec): string {
  const code = (error as { code?: unknown }).code;
  let text = typeof code === 'string' && HINTS[code] ? `${HINTS[code]} (${code})` : (error as Error).message;
  if (code === 'EACCES' && spec.kind === 'socket' && spec.address.family !== 'unix' && spec.address.port > 0 && spec.address.port < 1024) {
    text += '; ports below 1024 need root or CAP_NET_BIND_SERVICE';
  }
  return text;
}

function failed(spec: ListenSpec, error: unknown): SystemdError {
  const named = spec.name === 'unknown' ? '' : ` ("${spec.name}")`;
  return new SystemdError('ERR_SD_LISTEN_FAILED', `cannot listen on ${describeSpec(spec)}${named}: ${reason(error, spec)}`, { cause: error });
}

/** Whether a unix socket file is a leftover: nobody accepts on it (ECONNREFUSED). */
function isStaleSocket(spec: SocketSpec, path: string): boolean {
  try {
    if (!lstatSync(path).isSocket()) return false;
  } catch {
    return false;
  }
  const n = native();
  const c = n.constants;
  const type = spec.type === 'stream' ? c.SOCK_STREAM : spec.type === 'dgram' ? c.SOCK_DGRAM : c.SOCK_SEQPACKET;
  // Non-blocking, so a live server with a full backlog answers EAGAIN instead of blocking us.
  const fd = n.socket(c.AF_UNIX, type | c.SOCK_CLOEXEC | c.SOCK_NONBLOCK, 0);
  try {
    n.connect(fd, encodeSockaddr({ family: 'unix', path }));
    return false;
  } catch (error) {
    return (error as SystemError).code === 'ECONNREFUSED';
  } finally {
    n.close(fd);
  }
}

function openSocketSpec(spec: SocketSpec, cwd: string): { fd: number; cleanup: OpenedListener['cleanup'] } {
  const desc = { type: spec.type, address: spec.address, backlog: spec.backlog, reusePort: spec.reusePort, v6Only: spec.v6Only, mode: spec.mode };
  if ('path' in spec.address) {
    // systemd requires absolute paths; relative ones are taken from the working directory, for laptops.
    const path = resolve(cwd, spec.address.path);
    const address = { family: 'unix' as const, path };
    // As systemd does (DirectoryMode=0755), the directories leading to the socket are made.
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    // A socket file left by a process that died would make bind() fail with EADDRINUSE; one that a
    // live process accepts on is not ours to remove, and the EADDRINUSE then says so.
    if (isStaleSocket(spec, path)) unlinkSync(path);
    return { fd: openSocket({ ...desc, address }), cleanup: { path } };
  }
  try {
    return { fd: openSocket({ ...desc, address: spec.address }), cleanup: {} };
  } catch (error) {
    // ListenStream=PORT on a host without IPv6 listens on 0.0.0.0:PORT.
    if (spec.anyAddress && (error as SystemError).code === 'EAFNOSUPPORT' && spec.address.family === 'ipv6') {
      return { fd: openSocket({ ...desc, v6Only: undefined, address: { family: 'ipv4', address: '0.0.0.0', port: spec.address.port } }), cleanup: {} };
    }
    throw error;
  }
}

function openFifo(path: string, mode: number): { fd: number; cleanup: OpenedListener['cleanup'] } {
  let created = false;
  try {
    native().mkfifo(path, mode);
    created = true;
  } catch (error) {
    if ((error as SystemError).code !== 'EEXIST') throw error;
    if (!lstatSync(path).isFIFO()) throw Object.assign(new Error(`${path} exists and is not a FIFO`), { code: 'EEXIST' });
  }
  // O_RDWR, as systemd opens it: the FIFO never reports end-of-file when a writer closes, and
  // opening does not block waiting for a writer. Node's openSync sets O_CLOEXEC and does not
  // register the fd in the event loop.
  const fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
  return { fd, cleanup: created ? { path } : {} };
}

/**
 * Opens one spec. Unix socket paths and FIFOs relative to `cwd` are made absolute.
 *
 * @throws SystemdError `ERR_SD_LISTEN_FAILED`, with the failing syscall's error as `cause`
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html
 */
export function openListener(spec: ListenSpec, cwd = process.cwd()): OpenedListener {
  const n = native();
  try {
    let opened: { fd: number; cleanup: OpenedListener['cleanup'] };
    switch (spec.kind) {
      case 'socket':
        opened = openSocketSpec(spec, cwd);
        break;
      case 'fifo': {
        const path = resolve(cwd, spec.path);
        mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
        opened = openFifo(path, spec.mode ?? 0o666);
        break;
      }
      case 'mqueue': {
        const c = n.constants;
        const flags = c.O_RDONLY | c.O_NONBLOCK | c.O_CLOEXEC;
        // O_EXCL first, to know whether the queue is ours to remove on close.
        try {
          const fd = n.mqOpen(spec.path, flags | c.O_CREAT | fsConstants.O_EXCL, spec.mode ?? 0o666, spec.maxmsg ?? 0, spec.msgsize ?? 0);
          opened = { fd, cleanup: { mqueue: spec.path } };
        } catch (error) {
          if ((error as SystemError).code !== 'EEXIST') throw error;
          opened = { fd: n.mqOpen(spec.path, flags, 0, 0, 0), cleanup: {} };
        }
        break;
      }
      case 'special':
        opened = { fd: openSync(resolve(cwd, spec.path), fsConstants.O_RDWR | fsConstants.O_NOCTTY), cleanup: {} };
        break;
    }
    // As systemd's RemoveOnStop=: socket files, FIFOs and queues; a special file is never removed.
    const names = spec.kind === 'mqueue' ? { mqueue: spec.path } : spec.kind === 'fifo' ? { path: resolve(cwd, spec.path) } : opened.cleanup;
    return { spec, fd: opened.fd, info: toFdInfo(opened.fd, n.inspect(opened.fd), n.constants), cleanup: opened.cleanup, names };
  } catch (error) {
    if (error instanceof SystemdError) throw error;
    throw failed(spec, error);
  }
}

/**
 * Closes the fd, and removes from the filesystem what RemoveOnStop= says: with true every socket
 * file, FIFO and queue it names (systemd's RemoveOnStop=yes), with false nothing (systemd's
 * default), and by default what was created for it. Never throws.
 */
export function closeListener(listener: OpenedListener, removeOnStop?: boolean): void {
  try {
    native().close(listener.fd);
  } catch {
    // already closed
  }
  if (removeOnStop === false) return;
  const { path, mqueue } = removeOnStop ? listener.names : listener.cleanup;
  try {
    if (path) unlinkSync(path);
  } catch {
    // already gone
  }
  try {
    if (mqueue) native().mqUnlink(mqueue);
  } catch {
    // already gone
  }
}

/**
 * Opens every spec, in order; on a failure closes those already open and throws, so nothing is
 * left half-done.
 *
 * @throws SystemdError `ERR_SD_LISTEN_FAILED`
 */
export function openListeners(specs: readonly ListenSpec[], cwd = process.cwd()): OpenedListener[] {
  const opened: OpenedListener[] = [];
  try {
    for (const spec of specs) opened.push(openListener(spec, cwd));
    return opened;
  } catch (error) {
    for (const listener of opened) closeListener(listener);
    throw error;
  }
}

/**
 * Where a test connects to one socket. Pass it to `net.connect()` as is: it has `host`, `port`
 * and `family` (4 or 6) as Node's options do, or `path`.
 *
 * The `path` of an abstract socket starts with NUL. systemd (and so this tool) binds an abstract
 * name with its exact length; Node 20's `net.connect()` pads the name to the full sockaddr_un
 * (libuv), so it reaches a different name: use a path socket for what Node itself connects to.
 */
export type ServiceAddress =
  | { name: string; kind: 'tcp' | 'udp'; family: 4 | 6; host: string; port: number }
  | { name: string; kind: 'unix'; type: 'stream' | 'dgram' | 'seqpacket'; path: string; abstract: boolean }
  | { name: string; kind: 'fifo' | 'mqueue' | 'special'; path: string };

/** Where a client connects to what `listener` opened. */
export function addressOf(listener: OpenedListener): ServiceAddress {
  const { spec, info } = listener;
  if (info.kind === 'socket' && info.local instanceof InetAddress) {
    return { name: spec.name, kind: info.type === 'dgram' ? 'udp' : 'tcp', family: info.local.family === 'ipv4' ? 4 : 6, host: info.local.address, port: info.local.port };
  }
  if (info.kind === 'socket' && info.family === 'unix' && spec.kind === 'socket') {
    const type = spec.type;
    if (info.local.kind === 'abstract') return { name: spec.name, kind: 'unix', type, path: `\0${info.local.name}`, abstract: true };
    if (info.local.kind === 'path') return { name: spec.name, kind: 'unix', type, path: info.local.path, abstract: false };
  }
  const path = 'path' in spec ? spec.path : '';
  return { name: spec.name, kind: spec.kind === 'socket' ? 'special' : spec.kind, path: info.kind !== 'socket' && info.path ? info.path : path } as ServiceAddress;
}
