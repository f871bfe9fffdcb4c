import type { ChildProcess } from 'node:child_process';
import { events } from './builtins.js';
import type { Socket } from 'node:net';
import { Drain } from './drain.js';
import type { SystemdError } from './errors.js';
import type { Internals } from './internals.js';
import type { Closable } from './lifecycle.js';
import { waitListening } from './listening.js';
import type { UpgradeResult, UpgraderEvents, UpgraderOptions } from './upgrade.js';
import { ownArguments, unsupportedOnBun } from './runtime.js';
import { LIFELINE_FD_VARIABLE, LIFELINE_PID_VARIABLE, MANAGER_VARIABLES, UPGRADE_FD_VARIABLE, UPGRADE_PID_VARIABLE, WORKER_VARIABLE } from './variables.js';

/*
 * Hot upgrade by overlap. The old process starts the new one itself, with every fd it holds at
 * 3+ and LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID set: socket activation, exactly, so the new version
 * takes its sockets with the same listenFds()/systemdFd() calls as on a cold start and binds
 * nothing. One more fd after those, a socketpair, carries the new process's READY=1 back. Then
 * the old process tells the service manager MAINPID=<new> and READY=1, and only then stops
 * accepting and reading; it makes sure the message was processed (BARRIER=1) before it tells the
 * new process that it is the main process, finishes what it has, and exits. Both serve the same
 * sockets until then: a connection or a datagram goes to one of them, and is never refused nor
 * left in a closed socket's queue.
 *
 * The new process is started ahead of time, while nothing is going on: a shell waiting for "go"
 * on the channel, which then execs the program as it is on disk at that moment. Starting a
 * process costs the event loop a few milliseconds (fork, then the wait for exec); the upgrade
 * signal only writes a line.
 *
 * The old process sends MAINPID= itself, because it is the main process: NotifyAccess=main (the
 * default of Type=notify) accepts it, and the new process's own messages from then on. After that
 * the old process sends nothing more: it is not the main process any longer, and with
 * NotifyAccess=all a STOPPING=1 from it would stop the service.
 */

/** What a Type=notify service is told that it must not pass on to a process it starts, and this module's own. */
/** Why an upgrade cannot work on Bun (its new process cannot talk to the old one). */
const BUN_CANNOT_UPGRADE =
  "its net.Socket cannot use an inherited connected socket (new net.Socket({ fd }) is closed at once, Bun 1.4.5), and the new process reports READY=1 over one; " +
  'the old process serves on. Restart the service instead (its sockets wait in the fd store or the .socket unit)';

const INHERITED_VARIABLES = [...MANAGER_VARIABLES, UPGRADE_FD_VARIABLE, UPGRADE_PID_VARIABLE, LIFELINE_FD_VARIABLE, LIFELINE_PID_VARIABLE];

/** The rest of the library, as upgrader() hands it over (see internals.ts). */
let core: Internals;

/** How long a new process waits for the old one to confirm the hand-over after its READY=1. */
const CONFIRM_TIMEOUT_MS = 30_000;

type Role = 'main' | 'pending' | 'handed-over' | 'stopping';

function upgradeError(code: 'ERR_SD_UPGRADE_FAILED' | 'ERR_SD_START_TIMEOUT' | 'ERR_SD_SERVICE_EXITED', message: string, cause?: unknown): SystemdError {
  return new core.SystemdError(code, message, cause === undefined ? undefined : { cause });
}

function checkOptions(options: UpgraderOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (typeof options.servers !== 'function') checkServers(options.servers ?? []);
  for (const key of ['readyTimeoutMs', 'stopTimeoutMs'] as const) {
    const v = options[key];
    if (v !== undefined && !(typeof v === 'number' && v > 0 && v <= 0x7fffffff)) throw new TypeError(`options.${key} must be a number of milliseconds above 0`);
  }
  if (options.command !== undefined && (typeof options.command !== 'string' || options.command === '')) throw new TypeError('options.command must be a non-empty string');
  if (options.args !== undefined && (!Array.isArray(options.args) || options.args.some((a) => typeof a !== 'string'))) {
    throw new TypeError('options.args must be an array of strings');
  }
  if (options.onStop !== undefined && typeof options.onStop !== 'function') throw new TypeError('options.onStop must be a function');
  if (options.status !== undefined && (typeof options.status !== 'string' || /[\r\n\0]/.test(options.status))) {
    throw new TypeError('options.status must be one line of text');
  }
}

