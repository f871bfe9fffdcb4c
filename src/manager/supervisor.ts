/*
 * The engine of `sd-activate run` and `sd-activate/testing`: what systemd does around a service.
 *
 * The sockets are opened here once, outside the event loop, and stay open across restarts, so a
 * client that connects while the service is down waits in the backlog instead of being refused.
 * The service's notify messages come in on a NOTIFY_SOCKET of our own; READY, the watchdog,
 * MAINPID and the fd store are handled as systemd handles them.
 */
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseListenSpec, type ListenSpec } from './listen-spec.js';
import { SystemdError } from '../core/errors.js';
import { closeListener, openListeners, type OpenedListener } from './listeners.js';
import { native, type NativeBinding } from '../native/addon.js';
import { NotifyMessage, NotifyReceiver } from '../shared/notify-receiver.js';
import { acceptConnection, ReadinessWaiter } from './readiness.js';
import { signalGroup } from '../shared/exec.js';
import { resolveCommand, spawnService } from './service-process.js';

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
 * `success` covers exit status 0 and the clean signals SIGHUP, SIGINT, SIGTERM and SIGPIPE.
 */
export type ExitResult = 'success' | 'exit-code' | 'signal' | 'core-dump' | 'watchdog' | 'timeout';

/** Options of a {@link Supervisor}. Durations are in milliseconds. */
export interface SupervisorOptions {
  /** The program: a path, or a name looked up on PATH (ExecStart=). */
  command: string;
  args?: readonly string[];
  /** What to listen on: parsed specs, or `--listen` strings (`web=tcp:127.0.0.1:0`). Passed at fd 3+ in this order. */
  listen?: ReadonlyArray<ListenSpec | string>;
  /** The service's working directory, and the base of relative socket paths. */
  cwd?: string;
  /** The service's environment (default `process.env`); systemd's own variables are replaced. */
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr of the service: this process's ('inherit', the default), pipes ('pipe': see the 'output' event), or none. */
  stdio?: 'inherit' | 'pipe' | 'ignore';
  /** Type=: 'simple' (ready once started, the default) or 'notify' (ready on READY=1). */
  type?: 'simple' | 'notify';
  /** Restart= (default 'no'). */
  restart?: RestartPolicy;
  /** RestartSec= (default 100). */
  restartSec?: number;
  /**
   * StartLimitIntervalSec= (default 10000; 0 for no limit) and StartLimitBurst= (default 5; 0 for
   * no limit): at most that many starts, the first included, in a window that opens at a start.
   * The start after them does not happen, and the supervisor fails with `ERR_SD_START_LIMIT_HIT`
   * (Result=start-limit-hit). Restarts for a watched change do not count.
   */
  startLimitIntervalSec?: number;
  startLimitBurst?: number;
  /** TimeoutStartSec=: how long a Type=notify service may take to send READY=1 (default 90000; 0 waits for ever). */
  timeoutStartSec?: number;
  /** TimeoutStopSec=: how long after SIGTERM before SIGKILL (default 90000). */
  timeoutStopSec?: number;
  /** WatchdogSec=: sets WATCHDOG_USEC; without WATCHDOG=1 for this long the service gets SIGABRT (default: off). */
  watchdogSec?: number;
  /** FileDescriptorStoreMax= (default 0: FDSTORE=1 fds are dropped, as systemd drops them). */
  fdStoreMax?: number;
  /**
   * NotifyAccess=: whose notify messages count. 'main' (the default) only the main process's;
   * 'exec' the same here (systemd adds the processes of ExecStartPre= and the like, which a
   * supervisor does not run); 'all' any process's; 'none' sets no NOTIFY_SOCKET (and so cannot be used with type 'notify' or a watchdog).
   */
  notifyAccess?: 'none' | 'main' | 'exec' | 'all';
  /** Accept=yes: one service per connection, the connection at fd 3 named "connection". */
  accept?: boolean;
  /** MaxConnections= with `accept` (default 64): more connections wait in the backlog. */
  maxConnections?: number;
  /** Start the service on the first connection or datagram, as a .socket unit does, instead of at once. */
  lazy?: boolean;
  /** Files or directories whose changes restart the service (the sockets stay open). */
  watch?: readonly string[];
  /**
   * Make this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER), as systemd's service manager
   * is: a process the service leaves behind when its parent exits is adopted and reaped here, and a
   * main process named by MAINPID= (the new process of an upgrade) becomes a child once the old one
   * exits, so that its exit status is known and Restart= acts on it. The setting is process-wide:
   * for a process that runs nothing else (`sd-activate run` sets it). Without it (the default), an
   * adopted main process's exit status is unknown and taken as a success.
   */
  subreaper?: boolean;
}

/** One service process's end. */
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

/** How a supervisor ended. */
export interface SupervisorResult {
  /** What `sd-activate run` exits with: the service's exit status, 128+signal, or 1 for a timeout or watchdog. */
  exitCode: number;
  /** The last main service's exit, if one ran. */
  lastExit: ServiceExit | undefined;
  /** Set when the supervisor stopped for a failure of its own (e.g. the trigger limit). */
  error: SystemdError | undefined;
}

