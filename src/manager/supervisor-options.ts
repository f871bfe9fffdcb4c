/*
 * What a Supervisor is told, what it reports, and the one place where its options are checked:
 * the CLI maps the option names in the messages to its flags (validate's `name`).
 */
import { quote, show } from '../core/quote.js';
import type { SystemdError } from '../core/errors.js';
import type { NotifyMessage } from '../shared/notify-receiver.js';
import type { ListenSpec } from './listen-spec.js';
import type { OpenedListener } from './listeners.js';
import { sdBootedRefusal } from './namespace.js';
import { RESTART_POLICIES, type RestartPolicy, type ServiceExit } from './policy.js';

export type { ServiceExit } from './policy.js';

/** NotifyAccess=: whose notify messages count. */
export type NotifyAccess = 'none' | 'main' | 'exec' | 'all';

/** Options of a Supervisor. Durations are in milliseconds. */
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
  restartMs?: number;
  /**
   * StartLimitIntervalSec= (default 10000; 0 for no limit) and StartLimitBurst= (default 5; 0 for
   * no limit): at most that many starts, the first included, in a window that opens at a start.
   * The start after them does not happen, and the supervisor fails with `ERR_SD_START_LIMIT_HIT`
   * (Result=start-limit-hit). Restarts for a watched change do not count.
   */
  startLimitIntervalMs?: number;
  startLimitBurst?: number;
  /** TimeoutStartSec=: how long a Type=notify service may take to send READY=1 (default 90000; 0 waits for ever). */
  timeoutStartMs?: number;
  /** TimeoutStopSec=: how long after SIGTERM before SIGKILL (default 90000). */
  timeoutStopMs?: number;
  /** WatchdogSec=: sets WATCHDOG_USEC; without WATCHDOG=1 for this long the service gets SIGABRT (default: off). */
  watchdogMs?: number;
  /** FileDescriptorStoreMax= (default 0: FDSTORE=1 fds are dropped, as systemd drops them). */
  fdStoreMax?: number;
  /**
   * NotifyAccess=: whose notify messages count, and whether there is a NOTIFY_SOCKET at all.
   * 'none' sets none; 'main' hears the main process only; 'exec' the same here (systemd adds the
   * processes of ExecStartPre= and the like, which a supervisor does not run); 'all' any process
   * of the service (started by it, or in its process groups). The default is systemd's: 'main'
   * for type 'notify', with a watchdog or with an fd store, which need the socket; 'none'
   * otherwise. 'none' with any of those three is an error here (systemd silently makes it 'main').
   * Only processes of this process's user (or root) are heard, whatever the setting.
   */
  notifyAccess?: NotifyAccess;
  /** Accept=yes: one service per connection, the connection at fd 3 named "connection". */
  accept?: boolean;
  /**
   * MaxConnections= with `accept` (default 64): a connection beyond it is accepted and closed at
   * once, with a warning, as systemd does.
   */
  maxConnections?: number;
  /**
   * StandardInput=: 'null' (the default) puts /dev/null at fd 0; 'socket' puts the connection
   * (with `accept`), or the one socket (without), at fd 0 and fd 1 instead of fd 3, with no
   * LISTEN_* variables: the inetd way (`systemd-socket-activate --inetd`). stderr stays as `stdio`
   * says (under systemd it follows StandardError=, by default the socket too).
   */
  standardInput?: 'null' | 'socket';
  /**
   * RemoveOnStop=: true removes the socket files, FIFOs and message queues the sockets name when
   * the supervisor ends, as systemd's RemoveOnStop=yes; false leaves them, as systemd's default.
   * Unset (the default here), what this supervisor created itself is removed, and a FIFO or a
   * queue that was there before is left.
   */
  removeOnStop?: boolean;
  /**
   * Runs the service in a mount namespace of its own with a tmpfs over /run/systemd that holds
   * system/, so that sd_booted() is true in it where PID 1 is not systemd (containers, CI): some
   * daemons ignore LISTEN_FDS otherwise. Root only (refused with a TypeError otherwise); nothing is
   * done where sd_booted() is true already. Needs unshare(1) and mount(8).
   */
  sdBooted?: boolean;
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

/** How a supervisor ended. */
export interface SupervisorResult {
  /** What `sd-activate run` exits with: the service's exit status, 128+signal, or 1 for a timeout or watchdog. */
  exitCode: number;
  /** The last main service's exit, if one ran. */
  lastExit: ServiceExit | undefined;
  /** Set when the supervisor stopped for a failure of its own (e.g. the trigger limit). */
  error: SystemdError | undefined;
}

/** Events of a Supervisor. */
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
   * (SIGTERM, then SIGKILL after `timeoutStopMs`), as KillMode=control-group ends what a service
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
  warning: [error: Error];
  stopped: [result: SupervisorResult];
}

/** A stored fd: FDSTORE=1 with FDNAME=, handed back on restart (FileDescriptorStoreMax=). */
export interface StoredFd {
  fd: number;
  name: string;
  /** Watched for POLLHUP/POLLERR, which drop it from the store (false after FDPOLL=0). */
  poll: boolean;
}

/**
 * NotifyAccess= as it applies: what was asked, or systemd's default (service_add_extras()): 'main'
 * when the service needs the socket (Type=notify, WatchdogSec=, FileDescriptorStoreMax=), else 'none'.
 */