function checkServers(servers: unknown): asserts servers is readonly Closable[] {
  if (!Array.isArray(servers) || servers.some((s) => !s || typeof (s as Closable).close !== 'function')) {
    throw new TypeError('options.servers must hold servers or sockets with a close() method (or be a function that starts them)');
  }
}

/** `KEY=VALUE` lines up to an empty line: the little protocol of the channel. */
function parseMessage(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && !fields.has(line.slice(0, eq))) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return fields;
}

/** Resolves with the first message (text up to "\n\n") read from `socket`, or null at its end. */
function readMessage(socket: Socket, timeoutMs: number): Promise<Map<string, string> | null> {
  return new Promise((resolve) => {
    let text = '';
    const done = (value: Map<string, string> | null): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onEnd);
      resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\n\n');
      if (end !== -1) done(parseMessage(text.slice(0, end)));
    };
    const onEnd = (): void => done(null);
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onEnd);
  });
}

/** What upgrader() returns (the Upgrader interface of upgrade.ts), loaded with the first upgrader(). */
export class UpgraderProcess extends events.EventEmitter<UpgraderEvents> {
  /** In a process started by an upgrade, the pid of the process it took over from. */
  readonly previousPid: number | undefined;
  readonly #options: UpgraderOptions;
  readonly #drain: Drain;
  readonly #notifySocket: string | undefined;
  readonly #watchdogUsec: string | undefined;
  readonly #signals: Array<[NodeJS.Signals, () => void]> = [];
  #role: Role;
  /** Whether this process is the service's main process: from the start, or once an upgrade confirmed it, until it hands over. */
  #main: boolean;
  #upgrading: Promise<UpgradeResult> | undefined;
  #child: ChildProcess | undefined;
  #launcher: Launched | undefined;
  #stopping: Promise<void> | undefined;
  /** Set at a hand-over: resolved once the new process has been told it is the main process. */
  #confirmed: Promise<void> | undefined;

  constructor(options: UpgraderOptions, drain: Drain, previousPid: number | undefined) {
    super();
    this.#options = options;
    this.#drain = drain;
    this.previousPid = previousPid;
    this.#role = previousPid === undefined ? 'main' : 'pending';
    this.#main = previousPid === undefined;
    this.#notifySocket = process.env.NOTIFY_SOCKET;
    const watchdogPid = process.env.WATCHDOG_PID;
    this.#watchdogUsec = watchdogPid === undefined || watchdogPid === String(process.pid) ? process.env.WATCHDOG_USEC : undefined;
  }

  /** True once this process is the service's main process (always, unless it was started by an upgrade that is not confirmed yet). */
  get isMain(): boolean {
    return this.#main;
  }

