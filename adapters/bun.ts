/*
 * Serving an inherited listening socket on Bun. Bun's node:net serves one (net.Server and
 * tls.Server `listen({ fd })`, and node:http2, which is built on them), but its http and https
 * servers, built on Bun.serve, never read `fd`: `listen({ fd })` binds a random port on `::`
 * instead and reports success (oven-sh/bun#22559, still open with Bun 1.4.5; #33578 and #36491
 * propose an error and a fix). Bun's http.Server does take connections handed to it with
 * emit('connection'), and so the adapters serve such a server through a net.Server (a tls.Server
 * for HTTPS) listening on the fd. Checked only when an adapter listens on an inherited fd.
 */
import type { Server } from 'node:net';
import type { TlsOptions } from 'node:tls';
import { SystemdError, type ListenFd } from '../src/index.js';

/** True on Bun for a server that is not a net.Server: one whose listen({ fd }) Bun ignores. */
export function needsBridge(server: object): boolean {
  return process.versions.bun !== undefined && !(server instanceof process.getBuiltinModule('node:net').Server);
}

/**
 * Serves `server` on the inherited fd through a net.Server (a tls.Server when `tls` is given).
 * The server then reports what the net.Server does: `listening`, `address()`, 'listening' and
 * 'error'; its `close()` stops accepting on the fd, and calls back once every connection ended.
 */
export function listenThroughBridge(server: Server, handle: ListenFd, tls: TlsOptions | undefined): void {
  if (tls === undefined && server instanceof process.getBuiltinModule('node:https').Server) {
    throw new SystemdError(
      'ERR_SD_UNSUPPORTED_RUNTIME',
      `fd ${handle.fd} "${handle.name}": Bun's https.Server cannot listen on an inherited fd (it binds a random port instead), ` +
        'and sd-activate can serve it through a tls.Server only with its TLS options: pass them to the adapter',
    );
  }
  const bridge: Server = tls
    ? process.getBuiltinModule('node:tls').createServer(tls, (socket) => server.emit('connection', socket))
    : process.getBuiltinModule('node:net').createServer((socket) => server.emit('connection', socket));
  bridge.on('listening', () => server.emit('listening'));
  bridge.on('error', (error) => server.emit('error', error));
  const closeHttp = server.close.bind(server);
  Object.defineProperties(server, {
    listening: { configurable: true, get: () => bridge.listening },
    address: { configurable: true, writable: true, value: () => bridge.address() },
    close: {
      configurable: true,
      writable: true,
      value(callback?: (error?: Error) => void): Server {
        bridge.close((error) => {
          server.emit('close');
          callback?.(error);
        });
        // Bun's own close() ends its idle keep-alive connections; its "not running" is no news.
        closeHttp(() => undefined);
        return server;
      },
    },
  });
  bridge.listen({ fd: handle.fd });
}
