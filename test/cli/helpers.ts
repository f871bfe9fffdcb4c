import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, ROOT } from '../support/cli-bin.js';

/**
 * CLI: package.json's `bin` (dist/pkg/cli/main.js), the file `npx sd-activate` runs, read from
 * package.json; run here as `node CLI ARGS` with this process's node (npx runs the same file
 * through its `#!/usr/bin/env node` line). Not dist/src/cli/main.js: that is not what users run.
 * ROOT: the repository. See test/support/cli-bin.ts.
 */
export { CLI, ROOT };

/** A built fixture of test/fixtures/cli. */
export const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/cli/${name}.js`, import.meta.url));

/** A running `sd-activate` with its output collected. */
export class Cli {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
  }

  /** The first match of `re` in stderr (or stdout), waiting up to `timeoutMs`. */
  async waitFor(re: RegExp, options: { stream?: 'stdout' | 'stderr'; timeoutMs?: number } = {}): Promise<RegExpExecArray> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    for (;;) {
      const match = re.exec(options.stream === 'stdout' ? this.stdout : this.stderr);
      if (match) return match;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        await this.exited;
        const again = re.exec(options.stream === 'stdout' ? this.stdout : this.stderr);
        if (again) return again;
        throw new Error(`sd-activate exited before ${re}; stderr:\n${this.stderr}\nstdout:\n${this.stdout}`);
      }
      if (Date.now() > deadline) throw new Error(`no ${re} within ${options.timeoutMs ?? 10_000} ms; stderr:\n${this.stderr}\nstdout:\n${this.stdout}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The port of the socket the CLI printed as `fd N "name": tcp HOST:PORT` (or udp), in order of appearance. */
  async ports(name: string, count = 1): Promise<number[]> {
    const re = new RegExp(`^sd-activate: fd \\d+ "${name}": (?:tcp|udp) (?:\\[[^\\]]+\\]|[\\d.]+):(\\d+)`, 'gm');
    await this.waitFor(new RegExp(`(^sd-activate: fd \\d+ "${name}": .*\\n[^]*){${count}}`, 'm'));
    return [...this.stderr.matchAll(re)].map((m) => Number(m[1]));
  }

  /** SIGINT (as Ctrl-C), then the exit status. SIGKILL if it does not end within `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Every Cli a test started, stopped after it. */
export function useClis(): { start(args: readonly string[], options?: { cwd?: string; env?: NodeJS.ProcessEnv }): Cli; tempDir(): string } {
  const clis: Cli[] = [];
  const dirs: string[] = [];
  afterEach(async function () {
    this.timeout(20_000);
    await Promise.all(clis.splice(0).map((c) => c.stop()));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return {
    start(args, options) {
      const cli = new Cli(args, options);
      clis.push(cli);
      return cli;
    },
    tempDir() {
      const dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
      dirs.push(dir);
      return dir;
    },
  };
}

/** Runs `sd-activate ARGS` to its end (killed after `timeoutMs`). */
export async function runCli(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const cli = new Cli(args, options);
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), options.timeoutMs ?? 15_000);
  const { code, signal } = await cli.exited;
  clearTimeout(timer);
  return { code, signal, stdout: cli.stdout, stderr: cli.stderr };
}

/** One TCP exchange: connect, optionally send, read to the end. Rejects with the socket error (its `code`). */
export function exchange(options: net.NetConnectOpts, send?: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(options);
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data);
    });
    socket.on('connect', () => (send === undefined ? socket.end() : socket.end(send)));
  });
}

/** A TCP port that was free a moment ago: bound to port 0 by the kernel, then released. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The command, runnable by any user: what it loads at run time (package.json, the bundles of
 * dist/pkg, the addon where the loader looks, its dependencies) copied into `dir`, made
 * world-readable. Returns the copy's bin. For a test that runs the command as another user
 * wherever the checkout is, a directory of mode 0700 under /root included.
 */
export function readableCopy(dir: string): string {
  const parts = ['package.json', 'dist/pkg', 'build/Release/sd_activate.node', 'prebuilds', 'node_modules/node-gyp-build', 'node_modules/ip-address'];
  for (const part of parts.filter((p) => existsSync(join(ROOT, p)))) cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  chmodSync(dir, 0o755);
  return join(dir, relative(ROOT, CLI));
}
