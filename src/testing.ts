/*
 * `sd-activate/testing`: the engine of `sd-activate run` for test suites (mocha, jest, node:test).
 * A test starts its service with named sockets, connects to the addresses it gets back (the
 * sockets listen before the service even runs, so there is nothing to poll for), awaits READY=1,
 * reads notify messages as they come, and stops it. Whatever a failing test leaves running is
 * killed when the process exits.
 */
import { parseListenSpec, type ListenSpec } from './manager/listen-spec.js';
import { SystemdError } from './core/errors.js';
import type { NotifyMessage } from './shared/notify-receiver.js';
import { addressOf, type ServiceAddress } from './manager/listeners.js';
import { Supervisor, type NotifyAccess, type RestartPolicy, type ServiceExit, type SupervisorResult } from './manager/supervisor.js';
import { clip, list, quote } from './core/quote.js';

/** The receiving end of sd_notify(3), for tests and tools that play the service manager. */
export {
  NOTIFY_BUFFER_MAX,
  NotifyMessage,
  NotifyReceiver,
  type DroppedNotifyMessage,
  type NotifyReceiverEvents,
  type NotifyReceiverOptions,
} from './shared/notify-receiver.js';

export type { ServiceAddress } from './manager/listeners.js';
/** How each start of a service ended, and how the whole run did (Result=, the exit status). */
export type { ExitResult, NotifyAccess, RestartPolicy, ServiceExit, SupervisorResult } from './manager/supervisor.js';

/** A function to run in a child process: it gets the `sd-activate` module. It must not use variables from around it. */
export type ServiceFunction = (sd: typeof import('./index.js'), ...args: never[]) => unknown;

/** What every start of {@link startService} takes, a command or a function alike. */
export interface CommonOptions {
  /**
   * Sockets by name: `{ web: 'tcp:127.0.0.1:0', admin: 'unix:/tmp/x/admin.sock' }`; an array for
   * several under one name. Any `--listen` SPEC (without `NAME=`); port 0 lets the kernel choose.
   * Passed at fd 3+ in the order given.
   */
  listen?: Record<string, string | readonly string[]>;
  /** 'notify': startService() resolves on READY=1 (Type=notify). Default 'simple'. */
  type?: 'simple' | 'notify';
  /** How long startService() waits for READY=1, and the default of waitFor() (default 10000 ms). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** 'capture' (default): read with `stdout`/`stderr`/`waitForOutput()`; 'inherit': straight to the test's terminal. */
  output?: 'capture' | 'inherit';
  restart?: RestartPolicy;
  restartMs?: number;
  /** StartLimitIntervalSec= (default 10000 ms; 0 for no limit): see startLimitBurst. */
  startLimitIntervalMs?: number;
  /** StartLimitBurst= (default 5): past that many starts within the interval, the service is not restarted. */
  startLimitBurst?: number;
  watchdogMs?: number;
  fdStoreMax?: number;
  accept?: boolean;
  lazy?: boolean;
  /**
   * NotifyAccess=: 'main' (the default with `type: 'notify'`, `watchdogMs` or `fdStoreMax`), 'exec',
   * 'all', or 'none' (the default otherwise, as in systemd: a Type=simple service gets no
   * NOTIFY_SOCKET unless this is set).
   */
  notifyAccess?: NotifyAccess;
  /** How long stop() waits after SIGTERM before SIGKILL (default 5000 ms). */
  timeoutStopMs?: number;
}

/** Options of {@link startService}: a `command`, or a function `fn` to run in a child. */
export type StartServiceOptions =
  | (CommonOptions & { command: string; args?: readonly string[]; fn?: undefined })
  | (CommonOptions & { fn: ServiceFunction; fnArgs?: readonly unknown[]; command?: undefined });

const running = new Set<TestService>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // The services run in process groups of their own, so nothing else kills them when the test
  // runner exits (a failed assertion, --exit, a crash): this does, synchronously.
  process.on('exit', () => {
    for (const service of running) service.kill('SIGKILL');
  });
}

