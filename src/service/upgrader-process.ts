/*
 * Hot upgrade by overlap. The old process starts the new one (upgrade-launcher.ts) with every fd
 * it holds, as socket activation passes them, and both serve the same sockets until the switch: a
 * connection or a datagram goes to one of them, and is never refused nor left in a closed
 * socket's queue. The switch, over the channel (upgrade-channel.ts), each step checked, because
 * either process may die at any moment:
 *
 *  1. the new process sends READY=1 once it serves (with HANDOVER=1 when it takes connections);
 *  2. the old one, still the main process, hands over its established connections that are
 *     ready (handover-sender.ts), still accepting: the new process may die meanwhile;
 *  3. it checks that the new one runs and tells the service manager MAINPID=<new> and READY=1,
 *     then BARRIER=1: once that returns the manager has acted on MAINPID= (it refuses a pid that
 *     is gone, and keeps the old process as the main one);
 *  4. it checks again that the new process runs, and tells it MAINPID=<new>: it is the main process;
 *  5. the new one answers ACK=1; only now does the old process stop accepting and reading, drain
 *     what it has, handing over what becomes ready until the deadline, and exit.
 *
 * A new process that dies before step 3 is rolled back: the old one serves on as the main
 * process, with every connection it had not passed yet (those it passed died with the new one).
 * One that dies after the manager took MAINPID= is the manager's main process dying: it is the
 * manager's child (the launcher made sure of it), so the manager sees its exit status and acts on
 * Restart=, as for any crash; the old process serves on until the manager stops it. A new process
 * whose old one dies never gives up: it serves on, as the main process if the manager took
 * MAINPID= in time, and is stopped by the manager otherwise, as what is left of a crashed service.
 *
 * The old process sends MAINPID= itself, because it is the main process: NotifyAccess=main (the
 * default of Type=notify) accepts it, and the new process's own messages from then on. After that
 * the old process sends nothing more: with NotifyAccess=all a STOPPING=1 from it would stop the
 * service. The new process's side of the switch is upgrade-successor.ts.
 */
import { events } from '../core/builtins.js';
import type { SystemdError } from '../core/errors.js';
import { unsupportedOnBun } from '../core/runtime.js';
import { WORKER_VARIABLE } from '../core/variables.js';
import { signalGroup } from '../shared/exec.js';
import { isAlive } from '../shared/process-state.js';
import type { Drain } from './drain.js';
import { faultPoint } from './fault.js';
import { startHandover, type HandoverSender } from './handover-sender.js';
import { IncomingConnections } from './incoming-connections.js';
import type { Internals } from './internals.js';
import { runStop } from './stop.js';
import { NextLauncher, release, rollBack, type LaunchContext, type Launched } from './upgrade-launcher.js';
import type { HandedOverConnection, UpgradeResult, UpgraderEvents, UpgraderOptions } from './upgrade-types.js';

/** Why an upgrade cannot work on Bun (its new process cannot talk to the old one). */
const BUN_CANNOT_UPGRADE =
  'its net.Socket cannot use an inherited connected socket (new net.Socket({ fd }) is closed at once, Bun 1.4.5), and the new process reports READY=1 over one; ' +
  'the old process serves on. Restart the service instead (its sockets wait in the fd store or the .socket unit)';

/** main: serves and speaks for the service; pending: started by an upgrade, not confirmed yet. */
type Role = 'main' | 'pending' | 'handed-over' | 'stopping';

