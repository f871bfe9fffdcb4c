import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SystemdManager } from '../support/systemd-manager.js';

/*
 * Both managers side by side: a real systemd 252 user manager (test/support/systemd-manager.ts)
 * and `sd-activate run` through the package's bin, as users run it. Each describe() that calls
 * bothManagers() gets its own manager, temp dir and unit names, and leaves nothing behind: the
 * units it installed are stopped after each test, every `sd-activate run` it started is stopped
 * (and killed, with what it started, if it does not stop), and the dir goes with the manager.
 */

/** The package's bin (package.json "bin"), built into dist/pkg. */
export const BIN = fileURLToPath(new URL('../../pkg/cli/main.js', import.meta.url));
/** The programs of this suite kept as source: test/conformance/programs. */
export const PROGRAMS = fileURLToPath(new URL('../../../test/conformance/programs/', import.meta.url));
/** Debian's python3, whatever else PATH finds first: the python3-* packages are installed for it. */
export const PYTHON = '/usr/bin/python3';

/** The fd at which {@link ToolOptions.leakFd} opens a file in the `sd-activate` process itself. */
export const LEAKED_FD = 200;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One argument of ExecStart= as systemd reads it: quoted, with `%` (specifiers) and `$` (variables) taken literally. */
export function unitArg(text: string): string {
  return `"${text.replace(/%/g, '%%').replace(/\$/g, '$$$$').replace(/(["\\])/g, '\\$1')}"`;
}

/** An ExecStart= line running `argv` as is. */
export function execStart(argv: readonly string[]): string {
  return `ExecStart=${argv.map(unitArg).join(' ')}`;
}

/** A path in a unit file setting that takes one (StandardOutput=file:...): `%` taken literally. */
export function unitPath(path: string): string {
  return path.replace(/%/g, '%%');
}

export interface ToolOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** A file that `sd-activate` itself has open at fd 200 (not close-on-exec), as a shell's `exec 200<FILE` leaves it. */
  leakFd?: string;
}

/** A running `sd-activate` (the bin), its output collected. */
export class Tool {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: readonly string[], options: ToolOptions = {}) {
    const argv = [process.execPath, BIN, ...args];
    // exec keeps the pid: the child is sd-activate itself, with the file at fd 200 (bash: dash takes one-digit fds only).
    const [file, ...rest] = options.leakFd === undefined ? argv : ['/bin/bash', '-c', `exec ${LEAKED_FD}<"$0"; exec "$@"`, options.leakFd, ...argv];
    this.child = spawn(file!, rest, { cwd: options.cwd ?? tmpdir(), env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first match of `re` in stderr (or stdout), waiting up to `timeoutMs`. */
  async waitFor(re: RegExp, options: { stream?: 'stdout' | 'stderr'; timeoutMs?: number } = {}): Promise<RegExpExecArray> {
    const timeoutMs = options.timeoutMs ?? 15_000;
    const deadline = Date.now() + timeoutMs;
    const text = (): string => (options.stream === 'stdout' ? this.stdout : this.stderr);
    for (;;) {
      const match = re.exec(text());
      if (match) return match;
      if (!this.running) {
        await this.exited;
        const again = re.exec(text());
        if (again) return again;
        throw new Error(`sd-activate exited before ${re}${this.transcript()}`);
      }
      if (Date.now() > deadline) throw new Error(`no ${re} within ${timeoutMs} ms${this.transcript()}`);
      await sleep(20);
    }
  }

  /** The pid of the `n`th service process it reported starting ("started NAME (pid N)"), waiting for it. */
  async startedPid(n = 1): Promise<number> {
    const match = await this.waitFor(new RegExp(`(?:^sd-activate: started [^\\n]* \\(pid (\\d+)\\)[^]*?){${n}}`, 'm'));
    return Number(match[1]);
  }

  /** Every service pid it reported starting so far. */
  get startedPids(): number[] {
    return [...this.stderr.matchAll(/^sd-activate: started .* \(pid (\d+)\)/gm)].map((m) => Number(m[1]));
  }

  /** Ctrl-C (SIGINT), then its exit status; SIGKILL when it has not ended within `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill('SIGINT');
    const timer = setTimeout(() => this.kill(), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL to it and to the process group of every service process it started (each leads one). */
  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
    for (const pid of this.startedPids) {
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
  }

  /** Its output, for error messages. */
  transcript(): string {
    return `\n--- sd-activate stderr:\n${this.stderr}\n--- sd-activate stdout:\n${this.stdout}`;
  }
}

/** What `sd-activate run ARGS` did, to its end. */
export interface ToolRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** How many times it started the service ("started NAME (pid N)"). */
  starts: number;
  /** How many exits it followed with a restart ("; restarting in ..."), as NRestarts= counts them. */
  restarts: number;
}

/** The state of a unit as `systemctl show` gives it. */
export type Props = Record<string, string>;

export class Bench {
  manager!: SystemdManager;
  /** This describe's temp dir (removed after it). */
  dir!: string;
  readonly #prefix: string;
  readonly #tools: Tool[] = [];
  readonly #units: string[] = [];
  readonly #cleanups: Array<() => void> = [];
  #n = 0;

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** A unit name of this run alone: `sdact-conf-PREFIX-PID-N-SUFFIX`. */
  unit(suffix: string): string {
    return `sdact-conf-${this.#prefix}-${process.pid}-${++this.#n}-${suffix}`;
  }

