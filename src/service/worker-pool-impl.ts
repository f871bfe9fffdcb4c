import type { ChildProcess } from 'node:child_process';
import { events } from '../core/builtins.js';
import { ownArguments } from '../core/runtime.js';
import { LIFELINE_FD_VARIABLE, LIFELINE_PID_VARIABLE, POOL_FD_VARIABLE, POOL_HANDOVER_VARIABLE, WORKER_VARIABLE } from '../core/variables.js';
import { execActivated, signalGroup } from '../shared/exec.js';
import { NotifyReceiver, type NotifyMessage } from '../shared/notify-receiver.js';
import { HandoverChannel } from './handover-channel.js';
import type { Internals } from './internals.js';
import { POOL_LINK, type PoolLink, type PoolWorker } from './pool-link.js';
import type { WorkerInfo, WorkerPoolEvents, WorkerPoolOptions } from './worker-pool-types.js';
import { list, quote } from '../core/quote.js';

/*
 * N processes serving the same listening sockets. The primary (the service's main process) never
 * serves them itself: it holds the fds outside its event loop and starts each worker the way a
 * service manager starts a service, with the fds at 3+, LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID,
 * and a NOTIFY_SOCKET of its own. So a worker is an ordinary socket-activated Type=notify
 * program (listen(), upgrader()), and the kernel hands each connection or datagram to one of the
 * workers waiting on the socket. One more fd after the sockets ends when the primary does, however
 * it ends: upgrader() in a worker stops it then. One more, a seqpacket channel to this process,
 * carries what the connection hand-over of an upgrade needs (pool-handover.ts): a worker whose
 * upgrader() takes part says so on it first.
 *
 * node:cluster is not used: its primary accepts every connection itself and passes it on
 * (round-robin scheduling), and LISTEN_PID cannot name a worker it forks.
 */

interface Worker extends WorkerInfo {
  child: ChildProcess;
  exited: Promise<void>;
  onReady: (() => void) | undefined;
  /** This end of its pool channel, until it exits. */
  channel: HandoverChannel;
  /** It said on its channel that it takes part in hand-overs. */
  handsOver: boolean;
}

/** The rest of the library, as workerPool() hands it over (see internals.ts). */
let core: Internals;

function checkOptions(options: WorkerPoolOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (!Number.isInteger(options.size) || options.size < 1 || options.size > 1024) throw new TypeError('options.size must be a whole number from 1 to 1024');
  for (const key of ['readyTimeoutMs', 'stopTimeoutMs', 'restartMs'] as const) {
    const v = options[key];
    const least = key === 'readyTimeoutMs' ? 1 : 0;
    if (v !== undefined && !(typeof v === 'number' && v >= least && v <= 0x7fffffff)) throw new TypeError(`options.${key} must be a number of milliseconds${least ? ' above 0' : ''}`);
  }
  if (options.command !== undefined && (typeof options.command !== 'string' || options.command === '')) throw new TypeError('options.command must be a non-empty string');
  if (options.args !== undefined && (!Array.isArray(options.args) || options.args.some((a) => typeof a !== 'string'))) {
    throw new TypeError('options.args must be an array of strings');
  }
  if (options.names !== undefined && (!Array.isArray(options.names) || options.names.some((n) => typeof n !== 'string'))) {
    throw new TypeError('options.names must be an array of names');
  }
}

/** What workerPool() returns (the WorkerPool interface of worker-pool.ts), loaded with the first workerPool(). */
export class WorkerPoolProcess extends events.EventEmitter<WorkerPoolEvents> {
  readonly #options: WorkerPoolOptions;
  readonly #receiver: NotifyReceiver;
  readonly #fds: number[];
  readonly #names: string[];
  readonly #workers: Array<Worker | undefined>;
  #closing: Promise<void> | undefined;
  #started = false;
  readonly #restartTimers = new Set<NodeJS.Timeout>();
  /** Workers started now get connections of the upgrade that started this process, until it is over. */
  #expecting: boolean;

