/*
 * Hot upgrade by overlap. The old process starts the new one itself, with every fd it holds at
 * 3+ and LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID set: socket activation, exactly, so the new version
 * takes its sockets with the same listenFds()/systemdFd() calls as on a cold start and binds
 * nothing. One more fd after those, a socketpair, carries the new process's READY=1 back. Then
 * the old process tells the service manager MAINPID=<new> and READY=1, and only then stops
 * accepting and reading; it makes sure the message was processed (BARRIER=1) before it tells the
 * new process that it is the main process, finishes what it has, and exits. Both serve the same
 * sockets until then: a connection or a datagram goes to one of them, and is never refused nor
 * left in a closed socket's queue. (Starting the new process: upgrade-launcher.ts.)
 *
 * The old process sends MAINPID= itself, because it is the main process: NotifyAccess=main (the
 * default of Type=notify) accepts it, and the new process's own messages from then on. After that
 * the old process sends nothing more: it is not the main process any longer, and with
 * NotifyAccess=all a STOPPING=1 from it would stop the service.
 */
import type { ChildProcess } from 'node:child_process';
import { events } from '../core/builtins.js';
import { unsupportedOnBun } from '../core/runtime.js';
import type { SystemdError } from '../core/errors.js';
import { WORKER_VARIABLE } from '../core/variables.js';
import { signalGroup } from '../shared/exec.js';
import type { Drain } from './drain.js';
import type { Internals } from './internals.js';
import { runStop } from './stop.js';
import { formatMessage, readMessage } from './upgrade-channel.js';
import { killLauncher, launch, stillFits, type LaunchContext, type Launched } from './upgrade-launcher.js';
import type { UpgradeResult, UpgraderEvents, UpgraderOptions } from './upgrade-types.js';


/** Why an upgrade cannot work on Bun (its new process cannot talk to the old one). */
const BUN_CANNOT_UPGRADE =
  'its net.Socket cannot use an inherited connected socket (new net.Socket({ fd }) is closed at once, Bun 1.4.5), and the new process reports READY=1 over one; ' +
  'the old process serves on. Restart the service instead (its sockets wait in the fd store or the .socket unit)';

/** How long a new process waits for the old one to confirm the hand-over after its READY=1. */
const CONFIRM_TIMEOUT_MS = 30_000;

type Role = 'main' | 'pending' | 'handed-over' | 'stopping';

/** What upgrader() returns (the Upgrader interface of upgrade.ts), loaded with the first upgrader(). */
export class UpgraderProcess extends events.EventEmitter<UpgraderEvents> {
  /** In a process started by an upgrade, the pid of the process it took over from. */
  readonly previousPid: number | undefined;
  /** The rest of the library, as upgrader() hands it over (see internals.ts). */
  readonly #core: Internals;
  readonly #options: UpgraderOptions;
  readonly #drain: Drain;
  /** NOTIFY_SOCKET and WATCHDOG_USEC as this process got them: the environment may change meanwhile. */
  readonly #context: LaunchContext;
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