  /** A path in the temp dir. */
  path(name: string): string {
    return join(this.dir, name);
  }

  /** A fresh dir in the temp dir. */
  subdir(name: string): string {
    return mkdtempSync(join(this.dir, `${name}-`));
  }

  /** Writes units (names to [Section] text), reloads the manager; they are stopped after the test. */
  async install(units: Record<string, string>): Promise<void> {
    this.#units.push(...Object.keys(units));
    await this.manager.installUnits(units);
  }

  /** Several properties of a unit at once. */
  async props(unit: string, ...names: string[]): Promise<Props> {
    const out = await this.manager.systemctlOk('show', ...names.map((n) => `-p${n}`), unit);
    const props: Props = {};
    for (const line of out.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) props[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return props;
  }

  /** Waits until `predicate` holds for the properties `names` of `unit`, and resolves with them. */
  async waitProps(unit: string, names: string[], predicate: (props: Props) => boolean, what: string, timeoutMs = 20_000): Promise<Props> {
    let last: Props = {};
    return this.manager.waitFor(
      async () => {
        last = await this.props(unit, ...names);
        return predicate(last) ? last : false;
      },
      timeoutMs,
      `${unit}: ${what} (last: ${JSON.stringify(last)})`,
    );
  }

  /** The main pid of a running unit. */
  async mainPid(unit: string): Promise<number> {
    return Number((await this.waitProps(unit, ['MainPID'], (p) => Number(p.MainPID) > 0, 'a main pid')).MainPID);
  }

  /** Starts `sd-activate ARGS` (stopped after the test). */
  tool(args: readonly string[], options: ToolOptions = {}): Tool {
    const tool = new Tool(args, options);
    this.#tools.push(tool);
    return tool;
  }

  /** Runs `sd-activate ARGS` to its end; killed, with what it started, after `timeoutMs`. */
  async runTool(args: readonly string[], options: ToolOptions & { timeoutMs?: number } = {}): Promise<ToolRun> {
    const tool = this.tool(args, options);
    const timer = setTimeout(() => tool.kill(), options.timeoutMs ?? 30_000);
    const { code, signal } = await tool.exited;
    clearTimeout(timer);
    return {
      code,
      signal,
      stdout: tool.stdout,
      stderr: tool.stderr,
      starts: tool.startedPids.length,
      restarts: tool.stderr.match(/; restarting in /g)?.length ?? 0,
    };
  }

  /** Something to undo after the test (a file outside the temp dir, a message queue). */
  defer(cleanup: () => void): void {
    this.#cleanups.push(cleanup);
  }

  /** @internal the hooks of bothManagers() */
  async setUp(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'sd-activate-conformance-'));
    try {
      this.manager = await SystemdManager.start();
    } catch (error) {
      rmSync(this.dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** @internal */
  async afterEach(): Promise<void> {
    await Promise.all(this.#tools.splice(0).map((tool) => tool.stop()));
    const units = this.#units.splice(0);
    if (units.length > 0 && this.manager.running) {
      await this.manager.systemctl('stop', ...units);
      await this.manager.systemctl('reset-failed', ...units);
    }
    for (const cleanup of this.#cleanups.splice(0).reverse()) {
      try {
        cleanup();
      } catch {
        // best effort: the next cleanup still runs
      }
    }
  }

  /** @internal */
  async tearDown(): Promise<void> {
    try {
      await this.afterEach();
    } finally {
      await this.manager?.stop();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/**
 * Call inside describe(): a systemd user manager and a temp dir for its tests, started before
 * them and stopped after them.
 */
export function bothManagers(prefix: string): Bench {
  const bench = new Bench(prefix);
  before(async function () {
    this.timeout(60_000);
    await bench.setUp();
  });
  afterEach(async function () {
    this.timeout(60_000);
    await bench.afterEach();
  });
  after(async function () {
    this.timeout(60_000);
    await bench.tearDown();
  });
  return bench;
}

/** Compiles a C program of test/conformance/programs against libsystemd into `dir`, once per dir. */
export function compileProgram(name: string, dir: string): string {
  const out = join(dir, name);
  if (!existsSync(out)) execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', out, join(PROGRAMS, `${name}.c`), '-lsystemd'], { stdio: 'inherit' });
  return out;
}

/** A file's text, or '' when it does not exist (yet). */
export function readIfExists(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}