  constructor(options: WorkerPoolOptions) {
    super();
    this.#options = options;
    // The workers must never see this process's upgrade channel, nor its own lifeline if it is a worker.
    const upgrade = core.upgradeChannel();
    core.workerLifeline();
    core.poolChannel();
    this.#expecting = upgrade?.handover != null && core.handoverPending();
    const held = core.heldFds().filter((f) => options.names === undefined || options.names.includes(f.name));
    if (held.length === 0) {
      throw new core.SystemdError('ERR_SD_FD_NOT_FOUND', `a worker pool needs sockets to share; this process holds ${options.names ? `none named ${list(options.names.map(quote))}` : 'none'}`);
    }
    this.#fds = held.map((f) => f.fd);
    this.#names = held.map((f) => f.name);
    // Abstract, so there is no file to clean up; only the workers' messages count (their pids are checked).
    this.#receiver = new NotifyReceiver(`@sd-activate/pool/${process.pid}/${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`);
    this.#receiver.on('message', (message) => this.#onNotify(message));
    this.#receiver.on('error', (error) => this.#warn(error));
    this.#receiver.on('dropped', ({ bytes, pid, maxMessageBytes }) =>
      this.#warn(new Error(`a notify message of ${bytes} bytes from pid ${pid} was dropped: more than ${maxMessageBytes}, as systemd drops it (further ones are dropped silently)`)),
    );
    this.#workers = new Array<Worker | undefined>(options.size).fill(undefined);
  }

  /** The workers running now. */
  get workers(): readonly WorkerInfo[] {
    return this.#workers.filter((w): w is Worker => w !== undefined).map(({ index, pid, ready }) => ({ index, pid, ready }));
  }

  /** The pids of the workers running now. */
  get pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  #warn(error: Error): void {
    if (this.listenerCount('warning') > 0) this.emit('warning', error);
    else process.emitWarning(error);
  }

  /** Starts every worker; resolves once all are ready. */
  async start(): Promise<void> {
    try {
      await Promise.all(this.#workers.map((_, index) => this.#spawn(index)));
      this.#started = true;
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  #spawn(index: number): Promise<void> {
    // One more fd after the sockets: the worker sees its end of file when this process is gone,
    // however it went, and stops (upgrader() watches it). Not one of LISTEN_FDS. Then its pool channel.
    const lifelineFd = 3 + this.#fds.length;
    const [ours, theirs] = core.native().seqpacketPair();
    let child: ChildProcess;
    try {
      child = execActivated({
        command: this.#options.command ?? process.execPath,
        args: this.#options.args ?? ownArguments('a worker pool'),
        listenFds: this.#fds,
        listenNames: this.#names,
        extraFds: ['pipe', theirs],
        env: this.#options.env ?? process.env,
        set: {
          NOTIFY_SOCKET: this.#receiver.address,
          [WORKER_VARIABLE]: String(index),
          [LIFELINE_FD_VARIABLE]: String(lifelineFd),
          [POOL_FD_VARIABLE]: String(lifelineFd + 1),
          ...(this.#expecting ? { [POOL_HANDOVER_VARIABLE]: '1' } : {}),
        },
        pidVariables: [LIFELINE_PID_VARIABLE],
        cwd: this.#options.cwd,
        stdin: 'inherit',
        output: 'inherit',
      });
    } catch (error) {
      core.native().close(ours);
      throw error;
    } finally {
      core.native().close(theirs);
    }
    const channel = new HandoverChannel(ours);
    // It never keeps this process alive, and a worker that dies ends it: its exit says the rest.
    channel.ref(false);
    channel.on('error', () => undefined);
    const lifeline = child.stdio[lifelineFd] as import('node:net').Socket | null;
    lifeline?.on('error', () => undefined);
    lifeline?.unref();
    const pid = child.pid ?? 0;
    let ready!: () => void;
    let failed!: (error: Error) => void;
    const readyPromise = new Promise<void>((resolve, reject) => {
      ready = resolve;
      failed = reject;
    });
    const timeoutMs = this.#options.readyTimeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      failed(new core.SystemdError('ERR_SD_START_TIMEOUT', `worker ${index} (pid ${pid}) sent no READY=1 within ${timeoutMs} ms`));
      signalGroup(child, 'SIGKILL');
    }, timeoutMs);
    const worker: Worker = {
      index,
      pid,
      ready: false,
      child,
      channel,
      handsOver: false,
      onReady: () => {
        clearTimeout(timer);
        ready();
      },
      exited: new Promise((resolve) => {
        child.once('exit', (code, sig) => {
          clearTimeout(timer);
          // Its last messages may still be queued: READY=1 read after the exit must not count.
          worker.onReady = undefined;
          channel.close();
          if (this.#workers[index] === worker) this.#workers[index] = undefined;
          const restarting = this.#closing === undefined && (worker.ready || this.#started);
          failed(new core.SystemdError('ERR_SD_SERVICE_EXITED', `worker ${index} (pid ${pid}) ${sig ? `was killed by ${sig}` : `exited with status ${code}`} before READY=1`));
          this.emit('exit', { index, pid, code, signal: sig, restarting });
          if (restarting) this.#restart(index);
          resolve();
        });
      }),
    };
    child.once('error', (error) => {
      clearTimeout(timer);
      channel.close();
      failed(new core.SystemdError('ERR_SD_SERVICE_EXITED', `worker ${index} could not be started: ${error.message}`, { cause: error }));
    });
    channel.on('message', (message, fds) => {
      for (const fd of fds) core.native().close(fd);
      if ((message as { t?: unknown } | null)?.t === 'hello') worker.handsOver = true;
    });
    this.#workers[index] = worker;
    return readyPromise;
  }

  /** What the connection hand-over of an upgrade needs of this pool (pool-link.ts). @internal */
  get [POOL_LINK](): PoolLink {
    return {
      workers: (): PoolWorker[] =>
        this.#workers.filter((w): w is Worker => w !== undefined && w.ready && w.handsOver && w.child.exitCode === null).map(({ index, pid, channel }) => ({ index, pid, channel })),
      over: (): void => {
        this.#expecting = false;
        for (const w of this.#workers) if (w) w.channel.send({ t: 'over' }).catch(() => undefined);
      },
    };
  }

  #restart(index: number): void {
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (this.#closing) return;
      this.#spawn(index).catch((error: Error) => this.#warn(error));
    }, this.#options.restartMs ?? 100);
    this.#restartTimers.add(timer);
  }

  #onNotify(message: NotifyMessage): void {
    for (const fd of message.fds) {
      try {
        core.native().close(fd);
      } catch {
        // already closed
      }
    }
    const worker = this.#workers.find((w) => w?.pid === message.pid);
    if (!worker) return;
    if (message.fields.get('READY') === '1' && !worker.ready && worker.onReady) {
      worker.ready = true;
      worker.onReady();
      this.emit('ready', { index: worker.index, pid: worker.pid, ready: true });
    }
  }

  /**
   * Stops every worker: SIGTERM (each finishes what it serves), SIGKILL after `stopTimeoutMs`.
   * Resolves (and calls `callback`) once all have exited. Idempotent.
   */
  close(callback?: (error?: Error) => void): Promise<void> {
    this.#closing ??= (async () => {
      for (const timer of this.#restartTimers) clearTimeout(timer);
      this.#restartTimers.clear();
      const workers = this.#workers.filter((w): w is Worker => w !== undefined);
      for (const w of workers) signalGroup(w.child, 'SIGTERM');
      const killer = setTimeout(() => {
        for (const w of workers) signalGroup(w.child, 'SIGKILL');
      }, this.#options.stopTimeoutMs ?? 10_000);
      await Promise.all(workers.map((w) => w.exited));
      clearTimeout(killer);
      this.#receiver.close();
    })();
    if (callback) this.#closing.then(() => callback(), callback);
    return this.#closing;
  }
}

/** What workerPool() does, once this module is loaded. */
export async function startWorkerPool(options: WorkerPoolOptions, internals: Internals): Promise<WorkerPoolProcess> {
  core = internals;
  checkOptions(options);
  const pool = new WorkerPoolProcess(options);
  await pool.start();
  return pool;
}