/** Events of a {@link Supervisor}. */
export interface SupervisorEvents {
  /** The sockets are open; their fds and what each turned out to be (ports the kernel chose, ...). */
  listening: [listeners: readonly OpenedListener[]];
  /** `lazy`/`accept`: waiting for a connection or datagram. */
  waiting: [];
  /** `lazy`: activity on a socket starts the service. */
  trigger: [event: { name: string; index: number }];
  spawn: [event: { pid: number; fds: number; stored: number; connection: boolean }];
  /** A notify message, already acted on. Its fds are the supervisor's business (stored or closed). */
  notify: [event: { pid: number; message: NotifyMessage }];
  /** READY=1 (Type=notify), or the spawn itself (Type=simple). */
  ready: [event: { pid: number; startupMs: number }];
  mainpid: [event: { from: number; to: number }];
  /** The watchdog expired: the service gets SIGABRT. */
  watchdog: [event: { pid: number; timeoutMs: number }];
  /** No READY=1 within TimeoutStartSec: the service gets SIGTERM. */
  'start-timeout': [event: { pid: number; timeoutMs: number }];
  exit: [exit: ServiceExit];
  restart: [event: { reason: 'exit' | 'watch'; delayMs: number; count: number }];
  /**
   * The main process is gone and processes of its process groups still run: they get `signal`
   * (SIGTERM, then SIGKILL after `timeoutStopSec`), as KillMode=control-group ends what a service
   * leaves behind. The next start waits for them.
   */
  leftovers: [event: { pid: number; groups: number[]; signal: NodeJS.Signals }];
  /** `watch`: a watched path changed; a restart follows. */
  change: [event: { path: string }];
  /** `watch`: the service exited and will not restart; waiting for a change. */
  idle: [];
  /** stdout/stderr data with `stdio: 'pipe'`. */
  output: [event: { pid: number; stream: 'stdout' | 'stderr'; data: Buffer }];
  /** Something a person should know that is not fatal (an ignored notify message, dropped fds). */
  warning: [message: string];
  stopped: [result: SupervisorResult];
}

/** A stored fd: FDSTORE=1 with FDNAME=, handed back on restart (FileDescriptorStoreMax=). */
export interface StoredFd {
  fd: number;
  name: string;
  /** Watched for POLLHUP/POLLERR, which drop it from the store (false after FDPOLL=0). */
  poll: boolean;
}

interface Instance {
  child: ChildProcess;
  pid: number;
  /** The pid whose exit ends the service: the child, or what MAINPID= named. */
  mainPid: number;
  startedAt: number;
  connection: boolean;
  ready: boolean;
  killedFor: 'stop' | 'restart' | 'watchdog' | 'timeout' | undefined;
  startTimer: NodeJS.Timeout | undefined;
  watchdogTimer: NodeJS.Timeout | undefined;
  watchdogMs: number;
  killTimer: NodeJS.Timeout | undefined;
  /** The signal that began the stop, and when (for the SIGKILL warning). */
  stopSignal: NodeJS.Signals;
  stopSentAt: number;
  /** When each timer above fires (performance.now()), for EXTEND_TIMEOUT_USEC=, which only moves them later. */
  deadlines: { start: number; watchdog: number; kill: number };
  ended: boolean;
  exited: Promise<ServiceExit>;
  /** Ends the instance with the main process's exit status. */
  end: (code: number | null, signal: NodeJS.Signals | null) => void;
  /** `subreaper`: the process started has exited, and the adopted main process is awaited. */
  awaitingMain: boolean;
  /** `subreaper`: the adopted main process's exit, when it came before the started process's. */
  mainExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
}

const CLEAN_SIGNALS = new Set(['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE']);
const CORE_SIGNALS = new Set(['SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGXCPU', 'SIGXFSZ', 'SIGSYS']);
/** systemd's DefaultStartLimitIntervalSec= and DefaultStartLimitBurst=. */
const START_LIMIT = { intervalMs: 10_000, burst: 5 };

/** systemd's DefaultTimeoutStartSec= and DefaultTimeoutStopSec= (90 s), and RestartSec='s default (100 ms). */
const DEFAULT_TIMEOUT_MS = 90_000;
const DEFAULT_RESTART_MS = 100;

/**
 * systemd's ratelimit_below(): a window opens at a start and admits `burst` starts, the first
 * included; the next start after the window has passed opens a new one. No limit when either is 0.
 */
function startAllowed(limit: { begin: number; count: number }, intervalMs: number, burst: number, now: number): boolean {
  if (!(intervalMs > 0 && burst > 0)) return true;
  if (limit.count === 0 || now - limit.begin > intervalMs) {
    limit.begin = now;
    limit.count = 1;
    return true;
  }
  limit.count++;
  return limit.count <= burst;
}

/** systemd's TriggerLimitIntervalSec= and TriggerLimitBurst= defaults for Accept=no sockets. */
const TRIGGER_LIMIT = { intervalMs: 2000, burst: 20 };

/** The table of systemd.service(5), "Exit causes and the effect of the Restart= settings". */
function shouldRestart(policy: RestartPolicy, result: ExitResult): boolean {
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
      return result === 'signal' || result === 'core-dump' || result === 'timeout' || result === 'watchdog';
    case 'on-watchdog':
      return result === 'watchdog';
    case 'on-abort':
      return result === 'signal' || result === 'core-dump';
  }
}

function classify(code: number | null, signal: NodeJS.Signals | null, killedFor: Instance['killedFor']): ExitResult {
  if (killedFor === 'watchdog') return 'watchdog';
  if (killedFor === 'timeout') return 'timeout';
  if (signal) return CLEAN_SIGNALS.has(signal) ? 'success' : CORE_SIGNALS.has(signal) ? 'core-dump' : 'signal';
  return code === 0 ? 'success' : 'exit-code';
}

function exitCodeOf(exit: ServiceExit): number {
  const status = exit.code ?? 128 + (exit.signal ? (osConstants.signals[exit.signal] ?? 0) : 0);
  if ((exit.result === 'watchdog' || exit.result === 'timeout') && status === 0) return 1;
  return status;
}

/** The pids of this process's children, from every thread's /proc children list (empty if the kernel has none). */
function childPids(): number[] {
  const pids: number[] = [];
  try {
    for (const task of readdirSync('/proc/self/task')) {
      try {
        for (const pid of readFileSync(`/proc/self/task/${task}/children`, 'utf8').split(' ')) if (pid !== '') pids.push(Number(pid));
      } catch {
        // The thread is gone.
      }
    }
  } catch {
    // No /proc: only the awaited main processes are reaped.
  }
  return pids;
}

