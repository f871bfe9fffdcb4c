/**
 * sd-activate/fastify: a Fastify instance served on every inherited fd of a name.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html#ListenStream=
 * @module
 */
import type { FastifyInstance, FastifyListenOptions as FastifyOwnListenOptions } from 'fastify';
import type * as http from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { ListenFd, formatAddress as formatSocketAddress, lifecycle, notify, type LifecycleOptions } from '../src/index.js';
import { listenThroughBridge, needsBridge } from './bun.js';
import { listenOn, streamTargets, type AdapterOptions, type ListenTarget } from './targets.js';

export type { AdapterOptions } from './targets.js';

// Not an ES import: that builds the built-in's namespace, start-up time (see src/core/builtins.ts).
const { Server: HttpServer, createServer } = process.getBuiltinModule('node:http');

/** Options of {@link listen}. */
export interface FastifyListenOptions extends AdapterOptions {
  /**
   * Creates the server for each fd after the first (Fastify's own server takes the first),
   * from Fastify's request handler. Defaults to http.createServer; an https or http2 Fastify
   * must pass one, since its TLS options cannot be read back.
   */
  createServer?: (handler: http.RequestListener) => Server;
  /**
   * Tell systemd about the instance's lifecycle: READY=1 once every server listens; STOPPING=1
   * from a preClose hook, whoever calls fastify.close(); on SIGTERM, fastify.close() (hooks and
   * all) within the deadline; on SIGHUP, RELOADING=1, `reload`, READY=1. See lifecycle().
   */
  notify?: Omit<LifecycleOptions, 'servers'>;
}

/** Where a server listens, in the form fastify.listen() returns: a URL, or a unix socket path. */
function formatAddress(server: Server, target: ListenTarget): string {
  if (target instanceof ListenFd && target.info.kind === 'socket') {
    // Node knows no path for a unix socket it was handed as an fd; the fd's own address does.
    const local = formatSocketAddress(target.info.local);
    return target.info.family === 'unix' ? local : `http://${local}`;
  }
  const address = server.address() as AddressInfo | string | null;
  if (address === null) return '';
  if (typeof address === 'string') return address;
  return address.family === 'IPv6' ? `http://[${address.address}]:${address.port}` : `http://${address.address}:${address.port}`;
}

/**
 * `fastify.listen()` for every inherited fd named `name`: Fastify's own server listens on the
 * first, and one more server per other fd shares Fastify's router, hooks and plugins
 * (`fastify.routing`); `fastify.close()` closes them all. Not activated: listens on the fallback.
 * Call it instead of `fastify.listen()`, before the instance is ready.
 *
 * @returns the address of each server, as `fastify.listen()` returns one
 * @throws SystemdError `ERR_SD_FD_UNSUITABLE` for an fd that is not a listening stream socket,
 *   and the errors of systemdFds()
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export async function listen(name: string, fastify: FastifyInstance, options: FastifyListenOptions = {}): Promise<string[]> {
  const targets = streamTargets(name, 'sd-activate/fastify', options);
  const [first, ...rest] = targets as [ListenTarget, ...ListenTarget[]];
  const mainIsPlainHttp = (): boolean => fastify.server instanceof HttpServer && !('setSecureContext' in fastify.server);
  if (rest.length > 0 && !options.createServer && !mainIsPlainHttp()) {
    throw new TypeError(`"${name}" has ${targets.length} fds: an https or http2 Fastify needs options.createServer for the extra ones`);
  }
  const extras: Server[] = [];
  fastify.addHook('onClose', async () => {
    await Promise.all(extras.map((s) => new Promise((resolve) => s.close(resolve))));
  });
  if (options.notify) {
    fastify.addHook('preClose', async () => {
      notify({ STOPPING: 1 });
    });
  }
  // A host other than 'localhost' keeps Fastify from binding extra localhost addresses
  // itself; Node ignores host when given an fd.
  // Fastify's types leave out `fd`, which its listen() passes through to Node's.
  const listenOptions = (first instanceof ListenFd ? { fd: first.fd, host: 'fd' } : first) as FastifyOwnListenOptions;
  // On Bun, Fastify's server.listen({ fd }) would bind elsewhere: it goes through a net.Server (see ./bun.ts).
  if (first instanceof ListenFd && needsBridge(fastify.server)) {
    const server = fastify.server as unknown as Server;
    server.listen = () => (listenThroughBridge(server, first, undefined), server);
  }
  const fastifyAddress = await fastify.listen(listenOptions);
  const addresses: string[] = [first instanceof ListenFd ? formatAddress(fastify.server, first) : fastifyAddress];
  const handler = fastify.routing as unknown as http.RequestListener;
  for (const target of rest) {
    const server = await listenOn(options.createServer ? options.createServer(handler) : createServer(handler), target);
    extras.push(server);
    addresses.push(formatAddress(server, target));
  }
  if (options.notify) await lifecycle({ ...options.notify, servers: [{ close: (done) => fastify.close().then(() => done?.(), done) }] });
  return addresses;
}
