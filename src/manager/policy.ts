/*
 * systemd's policy tables for a service: how an exit is classed (Result=), whether Restart= starts
 * it again, what exit status a run reports, and the rate limits on starts and triggers. Pure.
 */
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';

/**
 * When a service is started again after it exits: systemd's Restart=.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#Restart=
 */
export type RestartPolicy = 'no' | 'on-success' | 'on-failure' | 'on-abnormal' | 'on-watchdog' | 'on-abort' | 'always';

/** The values of {@link RestartPolicy}, for validation. */
export const RESTART_POLICIES: readonly RestartPolicy[] = ['no', 'on-success', 'on-failure', 'on-abnormal', 'on-watchdog', 'on-abort', 'always'];

/**
 * How a service's exit is classed: systemd's Result= of a service.
 * `success` covers exit status 0 and the clean signals SIGHUP, SIGINT, SIGTERM and SIGPIPE;
 * `protocol` is a Type=notify service that ended cleanly before it sent READY=1; `timeout` a start
 * that took too long, or a stop that needed SIGKILL.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#Restart=
 */
export type ExitResult = 'success' | 'exit-code' | 'signal' | 'core-dump' | 'watchdog' | 'timeout' | 'protocol';

/** One service process's end, as the manager classes it. */
export interface ServiceExit {
  /** The main process whose exit this is (MAINPID= may have named another than the one started). */
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  result: ExitResult;
  /** How long it ran. */
  uptimeMs: number;
  /** Whether the supervisor starts it again (Restart=, or a watched file changed). */
  restarting: boolean;
  /** When restarting: after how long (RestartSec=; 0 after a watched change). */
  restartDelayMs: number | undefined;
  /** The connection it served, with `accept`. */
  connection: boolean;
}

/** Why the manager itself ended a process, when it did: what classify() reads first. */
export type KillReason = 'stop' | 'restart' | 'watchdog' | 'timeout';

const CLEAN_SIGNALS = new Set(['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE']);
const CORE_SIGNALS = new Set(['SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGXCPU', 'SIGXFSZ', 'SIGSYS']);

/** systemd's DefaultStartLimitIntervalSec= and DefaultStartLimitBurst=. */
export const START_LIMIT = { intervalMs: 10_000, burst: 5 } as const;

/** systemd's TriggerLimitIntervalSec= and TriggerLimitBurst= defaults for Accept=no sockets. */
export const TRIGGER_LIMIT = { intervalMs: 2000, burst: 20 } as const;

/** systemd's DefaultTimeoutStartSec= and DefaultTimeoutStopSec= (90 s). */
export const DEFAULT_TIMEOUT_MS = 90_000;

/** RestartSec='s default (100 ms). */
export const DEFAULT_RESTART_MS = 100;

/**
 * systemd's ratelimit_below(), behind StartLimitBurst= and TriggerLimitBurst= alike: a window opens
 * at an event and admits `burst` events, the first included; the next event after the window has
 * passed opens a new one. No limit when either is 0.
 */
export function rateLimitBelow(limit: { begin: number; count: number }, intervalMs: number, burst: number, now: number): boolean {
  if (!(intervalMs > 0 && burst > 0)) return true;
  if (limit.count === 0 || now - limit.begin > intervalMs) {
    limit.begin = now;
    limit.count = 1;
    return true;
  }
  limit.count++;
  return limit.count <= burst;
}

/** The table of systemd.service(5), "Exit causes and the effect of the Restart= settings". */
export function shouldRestart(policy: RestartPolicy, result: ExitResult): boolean {
  switch (policy) {
    case 'no':
      return false;
    case 'always':
      return true;
    case 'on-success':
      return result === 'success';
    case 'on-failure':
      return result !== 'success';
    case 'on-abnormal':
      // As systemd's service_shall_restart(): every failure but an exit status (Result=protocol too).
      return result !== 'success' && result !== 'exit-code';
    case 'on-watchdog':
      return result === 'watchdog';
    case 'on-abort':
      return result === 'signal' || result === 'core-dump';
  }
}

/** What the manager knows of a process besides its exit: why it ended it, if it did, and how far the start got. */
export interface EndContext {
  killedFor: KillReason | undefined;
  /** SIGKILL was sent after TimeoutStopSec= (the stop timed out). */
  sigkilled?: boolean;
  /** Type=notify and no READY=1 came: a clean end is then a protocol violation. */
  awaitingReady?: boolean;
}

/**
 * Result= of an exit, as systemd's service_sigchld_event() and service_enter_signal() class it: the
 * manager's own reason first (the watchdog; a start timeout; a stop that needed SIGKILL), then the
 * exit itself, and a clean end of a Type=notify service that never sent READY=1 is `protocol`.
 */
export function classify(code: number | null, signal: NodeJS.Signals | null, context: EndContext): ExitResult {
  const { killedFor } = context;
  if (killedFor === 'watchdog') return 'watchdog';
  if (killedFor === 'timeout') return 'timeout';
  if (context.sigkilled && (killedFor === 'stop' || killedFor === 'restart')) return 'timeout';
  const result = signal ? (CLEAN_SIGNALS.has(signal) ? 'success' : CORE_SIGNALS.has(signal) ? 'core-dump' : 'signal') : code === 0 ? 'success' : 'exit-code';
  if (result === 'success' && context.awaitingReady && killedFor === undefined) return 'protocol';
  return result;
}

/** What `sd-activate run` exits with for a service's exit: its status, 128+signal, or 1 for a failure (timeout, watchdog, protocol) that ended it cleanly. */
export function exitCodeOf(exit: { code: number | null; signal: NodeJS.Signals | null; result: ExitResult }): number {
  const status = exit.code ?? 128 + (exit.signal ? (osConstants.signals[exit.signal] ?? 0) : 0);
  if (exit.result !== 'success' && status === 0) return 1;
  return status;
}

/**
 * What a main process's end means: Result= (leftovers that had to be killed fail the service
 * with Result=timeout, as in systemd) and whether Restart= starts it again, after how long.
 */
export function exitOf(
  instance: EndContext & { mainPid: number; startedAt: number; connection: boolean },
  code: number | null,
  signal: NodeJS.Signals | null,
  context: { leftoversKilled: boolean; stopping: boolean; restart: RestartPolicy | undefined; restartMs: number | undefined },
): ServiceExit {
  const result = context.leftoversKilled ? 'timeout' : classify(code, signal, instance);
  const watched = instance.killedFor === 'restart';
  const restarting = !context.stopping && !instance.connection && (watched || shouldRestart(context.restart ?? 'no', result));
  const restartDelayMs = !restarting ? undefined : watched ? 0 : (context.restartMs ?? DEFAULT_RESTART_MS);
  const uptimeMs = Math.round(performance.now() - instance.startedAt);
  return { pid: instance.mainPid, code, signal, result, uptimeMs, restarting, restartDelayMs, connection: instance.connection };
}
