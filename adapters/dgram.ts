/**
 * sd-activate/dgram: dgram.Socket of the right type (udp4 or udp6) bound to every inherited
 * UDP fd of a name.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html#ListenDatagram=
 * @module
 */
import type { RemoteInfo, Socket, SocketOptions } from 'node:dgram';
import { ListenFd, systemdFds } from '../src/index.js';
import { bindThroughHandle, cannotBindFd } from './deno.js';
import { checkDatagram, type AdapterOptions } from './targets.js';

// Not an ES import: that builds the built-in's namespace, start-up time (see src/core/builtins.ts).
const dgram = process.getBuiltinModule('node:dgram');
const { isIPv6 } = process.getBuiltinModule('node:net');

/** Options of {@link bind}. */
export interface DgramBindOptions extends AdapterOptions {
  /**
   * Attached before the socket starts reading, so no datagram is emitted with nobody
   * listening (Node drops a 'message' that has no listener).
   */
  onMessage?: (this: Socket, message: Buffer, remote: RemoteInfo) => void;
  /** dgram.createSocket() options other than `type`, which the fd decides. */
  socket?: Omit<SocketOptions, 'type'>;
}

function bindOne(socket: Socket, target: ListenFd | { port: number; address?: string }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    const onBound = (): void => {
      socket.off('error', onError);
      resolve(socket);
    };
    if (!(target instanceof ListenFd)) socket.bind(target, onBound);
    else if (cannotBindFd()) bindThroughHandle(socket, target, onBound);
    else socket.bind({ fd: target.fd }, onBound);
  });
}

/**
 * One dgram.Socket per inherited UDP fd named `name`, created as udp4 or udp6 as the fd's
 * family requires; or one bound to the fallback when not activated (udp6 when its host is an
 * IPv6 address, else udp4). Resolves once every socket is bound.
 *
 * @example
 * ```js
 * await bind('dns-udp', { fallback: 5353, onMessage: (msg, rinfo) => {...} });
 * ```
 * @throws SystemdError `ERR_SD_FD_UNSUITABLE` for an fd that is not a UDP socket (unix datagram
 *   sockets included: Node cannot use them), and the errors of systemdFds()
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export async function bind(name: string, options: DgramBindOptions = {}): Promise<Socket[]> {
  if (options.onMessage !== undefined && typeof options.onMessage !== 'function') throw new TypeError('options.onMessage must be a function');
  const targets = systemdFds(name, options.fallback);
  const plan = targets.map((target) => {
    // A fallback is bind options itself ({ port, address }).
    if (target instanceof ListenFd) return { type: checkDatagram(target, 'sd-activate/dgram'), bindTo: target };
    if ('path' in target) throw new TypeError(`fallback for the UDP socket "${name}" must be a port or { host, port }, not a path`);
    return { type: target.address !== undefined && isIPv6(target.address) ? ('udp6' as const) : ('udp4' as const), bindTo: target };
  });
  const sockets: Socket[] = [];
  try {
    for (const { type, bindTo } of plan) {
      const socket = dgram.createSocket({ ...options.socket, type });
      if (options.onMessage) socket.on('message', options.onMessage);
      sockets.push(socket);
      await bindOne(socket, bindTo);
    }
    return sockets;
  } catch (error) {
    for (const socket of sockets) socket.close();
    throw error;
  }
}
