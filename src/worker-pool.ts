import type { EventEmitter } from 'node:events';
import { internals } from './internals.js';
import { unsupportedOnBun, unsupportedOnDeno } from './runtime.js';

/** Options of {@link workerPool}. Durations are in milliseconds. */
export interface WorkerPoolOptions {
  /** How many workers (1 or more). */
  size: number;
  /** The workers' program (default `process.execPath`, this Node). */
  command?: string;
  /** Its arguments (default this process's: `process.execArgv`, then `process.argv.slice(1)`). */
  args?: readonly string[];
  /** Its working directory (default this process's). */
  cwd?: string;
  /** Its environment (default `process.env`); SD_ACTIVATE_WORKER is set to each worker's index. */
  env?: NodeJS.ProcessEnv;
  /** The names of the fds to pass (default every fd this process holds, inherited or opened). */
  names?: readonly string[];
  /** How long a worker may take to send READY=1 (default 30000). */
  readyTimeoutMs?: number;
  /** How long after SIGTERM a worker may take to exit before SIGKILL (default 10000). */
  stopTimeoutMs?: number;
  /** How long to wait before starting again a worker that ended on its own (default 100). */
  restartSec?: number;
}

/** One worker of a {@link WorkerPool}. */
export interface WorkerInfo {
  /** Its place in the pool, 0 to size-1; a replacement keeps it. */
  index: number;
  pid: number;
  /** True once it sent READY=1. */
  ready: boolean;
}

/** Events of a {@link WorkerPool}. */
export interface WorkerPoolEvents {
  /** A worker sent READY=1. */
  ready: [worker: WorkerInfo];
  /** A worker ended; `restarting` when the pool starts another in its place. */
  exit: [event: { index: number; pid: number; code: number | null; signal: NodeJS.Signals | null; restarting: boolean }];
  /** A notify message the pool does not act on, or a worker that could not be started. */
  warning: [error: Error];
}

/**
 * A running pool, from {@link workerPool}. Pass it to upgrader() or lifecycle() as a server: its
 * close() stops the workers gracefully.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export interface WorkerPool extends EventEmitter<WorkerPoolEvents> {
  /** The workers running now. */
  readonly workers: readonly WorkerInfo[];
  /** The pids of the workers running now. */
  readonly pids: number[];
  /**
   * Stops every worker: SIGTERM (each finishes what it serves), SIGKILL after `stopTimeoutMs`.
   * Resolves (and calls `callback`) once all have exited. Idempotent.
   */
  close(callback?: (error?: Error) => void): Promise<void>;
}

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
 * @throws TypeError for options that are not valid; SystemdError `ERR_SD_UNSUPPORTED_RUNTIME` on
 *   Bun and Deno (the README's runtime table says why), `ERR_SD_FD_NOT_FOUND` when this
 *   process holds no fds to share, `ERR_SD_START_TIMEOUT` / `ERR_SD_SERVICE_EXITED` when a worker
 *   is not ready in time or ends first (the others are stopped then)
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export async function workerPool(options: WorkerPoolOptions): Promise<WorkerPool> {
  const unsupported = unsupportedOnBun(
    'a worker pool',
    "the pool receives its workers' READY=1 on a socket it waits on with libuv's uv_poll, which Bun does not offer to Node-API addons " +
      '(it aborts the process: oven-sh/bun#18546), and a worker watches its primary through an inherited socket, which Bun\'s net.Socket cannot use',
  );
  if (unsupported) throw unsupported;
  const unsupportedOnThisDeno = unsupportedOnDeno(
    'a worker pool',
    "its workers' READY=1 never reaches the pool's receiver (the workers are ready, the pool times out), Deno 2.9.6",
  );
  if (unsupportedOnThisDeno) throw unsupportedOnThisDeno;
  // Loaded on first use: a service without workers does not pay for it at start-up.
  const { startWorkerPool } = await import('./worker-pool-impl.js');
  return startWorkerPool(options, internals);
}
