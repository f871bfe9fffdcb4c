/*
 * The engine of `sd-activate run` and `sd-activate/testing`: what systemd does around a service.
 *
 * The sockets are opened here once, outside the event loop, and stay open across restarts, so a
 * client that connects while the service is down waits in the backlog instead of being refused.
 * The service's notify messages come in on a NOTIFY_SOCKET of our own (notify-socket.ts). One
 * running process and its timers is a ServiceInstance (instance.ts); Result= and Restart= are
 * policy.ts; the fd store fd-store.ts; adopted main processes subreaper.ts.
 */
import { quote } from '../core/quote.js';
import { EventEmitter } from 'node:events';
import type { FSWatcher } from 'node:fs';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SystemdError } from '../core/errors.js';
import { acceptLoop, remoteVariables, type AcceptHost } from './accept.js';
import { FdStore } from './fd-store.js';
import { ServiceInstance } from './instance.js';
import { Membership } from './membership.js';
import { parseListenSpec, type ListenSpec } from './listen-spec.js';
import { closeListener, openListeners, type OpenedListener } from './listeners.js';
import { hostIsBooted, sdBootedCommand } from './namespace.js';
import { openNotifySocket, type NotifySocket } from './notify-socket.js';
import { DEFAULT_RESTART_MS, DEFAULT_TIMEOUT_MS, exitCodeOf, exitOf, rateLimitBelow, START_LIMIT, TRIGGER_LIMIT } from './policy.js';
import { endGroups, leftoverGroups, signalGroups } from './processes.js';
import { ReadinessWaiter } from './readiness.js';
import { resolveCommand, spawnService } from './service-process.js';
import { Subreaper } from './subreaper.js';
import { notifyAccessOf, validate, type ServiceExit, type StoredFd, type SupervisorEvents, type SupervisorOptions, type SupervisorResult } from './supervisor-options.js';
import { Wakeable } from './wake.js';
import { watchPath } from './watch.js';

export type { ExitResult, RestartPolicy } from './policy.js';
export { RESTART_POLICIES } from './policy.js';
export type { NotifyAccess, ServiceExit, StoredFd, SupervisorEvents, SupervisorOptions, SupervisorResult } from './supervisor-options.js';