function specsOf(listen: CommonOptions['listen']): ListenSpec[] {
  const specs: ListenSpec[] = [];
  for (const [name, value] of Object.entries(listen ?? {})) {
    for (const spec of typeof value === 'string' ? [value] : value) {
      if (typeof spec !== 'string') throw new TypeError(`listen.${clip(name)} must be a SPEC string or an array of them`);
      specs.push(parseListenSpec(`${name}=${spec}`));
    }
  }
  return specs;
}

/** The code that runs a {@link ServiceFunction} in the child: ESM from `-e`, so bare imports resolve from `cwd`. */
function functionProgram(fn: ServiceFunction, args: readonly unknown[]): string {
  const index = new URL('./index.js', import.meta.url).href;
  return [
    `import * as sd from ${JSON.stringify(index)};`,
    `const fn = (${fn.toString()});`,
    `await fn(sd, ...${JSON.stringify(args)});`,
  ].join('\n');
}

/** What {@link TestService.waitFor} waits for: a field's name, fields and their values (a RegExp tests one), or a predicate. */
export type MessageMatch = string | Record<string, string | RegExp> | ((message: NotifyMessage) => boolean);

function matcher(match: MessageMatch): (message: NotifyMessage) => boolean {
  if (typeof match === 'function') return match;
  if (typeof match === 'string') return (m) => m.fields.has(match);
  return (m) =>
    Object.entries(match).every(([key, want]) => {
      const value = m.fields.get(key);
      return value !== undefined && (typeof want === 'string' ? value === want : want.test(value));
    });
}

/** The last lines of what a service wrote, each cut to a screen line or two. */
function tail(text: string, lines = 10): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).map((line) => clip(line)).join('\n');
}

/**
 * A service started by {@link startService}. Stop it with {@link TestService.stop} (or
 * {@link stopAll} in an `afterEach`); `await using` works too.
 */
export class TestService {
  /** Every notify message so far, in order. Their fds have been dealt with (stored or closed). */
  readonly messages: NotifyMessage[] = [];
  /** Every exit of the service so far (several with `restart`). */
  readonly exits: ServiceExit[] = [];
  private readonly supervisor: Supervisor;
  private readonly timeoutMs: number;
  private readonly label: string;
  private out = '';
  private err = '';
  private readonly waiters = new Set<() => void>();
  private stopped = false;

  /** @internal */
  constructor(supervisor: Supervisor, timeoutMs: number, label: string) {
    this.supervisor = supervisor;
    this.timeoutMs = timeoutMs;
    this.label = label;
    supervisor.on('notify', ({ message }) => {
      this.messages.push(message);
      this.poke();
    });
    supervisor.on('output', ({ stream, data }) => {
      if (stream === 'stdout') this.out += data.toString('utf8');
      else this.err += data.toString('utf8');
      this.poke();
    });
    supervisor.on('exit', (exit) => {
      this.exits.push(exit);
      this.poke();
    });
    supervisor.on('stopped', () => {
      this.stopped = true;
      running.delete(this);
      this.poke();
    });
  }

  /** The pid of the main service process, while one runs. */
  get pid(): number | undefined {
    return this.supervisor.mainPid;
  }

  /** Everything the service wrote to stdout so far (with `output: 'capture'`). */
  get stdout(): string {
    return this.out;
  }

  /** Everything the service wrote to stderr so far. */
  get stderr(): string {
    return this.err;
  }

  /** Every socket, in fd order (fd 3 first). */
  get addresses(): ServiceAddress[] {
    return this.supervisor.sockets.map(addressOf);
  }

  /**
   * The one socket named `name` (or its first, e.g. IPv4 before IPv6): `net.connect(service.address('web'))`.
   *
   * @throws TypeError when there is no socket of that name
   */
  address(name: string): ServiceAddress {
    const found = this.addresses.find((a) => a.name === name);
    if (!found) throw new TypeError(`no socket named ${quote(name)}; there are ${list(this.addresses.map((a) => quote(a.name))) || 'none'}`);
    return found;
  }

