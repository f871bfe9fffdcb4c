/**
 * sd-activate/http: http, https and http2 servers on every inherited fd of a name.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html#ListenStream=
 * @module
 */
import type * as http from 'node:http';
// Types only: node:https and node:http2 load TLS and the HTTP/2 stack, milliseconds of start-up
// that a plain HTTP service should not pay. They are fetched when listenHttps()/listenHttp2() run.
import type * as http2 from 'node:http2';
import type * as https from 'node:https';
import { listenAll, streamTargets, type AdapterOptions } from './targets.js';

export type { AdapterOptions } from './targets.js';

// Not an ES import: that builds the built-in's namespace, start-up time (see src/core/builtins.ts).
const { createServer } = process.getBuiltinModule('node:http');

/** Options of {@link listen}. */
export interface HttpListenOptions extends AdapterOptions {
  /** http.createServer() options. */
  server?: http.ServerOptions;
}

/** Options of {@link listenHttps}: the TLS and server options are required. */
export interface HttpsListenOptions extends AdapterOptions {
  server: https.ServerOptions;
}

/** Options of {@link listenHttp2}: cleartext HTTP/2 unless `secure` options are given. */
export interface Http2ListenOptions extends AdapterOptions {
  server?: http2.ServerOptions;
  /** TLS options: serve HTTP/2 over TLS (http2.createSecureServer). */
  secure?: http2.SecureServerOptions;
}

/** What answers each request: http.RequestListener. */
export type RequestListener = http.RequestListener;

/**
 * One http.Server per inherited fd named `name`, all with `requestListener`; one on the
 * fallback when not activated. Resolves once every server listens.
 *
 * @example
 * ```js
 * const servers = await listen('http', (req, res) => res.end('hi'), { fallback: 8080 });
 * ```
 * @throws SystemdError `ERR_SD_FD_UNSUITABLE` for an fd that is not a listening stream socket
 *   (a UDP fd, a connected socket, a FIFO), and the errors of systemdFds()
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export function listen(name: string, requestListener: RequestListener, options: HttpListenOptions = {}): Promise<http.Server[]> {
  checkListener(requestListener);
  const targets = streamTargets(name, 'sd-activate/http', options);
  return listenAll(targets, () => createServer(options.server ?? {}, requestListener));
}

/**
 * {@link listen} for HTTPS: one https.Server per fd, with the given TLS options.
 *
 * @throws as {@link listen}
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export function listenHttps(name: string, requestListener: RequestListener, options: HttpsListenOptions): Promise<https.Server[]> {
  checkListener(requestListener);
  if (typeof options !== 'object' || options === null || typeof options.server !== 'object') {
    throw new TypeError('options.server (the TLS options: key, cert, ...) is required');
  }
  const targets = streamTargets(name, 'sd-activate/http', options);
  return listenAll(targets, () => process.getBuiltinModule('node:https').createServer(options.server, requestListener), options.server);
}

/**
 * {@link listen} for HTTP/2, cleartext or (with `secure`) over TLS, with the compatibility API's
 * request listener; listen to 'stream' on the returned servers for the core API.
 *
 * @throws as {@link listen}
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export function listenHttp2(
  name: string,
  requestListener: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  options: Http2ListenOptions = {},
): Promise<Array<http2.Http2Server | http2.Http2SecureServer>> {
  if (typeof requestListener !== 'function') throw new TypeError('requestListener must be a function');
  const targets = streamTargets(name, 'sd-activate/http', options);
  const h2 = process.getBuiltinModule('node:http2');
  return listenAll<http2.Http2Server | http2.Http2SecureServer>(targets, () =>
    options.secure ? h2.createSecureServer(options.secure, requestListener) : h2.createServer(options.server ?? {}, requestListener),
  );
}

function checkListener(listener: unknown): void {
  if (typeof listener !== 'function') throw new TypeError('requestListener must be a function');
}
