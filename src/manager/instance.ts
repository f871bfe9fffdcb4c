/*
 * One running service process and its timers, as systemd keeps them for a unit: the start
 * timeout (TimeoutStartSec=), the watchdog (WatchdogSec=), the stop timeout (TimeoutStopSec=), all
 * moved later by EXTEND_TIMEOUT_USEC=; and the signals that end it. What its exit means (Result=,
 * Restart=) is the supervisor's business.
 */
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { signalGroup } from '../shared/exec.js';
import type { KillReason } from './policy.js';
import { startTimeOf } from './processes.js';
import type { ServiceExit, SupervisorEvents } from './supervisor-options.js';

/** What an instance tells its supervisor. */
export interface InstanceHost {
  /** TimeoutStopSec=, in ms. */
  readonly timeoutStopMs: number;
  emit<K extends keyof SupervisorEvents>(event: K, ...args: SupervisorEvents[K]): boolean;
}

/** One service process, from its spawn to its exit. */
export class ServiceInstance {
  readonly child: ChildProcess;
  /** The process started (0 when it could not be). */
  readonly pid: number;
  /** The pid whose exit ends the service: the process started, or what MAINPID= named ({@link moveMain}). */
  mainPid: number;
  /** When the main process MAINPID= named started: a process that reuses its pid later is not it. */
  #mainStart: string | undefined;
  readonly startedAt = performance.now();
  /** Started for one connection (Accept=yes). */
  readonly connection: boolean;
  ready = false;
  /** Why the manager began to end it, if it did. */
  killedFor: KillReason | undefined;
  /** The stop took longer than TimeoutStopSec= and SIGKILL was sent: Result=timeout. */
  sigkilled = false;
  /** WatchdogSec= as it is now (WATCHDOG_USEC= may change it); 0 for none. */
  watchdogMs: number;
  /** Set once its end is decided; the exit follows once what it left running is gone too. */
  ended = false;
  /** Resolves with its exit, once decided and once its leftovers are gone. */
  readonly exited: Promise<ServiceExit>;
  readonly #settle: (exit: ServiceExit) => void;
  readonly #host: InstanceHost;
  #startTimer: NodeJS.Timeout | undefined;
  #watchdogTimer: NodeJS.Timeout | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  /** The signal that began the stop, and when (for the SIGKILL warning). */
  #stopSignal: NodeJS.Signals = 'SIGTERM';
  #stopSentAt = 0;
  /** When each timer fires (performance.now()), for EXTEND_TIMEOUT_USEC=, which only moves them later. */
  readonly #deadlines = { start: Infinity, watchdog: Infinity, kill: Infinity };

  constructor(child: ChildProcess, connection: boolean, watchdogMs: number, host: InstanceHost) {
    this.child = child;
    this.pid = child.pid ?? 0;
    this.mainPid = this.pid;
    this.connection = connection;
    this.watchdogMs = watchdogMs;
    this.#host = host;
    let settle!: (exit: ServiceExit) => void;
    this.exited = new Promise((resolve) => (settle = resolve));
    this.#settle = settle;
  }

  /** MAINPID=: `pid` (a running process of the service, checked by the caller) is the main process now. */
  moveMain(pid: number): void {
    this.mainPid = pid;
    this.#mainStart = startTimeOf(pid);
  }

  /** Type=notify and READY=1 has not come (yet): a clean end now is Result=protocol. */
  get awaitingReady(): boolean {
    return !this.ready;
  }

  /** Ends its life: the timers stop; `exit` is what `exited` resolves with. */
  settle(exit: ServiceExit): void {
    this.#settle(exit);
  }

