/**
 * sd-activate/net: net.Server on every inherited fd of a name, and the connection of an
 * Accept=yes service.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html
 * @module
 */
import type { Server, ServerOpts, Socket } from 'node:net';
import { ListenFd, SystemdError, listenFds } from '../src/index.js';
import { listenAll, streamTargets, type AdapterOptions } from './targets.js';

// Not an ES import: that builds the built-in's namespace, start-up time (see src/core/builtins.ts).
const net = process.getBuiltinModule('node:net');

export type { AdapterOptions } from './targets.js';

/** Options of {@link listen}: the fallback, and net.createServer()'s own options. */
export interface NetListenOptions extends AdapterOptions {
  server?: ServerOpts;
}

/**
 * One net.Server per inherited fd named `name` (a name often covers an IPv4 and an IPv6
 * socket), each with `connectionListener`; or one on the fallback when not activated.
 * Resolves once every server listens.
 *
 * @example
 * ```js
 * const servers = await listen('echo', (socket) => socket.pipe(socket), { fallback: 7000 });
 * ```
 * @throws SystemdError `ERR_SD_FD_UNSUITABLE` for an fd that is not a listening stream socket,
 *   and the errors of systemdFds()
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export function listen(name: string, connectionListener: (socket: Socket) => void, options: NetListenOptions = {}): Promise<Server[]> {
  if (typeof connectionListener !== 'function') throw new TypeError('connectionListener must be a function');
  const targets = streamTargets(name, 'sd-activate/net', options);
  return listenAll(targets, () => net.createServer(options.server ?? {}, connectionListener));
}

/**
 * The connection an `Accept=yes` service is started for (fd 3, named "connection" by systemd),
 * as a net.Socket.
 *
 * @throws SystemdError `ERR_SD_NOT_ACTIVATED` when nothing was passed, `ERR_SD_FD_NOT_FOUND` when
 *   no fd has the name, `ERR_SD_FD_UNSUITABLE` when it is not a connected stream socket,
 *   `ERR_SD_UNSUPPORTED_RUNTIME` on Bun
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html#Accept=
 */
export function connection(name = 'connection'): Socket {
  const fds = listenFds();
  if (fds.length === 0) {
    throw new SystemdError('ERR_SD_NOT_ACTIVATED', `no connection was passed: this is not an Accept=yes service (LISTEN_FDS is not set for this process)`);
  }
  const handle = fds.find((f) => f.name === name) ?? (name === 'connection' && fds.length === 1 ? fds[0] : undefined);
  if (!(handle instanceof ListenFd)) {
    throw new SystemdError('ERR_SD_FD_NOT_FOUND', `no inherited fd is named "${name}"; there are ${fds.map((f) => `"${f.name}"`).join(', ')}`);
  }
  const info = handle.info;
  if (info.kind !== 'socket' || info.type !== 'stream' || info.listening || (info.family !== 'ipv4' && info.family !== 'ipv6' && info.family !== 'unix')) {
    throw new SystemdError(
      'ERR_SD_FD_UNSUITABLE',
      `fd ${handle.fd} "${handle.name}" is ${handle.describe()}; connection() needs one connected stream socket (Accept=yes)` +
        (info.kind === 'socket' && info.listening ? '; a listening socket is served with listen()' : ''),
    );
  }
  if (process.versions.bun !== undefined) {
    throw new SystemdError(
      'ERR_SD_UNSUPPORTED_RUNTIME',
      `connection() does not work on Bun (${process.versions.bun}): its net.Socket cannot use an inherited connected socket ` +
        '(new net.Socket({ fd }) is closed at once); use Accept=no and listen() instead',
    );
  }
  return new net.Socket({ fd: handle.fd, readable: true, writable: true });
}