  /** @internal */
  listen(): void {
    const stopSignals = this.#options.stopSignals ?? ['SIGTERM', 'SIGINT'];
    const upgradeSignal = this.#options.upgradeSignal === undefined ? 'SIGHUP' : this.#options.upgradeSignal;
    for (const signal of stopSignals) this.#signals.push([signal, () => void this.stop()]);
    if (upgradeSignal) this.#signals.push([upgradeSignal, () => void this.upgrade()]);
    for (const [signal, handler] of this.#signals) process.on(signal, handler);
  }

  /** Removes the signal handlers (the servers keep running). */
  dispose(): void {
    for (const [signal, handler] of this.#signals.splice(0)) process.off(signal, handler);
  }

  /**
   * Starts the new version and hands over to it once it is ready (what the upgrade signal does).
   * Never rejects: a new process that fails, or is not ready within `readyTimeoutMs`, is killed,
   * this one serves on, and the result says why. Calls while one runs share its result.
   */
  upgrade(): Promise<UpgradeResult> {
    if (process.env[WORKER_VARIABLE] !== undefined) {
      const error = upgradeError('ERR_SD_UPGRADE_FAILED', 'cannot upgrade a worker of a pool alone: upgrade the pool, by upgrading its primary');
      this.#failed(undefined, error);
      return Promise.resolve({ upgraded: false, pid: undefined, error });
    }
    if (this.#role !== 'main') {
      const why = this.#role === 'pending' ? 'this process is not the main process yet' : 'this process is stopping';
      return Promise.resolve({ upgraded: false, pid: undefined, error: upgradeError('ERR_SD_UPGRADE_FAILED', `cannot upgrade: ${why}`) });
    }
    this.#upgrading ??= this.#upgrade().finally(() => (this.#upgrading = undefined));
    return this.#upgrading;
  }

  /**
   * Stops: STOPPING=1 (from the main process only), stop accepting, let in-flight work finish
   * within `stopTimeoutMs`, onStop, exit. A new process being started is killed first. Idempotent.
   */
  stop(): Promise<void> {
    return this.#stop(this.#main ? 'main' : 'quiet', 0);
  }

  /** Stops without a word to the notify socket: the one a pool's worker has is gone with the pool. */
  stopQuietly(): Promise<void> {
    return this.#stop('quiet', 0);
  }

  #send(fields: Parameters<Internals['notify']>[0]): void {
    if (this.#notifySocket === undefined) return;
    // The variable may have been removed meanwhile (notify's unsetEnvironment): the captured one is used.
    const saved = process.env.NOTIFY_SOCKET;
    process.env.NOTIFY_SOCKET = this.#notifySocket;
    try {
      core.notify(fields);
    } finally {
      if (saved === undefined) delete process.env.NOTIFY_SOCKET;
      else process.env.NOTIFY_SOCKET = saved;
    }
  }

  async #barrier(): Promise<void> {
    if (this.#notifySocket === undefined) return;
    const saved = process.env.NOTIFY_SOCKET;
    process.env.NOTIFY_SOCKET = this.#notifySocket;
    let pending: Promise<boolean>;
    try {
      pending = core.notify.barrier(5000);
    } finally {
      if (saved === undefined) delete process.env.NOTIFY_SOCKET;
      else process.env.NOTIFY_SOCKET = saved;
    }
    await pending;
  }

  /** Tells the 'failed' listeners, or the process's warnings when there is none: a failed upgrade is never silent. */
  #failed(pid: number | undefined, error: SystemdError): void {
    if (this.listenerCount('failed') > 0) this.emit('failed', { pid, error });
    else process.emitWarning(error);
  }

  #warn(error: Error): void {
    if (this.listenerCount('warning') > 0) this.emit('warning', error);
    else process.emitWarning(error);
  }