  constructor(core: Internals, options: UpgraderOptions, drain: Drain, previousPid: number | undefined) {
    super();
    this.#core = core;
    this.#options = options;
    this.#drain = drain;
    this.previousPid = previousPid;
    this.#role = previousPid === undefined ? 'main' : 'pending';
    this.#main = previousPid === undefined;
    const watchdogPid = process.env.WATCHDOG_PID;
    this.#context = {
      notifySocket: process.env.NOTIFY_SOCKET,
      watchdogUsec: watchdogPid === undefined || watchdogPid === String(process.pid) ? process.env.WATCHDOG_USEC : undefined,
    };
  }

  /** True once this process is the service's main process (always, unless it was started by an upgrade that is not confirmed yet). */
  get isMain(): boolean {
    return this.#main;
  }

  #error(code: 'ERR_SD_UPGRADE_FAILED' | 'ERR_SD_START_TIMEOUT' | 'ERR_SD_SERVICE_EXITED', message: string, cause?: unknown): SystemdError {
    return new this.#core.SystemdError(code, message, cause === undefined ? undefined : { cause });
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
      const error = this.#error('ERR_SD_UPGRADE_FAILED', 'cannot upgrade a worker of a pool alone: upgrade the pool, by upgrading its primary');
      this.#failed(undefined, error);
      return Promise.resolve({ upgraded: false, pid: undefined, error });
    }
    if (this.#role !== 'main') {
      const why = this.#role === 'pending' ? 'this process is not the main process yet' : 'this process is stopping';
      return Promise.resolve({ upgraded: false, pid: undefined, error: this.#error('ERR_SD_UPGRADE_FAILED', `cannot upgrade: ${why}`) });
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
    const socket = this.#context.notifySocket;
    if (socket !== undefined) this.#core.notify(fields, { socket });
  }

  async #barrier(): Promise<void> {
    const socket = this.#context.notifySocket;
    if (socket !== undefined) await this.#core.notify.barrier(5000, { socket });
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
    if (this.#context.notifySocket === undefined && process.env.INVOCATION_ID !== undefined) {
      // Run by systemd without a NOTIFY_SOCKET: MAINPID= cannot be sent, and this process's exit
      // would end the service, the new process with it.
      const error = this.#error(
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
      launched = this.#takeLauncher();
    } catch (cause) {
      const error = this.#error('ERR_SD_UPGRADE_FAILED', `cannot start the new process: ${(cause as Error).message}`, cause);
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
          ? this.#error('ERR_SD_UPGRADE_FAILED', `the upgrade was cancelled: this process is stopping`)
          : 'timeout' in outcome
            ? this.#error('ERR_SD_START_TIMEOUT', `the new process (pid ${pid}) was not ready within ${timeoutMs} ms`)
            : 'exited' in outcome
              ? this.#error('ERR_SD_SERVICE_EXITED', `the new process (pid ${pid}) ended before it was ready: ${outcome.exited}`)
              : this.#error('ERR_SD_SERVICE_EXITED', `the new process (pid ${pid}) closed its channel before it was ready`);
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
      const error = this.#error('ERR_SD_UPGRADE_FAILED', `cannot tell the service manager MAINPID=${pid}: ${(cause as Error).message}`, cause);
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
    channel.end(formatMessage({ MAINPID: pid }), () => confirmed());
    channel.unref();
    child.unref();
    this.emit('upgraded', { pid });
    return { upgraded: true, pid };
  }

  /** The launcher if it still fits (same fds), told to go; or a process started now. */
  #takeLauncher(): Launched {
    const ready = this.#launcher;
    this.#launcher = undefined;
    if (ready && stillFits(ready, this.#options, this.#context, this.#core.heldFds)) {
      ready.child.ref();
      ready.channel.ref();
      ready.channel.write('go\n');
      return ready;
    }
    if (ready) killLauncher(ready);
    return launch(this.#options, this.#context, this.#core.heldFds, false);
  }

  /** Starts the launcher of the next upgrade a moment from now, once this process has settled. */
  prepareSoon(): void {
    setTimeout(() => this.#prepare(), 1000).unref();
  }

  #prepare(): void {
    if (this.#role !== 'main' || this.#launcher || this.#upgrading || process.env[WORKER_VARIABLE] !== undefined) return;
    let launched: Launched;
    try {
      launched = launch(this.#options, this.#context, this.#core.heldFds, true);
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
    if (child.exitCode === null && child.signalCode === null) signalGroup(child, 'SIGTERM');
    const grace = this.#options.stopTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([exited.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), grace)))]);
    clearTimeout(timer);
    // What the group started may outlive it: SIGKILL them too, whether or not the leader is gone.
    signalGroup(child, 'SIGKILL');
    if (late) await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1000))]);
    (child.stdio[child.stdio.length - 1] as { destroy(): void } | null)?.destroy();
  }

  #stop(how: 'main' | 'quiet', exitCode: number): Promise<void> {
    if (this.#stopping) return this.#stopping;
    const wasMain = this.#main;
    this.#role = 'stopping';
    // The signal handlers stay until the exit: a second SIGTERM (systemd sends one to every
    // process of the unit on a stop) must not kill a process that is finishing its requests.
    this.#stopping = runStop({
      notifyStopping: how === 'main' && wasMain ? () => this.#send({ STOPPING: 1, STATUS: 'Stopping' }) : undefined,
      before: async () => {
        if (this.#launcher) killLauncher(this.#launcher);
        this.#launcher = undefined;
        // A new process not handed over to yet is rolled back (the upgrade sees the role change).
        const child = this.#child;
        const upgrading = this.#upgrading;
        if (child && upgrading) {
          signalGroup(child, 'SIGTERM');
          await upgrading;
        }
      },
      drain: this.#drain,
      stopTimeoutMs: this.#options.stopTimeoutMs ?? 10_000,
      after: () => this.#confirmed ?? Promise.resolve(),
      onStop: this.#options.onStop,
      watchdog: this.#options.watchdog,
      dispose: () => this.dispose(),
      exit: this.#options.exit ?? true,
      exitCode,
      warn: (error) => this.#warn(error),
    });
    return this.#stopping;
  }

  /** @internal The new process's side: READY=1 to the old process, then wait to be the main process. */
  async confirm(fd: number, status: string | undefined): Promise<void> {
    const { Socket } = await import('node:net');
    const socket = new Socket({ fd, readable: true, writable: true });
    socket.on('error', () => undefined);
    socket.write(formatMessage(status === undefined ? { READY: 1 } : { READY: 1, STATUS: status }));
    const reply = await readMessage(socket, CONFIRM_TIMEOUT_MS);
    socket.destroy();
    if (reply?.get('MAINPID') !== String(process.pid)) {
      const error = this.#error(
        'ERR_SD_UPGRADE_FAILED',
        `the process that started this one for an upgrade (pid ${this.previousPid}) did not hand over: it rolled back or is gone`,
      );
      await this.#stop('quiet', 1);
      throw error;
    }
    if (this.#role !== 'pending') return;
    this.#role = 'main';
    this.#main = true;
    for (const error of this.#core.becameMain()) this.#warn(error);
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0]!;
}

