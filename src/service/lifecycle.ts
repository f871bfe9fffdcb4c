import { SystemdError } from '../core/errors.js';
import { heldFds, listenFds } from './activation.js';
import { Drain, waitListening, type Closable } from './drain.js';
import { idleExitUnsafe, watchIdle } from './idle.js';
import { notify } from './notify.js';
import { runStop, type StopOptions } from './stop.js';

export type { Closable } from './drain.js';
export type { StopOptions } from './stop.js';

/** Options of {@link lifecycle}, besides how it stops (see {@link StopOptions}). */
export interface LifecycleOptions extends StopOptions {
  /** What to stop on a stop signal: servers stop accepting, in-flight requests may finish. */
  servers?: readonly Closable[];
  /** STATUS= sent with READY=1 (and again after each reload). */
  status?: string;
  /** Runs between RELOADING=1 and READY=1 when the reload signal arrives. */
  reload?: () => unknown;
  /** The signal that reloads (default 'SIGHUP', as `systemctl reload` sends for Type=notify-reload); null for none. */
  reloadSignal?: NodeJS.Signals | null;
}

/** A running lifecycle: what it does on signals, callable directly too. */
export interface Lifecycle {
  /** STOPPING=1, close every server (cutting connections after the deadline), onStop, exit. Idempotent. */
  stop(): Promise<void>;
  /** RELOADING=1 + MONOTONIC_USEC, the reload function, READY=1. Reloads do not overlap. */
  reload(): Promise<void>;
  /** Removes the signal handlers (the servers keep running). */
  dispose(): void;
}

/**
 * Ties a service's servers to systemd's lifecycle (sd_notify(3)): once every server listens,
 * READY=1 with STATUS=; on SIGTERM, STOPPING=1, stop accepting, let in-flight requests finish
 * within `stopTimeoutMs`, then exit; on SIGHUP, RELOADING=1 with MONOTONIC_USEC, the `reload`
 * function, READY=1 (what Type=notify-reload expects). Outside systemd (no NOTIFY_SOCKET) the
 * signals are handled the same way and nothing is sent.
 *
 * @example
 * ```js
 * const servers = await listen('http', handler, { fallback: 8080 });
 * await lifecycle({ servers, status: 'Serving', reload: loadConfig });
 * ```
 * @throws the errors of notify() for READY=1 (a malformed NOTIFY_SOCKET, a receiver gone)
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#Type=
 */
export async function lifecycle(options: LifecycleOptions = {}): Promise<Lifecycle> {
  const servers = [...(options.servers ?? [])];
  for (const server of servers) {
    if (!server || typeof server.close !== 'function') throw new TypeError('options.servers must hold servers or sockets with a close() method');
  }
  if (options.reload !== undefined && typeof options.reload !== 'function') throw new TypeError('options.reload must be a function');
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  if (!(stopTimeoutMs >= 0)) throw new RangeError('options.stopTimeoutMs must be 0 or more');
  const reloadSignal = options.reloadSignal === undefined ? 'SIGHUP' : options.reloadSignal;
  const stopSignals = options.stopSignals ?? ['SIGTERM', 'SIGINT'];
  const status = options.status;

  // Idle keep-alive connections are closed at once on a stop: waiting for them would hold a
  // restart for keepAliveTimeout while new connections queue for the next process.
  const drain = new Drain(servers, { idleConnections: 'close' });
  const idleTimeoutMs = options.idleTimeoutMs;
  if (idleTimeoutMs !== undefined) {
    if (!(typeof idleTimeoutMs === 'number' && idleTimeoutMs > 0 && idleTimeoutMs <= 0x7fffffff)) throw new TypeError('options.idleTimeoutMs must be a number of milliseconds above 0');
    const unsafe = idleExitUnsafe({ held: heldFds(), inherited: listenFds() }, drain);
    if (unsafe) throw new SystemdError('ERR_SD_IDLE_EXIT_UNSAFE', `cannot exit when idle: ${unsafe}`);
  }
  await Promise.all(servers.map(waitListening));
  notify(status === undefined ? { READY: 1 } : { READY: 1, STATUS: status });

  let stopping: Promise<void> | undefined;
  let reloading: Promise<void> = Promise.resolve();

  const warn = (error: Error): void => void process.emitWarning(error);
  /**
   * `idle`: a stop of its own when idle. There were no connections then: any open now came after,
   * and has its request on the way; it is answered (with `Connection: close`), not cut.
   */
  const stop = (idle = false): Promise<void> => {
    stopping ??= runStop({
      notifyStopping: () => notify({ STOPPING: 1, STATUS: 'Stopping' }),
      drain,
      idleConnections: idle ? 'drain' : 'close',
      stopTimeoutMs,
      onStop: options.onStop,
      watchdog: options.watchdog,
      dispose: () => dispose(),
      exit: options.exit ?? true,
      exitCode: 0,
      warn,
    });
    return stopping;
  };

  const reload = (): Promise<void> => {
    reloading = reloading.then(async () => {
      if (stopping) return;
      notify.reloading(status === undefined ? {} : { status: 'Reloading' });
      let outcome = status;
      try {
        await options.reload?.();
      } catch (error) {
        outcome = `Reload failed: ${(error as Error).message ?? String(error)}`.split('\n')[0];
      }
      notify(outcome === undefined ? { READY: 1 } : { READY: 1, STATUS: outcome });
    });
    return reloading;
  };

  const stopWatchingIdle =
    idleTimeoutMs === undefined
      ? undefined
      : watchIdle(drain, idleTimeoutMs, () => {
          try {
            notify.status(`Idle for ${idleTimeoutMs} ms: stopping until the next connection`);
          } catch (error) {
            warn(error as Error);
          }
          void stop(true);
        });
  const onStop = (): void => void stop();
  const onReload = (): void => void reload();
  for (const signal of stopSignals) process.on(signal, onStop);
  if (reloadSignal) process.on(reloadSignal, onReload);
  const dispose = (): void => {
    stopWatchingIdle?.();
    for (const signal of stopSignals) process.off(signal, onStop);
    if (reloadSignal) process.off(reloadSignal, onReload);
  };
  return { stop: () => stop(), reload, dispose };
}

/**
 * Sends EXTEND_TIMEOUT_USEC= every `intervalMs` while `work` runs, so a long start-up (or stop)
 * that is still progressing is not killed by TimeoutStartSec=; each extension asks for twice the
 * interval from now. Resolves or rejects as `work` does.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#EXTEND_TIMEOUT_USEC=%E2%80%A6
 */
export async function extendTimeoutWhile<T>(work: Promise<T> | (() => Promise<T>), options: { intervalMs?: number } = {}): Promise<T> {
  const intervalMs = options.intervalMs ?? 5000;
  if (!(intervalMs > 0)) throw new RangeError('options.intervalMs must be above 0');
  notify.extendTimeout(intervalMs * 2);
  // A failed send is not swallowed: it stops the extensions and is thrown once the work is done.
  let failure: unknown;
  const timer = setInterval(() => {
    try {
      notify.extendTimeout(intervalMs * 2);
    } catch (error) {
      failure = error;
      clearInterval(timer);
    }
  }, intervalMs);
  try {
    const result = await (typeof work === 'function' ? work() : work);
    if (failure !== undefined) throw failure;
    return result;
  } finally {
    clearInterval(timer);
  }
}