/**
 * Runs a command the way systemd runs a socket-activated service: sockets opened once, passed at
 * fd 3+ with LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID, a NOTIFY_SOCKET, restarts, a watchdog, an fd store.
 *
 * ```ts
 * const supervisor = new Supervisor({ command: 'node', args: ['server.js'], listen: ['web=tcp:127.0.0.1:0'], type: 'notify' });
 * const listeners = await supervisor.start(); // ... await supervisor.stop();
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
  /** What is exec'd: the command, or unshare(1) around it for `sdBooted`. */
  private argv: { command: string; args: string[] } = { command: '', args: [] };
  private opened: OpenedListener[] = [];
  private receiver: NotifySocket | undefined;
  private waiter: ReadinessWaiter | undefined;
  private readonly store: FdStore;
  private readonly subreaper: Subreaper;
  private watchers: FSWatcher[] = [];
  private readonly instances = new Set<ServiceInstance>();
  private main: ServiceInstance | undefined;
  /** Ended instances kept a little longer: their last messages may still be in the notify socket's queue. */
  private readonly recent: ServiceInstance[] = [];
  private stopping = false;
  /** Stopped on request (stop(), Ctrl-C): a success, as `systemctl stop` is, unless it needed SIGKILL. */
  private stopRequested = false;
  /** A stop that needed SIGKILL: Result=timeout, a failure. */
  private stopTimedOut = false;
  private crashed = false;
  private started = false;
  private restarts = 0;
  private readonly sleeper = new Wakeable();
  private lastExit: ServiceExit | undefined;
  private failure: SystemdError | undefined;
  private resolveDone!: (result: SupervisorResult) => void;
  /** Resolves once the supervisor has ended and closed everything. Never rejects. */
  readonly done: Promise<SupervisorResult>;

  /**
   * @throws TypeError for options that are not valid
   * @throws SystemdError `ERR_SD_LISTEN_SPEC_INVALID` for a `listen` string that cannot be parsed
   */
  constructor(options: SupervisorOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new TypeError('Supervisor options must be an object');
    this.specs = (options.listen ?? []).map((spec) => (typeof spec === 'string' ? parseListenSpec(spec) : spec));
    validate(options, this.specs);
    this.options = { ...options };
    this.host.timeoutStopMs = options.timeoutStopMs ?? DEFAULT_TIMEOUT_MS;
    const warn = (error: Error): void => void this.emit('warning', error);
    this.store = new FdStore(options.fdStoreMax ?? 0, warn);
    this.subreaper = new Subreaper(options.subreaper ?? false, (instance, code, signal) => this.end(instance, code, signal), warn);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** The open sockets (after {@link start}). */
  get sockets(): readonly OpenedListener[] {
    return this.opened;
  }

  /** NOTIFY_SOCKET as the service sees it, once started (undefined when NotifyAccess= is none, as by default for Type=simple). */
  get notifySocket(): string | undefined {
    return this.receiver?.address;
  }

  /** The pid of the main service process, if one runs (MAINPID= moves it). */
  get mainPid(): number | undefined {
    return this.main?.mainPid;
  }

  /** The fds in the fd store, in the order they are passed. */
  get fdStore(): readonly StoredFd[] {
    return this.store.fds;
  }

  /** What the instances are told: TimeoutStopSec=, and where their events go. */
  private readonly host = {
    timeoutStopMs: 0,
    emit: <K extends keyof SupervisorEvents>(event: K, ...args: SupervisorEvents[K]): boolean => (this.emit as (event: K, ...args: unknown[]) => boolean)(event, ...args),
  };

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
      const args = [...(this.options.args ?? [])];
      this.argv = this.options.sdBooted && !hostIsBooted() ? sdBootedCommand(this.command, args, env.PATH) : { command: this.command, args };
      this.subreaper.enable(() => this.instances);
      this.opened = openListeners(this.specs, cwd);
      const notifyAccess = notifyAccessOf(this.options);
      const members = new Membership({ instances: this.instances, recent: this.recent, spawned: this.subreaper.spawned, main: () => this.main, notifyAccess, options: this.options });
      if (notifyAccess !== 'none') this.receiver = openNotifySocket({ members, store: this.store, notifyAccess, emit: this.host.emit });
      if (this.options.lazy || this.options.accept) this.waiter = new ReadinessWaiter();
      const onChange = (path: string): void => {
        if (this.stopping) return;
        this.emit('change', { path });
        this.restart();
      };
      this.watchers = (this.options.watch ?? []).map((path) => watchPath(path, onChange, (error) => this.emit('warning', error)));
    } catch (error) {
      this.cleanup();
      void this.waiter?.close();
      void this.store.close();
      this.resolveDone({ exitCode: 1, lastExit: undefined, error: error instanceof SystemdError ? error : undefined });
      throw error;
    }
    this.emit('listening', this.opened);
    const fds = this.opened.map((l) => l.fd);
    const loop = this.options.accept ? acceptLoop(fds, this.options.maxConnections ?? 64, this.acceptHost()) : this.mainLoop();
    loop.then(
      () => void this.finish(),
      (error: unknown) => {
        this.emit('warning', new Error(`supervisor failed: ${(error as Error).message}`, { cause: error }));
        this.crashed = true;
        if (error instanceof SystemdError) this.failure ??= error;
        void this.finish();
      },
    );
    return this.opened;
  }

  /**
   * Stops: SIGTERM to every service process (SIGKILL after `timeoutStopMs`), then closes the
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
      for (const instance of this.instances) instance.terminate('stop', 'SIGTERM');
    }
    return this.done;
  }

  /** Sends `signal` to every service process now (`systemctl kill`): SIGKILL after a second Ctrl-C. */
  kill(signal: NodeJS.Signals): void {
    for (const instance of this.instances) {
      if (!instance.ended) {
        instance.signal(signal);
        continue;
      }
      // Its main process is gone and it waits for what it left running (killLeftovers()): that too.
      signalGroups(new Set([instance.pid, instance.mainPid]), signal);
    }
  }

  /** Restarts the service now (what a watched change does); the sockets stay open. */
  restart(): void {
    if (this.stopping || !this.started) return;
    if (this.main) this.main.terminate('restart', 'SIGTERM');
    else this.wakeUp();
  }

  /** What the Accept=yes loop sees of this supervisor. */
  private acceptHost(): AcceptHost {
    const self = this;
    return {
      get stopping() {
        return self.stopping;
      },
      running: () => this.instances.size,
      readable: (fds) => this.waiter!.wait(fds),
      startFor: (connection) => this.spawn([connection], ['connection'], true),
      emit: this.host.emit,
    };
  }

  /** Accept=no: one main service, started (again) as Restart=, --lazy and --watch say. */
  private async mainLoop(): Promise<void> {
    const triggers = { begin: 0, count: 0 };
    const starts = { begin: 0, count: 0 };
    const intervalMs = this.options.startLimitIntervalMs ?? START_LIMIT.intervalMs;
    const burst = this.options.startLimitBurst ?? START_LIMIT.burst;
    let watchedChange = false;
    for (;;) {
      if (this.stopping) return;
      if (this.options.lazy) {
        if (!(await this.waitForTrigger())) continue;
        if (!rateLimitBelow(triggers, TRIGGER_LIMIT.intervalMs, TRIGGER_LIMIT.burst, performance.now())) {
          // A service that exits without taking the connection would otherwise be started in a tight loop.
          this.failure = new SystemdError(
            'ERR_SD_SERVICE_EXITED',
            `the sockets were triggered ${triggers.count} times within ${TRIGGER_LIMIT.intervalMs / 1000}s and the service did not take the connections; giving up (TriggerLimitBurst=)`,
          );
          return;
        }
      }
      if (!watchedChange && !rateLimitBelow(starts, intervalMs, burst, performance.now())) {
        this.failure = new SystemdError(
          'ERR_SD_START_LIMIT_HIT',
          `${basename(this.command)} was started ${burst} times within ${intervalMs / 1000}s and is not started again ` +
            `(StartLimitBurst=, StartLimitIntervalSec=; in sd-activate run: --start-limit-burst, --start-limit-interval)`,
        );
        return;
      }
      watchedChange = false;
      const stored = this.store.fds;
      const instance = this.spawn([...this.opened.map((l) => l.fd), ...stored.map((s) => s.fd)], [...this.opened.map((l) => l.spec.name), ...stored.map((s) => s.name)], false);
      this.main = instance;
      const exit = await instance.exited;
      this.main = undefined;
      if (this.stopping) return;
      if (exit.restarting) {
        watchedChange = instance.killedFor === 'restart';
        if (watchedChange) continue;
        await this.sleep(this.options.restartMs ?? DEFAULT_RESTART_MS);
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

  private spawn(fds: number[], names: string[], connection: boolean): ServiceInstance {
    // StandardInput=socket: the one socket (or connection) at 0 and 1, and nothing at 3+.
    const inetd = this.options.standardInput === 'socket' ? fds[0] : undefined;
    const child = spawnService({
      ...this.argv,
      fds: inetd === undefined ? fds : [],
      names: inetd === undefined ? names : [],
      env: this.options.env ?? process.env,
      cwd: this.options.cwd,
      stdio: this.options.stdio ?? 'inherit',
      notifySocket: this.receiver?.address,
      watchdogUsec: this.options.watchdogMs === undefined ? undefined : Math.round(this.options.watchdogMs * 1000),
      inetd,
      set: connection ? remoteVariables(fds[0]!) : undefined,
      fdStoreMax: this.options.fdStoreMax,
    });
    const instance = new ServiceInstance(child, connection, this.options.watchdogMs ?? 0, this.host);
    const { pid } = instance;
    this.instances.add(instance);
    if (pid !== 0) this.subreaper.spawned.add(pid);
    for (const stream of ['stdout', 'stderr'] as const) {
      child[stream]?.on('data', (data: Buffer) => this.emit('output', { pid, stream, data }));
    }
    child.on('exit', (code, signal) => {
      this.subreaper.spawned.delete(pid);
      // Deferred to the check phase: a notify message sent just before the exit (an FDSTORE=1, a
      // STOPPING=1) is then handled first, as systemd reads its notify socket before SIGCHLD.
      setImmediate(() => {
        if (instance.mainPid === pid) this.end(instance, code, signal);
        else this.subreaper.mainOutlived(instance, code, signal);
      });
    });
    child.on('error', (error) => {
      this.emit('warning', new Error(`cannot start ${quote(this.options.command)}: ${error.message}`, { cause: error }));
      this.end(instance, 127, null);
    });
    if (pid === 0) return instance; // 'error' follows
    this.emit('spawn', { pid, fds: fds.length, stored: connection ? 0 : this.store.fds.length, connection });
    if ((this.options.type ?? 'simple') === 'notify') instance.armStartTimeout(this.options.timeoutStartMs ?? DEFAULT_TIMEOUT_MS);
    else instance.becomeReady();
    return instance;
  }

  /** The main process of `instance` has ended: Result=, Restart=, once what it left running is gone too. */
  private end(instance: ServiceInstance, code: number | null, signal: NodeJS.Signals | null): void {
    if (instance.ended) return;
    instance.ended = true;
    instance.clearTimers();
    this.recent.push(instance);
    if (this.recent.length > 16) this.recent.shift();
    // The service has ended once what it left running has too (stop() waits for it as well).
    void this.killLeftovers(instance).then((killed) => {
      this.instances.delete(instance);
      const exit = exitOf(instance, code, signal, { leftoversKilled: killed, stopping: this.stopping, restart: this.options.restart, restartMs: this.options.restartMs });
      const { connection, restarting, restartDelayMs } = exit;
      if (!connection) this.lastExit = exit;
      if (this.stopRequested && exit.result === 'timeout') this.stopTimedOut = true;
      this.emit('exit', exit);
      if (restarting) {
        this.restarts++;
        this.emit('restart', { reason: instance.killedFor === 'restart' ? 'watch' : 'exit', delayMs: restartDelayMs ?? 0, count: this.restarts });
      }
      instance.settle(exit);
    });
  }

  /**
   * KillMode=control-group, as far as process groups reach (there are no cgroups here): once the
   * main process is gone, what still runs in the process groups of the service's processes gets
   * SIGTERM, then SIGKILL after `timeoutStopMs`. Resolves true when SIGKILL was needed. Without
   * `subreaper`, a process that left the tree (its parent exited) and its group escapes.
   */
  private async killLeftovers(instance: ServiceInstance): Promise<boolean> {
    const groups = leftoverGroups(instance.pid, instance.mainPid, Boolean(this.options.subreaper && !this.options.accept));
    if (groups.length === 0) return false;
    return endGroups(groups, this.host.timeoutStopMs, (signal) => this.emit('leftovers', { pid: instance.mainPid, groups, signal }));
  }

  /** Waits `ms` (Infinity: until woken), or less when woken by stop(), restart() or an instance's end. */
  private sleep(ms: number): Promise<void> {
    return this.stopping ? Promise.resolve() : this.sleeper.sleep(ms);
  }

  private wakeUp(): void {
    this.sleeper.wake();
  }

  private async finish(): Promise<void> {
    this.stopping = true;
    this.waiter?.cancel();
    for (const instance of this.instances) instance.terminate('stop', 'SIGTERM');
    await Promise.all([...this.instances].map((i) => i.exited));
    await this.waiter?.close();
    await this.store.close();
    this.cleanup();
    const last = this.lastExit;
    const exitCode = this.failure || this.crashed || this.stopTimedOut ? 1 : this.stopRequested || !last ? 0 : exitCodeOf(last);
    const result: SupervisorResult = { exitCode, lastExit: last, error: this.failure };
    this.emit('stopped', result);
    this.resolveDone(result);
  }

  private cleanup(): void {
    this.subreaper.disable();
    for (const watcher of this.watchers.splice(0)) watcher.close();
    this.receiver?.close();
    for (const listener of this.opened) closeListener(listener, this.options.removeOnStop);
  }
}