  /** `http://127.0.0.1:41234` or `http://[::1]:41234` for a TCP socket. */
  url(name: string, scheme = 'http'): string {
    const a = this.address(name);
    if (a.kind !== 'tcp') throw new TypeError(`${quote(name)} is not a TCP socket, it has no URL`);
    return `${scheme}://${a.family === 6 ? `[${a.host}]` : a.host}:${a.port}`;
  }

  private poke(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolves with the first value `check` gives that is not undefined; rejects when the service ends first, or after `timeoutMs`. */
  private until<T>(check: () => T | undefined, what: string, timeoutMs: number, allowExit: boolean): Promise<T> {
    return new Promise((resolve, reject) => {
      const done = (error: Error | null, value?: T): void => {
        this.waiters.delete(onChange);
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(value as T);
      };
      const onChange = (): void => {
        const value = check();
        if (value !== undefined) return done(null, value);
        const lastExit = this.exits[this.exits.length - 1];
        const ended = this.stopped || (!allowExit && lastExit !== undefined && !lastExit.restarting && !lastExit.connection);
        if (ended) {
          const how = lastExit ? (lastExit.signal ? `was killed by ${lastExit.signal}` : `exited with status ${lastExit.code}`) : 'was stopped';
          done(
            new SystemdError(
              'ERR_SD_SERVICE_EXITED',
              `${this.label} ${how} before ${what}${this.err ? `; its stderr ends:\n${tail(this.err)}` : ''}`,
            ),
          );
        }
      };
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(
            () =>
              done(
                new SystemdError(
                  'ERR_SD_WAIT_TIMEOUT',
                  `${this.label} gave no ${what} within ${timeoutMs} ms${this.err ? `; its stderr ends:\n${tail(this.err)}` : ''}`,
                ),
              ),
            timeoutMs,
          )
        : undefined;
      this.waiters.add(onChange);
      onChange();
    });
  }

  /**
   * The first notify message that matches: a field name (`'READY'`), fields and values
   * (`{ STATUS: /serving/ }`), or a predicate. Messages received before the call count too,
   * unless `fromNow`.
   *
   * @throws SystemdError `ERR_SD_SERVICE_EXITED` (rejects) when the service ends first,
   *   `ERR_SD_WAIT_TIMEOUT` after `timeoutMs` (default: the service's `timeoutMs`)
   */
  waitFor(match: MessageMatch, options: { timeoutMs?: number; fromNow?: boolean } = {}): Promise<NotifyMessage> {
    const test = matcher(match);
    const from = options.fromNow ? this.messages.length : 0;
    const what = clip(typeof match === 'string' ? `${match}=` : typeof match === 'function' ? 'matching notify message' : Object.keys(match).map((k) => `${k}=`).join(' '));
    return this.until(() => this.messages.slice(from).find(test), what, options.timeoutMs ?? this.timeoutMs, false);
  }

  /** The first match of `pattern` in stdout (or stderr with `stream: 'stderr'`). */
  waitForOutput(pattern: RegExp | string, options: { stream?: 'stdout' | 'stderr'; timeoutMs?: number } = {}): Promise<string> {
    const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    return this.until(
      () => re.exec(options.stream === 'stderr' ? this.err : this.out)?.[0],
      `output matching ${clip(String(re))}`,
      options.timeoutMs ?? this.timeoutMs,
      false,
    );
  }

  /** Resolves with the next exit of the service (a crash, a stop), or the last one if it has ended. */
  waitForExit(options: { timeoutMs?: number } = {}): Promise<ServiceExit> {
    const seen = this.exits.length;
    const last = this.exits[seen - 1];
    if (last && this.stopped) return Promise.resolve(last);
    return this.until(() => this.exits[seen], 'exit', options.timeoutMs ?? this.timeoutMs, true);
  }

  /** Notify messages as they come, from the first one, until the service is stopped. */
  async *notifications(): AsyncGenerator<NotifyMessage, void, undefined> {
    for (let i = 0; ; i++) {
      try {
        yield await this.until(() => this.messages[i], 'notify message', Infinity, true);
      } catch (error) {
        if ((error as SystemdError).code === 'ERR_SD_SERVICE_EXITED') return;
        throw error;
      }
    }
  }

  /** Sends a signal to the service now (its whole process group). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.supervisor.kill(signal);
  }

  /** Stops the service (SIGTERM, SIGKILL after `timeoutStopMs`) and closes its sockets. Safe to call twice. */
  stop(): Promise<SupervisorResult> {
    return this.supervisor.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts a service the way systemd would start it from .socket units: the sockets in `listen`
 * are opened first and passed at fd 3+ (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID), NOTIFY_SOCKET
 * is set, and with `type: 'notify'` this resolves once it sent READY=1.
 *
 * ```ts
 * const service = await startService({ command: 'node', args: ['server.js'], listen: { web: 'tcp:127.0.0.1:0' }, type: 'notify' });
 * const res = await fetch(service.url('web'));
 * await service.stop();
 * ```
 *
 * @throws SystemdError `ERR_SD_LISTEN_SPEC_INVALID`, `ERR_SD_LISTEN_FAILED`, `ERR_SD_COMMAND_NOT_FOUND`;
 *   `ERR_SD_SERVICE_EXITED` when it exits before READY=1; `ERR_SD_START_TIMEOUT` when READY=1
 *   does not come within `timeoutMs`. The service is stopped and its sockets closed in each case.
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export async function startService(options: StartServiceOptions): Promise<TestService> {
  if (typeof options !== 'object' || options === null) throw new TypeError('startService() takes an options object');
  const hasFn = typeof options.fn === 'function';
  if (hasFn === (options.command !== undefined)) throw new TypeError('startService() takes either a command or a function (fn)');
  const timeoutMs = options.timeoutMs ?? 10_000;
  const command = hasFn ? process.execPath : options.command!;
  const args = hasFn
    ? ['--input-type=module', '-e', functionProgram(options.fn!, ('fnArgs' in options ? options.fnArgs : undefined) ?? [])]
    : [...(options.args ?? [])];
  const supervisor = new Supervisor({
    command,
    args,
    listen: specsOf(options.listen),
    env: options.env,
    cwd: options.cwd,
    stdio: options.output === 'inherit' ? 'inherit' : 'pipe',
    type: options.type ?? 'simple',
    // The start timeout is enforced below, with the service's stderr in the message.
    timeoutStartMs: 0,
    timeoutStopMs: options.timeoutStopMs ?? 5000,
    restart: options.restart,
    restartMs: options.restartMs,
    startLimitIntervalMs: options.startLimitIntervalMs,
    startLimitBurst: options.startLimitBurst,
    watchdogMs: options.watchdogMs,
    fdStoreMax: options.fdStoreMax,
    accept: options.accept,
    lazy: options.lazy,
    notifyAccess: options.notifyAccess,
  });
  const label = hasFn ? `the service function` : clip(options.command!);
  const service = new TestService(supervisor, timeoutMs, label);
  installExitHook();
  await supervisor.start();
  running.add(service);
  if ((options.type ?? 'simple') === 'notify' && !options.lazy && !options.accept) {
    try {
      await service.waitFor('READY');
    } catch (error) {
      await service.stop();
      if ((error as SystemdError).code === 'ERR_SD_WAIT_TIMEOUT') {
        throw new SystemdError('ERR_SD_START_TIMEOUT', (error as Error).message.replace('gave no READY=', 'sent no READY=1'), { cause: error });
      }
      throw error;
    }
  }
  return service;
}

/** Stops every service {@link startService} started that is still running: for an `afterEach` or `after` hook. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((service) => service.stop()));
}