export function notifyAccessOf(options: SupervisorOptions): NotifyAccess {
  if (options.notifyAccess !== undefined) return options.notifyAccess;
  return options.type === 'notify' || options.watchdogMs !== undefined || (options.fdStoreMax ?? 0) > 0 ? 'main' : 'none';
}

/** How options are named in a message: `options.accept` and milliseconds for the library, `--accept` and time spans for the CLI. */
export interface OptionNames {
  name(option: keyof SupervisorOptions): string;
  /** What a duration is: 'a number of milliseconds', 'a time span'. */
  duration: string;
}

const BY_KEY: OptionNames = { name: (option) => `options.${option}`, duration: 'a number of milliseconds' };

const DURATIONS = ['restartMs', 'timeoutStartMs', 'timeoutStopMs', 'startLimitIntervalMs', 'watchdogMs'] as const;
const COUNTS = ['fdStoreMax', 'maxConnections', 'startLimitBurst'] as const;

/**
 * Checks a Supervisor's options and their parsed specs together: the one home of these rules.
 *
 * @throws TypeError naming the option as `name` does
 */
export function validate(options: SupervisorOptions, specs: readonly ListenSpec[], names: OptionNames = BY_KEY): void {
  const { name } = names;
  if (typeof options !== 'object' || options === null) throw new TypeError('Supervisor options must be an object');
  if (typeof options.command !== 'string' || options.command.length === 0) throw new TypeError(`${name('command')} must be a non-empty string`);
  if (options.args !== undefined && (!Array.isArray(options.args) || options.args.some((a) => typeof a !== 'string'))) {
    throw new TypeError(`${name('args')} must be an array of strings`);
  }
  if (options.type !== undefined && options.type !== 'simple' && options.type !== 'notify') throw new TypeError(`${name('type')} takes simple or notify`);
  if (options.restart !== undefined && !RESTART_POLICIES.includes(options.restart)) throw new TypeError(`${name('restart')} takes ${RESTART_POLICIES.join(', ')}`);
  if (options.notifyAccess !== undefined && !['none', 'main', 'exec', 'all'].includes(options.notifyAccess)) {
    throw new TypeError(`${name('notifyAccess')} takes main, exec, all or none`);
  }
  for (const key of DURATIONS) {
    const value = options[key];
    const aboveZero = key === 'watchdogMs';
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (aboveZero && value === 0))) {
      throw new TypeError(`${name(key)} must be ${names.duration}${aboveZero ? ' above 0' : ''}, got ${show(value)}`);
    }
  }
  for (const key of COUNTS) {
    const value = options[key];
    const least = key === 'maxConnections' ? 1 : 0;
    if (value !== undefined && (!Number.isInteger(value) || value < least)) throw new TypeError(`${name(key)} must be a whole number${least ? ` from ${least}` : ''}`);
  }
  if (options.standardInput !== undefined && options.standardInput !== 'null' && options.standardInput !== 'socket') {
    throw new TypeError(`${name('standardInput')} takes null or socket`);
  }
  for (const key of ['removeOnStop', 'sdBooted', 'accept', 'lazy'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') throw new TypeError(`${name(key)} must be a boolean`);
  }
  if (options.standardInput === 'socket' && !options.accept && specs.length !== 1) {
    throw new TypeError(`${name('standardInput')} socket takes ${name('accept')}, or exactly one socket (as StandardInput=socket does): there ${specs.length === 0 ? 'is none' : `are ${specs.length}`}`);
  }
  if (options.standardInput === 'socket' && (options.fdStoreMax ?? 0) > 0) throw new TypeError(`${name('standardInput')} socket passes no fds at 3+, so there is no fd store to pass either: drop ${name('fdStoreMax')}`);
  if (options.sdBooted) {
    const refusal = sdBootedRefusal();
    if (refusal) throw new TypeError(`${name('sdBooted')} ${refusal}`);
  }
  if (options.notifyAccess === 'none' && (options.type === 'notify' || options.watchdogMs !== undefined || (options.fdStoreMax ?? 0) > 0)) {
    throw new TypeError(`${name('notifyAccess')} none leaves no NOTIFY_SOCKET: ${name('type')} notify, ${name('watchdogMs')} and ${name('fdStoreMax')} need one`);
  }
  if (options.accept && options.lazy) throw new TypeError(`${name('accept')} and ${name('lazy')} do not go together: with ${name('accept')} every service starts on a connection`);
  if (options.accept && (options.fdStoreMax ?? 0) > 0) throw new TypeError(`${name('accept')} and ${name('fdStoreMax')} do not go together (nor do Accept=yes and FileDescriptorStoreMax=)`);
  if (options.accept) {
    if (specs.length === 0) throw new TypeError(`${name('accept')} needs a socket to accept on: add ${name('listen')}`);
    const bad = specs.find((s) => s.kind !== 'socket' || s.type === 'dgram');
    if (bad) throw new TypeError(`${name('accept')} takes stream and seqpacket sockets only (as Accept=yes does); ${quote(bad.text)} is not one`);
  }
  if (options.lazy && specs.length === 0) throw new TypeError(`${name('lazy')} needs a socket to wait on: add ${name('listen')}`);
}
