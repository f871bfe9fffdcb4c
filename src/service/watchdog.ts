import { parseWatchdogEnvironment } from '../core/watchdog-env.js';
import { notify } from './notify.js';

export { parseWatchdogEnvironment } from '../core/watchdog-env.js';

/** The longest delay setTimeout() takes; a longer one would fire at once. */
const TIMER_MAX_MS = 0x7fffffff;

/**
 * The shortest time between two pings of {@link startWatchdog}: at most 100 a second, each one a
 * datagram the service manager (PID 1) must read. systemd takes any WatchdogSec= above 0 (it
 * passes WATCHDOG_USEC=1 for 1us) and checks it on a timer of its event loop, which fires with
 * sd-event's default accuracy of 250 ms and after every other pending event: it fails the service
 * unless a ping arrived within WatchdogSec= before that moment. An event loop cannot meet a
 * WatchdogSec= of a few milliseconds (a garbage collection or a timer's lateness is as long):
 * measured under systemd 252, 1us failed the service within 170 ms and 1ms within 4 s, each with
 * pings about every millisecond. So below twice this floor, pinging faster only costs the service
 * and PID 1 CPU, for a service that fails anyway; from 20 ms on, pings come every half timeout.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#WatchdogSec=
 */
export const MIN_PING_INTERVAL_MS = 10;

/**
 * Options of {@link watchdogEnabled}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export interface WatchdogEnabledOptions {
  /**
   * Remove WATCHDOG_USEC and WATCHDOG_PID from `process.env` once read, whatever the outcome (as
   * sd_watchdog_enabled's `unset_environment`), so that child processes do not think the
   * watchdog is theirs.
   */
  unsetEnvironment?: boolean;
}

/**
 * Whether the service manager expects watchdog pings from this process, and how often: the
 * WatchdogSec= of the unit, from WATCHDOG_USEC (and WATCHDOG_PID), as sd_watchdog_enabled(3)
 * reads them.
 *
 * @returns the watchdog timeout in milliseconds (fractional when WATCHDOG_USEC is not a whole
 *   number of them), or 0 when no watchdog is asked of this process
 * @throws SystemdError `ERR_SD_WATCHDOG_USEC_INVALID` / `ERR_SD_WATCHDOG_PID_INVALID` for a value
 *   libsystemd refuses too
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export function watchdogEnabled(options: WatchdogEnabledOptions = {}): number {
  try {
    const usec = parseWatchdogEnvironment(process.env, process.pid);
    return usec === null ? 0 : Number(usec) / 1000;
  } finally {
    if (options.unsetEnvironment === true) {
      delete process.env.WATCHDOG_USEC;
      delete process.env.WATCHDOG_PID;
    }
  }
}

/**
 * Options of {@link startWatchdog}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export interface StartWatchdogOptions extends WatchdogEnabledOptions {
  /**
   * Asked before each ping: true to ping, false to skip it, so that a service that is up but not
   * working is restarted by systemd. May return a promise; while one is pending no other check
   * starts, and no ping is sent: a check that never settles ends in a watchdog timeout, as it
   * should. Throwing, rejecting or returning anything but a boolean counts as false and is
   * reported to `onError`.
   */
  healthCheck?: () => boolean | Promise<boolean>;
  /** Stops the pings when aborted, e.g. by the service's shutdown. */
  signal?: AbortSignal;
  /** Told about failed sends and failed health checks. By default they become process warnings. */
  onError?: (error: unknown) => void;
}

/**
 * A running watchdog pinger, from {@link startWatchdog}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export interface Watchdog {
  /** False when the service manager asked for no watchdog: then nothing is ever sent. */
  readonly enabled: boolean;
  /** The watchdog timeout in milliseconds (0 when not enabled). */
  readonly timeoutMs: number;
  /**
   * How often a ping is due: half the timeout, as sd_watchdog_enabled(3) advises, but never more
   * often than every {@link MIN_PING_INTERVAL_MS} (10) ms.
   */
  readonly intervalMs: number;
  /** Stops the pings. Idempotent. */
  stop(): void;
  [Symbol.dispose](): void;
}

/**
 * Sends WATCHDOG=1 every half WatchdogSec= while `healthCheck` passes: at once, then on an
 * unref'd timer (it never keeps the process alive). Never more often than every 10 ms
 * ({@link MIN_PING_INTERVAL_MS}): a WatchdogSec= below 20 ms is more than an event loop can keep,
 * and systemd fails such a service whatever it sends.
 *
 * The pings come from the event loop. A loop blocked for longer than the watchdog timeout (an
 * endless loop, a synchronous call that hangs) sends nothing, and systemd kills and restarts the
 * service with Result=watchdog: that is the point. A ping from a separate thread would keep a
 * stuck service looking alive.
 *
 * Keep pinging while shutting down: systemd applies the watchdog until the process is gone.
 * Stop it (`stop()`, or abort `signal`) as the last thing before exiting.
 *
 * NOTIFY_SOCKET is read at each ping: a notify call with `unsetEnvironment` ends the pings too.
 *
 * @throws SystemdError `ERR_SD_WATCHDOG_USEC_INVALID` / `ERR_SD_WATCHDOG_PID_INVALID` (see {@link watchdogEnabled})
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export function startWatchdog(options: StartWatchdogOptions = {}): Watchdog {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { healthCheck, signal, onError = (error: unknown) => process.emitWarning(asError(error)) } = options;
  if (healthCheck !== undefined && typeof healthCheck !== 'function') throw new TypeError('options.healthCheck must be a function');
  if (typeof onError !== 'function') throw new TypeError('options.onError must be a function');
  const timeoutMs = watchdogEnabled(options);
  const intervalMs = Math.min(Math.max(timeoutMs / 2, MIN_PING_INTERVAL_MS), TIMER_MAX_MS);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let checking = false;

  const report = (error: unknown): void => {
    try {
      onError(error);
    } catch (thrown) {
      // A throwing onError must not stop the pinger (systemd would restart a healthy service).
      process.emitWarning(asError(thrown));
    }
  };
  const ping = (): void => {
    if (stopped) return;
    try {
      notify.watchdog();
    } catch (error) {
      report(error);
    }
  };
  const settle = (healthy: unknown): void => {
    if (healthy === true) ping();
    else if (healthy !== false) report(new TypeError(`healthCheck must return a boolean, got ${typeof healthy}: no ping sent`));
  };
  const tick = (): void => {
    if (stopped || checking) return;
    if (!healthCheck) return ping();
    let result: boolean | Promise<boolean>;
    try {
      result = healthCheck();
    } catch (error) {
      return report(error);
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<boolean>).then === 'function') {
      checking = true;
      Promise.resolve(result).then(
        (healthy) => {
          checking = false;
          settle(healthy);
        },
        (error: unknown) => {
          checking = false;
          report(error);
        },
      );
    } else {
      settle(result);
    }
  };
  const stop = (): void => {
    stopped = true;
    if (timer) clearInterval(timer);
    signal?.removeEventListener('abort', stop);
  };

  if (timeoutMs > 0 && !signal?.aborted) {
    signal?.addEventListener('abort', stop, { once: true });
    timer = setInterval(tick, intervalMs);
    timer.unref();
    tick();
  } else {
    stopped = true;
  }
  return {
    enabled: timeoutMs > 0,
    timeoutMs,
    intervalMs: timeoutMs > 0 ? intervalMs : 0,
    stop,
    [Symbol.dispose]: stop,
  };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