  /** TimeoutStartSec=: SIGTERM if READY=1 has not come within `ms` (0: wait for ever). */
  armStartTimeout(ms: number): void {
    if (this.#startTimer) clearTimeout(this.#startTimer);
    this.#startTimer = undefined;
    this.#deadlines.start = Infinity;
    if (ms === 0 || !Number.isFinite(ms)) return;
    this.#deadlines.start = performance.now() + ms;
    this.#startTimer = setTimeout(() => {
      this.#startTimer = undefined;
      if (this.ready || this.killedFor) return;
      this.#host.emit('start-timeout', { pid: this.mainPid, timeoutMs: ms });
      this.terminate('timeout', 'SIGTERM');
    }, ms);
  }

  /** READY=1 (or the spawn of a Type=simple service): the start is over, and the watchdog runs from here, as in systemd. */
  becomeReady(): void {
    if (this.ready || this.ended) return;
    this.ready = true;
    if (this.#startTimer) clearTimeout(this.#startTimer);
    this.#startTimer = undefined;
    this.#host.emit('ready', { pid: this.mainPid, startupMs: Math.round((performance.now() - this.startedAt) * 10) / 10 });
    this.armWatchdog();
  }

  /** The watchdog fires in `ms` (WatchdogSec=, or what EXTEND_TIMEOUT_USEC= made of it) unless pinged. */
  armWatchdog(ms = this.watchdogMs): void {
    if (this.#watchdogTimer) clearTimeout(this.#watchdogTimer);
    this.#watchdogTimer = undefined;
    if (!this.watchdogMs || this.killedFor || this.ended) return;
    this.#deadlines.watchdog = performance.now() + ms;
    this.#watchdogTimer = setTimeout(() => this.watchdogExpired(), ms);
  }

  /** No WATCHDOG=1 in time, or WATCHDOG=trigger: SIGABRT (WatchdogSignal='s default, so there is a core dump to look at). */
  watchdogExpired(): void {
    this.#watchdogTimer = undefined;
    if (this.killedFor || this.ended) return;
    this.#host.emit('watchdog', { pid: this.mainPid, timeoutMs: this.watchdogMs });
    this.terminate('watchdog', 'SIGABRT');
  }

  /**
   * Begins to end it: `signal` now and SIGCONT right after it, as systemd's kill_and_sigcont() does,
   * so that a stopped process (SIGSTOP, a debugger) gets the signal at once instead of at SIGKILL;
   * SIGKILL after TimeoutStopSec=.
   */
  terminate(reason: KillReason, signal: NodeJS.Signals): void {
    if (this.ended) return;
    this.killedFor ??= reason;
    if (this.#watchdogTimer) clearTimeout(this.#watchdogTimer);
    if (this.#startTimer) clearTimeout(this.#startTimer);
    this.#watchdogTimer = this.#startTimer = undefined;
    this.signal(signal);
    if (signal !== 'SIGKILL' && signal !== 'SIGCONT') this.signal('SIGCONT');
    if (!this.#killTimer) {
      this.#stopSignal = signal;
      this.#stopSentAt = performance.now();
      this.#armKillTimer(this.#host.timeoutStopMs);
    }
  }

  /** SIGKILL in `ms`, unless it has ended by then (TimeoutStopSec=, or what EXTEND_TIMEOUT_USEC= made of it). */
  #armKillTimer(ms: number): void {
    if (this.#killTimer) clearTimeout(this.#killTimer);
    this.#deadlines.kill = performance.now() + ms;
    this.#killTimer = setTimeout(() => {
      const waited = Math.round(this.#deadlines.kill - this.#stopSentAt) / 1000;
      this.#host.emit('warning', new Error(`pid ${this.mainPid} did not stop within ${waited}s of ${this.#stopSignal}: sending SIGKILL`));
      this.sigkilled = true;
      this.signal('SIGKILL');
    }, ms);
  }

  /**
   * `signal` to the process started (its process group while it runs) and to a main process
   * MAINPID= named, if that process still runs (and not another that took its pid since).
   */
  signal(signal: NodeJS.Signals): void {
    // The group of a process that has ended is left to the supervisor's leftovers, which wait for it.
    if (this.child.exitCode === null && this.child.signalCode === null) signalGroup(this.child, signal);
    if (this.mainPid !== this.pid && this.#mainStart !== undefined && startTimeOf(this.mainPid) === this.#mainStart) {
      try {
        process.kill(this.mainPid, signal);
      } catch {
        // gone already
      }
    }
  }

  /**
   * EXTEND_TIMEOUT_USEC=, as systemd's service_extend_timeout(): the start timeout, the stop
   * timeout (after the kill signal) and the watchdog that are running move to `ms` from now, and
   * only later, never earlier.
   */
  extendTimeouts(ms: number): void {
    const until = performance.now() + ms;
    if (this.#startTimer && until > this.#deadlines.start) this.armStartTimeout(ms);
    if (this.#killTimer && until > this.#deadlines.kill) this.#armKillTimer(ms);
    if (this.#watchdogTimer && until > this.#deadlines.watchdog) this.armWatchdog(ms);
  }

  clearTimers(): void {
    for (const timer of [this.#startTimer, this.#watchdogTimer, this.#killTimer]) if (timer) clearTimeout(timer);
    this.#startTimer = this.#watchdogTimer = this.#killTimer = undefined;
  }
}