type ErrorCode = 'ERR_SD_UPGRADE_FAILED' | 'ERR_SD_START_TIMEOUT' | 'ERR_SD_SERVICE_EXITED';

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
  /** Whether this process speaks for the service: from the start, or once an upgrade confirmed it, until it hands over. */
  #main: boolean;
  #upgrading: Promise<UpgradeResult> | undefined;
  /** An upgrade asked for while one ran: it runs next, here or in the new main process. */
  #queued: { promise: Promise<UpgradeResult>; resolve: (result: UpgradeResult | Promise<UpgradeResult>) => void } | undefined;
  /** The new process of the upgrade in progress. */
  #current: Launched | undefined;
  /** The launcher of the next upgrade, started ahead of time. */
  readonly #next: NextLauncher;
  #stopping: Promise<void> | undefined;
  /** The connection hand-over of the upgrade in progress (a worker's: set by worker-handover.ts), until this process exits or rolls back. @internal */
  handover: HandoverSender | undefined;
  /** New process: the connections the old one passed with pass(), for the application. @internal */
  readonly incoming: IncomingConnections;

  /** `receiving`: started by an upgrade whose old process hands connections over. */
  constructor(core: Internals, options: UpgraderOptions, drain: Drain, previousPid: number | undefined, receiving: boolean) {
    super();
    this.incoming = new IncomingConnections(this, (error) => this.#warn(error), options.stopTimeoutMs ?? 10_000, receiving, (socket) => drain.track(socket));
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
    this.#next = new NextLauncher(options, this.#context, core);
  }

  /** True while this process is the service's main process: from the start, or once an upgrade confirmed it, until it hands over. */
  get isMain(): boolean {
    return this.#main;
  }

  #error(code: ErrorCode, message: string, cause?: unknown): SystemdError {
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

  /** The connections the previous process handed over with pass(), until that hand-over is over. */
  connections(to?: string): AsyncIterableIterator<HandedOverConnection> {
    return this.incoming.iterate(to);
  }

  /**
   * Starts the new version and hands over to it once it is ready (what the upgrade signal does).
   * Never rejects: a new process that fails, or is not ready within `readyTimeoutMs`, is killed,
   * this one serves on, and the result says why. A call while an upgrade runs (or before this
   * process is the main one) is queued, as systemd queues a reload: one more upgrade runs once
   * that one is over, here, or in the new process if it took over.
   */
  upgrade(): Promise<UpgradeResult> {
    if (process.env[WORKER_VARIABLE] !== undefined) {
      const error = this.#error('ERR_SD_UPGRADE_FAILED', 'cannot upgrade a worker of a pool alone: upgrade the pool, by upgrading its primary');
      this.#failed(undefined, error);
      return Promise.resolve({ upgraded: false, pid: undefined, error });
    }
    if (this.#role === 'stopping' || this.#role === 'handed-over') {
      const why = this.#role === 'stopping' ? 'this process is stopping' : 'this process handed over to a new one';
      return Promise.resolve({ upgraded: false, pid: undefined, error: this.#error('ERR_SD_UPGRADE_FAILED', `cannot upgrade: ${why}`) });
    }
    if (this.#upgrading || this.#role === 'pending') {
      if (!this.#queued) {
        let resolve!: (result: UpgradeResult | Promise<UpgradeResult>) => void;
        const promise = new Promise<UpgradeResult>((r) => (resolve = r));
        this.#queued = { promise, resolve };
      }
      return this.#queued.promise;
    }
    this.#upgrading = this.#upgrade().finally(() => {
      this.#upgrading = undefined;
      this.#runQueued();
    });
    return this.#upgrading;
  }

  /** The upgrade asked for meanwhile: run here while this process is the main one, else passed on to the new one. */
  #runQueued(): void {
    const queued = this.#queued;
    if (!queued || this.#role === 'pending') return;
    this.#queued = undefined;
    if (this.#role === 'main') queued.resolve(this.upgrade());
    else queued.resolve({ upgraded: false, pid: undefined, error: this.#error('ERR_SD_UPGRADE_FAILED', 'cannot upgrade: this process is stopping') });
  }

  /**
   * Stops: STOPPING=1 (from the main process only), stop accepting, let in-flight work finish
   * within `stopTimeoutMs`, onStop, exit. A new process being started is rolled back first. Idempotent.
   */
  stop(): Promise<void> {
    return this.#stop(this.#role === 'main' ? 'main' : 'quiet', 0);
  }

  /** Stops without a word to the notify socket: the one a pool's worker has is gone with the pool. */
  stopQuietly(): Promise<void> {
    return this.#stop('quiet', 0);
  }

  #send(fields: Parameters<Internals['notify']>[0]): void {
    const socket = this.#context.notifySocket;
    if (socket !== undefined) this.#core.notify(fields, { socket });
  }

  #sendQuietly(fields: Parameters<Internals['notify']>[0]): void {
    try {
      this.#send(fields);
    } catch (error) {
      this.#warn(error as Error);
    }
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
    const refused = unsupportedOnBun('an upgrade', BUN_CANNOT_UPGRADE);
    if (refused) {
      this.#failed(undefined, refused);
      return { upgraded: false, pid: undefined, error: refused };
    }
    if (this.#context.notifySocket === undefined && process.env.INVOCATION_ID !== undefined) {
      // Run by systemd without a NOTIFY_SOCKET: MAINPID= cannot be sent, and this process's exit
      // would end the service, the new process with it.
      const error = this.#error('ERR_SD_UPGRADE_FAILED', 'cannot upgrade: systemd gave no NOTIFY_SOCKET to tell it MAINPID= (use Type=notify, and NotifyAccess=main, exec or all)');
      this.#failed(undefined, error);
      return { upgraded: false, pid: undefined, error };
    }
    // RELOADING=1 first: Type=notify-reload (systemd 253+) waits for it after its signal, and
    // `systemctl status` shows the service reloading until the READY=1 that ends the upgrade.
    this.#sendQuietly({ RELOADING: 1, MONOTONIC_USEC: process.hrtime.bigint() / 1000n, STATUS: this.#statusWith('upgrading') });
    let launched: Launched;
    try {
      launched = this.#next.take();
    } catch (cause) {
      return this.#giveUp(undefined, undefined, this.#error('ERR_SD_UPGRADE_FAILED', `cannot start the new process: ${(cause as Error).message}`, cause));
    }
    this.#current = launched;
    faultPoint('old:launched');
    const timeoutMs = this.#options.readyTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    const pid = await Promise.race([launched.pid, new Promise<undefined>((resolve) => setTimeout(resolve, timeoutMs))]);
    if (pid === undefined) return this.#giveUp(launched, undefined, this.#error('ERR_SD_SERVICE_EXITED', 'the new process could not be started'));
    this.emit('upgrading', { pid });

    // 1. READY=1 from the new process.
    const ready = await launched.channel.next(Math.max(0, deadline - Date.now()));
    if (this.#role !== 'main') return this.#giveUp(launched, pid, this.#error('ERR_SD_UPGRADE_FAILED', 'the upgrade was cancelled: this process is stopping'));
    if (ready === 'timeout') return this.#giveUp(launched, pid, this.#error('ERR_SD_START_TIMEOUT', `the new process (pid ${pid}) was not ready within ${timeoutMs} ms`));
    if (ready === null || ready.get('READY') !== '1' || !isAlive(pid)) return this.#endedBeforeReady(launched, pid);
    faultPoint('old:ready');
    // Its shell lets go of it: from here on the service manager is its parent (see upgrade-launcher.ts).
    await release(launched);
    if (!isAlive(pid) || launched.channel.ended) return this.#endedBeforeReady(launched, pid);

    // 2. The connections that are ready pass, while this process is still the main one.
    const warn = (error: Error): void => this.#warn(error);
    this.handover = await startHandover(launched, pid, ready, { drain: this.#drain, events: this, warn, heldTimeoutMs: Math.min(10_000, timeoutMs) });
    if (this.#role !== 'main') return this.#giveUp(launched, pid, this.#error('ERR_SD_UPGRADE_FAILED', 'the upgrade was cancelled: this process is stopping'));
    if (!isAlive(pid) || launched.channel.ended || this.handover?.peerGone) return this.#giveUp(launched, pid, this.#error('ERR_SD_SERVICE_EXITED', `the new process (pid ${pid}) or a worker of its pool ended while connections were handed over`));
    faultPoint('old:handed');

    // 3. MAINPID=, and the barrier: the manager has acted on it once that returns.
    try {
      this.#send({ MAINPID: pid, READY: 1, STATUS: ready.get('STATUS') ?? '' });
    } catch (cause) {
      return this.#giveUp(launched, pid, this.#error('ERR_SD_UPGRADE_FAILED', `cannot tell the service manager MAINPID=${pid}: ${(cause as Error).message}`, cause));
    }
    faultPoint('old:mainpid');
    try {
      const socket = this.#context.notifySocket;
      if (socket !== undefined) await this.#core.notify.barrier(5000, { socket });
    } catch (error) {
      // systemd reads its notify socket before it handles SIGCHLD: the message is processed
      // before the new process's exit is, even when it did not answer the barrier.
      this.#warn(error as Error);
    }
    faultPoint('old:barrier');

    // 4. Confirmed to the new process, if it still runs.
    if (launched.channel.ended || !isAlive(pid) || !(await launched.channel.send({ MAINPID: pid }))) return this.#lostAtSwitch(launched, pid);
    faultPoint('old:confirmed');

    // 5. Its answer; from here on it serves alone.
    // No ACK=1 in time from a process that still runs: the manager has it as the main process all
    // the same, so it is handed over to.
    const ack = await launched.channel.next(timeoutMs);
    if (!(ack instanceof Map) && !isAlive(pid)) return this.#lostAtSwitch(launched, pid);
    this.#role = 'handed-over';
    this.#main = false;
    this.#current = undefined;
    faultPoint('old:acked');
    this.#options.watchdog?.stop();
    if (this.#queued) {
      // Asked for during this upgrade: the new main process does it.
      void launched.channel.send({ UPGRADE: 1 });
      this.#queued.resolve({ upgraded: true, pid });
      this.#queued = undefined;
    }
    launched.channel.unref();
    launched.launcher.unref();
    this.emit('upgraded', { pid });
    void this.#stop('quiet', 0);
    return { upgraded: true, pid };
  }

  /** Ends the connection hand-over, if one runs: what is not passed stays here. @internal */
  async endHandover(): Promise<void> {
    const handover = this.handover;
    this.handover = undefined;
    await handover?.close();
  }

  async #endedBeforeReady(launched: Launched, pid: number): Promise<UpgradeResult> {
    const how = await Promise.race([launched.ended, new Promise<undefined>((resolve) => setTimeout(resolve, 1000))]);
    return this.#giveUp(launched, pid, this.#error('ERR_SD_SERVICE_EXITED', `the new process (pid ${pid}) ended before it was ready${how ? `: ${how}` : ''}`));
  }

  /**
   * The new process died at the switch, after MAINPID= was sent. If the manager took it, the
   * manager saw its main process die (it is the manager's child) and acts as for any crash; if the
   * pid was gone already, the manager refused it, and this process is still the main one. Either
   * way this one serves on, and says so.
   */
  #lostAtSwitch(launched: Launched, pid: number): UpgradeResult {
    const error = this.#error('ERR_SD_SERVICE_EXITED', `the new process (pid ${pid}) ended during the switch; this one serves on`);
    this.#sendQuietly({ READY: 1, STATUS: this.#statusWith(`upgrade to pid ${pid} failed: it ended during the switch`) });
    void this.endHandover();
    launched.channel.destroy();
    launched.control.destroy();
    this.#current = undefined;
    this.#failed(pid, error);
    this.prepareSoon();
    return { upgraded: false, pid, error };
  }

  /** Before the switch: the new process (if any) is rolled back, and this one serves on as the main process. */
  async #giveUp(launched: Launched | undefined, pid: number | undefined, error: SystemdError): Promise<UpgradeResult> {
    await this.endHandover();
    if (launched) await rollBack(launched, this.#options.stopTimeoutMs ?? 10_000);
    this.#current = undefined;
    if (this.#role === 'main') this.#sendQuietly({ READY: 1, STATUS: this.#statusWith(`upgrade${pid ? ` to pid ${pid}` : ''} failed: ${error.message.split('\n')[0]}`) });
    this.#failed(pid, error);
    this.prepareSoon();
    return { upgraded: false, pid, error };
  }

  /** Starts the launcher of the next upgrade a moment from now, once this process has settled. */
  prepareSoon(): void {
    setTimeout(() => {
      if (this.#role === 'main' && !this.#upgrading && process.env[WORKER_VARIABLE] === undefined) this.#next.prepare((error) => this.#warn(error));
    }, 1000).unref();
  }

  #stop(how: 'main' | 'quiet', exitCode: number): Promise<void> {
    if (this.#stopping) return this.#stopping;
    const wasMain = this.#role === 'main';
    this.#role = 'stopping';
    this.#queued?.resolve({ upgraded: false, pid: undefined, error: this.#error('ERR_SD_UPGRADE_FAILED', 'cannot upgrade: this process is stopping') });
    this.#queued = undefined;
    // The signal handlers stay until the exit: a second SIGTERM (systemd sends one to every
    // process of the unit on a stop) must not kill a process that is finishing its requests.
    this.#stopping = runStop({
      notifyStopping: how === 'main' && wasMain ? () => this.#send({ STOPPING: 1, STATUS: 'Stopping' }) : undefined,
      before: async () => {
        this.#next.discard();
        this.handover?.closeBusyAfter((this.#options.stopTimeoutMs ?? 10_000) / 2);
        // A new process not handed over to yet is rolled back (the upgrade sees the role change).
        const current = this.#current;
        const upgrading = this.#upgrading;
        if (current && upgrading) {
          void current.channel.send({ ROLLBACK: 1 });
          signalGroup(current.launcher, 'SIGTERM');
          await upgrading;
        }
      },
      drain: this.#drain,
      stopTimeoutMs: this.#options.stopTimeoutMs ?? 10_000,
      // Every release must reach the new process before this one exits.
      after: () => this.endHandover(),
      onStop: this.#options.onStop,
      watchdog: this.#options.watchdog,
      dispose: () => this.dispose(),
      exit: this.#options.exit ?? true,
      exitCode,
      warn: (error) => this.#warn(error),
    });
    return this.#stopping;
  }

  /** @internal The new process is the main process now (upgrade-successor.ts): what was queued for then runs. */
  becameMain(): void {
    if (this.#role !== 'pending') return;
    this.#role = 'main';
    this.#main = true;
    for (const error of this.#core.becameMain()) this.#warn(error);
    this.#runQueued();
  }

  /** @internal The old process rolled back: this one stops, and says why. */
  rolledBack(): Promise<void> {
    return this.#stop('quiet', 1);
  }
}
