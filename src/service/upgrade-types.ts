/* The public types of upgrader(), apart from its code so that the lazily loaded implementation can use them. */
import type { EventEmitter } from 'node:events';
import type { SystemdError } from '../core/errors.js';
import type { Closable } from './drain.js';
import type { StopOptions } from './stop.js';

/**
 * Options of {@link upgrader}, besides how it stops (see {@link StopOptions}). Durations are in milliseconds.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#MAINPID=%E2%80%A6
 */
export interface UpgraderOptions extends StopOptions {
  /**
   * What this process serves: net/http/https servers and dgram sockets from the adapters, a
   * worker pool, or anything with a close() (callback or promise). They stop accepting (and
   * reading) at the hand-over and on a stop; http servers answer what is in flight with
   * `Connection: close` instead of cutting idle connections.
   *
   * Or a function that starts them (`() => listen('web', handler)`): it is called once
   * everything the upgrader needs is loaded, and READY=1 follows at once, so that a new process
   * has nothing left to do when its first connections arrive.
   */
  servers?: readonly Closable[] | (() => readonly Closable[] | Promise<readonly Closable[]>);
  /** STATUS= sent with READY=1. */
  status?: string;
  /** The program of the new version (default `process.execPath`, this Node). */
  command?: string;
  /** Its arguments (default this process's: `process.execArgv`, then `process.argv.slice(1)`). */
  args?: readonly string[];
  /** Its working directory (default this process's). */
  cwd?: string;
  /**
   * Its environment (default `process.env`); the service manager's variables are set anew. The next
   * version's process is started ahead of time, waiting; when the environment or the fds have
   * changed by the time of the upgrade, it is replaced by one started then.
   */
  env?: NodeJS.ProcessEnv;
  /** How long the new process may take to be ready before it is killed and this one serves on (default 30000). */
  readyTimeoutMs?: number;
  /** The signal that starts an upgrade (default 'SIGHUP', what `ExecReload=kill -HUP $MAINPID` and Type=notify-reload send); null for none. */
  upgradeSignal?: NodeJS.Signals | null;
}

/** How an upgrade ended. */
export interface UpgradeResult {
  /** True when the new process is the main process now (and this one is finishing). */
  upgraded: boolean;
  /** The new process's pid, if one was started. */
  pid: number | undefined;
  /** Why not, when not upgraded. */
  error?: SystemdError;
}

/** Events of an {@link Upgrader}. */
export interface UpgraderEvents {
  /** A new process was started. */
  upgrading: [event: { pid: number }];
  /** The new process is the main process; this one stops accepting and finishes. */
  upgraded: [event: { pid: number }];
  /** The new process failed, or was not ready in time, and was killed; this one serves on. */
  failed: [event: { pid: number | undefined; error: SystemdError }];
  /** Something went wrong that does not stop the upgrade (a BARRIER=1 not answered in time). */
  warning: [error: Error];
}

/**
 * A running upgrader, from {@link upgrader}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#MAINPID=%E2%80%A6
 */
export interface Upgrader extends EventEmitter<UpgraderEvents> {
  /** In a process started by an upgrade, the pid of the process it took over from. */
  readonly previousPid: number | undefined;
  /** True once this process is the service's main process (always, unless it was started by an upgrade that is not confirmed yet). */
  readonly isMain: boolean;
  /**
   * Starts the new version and hands over to it once it is ready (what the upgrade signal does).
   * Never rejects: a new process that fails, or is not ready within `readyTimeoutMs`, is killed,
   * this one serves on, and the result says why. Calls while one runs share its result.
   */
  upgrade(): Promise<UpgradeResult>;
  /**
   * Stops: STOPPING=1 (from the main process only), stop accepting, let in-flight work finish
   * within `stopTimeoutMs`, onStop, exit. A new process being started is killed first. Idempotent.
   */
  stop(): Promise<void>;
  /** Removes the signal handlers (the servers keep running). */
  dispose(): void;
}