  #statusWith(note: string): string {
    return this.#options.status ? `${this.#options.status} (${note})` : note;
  }

  async #upgrade(): Promise<UpgradeResult> {
    const unsupported = unsupportedOnBun('an upgrade', BUN_CANNOT_UPGRADE);
    if (unsupported) {
      this.#failed(undefined, unsupported);
      return { upgraded: false, pid: undefined, error: unsupported };
    }
    if (this.#notifySocket === undefined && process.env.INVOCATION_ID !== undefined) {
      // Run by systemd without a NOTIFY_SOCKET: MAINPID= cannot be sent, and this process's exit
      // would end the service, the new process with it.
      const error = upgradeError(
        'ERR_SD_UPGRADE_FAILED',
        'cannot upgrade: systemd gave no NOTIFY_SOCKET to tell it MAINPID= (use Type=notify, and NotifyAccess=main, exec or all)',
      );
      this.#failed(undefined, error);
      return { upgraded: false, pid: undefined, error };
    }
    // RELOADING=1 first: Type=notify-reload (systemd 253+) waits for it after its signal, and
    // `systemctl status` shows the service reloading until the READY=1 that ends the upgrade.
    this.#sendQuietly({ RELOADING: 1, MONOTONIC_USEC: process.hrtime.bigint() / 1000n, STATUS: this.#statusWith('upgrading') });
    let launched: Launched;
    try {
      launched = await this.#takeLauncher();
    } catch (cause) {
      const error = upgradeError('ERR_SD_UPGRADE_FAILED', `cannot start the new process: ${(cause as Error).message}`, cause);
      this.#sendQuietly({ READY: 1, STATUS: this.#statusWith(`upgrade failed: ${firstLine(error.message)}`) });
      this.#failed(undefined, error);
      this.prepareSoon();
      return { upgraded: false, pid: undefined, error };
    }
    const { child, channel, exited } = launched;
    this.#child = child;
    const pid = child.pid;
    if (pid !== undefined) this.emit('upgrading', { pid });

    const timeoutMs = this.#options.readyTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    type Outcome = { message: Map<string, string> } | { closed: true } | { exited: string } | { timeout: true };
    let outcome: Outcome = await Promise.race<Outcome>([
      readMessage(channel, timeoutMs + 1000).then((message) => (message?.get('READY') === '1' ? { message } : { closed: true })),
      exited.then((reason) => ({ exited: reason })),
      new Promise<{ timeout: true }>((resolve) => (timer = setTimeout(() => resolve({ timeout: true }), timeoutMs))),
    ]);
    clearTimeout(timer);
    if ('closed' in outcome) {
      // The channel ends with the process: its exit status says more, and follows at once.
      const reason = await Promise.race([exited, new Promise<undefined>((resolve) => setTimeout(resolve, 1000))]);
      if (reason !== undefined) outcome = { exited: reason };
    }

    if (!('message' in outcome) || this.#role !== 'main' || pid === undefined) {
      const error =
        this.#role !== 'main'
          ? upgradeError('ERR_SD_UPGRADE_FAILED', `the upgrade was cancelled: this process is stopping`)
          : 'timeout' in outcome
            ? upgradeError('ERR_SD_START_TIMEOUT', `the new process (pid ${pid}) was not ready within ${timeoutMs} ms`)
            : 'exited' in outcome
              ? upgradeError('ERR_SD_SERVICE_EXITED', `the new process (pid ${pid}) ended before it was ready: ${outcome.exited}`)
              : upgradeError('ERR_SD_SERVICE_EXITED', `the new process (pid ${pid}) closed its channel before it was ready`);
      await this.#rollBack(child, exited);
      if (this.#role === 'main') this.#sendQuietly({ READY: 1, STATUS: this.#statusWith(`upgrade to pid ${pid} failed: ${firstLine(error.message)}`) });
      this.#child = undefined;
      this.#failed(pid, error);
      this.prepareSoon();
      return { upgraded: false, pid, error };
    }

    // The hand-over. From the MAINPID= on, the new process is the main process for systemd.
    const status = outcome.message.get('STATUS');
    try {
      this.#send({ MAINPID: pid, READY: 1, STATUS: status ?? '' });
    } catch (cause) {
      const error = upgradeError('ERR_SD_UPGRADE_FAILED', `cannot tell the service manager MAINPID=${pid}: ${(cause as Error).message}`, cause);
      await this.#rollBack(child, exited);
      this.#child = undefined;
      this.#failed(pid, error);
      this.prepareSoon();
      return { upgraded: false, pid, error };
    }
    this.#role = 'handed-over';
    this.#main = false;
    this.#child = undefined;
    this.#options.watchdog?.stop();
    let confirmed!: () => void;
    this.#confirmed = new Promise((resolve) => (confirmed = resolve));
    // The new process serves already: stop accepting now, and finish what is in flight meanwhile.
    void this.#stop('quiet', 0);
    try {
      await this.#barrier();
    } catch (error) {
      // systemd reads its notify socket before it handles SIGCHLD: the message is processed
      // before this process's exit is, even when it did not answer the barrier.
      this.#warn(error as Error);
    }
    // Only now may the new process act as the main process (its messages would be dropped before).
    channel.once('error', () => confirmed());
    channel.end(`MAINPID=${pid}\n\n`, () => confirmed());
    channel.unref();
    child.unref();
    this.emit('upgraded', { pid });
    return { upgraded: true, pid };
  }

  /**
   * The process of the next version, started ahead of time and waiting: a shell that reads "go"
   * on the channel, then sets LISTEN_PID to its own pid and execs the program. Starting a process
   * (fork, then waiting for the exec) stalls this process's event loop for milliseconds; done
   * while nothing is going on, the upgrade signal only writes a line.
   */
  #launch(spawn: typeof import('node:child_process').spawn, wait: boolean): Launched {
    const { fds, env, key } = this.#plan();
    const channelFd = 3 + fds.length;
    const command = this.#options.command ?? process.execPath;
    const args = this.#options.args ?? ownArguments('the upgrade');
    const pidVariables = [UPGRADE_PID_VARIABLE, ...(fds.length > 0 ? ['LISTEN_PID'] : []), ...(env.WATCHDOG_USEC !== undefined ? ['WATCHDOG_PID'] : [])];
    // Node has no fork: the shell learns the new process's pid ($$) and exec keeps it. `read`
    // takes the line byte by byte, so nothing meant for the program is consumed.
    const waitForGo = wait ? `read -r go <&${channelFd} || exit 0; [ "$go" = go ] || exit 0; ` : '';
    const script = `${waitForGo}${pidVariables.map((v) => `${v}=$$; export ${v}; `).join('')}exec "$0" "$@"`;
    const child = spawn('/bin/sh', ['-c', script, command, ...args], {
      cwd: this.#options.cwd,
      env,
      stdio: ['inherit', 'inherit', 'inherit', ...fds.map((f) => f.fd), 'pipe'],
      // A process group of its own: a rollback kills what it started too (a worker pool).
      detached: true,
    });
    const channel = child.stdio[child.stdio.length - 1] as Socket;
    channel.on('error', () => undefined);
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, signal) => resolve(signal ? `it was killed by ${signal}` : `it exited with status ${code}`));
      child.once('error', (error) => resolve(`it could not be started: ${error.message}`));
    });
    return { child, channel, exited, key };
  }

  /** The fds and the environment of the new process, as they are now. */
  #plan(): { fds: ReturnType<Internals['heldFds']>; env: NodeJS.ProcessEnv; key: string } {
    const fds = core.heldFds();
    const env: NodeJS.ProcessEnv = { ...(this.#options.env ?? process.env) };
    for (const name of INHERITED_VARIABLES) delete env[name];
    if (fds.length > 0) {
      env.LISTEN_FDS = String(fds.length);
      env.LISTEN_FDNAMES = fds.map((f) => f.name).join(':');
    }
    if (this.#notifySocket !== undefined) env.NOTIFY_SOCKET = this.#notifySocket;
    if (this.#watchdogUsec !== undefined) env.WATCHDOG_USEC = this.#watchdogUsec;
    env[UPGRADE_FD_VARIABLE] = String(3 + fds.length);
    // A launcher started with other fds or another environment is not the one to use now.
    const key = JSON.stringify([fds.map((f) => [f.fd, f.name]), env]);
    return { fds, env, key };
  }

  /** The launcher if it still fits (same fds), told to go; or a process started now. */
  async #takeLauncher(): Promise<Launched> {
    const { spawn } = await import('node:child_process');
    const ready = this.#launcher;
    this.#launcher = undefined;
    if (ready && ready.child.exitCode === null && ready.child.signalCode === null && ready.key === this.#plan().key) {
      ready.child.ref();
      ready.channel.ref();
      ready.channel.write('go\n');
      return ready;
    }
    if (ready) killLauncher(ready);
    return this.#launch(spawn, false);
  }

  /** Starts the launcher of the next upgrade a moment from now, once this process has settled. */
  prepareSoon(): void {
    setTimeout(() => void this.#prepare(), 1000).unref();
  }

  async #prepare(): Promise<void> {
    if (this.#role !== 'main' || this.#launcher || this.#upgrading || process.env[WORKER_VARIABLE] !== undefined) return;
    if (process.versions.bun !== undefined) return;
    const { spawn } = await import('node:child_process');
    if (this.#role !== 'main' || this.#launcher || this.#upgrading) return;
    let launched: Launched;
    try {
      launched = this.#launch(spawn, true);
    } catch (error) {
      this.#warn(error as Error);
      return;
    }
    // It waits for ever, and must keep nothing alive.
    launched.child.unref();
    launched.channel.unref();
    this.#launcher = launched;
    void launched.exited.then(() => {
      if (this.#launcher === launched) this.#launcher = undefined;
    });
  }

  #sendQuietly(fields: Parameters<Internals['notify']>[0]): void {
    try {
      this.#send(fields);
    } catch (error) {
      this.#warn(error as Error);
    }
  }

  /** SIGTERM to the new process's group, SIGKILL if it is still there after `stopTimeoutMs`. */
  async #rollBack(child: ChildProcess, exited: Promise<string>): Promise<void> {
    const group = child.pid;
    const kill = (signal: NodeJS.Signals): void => {
      if (group === undefined) return;
      try {
        process.kill(-group, signal);
      } catch {
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
      }
    };
    if (child.exitCode === null && child.signalCode === null) kill('SIGTERM');
    const grace = this.#options.stopTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([exited.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), grace)))]);
    clearTimeout(timer);
    // What the group started may outlive it: SIGKILL them too, whether or not the leader is gone.
    kill('SIGKILL');
    if (late) await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1000))]);
    (child.stdio[child.stdio.length - 1] as Socket | null)?.destroy();
  }

  #stop(how: 'main' | 'quiet', exitCode: number): Promise<void> {
    this.#stopping ??= (async () => {
      const wasMain = this.#main;
      this.#role = 'stopping';
      // The signal handlers stay until the exit: a second SIGTERM (systemd sends one to every
      // process of the unit on a stop) must not kill a process that is finishing its requests.
      if (how === 'main' && wasMain) this.#sendQuietly({ STOPPING: 1, STATUS: 'Stopping' });
      if (this.#launcher) killLauncher(this.#launcher);
      this.#launcher = undefined;
      const child = this.#child;
      const upgrading = this.#upgrading;
      // A new process not handed over to yet is rolled back (the upgrade sees the role change).
      if (child && upgrading) {
        try {
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          // gone already
        }
        await upgrading;
      }
      await this.#drain.close(this.#options.stopTimeoutMs ?? 10_000);
      await this.#confirmed;
      let failed = exitCode !== 0;
      try {
        await this.#options.onStop?.();
      } catch (error) {
        failed = true;
        console.error(error);
      }
      this.#options.watchdog?.stop();
      this.dispose();
      if (this.#options.exit ?? true) process.exit(failed ? exitCode || 1 : 0);
    })();
    return this.#stopping;
  }

  /** @internal The new process's side: READY=1 to the old process, then wait to be the main process. */
  async confirm(fd: number, status: string | undefined): Promise<void> {
    const { Socket } = await import('node:net');
    const socket = new Socket({ fd, readable: true, writable: true });
    socket.on('error', () => undefined);
    socket.write(status === undefined ? 'READY=1\n\n' : `READY=1\nSTATUS=${status}\n\n`);
    const reply = await readMessage(socket, CONFIRM_TIMEOUT_MS);
    socket.destroy();
    if (reply?.get('MAINPID') !== String(process.pid)) {
      const error = upgradeError(
        'ERR_SD_UPGRADE_FAILED',
        `the process that started this one for an upgrade (pid ${this.previousPid}) did not hand over: it rolled back or is gone`,
      );
      await this.#stop('quiet', 1);
      throw error;
    }
    if (this.#role !== 'pending') return;
    this.#role = 'main';
    this.#main = true;
    for (const error of core.becameMain()) this.#warn(error);
  }
}

