/*
 * The two things the connection hand-over needs that Node offers no public way to read, and the
 * one place the library reads Node's privates for them (feature-detected, read-only, tested on
 * Node 20, 22 and 24 so that a Node that changes them fails those tests loudly):
 *
 * - the fd of a connected net.Socket: its private `_handle` (a TCPWrap or PipeWrap whose `fd`
 *   getter is the descriptor on Unix). Everything the hand-over does with a socket's fd starts
 *   here, so a Node that changes this fails here with ERR_SD_NODE_UNSUPPORTED, and nowhere else;
 * - an http.Server's list of connections whose parser is between two messages, the list
 *   server.closeIdleConnections() closes (a symbol-keyed property): see http-idle.ts. A Node
 *   without it hands no HTTP connection over; they drain as before.
 *
 * The first fd read for each address family is checked against what the kernel says of it (a
 * connected stream socket whose addresses are the ones Node reports), once per process: a Node
 * whose `fd` meant something else would fail that check rather than pass another socket.
 */
import type { Socket } from 'node:net';
import { SystemdError } from '../core/errors.js';
import { native } from '../native/addon.js';
import { decodeSockaddr, InetAddress } from '../core/sockaddr.js';

/** The families checked against the kernel once already. */
const checked = new Set<number>();

function unsupported(what: string, cause?: unknown): SystemdError {
  return new SystemdError(
    'ERR_SD_NODE_UNSUPPORTED',
    `this Node.js (${process.version}) does not expose a connection's fd where sd-activate reads it: ${what}; connections cannot be handed over on it`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * The fd of a connected TCP or unix stream `net.Socket`, for handing the connection to another
 * process. The socket keeps it: nothing is duplicated or closed.
 *
 * @throws TypeError when `socket` is not a net.Socket; SystemdError `ERR_SD_FD_UNSUITABLE` for a
 *   TLS socket (its state lives in this process's OpenSSL), `ERR_SD_FD_INVALID` for a socket that
 *   is destroyed or not connected yet, `ERR_SD_NODE_UNSUPPORTED` when this Node keeps the fd
 *   elsewhere than sd-activate knows
 * @see https://man7.org/linux/man-pages/man7/unix.7.html (SCM_RIGHTS)
 */
export function connectionFd(socket: Socket): number {
  if (typeof socket !== 'object' || socket === null || typeof (socket as { destroy?: unknown }).destroy !== 'function' || !('bytesRead' in socket)) {
    throw new TypeError('socket must be a net.Socket');
  }
  if ((socket as { encrypted?: unknown }).encrypted === true) {
    throw new SystemdError('ERR_SD_FD_UNSUITABLE', 'a TLS connection cannot be handed over: its state lives in this process (OpenSSL)');
  }
  if (socket.destroyed || socket.connecting) {
    throw new SystemdError('ERR_SD_FD_INVALID', `the connection has no fd to hand over: it is ${socket.destroyed ? 'destroyed' : 'still connecting'}`);
  }
  const handle: unknown = (socket as unknown as { _handle?: unknown })._handle;
  if (typeof handle !== 'object' || handle === null) throw unsupported('an open net.Socket has no _handle object (or it was passed on already)');
  const fd: unknown = (handle as { fd?: unknown }).fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) throw unsupported(`its _handle.fd is ${typeof fd === 'number' ? fd : typeof fd}`);
  check(fd, socket);
  return fd;
}

/** The description of the symbol under which Node 18.2+ keeps an http.Server's connections (lib/_http_server.js). */
const CONNECTIONS = 'http.server.connections';

/** What sd-activate uses of that list: its parsers between two messages, each with its socket. */
export interface HttpConnectionsList {
  idle(): Array<{ socket?: unknown }>;
}

/**
 * The list of an http.Server's connections that Node keeps privately (set up once the server
 * listens), or undefined when this Node keeps none where sd-activate looks.
 *
 * @internal
 */
export function httpConnectionsList(server: object): HttpConnectionsList | undefined {
  const key = Object.getOwnPropertySymbols(server).find((s) => s.description === CONNECTIONS);
  const list = key === undefined ? undefined : (server as Record<symbol, unknown>)[key];
  return typeof list === 'object' && list !== null && typeof (list as HttpConnectionsList).idle === 'function' ? (list as HttpConnectionsList) : undefined;
}

/** Once per family: is `fd` the connected stream socket that `socket` says it is? */
function check(fd: number, socket: Socket): void {
  const family = socket.remoteFamily === 'IPv4' ? 4 : socket.remoteFamily === 'IPv6' ? 6 : 0;
  if (checked.has(family)) return;
  let facts;
  try {
    facts = native().inspect(fd);
  } catch (cause) {
    throw unsupported(`fd ${fd} cannot be inspected (${(cause as Error).message})`, cause);
  }
  const c = native().constants;
  if (facts.mode !== c.S_IFSOCK || facts.type !== c.SOCK_STREAM || !facts.peer) throw unsupported(`fd ${fd} is not a connected stream socket`);
  const expected = family === 0 ? c.AF_UNIX : family === 4 ? c.AF_INET : c.AF_INET6;
  if (facts.domain !== expected) throw unsupported(`fd ${fd} is of address family ${facts.domain}, the socket says ${socket.remoteFamily ?? 'unix'}`);
  if (family !== 0) {
    const local = facts.local ? decodeSockaddr(facts.local) : undefined;
    const peer = decodeSockaddr(facts.peer);
    if (!(local instanceof InetAddress) || !(peer instanceof InetAddress) || local.port !== socket.localPort || peer.port !== socket.remotePort) {
      throw unsupported(`fd ${fd} is connected from port ${local instanceof InetAddress ? local.port : '?'} to ${peer instanceof InetAddress ? peer.port : '?'}, the socket says ${socket.localPort} to ${socket.remotePort}`);
    }
  }
  checked.add(family);
}
