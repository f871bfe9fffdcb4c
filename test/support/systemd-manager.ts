import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../../src/native/addon.js';

/*
 * A private, real systemd user manager for tests, on a machine whose PID 1 is not systemd.
 *
 * systemd --user refuses to start unless /run/systemd/system exists (sd_booted()). The manager is
 * started in its own mount namespace with a tmpfs over /run/systemd, so that flag exists for it
 * alone. Its runtime dir is a fresh temp dir: units go in $dir/systemd/user, and systemctl talks to
 * it over $dir/systemd/private. Services it starts run as the caller, in that mount namespace,
 * which is how stop() finds whatever is left of them.
 */

const SYSTEMD = '/lib/systemd/systemd';
/*
 * Run by sh inside the new mount namespace; $1 is the log FIFO. A manager logs to /dev/console
 * only when it is a tty, to the journal only over a datagram socket, or to /dev/kmsg: with a FIFO
 * bind-mounted over /dev/kmsg (in this namespace alone) its log comes to this process, which
 * appends it to manager.log, and the host's kernel log is left alone.
 */
const MANAGER_SCRIPT = [
  'mount -t tmpfs none /run/systemd && mkdir /run/systemd/system || exit 1',
  'mount --bind "$1" /dev/kmsg || { echo "no manager log: cannot bind a FIFO over /dev/kmsg" >&2; export SYSTEMD_LOG_TARGET=null; }',
  'exec /lib/systemd/systemd --user',
].join('\n');

/** What one systemctl run said. */
export interface SystemctlResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when it was killed (timeout). */
  code: number | null;
}

/** Options of {@link SystemdManager.start}. */
export interface SystemdManagerOptions {
  /** How long the manager may take to answer on its private bus (default 15 s). */
  startTimeoutMs?: number;
  /** How long one systemctl run may take (default 20 s). */
  systemctlTimeoutMs?: number;
}

const live = new Set<SystemdManager>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // mocha --exit ends the process without running pending after hooks when it is interrupted:
  // leave no manager (nor its services) behind in that case either.
  process.on('exit', () => {
    for (const manager of live) manager.killSync();
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function mountNamespaceOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return null;
  }
}

/**
 * A systemd user manager of its own: start it with {@link SystemdManager.start}, always
 * {@link SystemdManager.stop} it in an after hook.
 */
export class SystemdManager {
  /** XDG_RUNTIME_DIR of the manager (mode 0700); removed by stop(). */
  readonly dir: string;
  /** Where installUnit() writes units: $dir/systemd/user, on the manager's search path. */
  readonly unitDir: string;
  /** The manager's log (level info, `<priority>systemd[pid]: text` lines) and its stdout/stderr. */
  readonly logPath: string;
  readonly #child: ChildProcess;
  readonly #systemctlTimeoutMs: number;
  #logReader: Socket | null = null;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  #exited: Promise<void>;
  #namespace: string | null = null;
  #stopped = false;