function signalName(signal: number | null): NodeJS.Signals | null {
  if (signal === null) return null;
  for (const [name, number] of Object.entries(osConstants.signals)) if (number === signal) return name as NodeJS.Signals;
  return null;
}

/** Whether a process of group `pgid` is left (a zombie counts until it is reaped, which is soon). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends `signal` to each process group (what a service left running); a group that is gone is skipped. */
function signalGroups(pgids: Iterable<number>, signal: NodeJS.Signals): void {
  for (const pgid of pgids) {
    try {
      process.kill(-pgid, signal);
    } catch {
      // gone meanwhile
    }
  }
}

/** Whether `pid` runs. A zombie does not: nobody may reap a process that is not our child soon. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // The state follows the command name in parentheses, which may itself hold spaces or ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function checkDuration(name: string, value: number | undefined, allowZero = true): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new TypeError(`${name} must be a number of milliseconds${allowZero ? '' : ' above 0'}, got ${String(value)}`);
  }
}

function validate(options: SupervisorOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('Supervisor options must be an object');
  if (typeof options.command !== 'string' || options.command.length === 0) throw new TypeError('options.command must be a non-empty string');
  if (options.args !== undefined && (!Array.isArray(options.args) || options.args.some((a) => typeof a !== 'string'))) {
    throw new TypeError('options.args must be an array of strings');
  }
  if (options.type !== undefined && options.type !== 'simple' && options.type !== 'notify') throw new TypeError(`options.type must be 'simple' or 'notify'`);
  if (options.restart !== undefined && !RESTART_POLICIES.includes(options.restart)) {
    throw new TypeError(`options.restart must be one of ${RESTART_POLICIES.join(', ')}`);
  }
  if (options.notifyAccess !== undefined && !['none', 'main', 'exec', 'all'].includes(options.notifyAccess)) {
    throw new TypeError(`options.notifyAccess must be 'none', 'main', 'exec' or 'all'`);
  }
  checkDuration('restartSec', options.restartSec);
  checkDuration('timeoutStartSec', options.timeoutStartSec);
  checkDuration('timeoutStopSec', options.timeoutStopSec);
  checkDuration('startLimitIntervalSec', options.startLimitIntervalSec);
  checkDuration('watchdogSec', options.watchdogSec, false);
  for (const key of ['fdStoreMax', 'maxConnections', 'startLimitBurst'] as const) {
    const v = options[key];
    if (v !== undefined && (!Number.isInteger(v) || v < (key === 'maxConnections' ? 1 : 0))) throw new TypeError(`options.${key} must be a whole number`);
  }
  if (options.notifyAccess === 'none' && (options.type === 'notify' || options.watchdogSec !== undefined || (options.fdStoreMax ?? 0) > 0)) {
    throw new TypeError(`notifyAccess 'none' leaves no NOTIFY_SOCKET: type 'notify', watchdogSec and fdStoreMax need one`);
  }
  if (options.accept && options.lazy) throw new TypeError('accept and lazy do not go together: with accept every service starts on a connection');
  if (options.accept && (options.fdStoreMax ?? 0) > 0) throw new TypeError('accept and fdStoreMax do not go together (nor do Accept=yes and FileDescriptorStoreMax=)');
}

/**
 * Runs a command the way systemd runs a socket-activated service: sockets opened once, passed at
 * fd 3+ with LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID, a NOTIFY_SOCKET, restarts, a watchdog, an fd store.
 *
 * ```ts
 * const supervisor = new Supervisor({ command: 'node', args: ['server.js'], listen: ['web=tcp:127.0.0.1:0'], type: 'notify' });
 * supervisor.on('ready', ({ startupMs }) => console.log(`ready in ${startupMs} ms`));
 * const listeners = await supervisor.start();
 * // ...
 * await supervisor.stop();
 * ```
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd-socket-activate.html
 */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  private readonly options: SupervisorOptions;
  private readonly specs: ListenSpec[];
  private command = '';
  private opened: OpenedListener[] = [];
  private receiver: NotifyReceiver | undefined;
  private waiter: ReadinessWaiter | undefined;
  /** Watches the fd store for hang-ups; its own waiter, since the socket waiter may be busy. */
  private storeWaiter: ReadinessWaiter | undefined;
  private storeWatch: Promise<void> | undefined;
  /** The poll of the fd store in progress, if any. */
  private storePoll: Promise<number[]> | undefined;
  private watchers: FSWatcher[] = [];
  private readonly instances = new Set<Instance>();
  private main: Instance | undefined;
  private readonly stored: StoredFd[] = [];
  private readonly recent: Instance[] = [];
  private stopping = false;
  private stopRequested = false;
  private crashed = false;
  private started = false;
  private restarts = 0;
  private wake: (() => void) | undefined;
  private lastExit: ServiceExit | undefined;
  private failure: SystemdError | undefined;
  private warnedFdStore = false;
  /** The processes child_process started and waits for: never reaped here (it would wait for ever). */
  private readonly spawnedPids = new Set<number>();
  private readonly onChildExit = (): void => this.reapAdopted();
  private resolveDone!: (result: SupervisorResult) => void;
  /** Resolves once the supervisor has ended and closed everything. Never rejects. */
  readonly done: Promise<SupervisorResult>;

  /**
   * @throws TypeError for options that are not valid
   * @throws SystemdError `ERR_SD_LISTEN_SPEC_INVALID` for a `listen` string that cannot be parsed
   */
  constructor(options: SupervisorOptions) {
    super();
    validate(options);
    this.options = { ...options };
    this.specs = (options.listen ?? []).map((spec) => (typeof spec === 'string' ? parseListenSpec(spec) : spec));
    if (options.accept) {
      const bad = this.specs.find((s) => s.kind !== 'socket' || s.type === 'dgram');
      if (bad) throw new TypeError(`accept needs stream or seqpacket sockets (as Accept=yes does); "${bad.name}" is ${bad.text}`);
      if (this.specs.length === 0) throw new TypeError('accept needs at least one socket to accept on');
    }
    if (options.lazy && this.specs.length === 0) throw new TypeError('lazy needs at least one socket to wait on');
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** The open sockets (after {@link start}). */
  get sockets(): readonly OpenedListener[] {
    return this.opened;
  }

  /** NOTIFY_SOCKET as the service sees it, once started (undefined with notifyAccess 'none'). */
  get notifySocket(): string | undefined {
    return this.receiver?.address;
  }

  /** The pid of the main service process, if one runs (MAINPID= moves it). */
  get mainPid(): number | undefined {
    return this.main?.mainPid;
  }

  /** The fds in the fd store, in the order they are passed. */
  get fdStore(): readonly StoredFd[] {
    return this.stored;
  }

  /**
   * Finds the command, opens the sockets and the notify socket, and starts the service (or, with
   * `lazy` or `accept`, starts waiting for a connection). Resolves with the open sockets.
   *
   * @throws SystemdError `ERR_SD_COMMAND_NOT_FOUND`, `ERR_SD_LISTEN_FAILED`; nothing stays open then
   */
  async start(): Promise<readonly OpenedListener[]> {
    if (this.started) throw new Error('Supervisor.start() was already called');
    this.started = true;
    const env = this.options.env ?? process.env;
    const cwd = this.options.cwd ?? process.cwd();
    try {
      this.command = resolveCommand(this.options.command, env.PATH, cwd);
      if (this.options.subreaper) {
        native().setChildSubreaper(true);
        process.on('SIGCHLD', this.onChildExit);
      }
      this.opened = openListeners(this.specs, cwd);
      if ((this.options.notifyAccess ?? 'main') !== 'none') {
        this.receiver = new NotifyReceiver(`@sd-activate/${process.pid}/${randomBytes(6).toString('hex')}`);
        this.receiver.on('message', (message) => this.onNotify(message));
        this.receiver.on('error', (error) => this.emit('warning', `notify socket: ${error.message}`));
      }
      if (this.options.lazy || this.options.accept) this.waiter = new ReadinessWaiter();
      if ((this.options.fdStoreMax ?? 0) > 0) this.storeWaiter = new ReadinessWaiter();
      for (const path of this.options.watch ?? []) this.watchPath(path);
    } catch (error) {
      this.cleanup();
      void this.waiter?.close();
      void this.storeWaiter?.close();
      this.resolveDone({ exitCode: 1, lastExit: undefined, error: error instanceof SystemdError ? error : undefined });
      throw error;
    }
    this.emit('listening', this.opened);
    const loop = this.options.accept ? this.acceptLoop() : this.mainLoop();
    loop.then(
      () => void this.finish(),
      (error: unknown) => {
        this.emit('warning', `supervisor failed: ${(error as Error).message}`);
        this.crashed = true;
        if (error instanceof SystemdError) this.failure ??= error;
        void this.finish();
      },
    );
    return this.opened;
  }

  /**
   * Stops: SIGTERM to every service process (SIGKILL after `timeoutStopSec`), then closes the
   * sockets, the notify socket and the fd store. Resolves with how it ended; safe to call twice.
   */
  stop(): Promise<SupervisorResult> {
    if (!this.started) {
      this.started = true;
      this.stopping = true;
      this.resolveDone({ exitCode: 0, lastExit: undefined, error: undefined });
      return this.done;
    }
    if (!this.stopping) {
      this.stopping = true;
      this.stopRequested = true;
      this.wakeUp();
      this.waiter?.cancel();
      for (const instance of this.instances) this.terminate(instance, 'stop', 'SIGTERM');
    }
    return this.done;
  }

  /** Sends `signal` to every service process now (`systemctl kill`), e.g. SIGKILL after a second Ctrl-C. */
  kill(signal: NodeJS.Signals): void {
    for (const instance of this.instances) {
      if (!instance.ended) {
        this.signal(instance, signal);
        continue;
      }
      // Its main process is gone and it waits for what it left running (killLeftovers()): that too.
      signalGroups(new Set([instance.pid, instance.mainPid]), signal);
    }
  }

  /** Restarts the service now (what a watched change does); the sockets stay open. */
  restart(): void {
    if (this.stopping || !this.started) return;
    if (this.main) this.terminate(this.main, 'restart', 'SIGTERM');
    else this.wakeUp();
  }

  // --- the main service (Accept=no) ---

  private async mainLoop(): Promise<void> {
    const triggers: number[] = [];
    const starts = { begin: 0, count: 0 };
    const intervalMs = this.options.startLimitIntervalSec ?? START_LIMIT.intervalMs;
    const burst = this.options.startLimitBurst ?? START_LIMIT.burst;
    let watchedChange = false;
    for (;;) {
      if (this.stopping) return;
      if (this.options.lazy) {
        const triggered = await this.waitForTrigger();
        if (!triggered) continue;
        const now = performance.now();
        triggers.push(now);
        while (triggers.length > 0 && triggers[0]! < now - TRIGGER_LIMIT.intervalMs) triggers.shift();
        if (triggers.length > TRIGGER_LIMIT.burst) {
          // A service that exits without taking the connection would otherwise be started in a tight loop.
          this.failure = new SystemdError(
            'ERR_SD_SERVICE_EXITED',
            `the sockets were triggered ${triggers.length} times within ${TRIGGER_LIMIT.intervalMs / 1000}s and the service did not take the connections; giving up (TriggerLimitBurst=)`,
          );
          return;
        }
      }
      if (!watchedChange && !startAllowed(starts, intervalMs, burst, performance.now())) {
        this.failure = new SystemdError(
          'ERR_SD_START_LIMIT_HIT',
          `${basename(this.command)} was started ${burst} times within ${intervalMs / 1000}s and is not started again ` +
            `(StartLimitBurst=, StartLimitIntervalSec=; in sd-activate run: --start-limit-burst, --start-limit-interval)`,
        );
        return;
      }
      watchedChange = false;
      const instance = this.spawn(
        [...this.opened.map((l) => l.fd), ...this.stored.map((s) => s.fd)],
        [...this.opened.map((l) => l.spec.name), ...this.stored.map((s) => s.name)],
        false,
      );
      this.main = instance;
      const exit = await instance.exited;
      this.main = undefined;
      if (this.stopping) return;
      if (exit.restarting) {
        watchedChange = instance.killedFor === 'restart';
        if (watchedChange) continue;
        await this.sleep(this.options.restartSec ?? DEFAULT_RESTART_MS);
        continue;
      }
      if (this.options.lazy) continue; // back to listening, as the .socket unit does
      if (this.options.watch?.length) {
        this.emit('idle');
        await this.sleep(Infinity);
        continue;
      }
      return;
    }
  }

  /** `lazy`: true once a socket is readable, false when woken for another reason. */
  private async waitForTrigger(): Promise<boolean> {
    this.emit('waiting');
    const ready = await this.waiter!.wait(this.opened.map((l) => l.fd));
    if (ready.length === 0 || this.stopping) return false;
    const index = this.opened.findIndex((l) => l.fd === ready[0]);
    this.emit('trigger', { name: this.opened[index]!.spec.name, index });
    return true;
  }

  // --- Accept=yes ---

  private async acceptLoop(): Promise<void> {
    const max = this.options.maxConnections ?? 64;
    const fds = this.opened.map((l) => l.fd);
    let announced = false;
    for (;;) {
      if (this.stopping) return;
      if (this.instances.size >= max) {
        // Connections past MaxConnections= wait in the backlog until an instance ends.
        await this.sleep(Infinity);
        continue;
      }
      if (!announced) this.emit('waiting');
      announced = true;
      const ready = await this.waiter!.wait(fds);
      for (const fd of ready) {
        if (this.stopping) return;
        let connection: number;
        try {
          connection = acceptConnection(fd);
        } catch (error) {
          this.emit('warning', `accept on fd ${fd}: ${(error as Error).message}`);
          continue;
        }
        try {
          const instance = this.spawn([connection], ['connection'], true);
          void instance.exited.then(() => this.wakeUp());
        } finally {
          // The service has its own copy at fd 3 now.
          native().close(connection);
        }
      }
    }
  }

  // --- service processes ---

  private spawn(fds: number[], names: string[], connection: boolean): Instance {
    const watchdogMs = this.options.watchdogSec;
    const child = spawnService({
      command: this.command,
      args: this.options.args ?? [],
      fds,
      names,
      env: this.options.env ?? process.env,
      cwd: this.options.cwd,
      stdio: this.options.stdio ?? 'inherit',
      notifySocket: this.receiver?.address,
      watchdogUsec: watchdogMs === undefined ? undefined : Math.round(watchdogMs * 1000),
    });
    const startedAt = performance.now();
    const pid = child.pid ?? 0;
    let resolveExit!: (exit: ServiceExit) => void;
    const instance: Instance = {
      child,
      pid,
      mainPid: pid,
      startedAt,
      connection,
      ready: false,
      killedFor: undefined,
      startTimer: undefined,
      watchdogTimer: undefined,
      watchdogMs: watchdogMs ?? 0,
      killTimer: undefined,
      stopSignal: 'SIGTERM',
      stopSentAt: 0,
      deadlines: { start: Infinity, watchdog: Infinity, kill: Infinity },
      ended: false,
      exited: new Promise((resolve) => (resolveExit = resolve)),
      end: () => undefined,
      awaitingMain: false,
      mainExit: undefined,
    };
    this.instances.add(instance);
    if (pid !== 0) this.spawnedPids.add(pid);
    for (const stream of ['stdout', 'stderr'] as const) {
      child[stream]?.on('data', (data: Buffer) => this.emit('output', { pid, stream, data }));
    }
    const end = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (instance.ended) return;
      instance.ended = true;
      this.clearTimers(instance);
      // Kept a little longer: its last messages may still be in the notify socket's queue.
      this.recent.push(instance);
      if (this.recent.length > 16) this.recent.shift();
      const uptimeMs = Math.round(performance.now() - startedAt);
      // The service has ended once what it left running has too (stop() waits for it as well).
      void this.killLeftovers(instance).then((killed) => {
        this.instances.delete(instance);
        // As systemd: leftovers that had to be killed fail the service (Result=timeout).
        const result = killed ? 'timeout' : classify(code, signal, instance.killedFor);
        const restarting =
          !this.stopping && !connection && (instance.killedFor === 'restart' || shouldRestart(this.options.restart ?? 'no', result));
        const restartDelayMs = !restarting ? undefined : instance.killedFor === 'restart' ? 0 : (this.options.restartSec ?? DEFAULT_RESTART_MS);
        const exit: ServiceExit = { pid: instance.mainPid, code, signal, result, uptimeMs, restarting, restartDelayMs, connection };
        if (!connection) this.lastExit = exit;
        this.emit('exit', exit);
        if (restarting) {
          this.restarts++;
          this.emit('restart', { reason: instance.killedFor === 'restart' ? 'watch' : 'exit', delayMs: restartDelayMs ?? 0, count: this.restarts });
        }
        resolveExit(exit);
      });
    };
    instance.end = end;
    child.on('exit', (code, signal) => {
      this.spawnedPids.delete(pid);
      // Deferred to the check phase: a notify message sent just before the exit (an FDSTORE=1, a
      // STOPPING=1) is then handled first, as systemd reads its notify socket before SIGCHLD.
      setImmediate(() => {
        if (instance.mainPid === pid) end(code, signal);
        else if (instance.mainExit) end(instance.mainExit.code, instance.mainExit.signal);
        else if (this.options.subreaper && this.adopt(instance)) return;
        else if (isAlive(instance.mainPid)) this.followMainPid(instance, end);
        else end(code, signal);
      });
    });
    child.on('error', (error) => {
      this.emit('warning', `cannot start ${this.options.command}: ${error.message}`);
      end(127, null);
    });
    if (pid === 0) return instance; // 'error' follows
    this.emit('spawn', { pid, fds: fds.length, stored: connection ? 0 : this.stored.length, connection });
    if ((this.options.type ?? 'simple') === 'notify') {
      this.armStartTimeout(instance, this.options.timeoutStartSec ?? DEFAULT_TIMEOUT_MS);
    } else {
      this.becomeReady(instance);
    }
    return instance;
  }

  /**
   * `subreaper`: whether the main process MAINPID= named is a child now (a descendant of the
   * process started, which has exited). It is reaped on SIGCHLD, with its own exit status.
   */
  private adopt(instance: Instance): boolean {
    let status: ReturnType<NativeBinding['reapChild']>;
    try {
      status = native().reapChild(instance.mainPid);
    } catch {
      return false; // ECHILD: not a child, nor a descendant of one
    }
    if (status) instance.end(status.code, signalName(status.signal));
    else instance.awaitingMain = true;
    return true;
  }

  /**
   * SIGCHLD with `subreaper`: reaps every adopted child that has exited (never one that
   * child_process waits for), as systemd reaps what a service leaves behind; an adopted main
   * process's exit ends its service.
   */
  private reapAdopted(): void {
    const candidates = new Set(childPids());
    for (const instance of this.instances) if (instance.mainPid !== instance.pid) candidates.add(instance.mainPid);
    for (const pid of candidates) {
      if (this.spawnedPids.has(pid)) continue;
      let status: ReturnType<NativeBinding['reapChild']>;
      try {
        status = native().reapChild(pid);
      } catch {
        continue; // not (or no longer) a child
      }
      if (!status) continue;
      const instance = [...this.instances].find((i) => i.mainPid === pid && i.pid !== pid);
      if (!instance) continue;
      const signal = signalName(status.signal);
      if (instance.awaitingMain) instance.end(status.code, signal);
      else instance.mainExit = { code: status.code, signal };
    }
  }

  /**
   * MAINPID= named a process that is not our child: its exit cannot be waited for, only seen.
   * systemd, a subreaper, learns its exit status too; here it is unknown and taken as success.
   */
  private followMainPid(instance: Instance, end: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    const timer = setInterval(() => {
      if (isAlive(instance.mainPid)) return;
      clearInterval(timer);
      this.emit('warning', `main pid ${instance.mainPid} is gone; its exit status is unknown (not a child of sd-activate)`);
      end(0, null);
    }, 50);
  }

  /**
   * KillMode=control-group, as far as process groups reach (there are no cgroups here): once the
   * main process is gone, what still runs in the process group of the process started (and of a
   * main process MAINPID= moved to, when it leads one) gets SIGTERM, then SIGKILL after
   * `timeoutStopSec`. Resolves once they are gone: true when SIGKILL was needed. A process that
   * left its group (setsid) escapes.
   */
  private async killLeftovers(instance: Instance): Promise<boolean> {
    const groups = [...new Set([instance.pid, instance.mainPid])].filter((pgid) => pgid > 0 && groupAlive(pgid));
    if (groups.length === 0) return false;
    const send = (signal: NodeJS.Signals): void => {
      this.emit('leftovers', { pid: instance.mainPid, groups, signal });
      signalGroups(groups, signal);
    };
    const gone = async (ms: number): Promise<boolean> => {
      const deadline = performance.now() + ms;
      for (;;) {
        if (!groups.some(groupAlive)) return true;
        if (performance.now() >= deadline) return false;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    send('SIGTERM');
    if (await gone(this.options.timeoutStopSec ?? DEFAULT_TIMEOUT_MS)) return false;
    send('SIGKILL');
    await gone(5000);
    return true;
  }

  /**
   * EXTEND_TIMEOUT_USEC=, as systemd's service_extend_timeout(): the start timeout, the stop
   * timeout (after SIGTERM) and the watchdog that are running move to `ms` from now, and only
   * later, never earlier.
   */
  private extendTimeouts(instance: Instance, ms: number): void {
    const until = performance.now() + ms;
    if (instance.startTimer && until > instance.deadlines.start) this.armStartTimeout(instance, ms);
    if (instance.killTimer && until > instance.deadlines.kill) this.armKillTimer(instance, ms);
    if (instance.watchdogTimer && until > instance.deadlines.watchdog) this.armWatchdog(instance, ms);
  }

  private armStartTimeout(instance: Instance, ms: number): void {
    if (instance.startTimer) clearTimeout(instance.startTimer);
    instance.startTimer = undefined;
    instance.deadlines.start = Infinity;
    if (ms === 0 || !Number.isFinite(ms)) return;
    instance.deadlines.start = performance.now() + ms;
    instance.startTimer = setTimeout(() => {
      instance.startTimer = undefined;
      if (instance.ready || instance.killedFor) return;
      this.emit('start-timeout', { pid: instance.mainPid, timeoutMs: ms });
      this.terminate(instance, 'timeout', 'SIGTERM');
    }, ms);
  }

  private becomeReady(instance: Instance): void {
    if (instance.ready || instance.ended) return;
    instance.ready = true;
    if (instance.startTimer) clearTimeout(instance.startTimer);
    instance.startTimer = undefined;
    this.emit('ready', { pid: instance.mainPid, startupMs: Math.round((performance.now() - instance.startedAt) * 10) / 10 });
    // As systemd, the watchdog runs from the end of start-up (READY=1 for Type=notify).
    this.armWatchdog(instance);
  }

  /** The watchdog fires in `ms` (WatchdogSec=, or what EXTEND_TIMEOUT_USEC= made of it) unless pinged. */
  private armWatchdog(instance: Instance, ms = instance.watchdogMs): void {
    if (instance.watchdogTimer) clearTimeout(instance.watchdogTimer);
    instance.watchdogTimer = undefined;
    if (!instance.watchdogMs || instance.killedFor || instance.ended) return;
    instance.deadlines.watchdog = performance.now() + ms;
    instance.watchdogTimer = setTimeout(() => this.watchdogExpired(instance), ms);
  }

  private watchdogExpired(instance: Instance): void {
    instance.watchdogTimer = undefined;
    if (instance.killedFor || instance.ended) return;
    this.emit('watchdog', { pid: instance.mainPid, timeoutMs: instance.watchdogMs });
    // WatchdogSignal= defaults to SIGABRT, so the service can leave a core dump to look at.
    this.terminate(instance, 'watchdog', 'SIGABRT');
  }

  private terminate(instance: Instance, reason: NonNullable<Instance['killedFor']>, signal: NodeJS.Signals): void {
    if (instance.ended) return;
    instance.killedFor ??= reason;
    if (instance.watchdogTimer) clearTimeout(instance.watchdogTimer);
    if (instance.startTimer) clearTimeout(instance.startTimer);
    instance.watchdogTimer = instance.startTimer = undefined;
    this.signal(instance, signal);
    if (!instance.killTimer) {
      instance.stopSignal = signal;
      instance.stopSentAt = performance.now();
      this.armKillTimer(instance, this.options.timeoutStopSec ?? DEFAULT_TIMEOUT_MS);
    }
  }

  /** SIGKILL in `ms`, unless the instance has ended by then (TimeoutStopSec=, or what EXTEND_TIMEOUT_USEC= made of it). */
  private armKillTimer(instance: Instance, ms: number): void {
    if (instance.killTimer) clearTimeout(instance.killTimer);
    instance.deadlines.kill = performance.now() + ms;
    instance.killTimer = setTimeout(() => {
      const waited = Math.round(instance.deadlines.kill - instance.stopSentAt) / 1000;
      this.emit('warning', `pid ${instance.mainPid} did not stop within ${waited}s of ${instance.stopSignal}: sending SIGKILL`);
      this.signal(instance, 'SIGKILL');
    }, ms);
  }

  private signal(instance: Instance, signal: NodeJS.Signals): void {
    // The group of a process that has ended is left to killLeftovers(), which waits for it.
    if (instance.child.exitCode === null && instance.child.signalCode === null) signalGroup(instance.child, signal);
    if (instance.mainPid !== instance.pid) {
      try {
        process.kill(instance.mainPid, signal);
      } catch {
        // gone already
      }
    }
  }

  private clearTimers(instance: Instance): void {
    for (const timer of [instance.startTimer, instance.watchdogTimer, instance.killTimer]) if (timer) clearTimeout(timer);
    instance.startTimer = instance.watchdogTimer = instance.killTimer = undefined;
  }

  // --- notify ---

  private instanceOf(pid: number): Instance | undefined {
    for (const instance of this.instances) if (instance.mainPid === pid) return instance;
    for (const instance of this.recent) if (instance.mainPid === pid) return instance;
    if (this.options.notifyAccess === 'all' && !this.options.accept) return this.main;
    return undefined;
  }

  private onNotify(message: NotifyMessage): void {
    const fds = [...message.fds];
    const closeRest = (): void => {
      for (const fd of fds) {
        try {
          native().close(fd);
        } catch {
          // already closed
        }
      }
    };
    // A barrier is answered before the sender's unit is looked for, whoever sent it: its fds are
    // closed and nothing else in the message is used (manager_process_barrier_fd() in systemd's
    // manager.c). An old process of an upgrade waits on one after MAINPID= moved away from it.
    const tags = message.text.split('\n');
    if (tags.at(-1) === '') tags.pop();
    if (tags.includes('BARRIER=1')) {
      if (tags.length !== 1) this.emit('warning', `extra notification messages sent with BARRIER=1, ignoring everything: ${JSON.stringify(message.text)}`);
      else if (fds.length !== 1) this.emit('warning', `got ${fds.length} fds with BARRIER=1 (it takes one), closing them`);
      closeRest();
      return;
    }
    const instance = this.instanceOf(message.pid);
    if (!instance) {
      this.emit('warning', `ignored a notify message from pid ${message.pid}, not the service's main process (NotifyAccess=${this.options.notifyAccess ?? 'main'}): ${JSON.stringify(message.text)}`);
      closeRest();
      return;
    }
    const fields = message.fields;
    if (fields.get('FDSTORE') === '1' && fds.length > 0) this.storeFds(fds.splice(0), fields.get('FDNAME'), fields.get('FDPOLL') !== '0');
    if (fields.get('FDSTOREREMOVE') === '1') this.removeStored(fields.get('FDNAME'));
    // Every other fd (BARRIER=1's pipe among them) is closed, as systemd closes what it does not keep.
    closeRest();
    this.emit('notify', { pid: message.pid, message });
    const mainpid = fields.get('MAINPID');
    if (mainpid !== undefined) {
      const to = Number(mainpid);
      if (/^[1-9]\d*$/.test(mainpid) && to !== instance.mainPid) {
        const from = instance.mainPid;
        instance.mainPid = to;
        this.emit('mainpid', { from, to });
      } else if (!/^[1-9]\d*$/.test(mainpid)) {
        this.emit('warning', `ignored MAINPID=${mainpid}: not a pid`);
      }
    }
    const extend = fields.get('EXTEND_TIMEOUT_USEC');
    if (extend !== undefined && /^\d+$/.test(extend)) this.extendTimeouts(instance, Number(extend) / 1000);
    const watchdogUsec = fields.get('WATCHDOG_USEC');
    if (watchdogUsec !== undefined && /^[1-9]\d*$/.test(watchdogUsec)) {
      instance.watchdogMs = Number(watchdogUsec) / 1000;
      if (instance.ready) this.armWatchdog(instance);
    }
    if (fields.get('READY') === '1') this.becomeReady(instance);
    const watchdog = fields.get('WATCHDOG');
    if (watchdog === '1' && instance.ready) this.armWatchdog(instance);
    if (watchdog === 'trigger') this.watchdogExpired(instance);
  }

  private storeFds(fds: number[], name = 'stored', poll = true): void {
    const max = this.options.fdStoreMax ?? 0;
    const room = Math.max(0, max - this.stored.length);
    for (const fd of fds.slice(0, room)) this.stored.push({ fd, name, poll });
    if (room > 0) this.watchStore();
    const dropped = fds.slice(room);
    for (const fd of dropped) native().close(fd);
    if (dropped.length > 0 && (max > 0 || !this.warnedFdStore)) {
      this.warnedFdStore = true;
      this.emit(
        'warning',
        max === 0
          ? `dropped ${dropped.length} fd(s) sent with FDSTORE=1: the fd store is off (use --fd-store N, FileDescriptorStoreMax=)`
          : `dropped ${dropped.length} fd(s) sent with FDSTORE=1: the fd store is full (${max})`,
      );
    }
  }

  private removeStored(name: string | undefined): void {
    if (name === undefined) {
      this.emit('warning', 'ignored FDSTOREREMOVE=1 without FDNAME=');
      return;
    }
    this.dropStored((entry) => entry.name === name);
  }

  /**
   * Removes entries from the store and closes them, once the hang-up watch no longer polls them:
   * an fd closed under a poll(2) could be reused for something else before the poll returns.
   */
  private dropStored(which: (entry: StoredFd) => boolean): void {
    const dropped: StoredFd[] = [];
    for (let i = this.stored.length - 1; i >= 0; i--) if (which(this.stored[i]!)) dropped.push(...this.stored.splice(i, 1));
    if (dropped.length === 0) return;
    const close = (): void => {
      for (const { fd } of dropped) {
        try {
          native().close(fd);
        } catch {
          // already closed
        }
      }
    };
    if (this.storePoll) {
      this.storeWaiter!.cancel();
      void this.storePoll.then(close, close);
    } else {
      close();
    }
  }

  /**
   * As systemd, watches the stored fds for POLLHUP/POLLERR (unless stored with FDPOLL=0) and drops
   * those that report one: a stored connection whose peer went away is no use to the next process.
   */
  private watchStore(): void {
    if (!this.storeWaiter || this.stopping) return;
    if (this.storeWatch) {
      // Already watching: poll again with the new set.
      this.storeWaiter.cancel();
      return;
    }
    this.storeWatch = (async () => {
      for (;;) {
        const watched = this.stored.filter((s) => s.poll).map((s) => s.fd);
        if (this.stopping || watched.length === 0) return;
        this.storePoll = this.storeWaiter!.wait(watched, { hangupOnly: true });
        let hung: number[];
        try {
          hung = await this.storePoll;
        } finally {
          this.storePoll = undefined;
        }
        if (this.stopping) return;
        for (const fd of hung) {
          const entry = this.stored.find((s) => s.fd === fd);
          if (!entry) continue;
          this.stored.splice(this.stored.indexOf(entry), 1);
          native().close(fd);
          this.emit('warning', `fd store: dropped "${entry.name}", which hung up (store it with FDPOLL=0 to keep such an fd)`);
        }
      }
    })().finally(() => {
      this.storeWatch = undefined;
      // An fd stored while the loop was ending would otherwise go unwatched.
      if (!this.stopping && this.stored.some((s) => s.poll)) this.watchStore();
    });
  }

  // --- --watch ---

  private watchPath(path: string): void {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch (error) {
      throw new TypeError(`cannot watch ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (error as Error).message}`);
    }
    let timer: NodeJS.Timeout | undefined;
    const onChange = (file: string | null): void => {
      if (this.stopping) return;
      // Editors write a file in several steps: one restart for a burst of changes.
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        if (this.stopping) return;
        this.emit('change', { path: isDirectory && file ? join(path, file) : path });
        this.restart();
      }, 100);
    };
    const watcher = watch(path, { recursive: isDirectory }, (_event, file) => onChange(file));
    watcher.on('error', (error) => this.emit('warning', `watching ${path}: ${error.message}`));
    this.watchers.push(watcher);
  }

  // --- helpers ---

  /** Waits `ms` (Infinity: until woken), or less when woken by stop(), restart() or an instance's end. */
  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        if (timer) clearTimeout(timer);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      this.wake = done;
    });
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async finish(): Promise<void> {
    this.stopping = true;
    this.waiter?.cancel();
    for (const instance of this.instances) this.terminate(instance, 'stop', 'SIGTERM');
    await Promise.all([...this.instances].map((i) => i.exited));
    await this.waiter?.close();
    // The store's poll must be over before its fds are closed.
    await this.storeWaiter?.close();
    await this.storeWatch;
    this.cleanup();
    const last = this.lastExit;
    // Stopped on request (Ctrl-C, stop()): a success, as `systemctl stop` is. Otherwise the service's own status.
    const exitCode = this.failure || this.crashed ? 1 : this.stopRequested || !last ? 0 : exitCodeOf(last);
    const result: SupervisorResult = { exitCode, lastExit: last, error: this.failure };
    this.emit('stopped', result);
    this.resolveDone(result);
  }

  private cleanup(): void {
    if (this.options.subreaper) {
      process.off('SIGCHLD', this.onChildExit);
      try {
        // Whatever is left is adopted by init from now on.
        native().setChildSubreaper(false);
        this.reapAdopted();
      } catch {
        // The addon did not load: start() failed on it, and nothing was set.
      }
    }
    for (const watcher of this.watchers.splice(0)) watcher.close();
    this.receiver?.close();
    for (const { fd } of this.stored.splice(0)) {
      try {
        native().close(fd);
      } catch {
        // already closed
      }
    }
    for (const listener of this.opened) closeListener(listener);
  }
}