/** A process of the next version, started or waiting to be told to go. */
interface Launched {
  child: ChildProcess;
  /** The socketpair: "go" to a waiting launcher, READY=1 back, MAINPID= to confirm. */
  channel: Socket;
  exited: Promise<string>;
  /** What it was started with: a launcher whose fds or environment are not this process's any more is not used. */
  key: string;
}

function killLauncher(launched: Launched): void {
  launched.channel.destroy();
  try {
    process.kill(-launched.child.pid!, 'SIGKILL');
  } catch {
    // gone already
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0]!;
}

/** What upgrader() does, once this module is loaded. */
export async function startUpgrader(options: UpgraderOptions, internals: Internals): Promise<UpgraderProcess> {
  core = internals;
  checkOptions(options);
  const channel = core.upgradeChannel();
  const lifeline = core.workerLifeline();
  // What the hand-over needs, loaded before the servers start (when given as a function).
  await import('node:net');
  const servers = typeof options.servers === 'function' ? await options.servers() : (options.servers ?? []);
  checkServers(servers);
  const drain = new Drain(servers);
  const up = new UpgraderProcess(options, drain, channel === null ? undefined : process.ppid);
  await Promise.all(servers.map(waitListening));
  up.listen();
  if (lifeline !== null) {
    // A worker of a pool: when the primary is gone (even killed), finish and exit.
    const { Socket } = await import('node:net');
    const socket = new Socket({ fd: lifeline, readable: true, writable: false });
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.once('close', () => void up.stopQuietly());
    socket.unref();
  }
  if (channel === null) {
    core.notify(options.status === undefined ? { READY: 1 } : { READY: 1, STATUS: options.status });
  } else {
    await up.confirm(channel, options.status);
  }
  // The next version's process is started while nothing is going on, rather than in the upgrade
  // signal's handler, where every millisecond is one that requests wait; not right now either, in
  // a new process that has just become the only one serving.
  up.prepareSoon();
  return up;
}