  private constructor(dir: string, child: ChildProcess, systemctlTimeoutMs: number) {
    this.dir = dir;
    this.unitDir = join(dir, 'systemd', 'user');
    this.logPath = join(dir, 'manager.log');
    this.#child = child;
    this.#systemctlTimeoutMs = systemctlTimeoutMs;
    this.#exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve();
      });
      child.on('error', (error) => {
        this.#exit = { code: null, signal: null };
        appendLog(this.logPath, `\nspawn failed: ${error.message}\n`);
        resolve();
      });
    });
  }

  /** The pid of the manager (the spawned process execs into systemd). */
  get pid(): number {
    return this.#child.pid ?? -1;
  }

  /** True while the manager process has not exited. */
  get running(): boolean {
    return this.#exit === null;
  }

  /**
   * Starts a fresh manager and resolves once `systemctl --user show -p Version` answers.
   *
   * @throws Error when systemd or unshare is missing, or the manager does not answer in time
   *   (the message carries the manager log); nothing is left behind in that case.
   */
  static async start(options: SystemdManagerOptions = {}): Promise<SystemdManager> {
    const startTimeoutMs = options.startTimeoutMs ?? 15000;
    if (!existsSync(SYSTEMD)) throw new Error(`${SYSTEMD} is missing: systemd must be installed to run these tests`);
    // sd_booted() looks at /run/systemd/system; the mount point for the private tmpfs must exist on the host.
    mkdirSync('/run/systemd', { recursive: true });
    const dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    chmodSync(dir, 0o700);
    mkdirSync(join(dir, 'systemd', 'user'), { recursive: true });
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: dir, SYSTEMD_LOG_TARGET: 'kmsg', SYSTEMD_LOG_LEVEL: 'info' };
    // The user manager hands its own environment to every service: none of the caller's activation,
    // notify or bus variables may leak into them.
    for (const key of ['LISTEN_PID', 'LISTEN_PIDFDID', 'LISTEN_FDS', 'LISTEN_FDNAMES', 'NOTIFY_SOCKET', 'WATCHDOG_PID', 'WATCHDOG_USEC', 'DBUS_SESSION_BUS_ADDRESS', 'MANAGERPID', 'INVOCATION_ID']) {
      delete env[key];
    }
    const logPath = join(dir, 'manager.log');
    const fifo = join(dir, 'log.fifo');
    let logReader: Socket;
    let child: ChildProcess;
    try {
      native().mkfifo(fifo, 0o600);
      // Read-write, so that the FIFO never reports EOF between writers and no writer's open blocks.
      const readFd = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
      logReader = new Socket({ fd: readFd, readable: true, writable: false });
      logReader.on('error', () => undefined);
      logReader.on('data', (chunk: Buffer) => appendLog(logPath, chunk));
      logReader.unref();
      const log = openSync(logPath, 'a');
      try {
        // Not detached: a process group leader would make setsid(1) fork, and the pid would no
        // longer be the manager's. setsid, unshare and sh all exec, so this pid ends up systemd.
        child = spawn('setsid', ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', MANAGER_SCRIPT, 'sh', fifo], {
          env,
          stdio: ['ignore', log, log],
        });
      } finally {
        closeSync(log);
      }
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    const manager = new SystemdManager(dir, child, options.systemctlTimeoutMs ?? 20000);
    manager.#logReader = logReader;
    live.add(manager);
    installExitHook();
    try {
      await manager.waitFor(
        async () => {
          if (!manager.running) throw new Error(`the manager exited early (${JSON.stringify(manager.#exit)})`);
          // Known as soon as unshare has run, so that stop() finds its services even if it never answers.
          const ns = mountNamespaceOf(manager.pid);
          if (ns !== null && ns !== mountNamespaceOf(process.pid)) manager.#namespace = ns;
          if (!existsSync(join(dir, 'systemd', 'private'))) return false;
          const version = await manager.systemctl('show', '-p', 'Version', '--value');
          return version.code === 0 && version.stdout.trim().length > 0;
        },
        startTimeoutMs,
        'the systemd user manager to answer on its private bus',
        { failFast: (error) => /exited early/.test(error.message) },
      );
      if (manager.#namespace === null) throw new Error(`the manager (pid ${manager.pid}) is not in a mount namespace of its own`);
    } catch (error) {
      await manager.stop();
      throw error;
    }
    return manager;
  }

  /** The manager log so far (empty string when there is none). */
  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Runs `systemctl --user ARGS` against this manager; never throws for a non-zero exit. */
  systemctl(...args: string[]): Promise<SystemctlResult> {
    return new Promise((resolve) => {
      execFile(
        'systemctl',
        ['--user', '--no-pager', ...args],
        {
          env: { ...process.env, XDG_RUNTIME_DIR: this.dir, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '', DBUS_SESSION_BUS_ADDRESS: undefined },
          timeout: this.#systemctlTimeoutMs,
          killSignal: 'SIGKILL',
          maxBuffer: 16 * 1024 * 1024,
        },
        (error, stdout, stderr) => {
          if (!error) return resolve({ stdout, stderr, code: 0 });
          const { code, killed, message } = error as { code?: unknown; killed?: boolean; message: string };
          if (killed) resolve({ stdout, stderr: `${stderr}\n(killed after ${this.#systemctlTimeoutMs} ms)`, code: null });
          else if (typeof code === 'number') resolve({ stdout, stderr, code });
          else resolve({ stdout, stderr: `${stderr}\n(${message})`, code: -1 });
        },
      );
    });
  }

  /**
   * Runs `systemctl --user ARGS` and resolves with its stdout.
   *
   * @throws Error on a non-zero exit, with systemctl's stderr and the manager log
   */
  async systemctlOk(...args: string[]): Promise<string> {
    const result = await this.systemctl(...args);
    if (result.code !== 0) {
      throw new Error(`systemctl --user ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}${this.logExcerpt()}`);
    }
    return result.stdout;
  }

  /** Writes a unit into $dir/systemd/user and reloads the manager. */
  async installUnit(name: string, text: string): Promise<void> {
    writeFileSync(join(this.unitDir, name), text.endsWith('\n') ? text : `${text}\n`);
    await this.systemctlOk('daemon-reload');
  }

  /** Writes several units, then reloads once. */
  async installUnits(units: Record<string, string>): Promise<void> {
    for (const [name, text] of Object.entries(units)) writeFileSync(join(this.unitDir, name), text.endsWith('\n') ? text : `${text}\n`);
    await this.systemctlOk('daemon-reload');
  }

  /**
   * The value of one property (`systemctl --user show -p PROPERTY --value UNIT`). A property that
   * is a list (Listen=) comes back one item per line.
   */
  async show(unit: string, property: string): Promise<string> {
    return (await this.systemctlOk('show', '-p', property, '--value', unit)).replace(/\n+$/, '');
  }

  /** The items of a list property, one per line of `show`, empty lines dropped. */
  async showList(unit: string, property: string): Promise<string[]> {
    return (await this.show(unit, property)).split('\n').filter((line) => line.length > 0);
  }

  /**
   * Polls `predicate` (every 50 ms) until it returns a truthy value, and resolves with it.
   *
   * @throws Error after `timeoutMs`, naming `what`, the last error the predicate threw and the manager log
   */
  async waitFor<T>(
    predicate: () => T | Promise<T>,
    timeoutMs: number,
    what = 'a condition',
    options: { failFast?: (error: Error) => boolean } = {},
  ): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        const value = await predicate();
        if (value) return value as Exclude<T, false | null | undefined | 0 | ''>;
        last = undefined;
      } catch (error) {
        last = error;
        if (options.failFast?.(error as Error)) break;
      }
      if (Date.now() >= deadline) break;
      await sleep(50);
    }
    const why = last === undefined ? '' : ` (last error: ${(last as Error).message ?? String(last)})`;
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${this.logExcerpt()}`);
  }

  /** The last `lines` lines of the manager log, headed, for error messages. */
  logExcerpt(lines = 60): string {
    const log = this.log().trim();
    if (!log) return `\n--- manager log (${this.logPath}) is empty`;
    const all = log.split('\n');
    return `\n--- manager log (${this.logPath}), last ${Math.min(all.length, lines)} lines:\n${all.slice(-lines).join('\n')}`;
  }

  /**
   * Makes the manager exit (`systemctl --user exit`: it stops its units first), kills it and
   * anything still running in its mount namespace when it does not, and removes its dir.
   * Safe to call more than once, and when start() failed half-way.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      if (this.running) {
        await this.systemctl('exit');
        await Promise.race([this.#exited, sleep(10000)]);
      }
      if (this.running) {
        this.#child.kill('SIGKILL');
        await Promise.race([this.#exited, sleep(5000)]);
      }
      this.#killNamespace();
      // What the last writers put in the FIFO is read on the next turns of the loop.
      await sleep(50);
    } finally {
      this.#logReader?.destroy();
      live.delete(this);
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** The synchronous last resort of the exit hook: SIGKILL, no waiting. */
  killSync(): void {
    if (this.running) {
      try {
        this.#child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    this.#killNamespace();
    this.#logReader?.destroy();
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** SIGKILLs, by pid, every process left in the manager's private mount namespace. */
  #killNamespace(): void {
    const ns = this.#namespace;
    if (ns === null || ns === mountNamespaceOf(process.pid)) return;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (pid === process.pid || mountNamespaceOf(pid) !== ns) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
  }
}

function appendLog(path: string, data: string | Buffer): void {
  try {
    appendFileSync(path, data);
  } catch {
    // the dir is gone already: the manager was stopped
  }
}
