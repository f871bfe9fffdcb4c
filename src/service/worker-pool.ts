import { unsupportedOnBun, unsupportedOnDeno } from '../core/runtime.js';
import { internals } from './internals.js';
import type { WorkerPoolOptions, WorkerInfo, WorkerPoolEvents, WorkerPool } from './worker-pool-types.js';

export type { WorkerPoolOptions, WorkerInfo, WorkerPoolEvents, WorkerPool } from './worker-pool-types.js';

/**
 * Starts `size` workers that all serve the sockets this process holds (those systemd passed, or
 * those it opened with openStoredSocket()): the middle ground between one process per connection
 * and one process for everything. Each worker is started as socket activation starts a service:
 * the fds at 3+ with their names, LISTEN_PID its own pid, and a NOTIFY_SOCKET of the pool's, so a
 * worker is an ordinary program that calls listen()/bind() and lifecycle() (or upgrader()), and
 * its READY=1 comes to the pool, never to systemd. A worker that ends on its own is started again.
 *
 * Resolves once every worker is ready. Pass the pool to upgrader() as a server, and the pool is
 * upgraded as a whole: the new primary starts its own workers, and the old primary stops its
 * workers gracefully once the new one is the main process.
 *
 * @example
 * ```js
 * openStoredSocket('web', { type: 'stream', address: { family: 'ipv4', address: '0.0.0.0', port: 8080 } });
 * const pool = await workerPool({ size: 4, args: [new URL('./worker.js', import.meta.url).pathname] });
 * await upgrader({ servers: [pool], status: 'Serving with 4 workers' });
 * ```
 * @throws TypeError for options that are not valid; SystemdError `ERR_SD_FD_NOT_FOUND` when this
 *   process holds no fds to share, `ERR_SD_START_TIMEOUT` / `ERR_SD_SERVICE_EXITED` when a worker
 *   is not ready in time or ends first (the others are stopped then)
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export async function workerPool(options: WorkerPoolOptions): Promise<WorkerPool> {
  const unsupported =
    unsupportedOnBun(
      'a worker pool',
      "the pool receives its workers' READY=1 on a socket it waits on with libuv's uv_poll, which Bun does not offer to Node-API addons " +
        "(it aborts the process: oven-sh/bun#18546), and a worker watches its primary through an inherited socket, which Bun's net.Socket cannot use",
    ) ?? unsupportedOnDeno('a worker pool', "its workers' READY=1 never reaches the pool's receiver (the workers are ready, the pool times out), Deno 2.9.6");
  if (unsupported) throw unsupported;
  // Loaded on first use: a service without workers does not pay for it at start-up.
  const { startWorkerPool } = await import('./worker-pool-impl.js');
  return startWorkerPool(options, internals);
}
