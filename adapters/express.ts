/**
 * sd-activate/express: an Express app served on every inherited fd of a name.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html#ListenStream=
 * @module
 */
import type * as http from 'node:http';
// Types only: node:https (and TLS with it) is loaded when `https` options are given.
import type * as https from 'node:https';
import { lifecycle, type LifecycleOptions } from '../src/index.js';
import { listenAll, streamTargets, type AdapterOptions } from './targets.js';

export type { AdapterOptions } from './targets.js';

// Not an ES import: that builds the built-in's namespace, start-up time (see src/core/builtins.ts).
const { createServer } = process.getBuiltinModule('node:http');

/** Options of {@link listen}. */
export interface ExpressListenOptions extends AdapterOptions {
  /** Serve HTTPS with these TLS options instead of HTTP. */
  https?: https.ServerOptions;
  /** http.createServer() options (ignored with `https`). */
  server?: http.ServerOptions;
  /**
   * Tell systemd about the app's lifecycle (see lifecycle()): READY=1 once every server listens,
   * a graceful stop on SIGTERM, a reload on SIGHUP. Type=notify services want this.
   */
  notify?: Omit<LifecycleOptions, 'servers'>;
}

/**
 * What `app.listen()` does, for every inherited fd named `name`: one http.Server (or
 * https.Server) per fd, all serving `app`; one on the fallback when not activated.
 * Express 4 and 5 apps alike: an app is a request listener.
 *
 * @example
 * ```js
 * const app = express();
 * await listen('http', app, { fallback: 3000, notify: { status: 'Serving' } });
 * ```
 * @throws SystemdError `ERR_SD_FD_UNSUITABLE` for an fd that is not a listening stream socket,
 *   and the errors of systemdFds()
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export async function listen(name: string, app: http.RequestListener, options: ExpressListenOptions = {}): Promise<Array<http.Server | https.Server>> {
  if (typeof app !== 'function') throw new TypeError('app must be an Express application (a request listener)');
  const targets = streamTargets(name, 'sd-activate/express', options);
  const servers = await listenAll<http.Server | https.Server>(targets, () =>
    options.https ? process.getBuiltinModule('node:https').createServer(options.https, app) : createServer(options.server ?? {}, app),
    options.https,
  );
  if (options.notify) await lifecycle({ ...options.notify, servers });
  return servers;
}
