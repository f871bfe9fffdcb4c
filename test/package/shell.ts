/**
 * Command lines of the documentation run as a user runs them: by sh, in a project directory, with
 * the user's environment. A server started from a terminal runs in the foreground until Ctrl-C;
 * here it runs in a process group of its own, and Ctrl-C is SIGINT to that group, as a terminal
 * sends it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { delimiter, join } from 'node:path';
import { freeTcpPort } from '../support/network.js';
import type { SystemdManager } from '../support/systemd-manager.js';
import { noCompilerBin, tempDir, userEnv } from './support.js';

/**
 * userEnv() (the user's shell: no npm script variables, npm's user config) with a PATH that has
 * this process's node, npm and npx first, then the system's tools (curl, socat, systemd's).
 */
export function shellEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return userEnv({ PATH: [noCompilerBin(), '/usr/local/bin', '/usr/bin', '/bin'].join(delimiter), ...extra });
}

/** What a finished command printed. */
export interface ShellResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The pids of every descendant of `pid`, from /proc (children before their own children). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
}

/** A command line running in the background, its output collected. */
export class Background {
  readonly line: string;
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<ShellResult>;
  #done = false;

  constructor(line: string, options: { cwd: string; env: NodeJS.ProcessEnv }) {
    this.line = line;
    this.child = spawn('sh', ['-c', line], { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code, sig) => {
        this.#done = true;
        resolve({ code, signal: sig, stdout: this.stdout, stderr: this.stderr });
      }),
    );
  }

  /** Both streams, for messages. */
  get output(): string {
    return `$ ${this.line}\n--- stdout:\n${this.stdout}--- stderr:\n${this.stderr}`;
  }

  /** The first match of `re` in stdout or stderr, waiting up to `timeoutMs`. */
  async waitFor(re: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = re.exec(this.stderr) ?? re.exec(this.stdout);
      if (match) return match;
      if (this.#done) throw new Error(`the command ended before printing ${re}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`no ${re} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /**
   * Ctrl-C: SIGINT to the process group. What is still running after `timeoutMs` (the group, and
   * anything it started in groups of its own) is killed.
   */
  async stop(timeoutMs = 10_000): Promise<ShellResult> {
    const pid = this.child.pid!;
    const tree = this.#done ? [] : descendants(pid);
    if (!this.#done) signal(-pid, 'SIGINT');
    const timer = setTimeout(() => {
      signal(-pid, 'SIGKILL');
      for (const other of [...tree, ...descendants(pid)]) signal(other, 'SIGKILL');
    }, timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
      // What left the group and outlived the command (a service its tool failed to stop) goes too.
      for (const other of tree) signal(other, 'SIGKILL');
    }
  }
}

/** Runs a command line to its end; killed (with its process group) after `timeoutMs`. */
export async function sh(line: string, options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<ShellResult> {
  const command = new Background(line, options);
  const timer = setTimeout(() => void command.stop(1000), options.timeoutMs ?? 30_000);
  try {
    return await command.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Background commands started in a test, stopped after it. */
export function useBackground(): (line: string, options: { cwd: string; env: NodeJS.ProcessEnv }) => Background {
  const started: Background[] = [];
  afterEach(async function () {
    this.timeout(30_000);
    await Promise.all(started.splice(0).map((command) => command.stop()));
  });
  return (line, options) => {
    const command = new Background(line, options);
    started.push(command);
    return command;
  };
}

/**
 * `env` with `systemctl` meaning `systemctl --user` against `manager`: a wrapper first on PATH,
 * and the manager's runtime dir, where systemctl finds its private bus.
 */
export function systemctlUser(manager: SystemdManager, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const bin = tempDir('systemctl-');
  const systemctl = ['/usr/bin/systemctl', '/bin/systemctl'].find((file) => existsSync(file));
  writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\nexec ${systemctl} --user "$@"\n`, { mode: 0o755 });
  const out: NodeJS.ProcessEnv = { ...env, PATH: `${bin}:${env.PATH}`, XDG_RUNTIME_DIR: manager.dir, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' };
  delete out.DBUS_SESSION_BUS_ADDRESS;
  return out;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port` (a probe connection, closed at once). */
export async function accepting(port: number, command: Background, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing accepts connections on port ${port} within ${timeoutMs} ms:\n${command.output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Whether UDP `port` can be bound on 127.0.0.1 and ::1 right now. */
async function udpFree(port: number): Promise<boolean> {
  for (const [type, host] of [['udp4', '127.0.0.1'], ['udp6', '::1']] as const) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = dgram.createSocket(type);
      socket.on('error', () => resolve(false));
      socket.bind(port, host, () => socket.close(() => resolve(true)));
    });
    if (!ok) return false;
  }
  return true;
}

/**
 * The fixed ports a text uses (a number after `:` or `=`, or a `port: ` or `?? ` fallback, as in
 * `-l web=8080`, `127.0.0.1:3000`, `ListenStream=8080`, `port: 3000`), each mapped to a port free
 * right now for TCP and UDP alike, on IPv4 and IPv6.
 */
export async function freePorts(...texts: string[]): Promise<Map<number, number>> {
  const ports = new Map<number, number>();
  for (const text of texts) {
    for (const m of text.matchAll(/(?:[:=]|port: |\?\? |systemdFd\('\w+', )(\d{4,5})(?![\d.])/g)) {
      const port = Number(m[1]);
      if (ports.has(port)) continue;
      let free = await freeTcpPort();
      while (!(await udpFree(free))) free = await freeTcpPort();
      ports.set(port, free);
    }
  }
  return ports;
}
