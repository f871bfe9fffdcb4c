/* The public types of workerPool(), apart from its code so that the lazily loaded implementation can use them. */
import type { EventEmitter } from 'node:events';

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
  restartMs?: number;
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
