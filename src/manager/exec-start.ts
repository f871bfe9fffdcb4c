/*
 * Whether an ExecStart= command starts node as the process systemd started, or as a child of
 * something else (npm, a shell, a wrapper script): what LISTEN_PID, NotifyAccess=main and the
 * stop signal all depend on. Reads the command, and the script it runs when it is one; runs nothing.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import type { ExecCommand } from './systemctl.js';

/**
 * How a command reaches node.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#ExecStart=
 */
export type ExecStartKind =
  /** node itself, or a script whose `#!` line runs node: systemd's process is node. */
  | { kind: 'node' }
  /** npm, npx, pnpm or yarn: node runs as their child (through a shell, for npm). */
  | { kind: 'package-manager'; tool: string; script: string | undefined }
  /** `sh -c '...'` that does not exec its last command: node is the shell's child. */
  | { kind: 'shell'; shell: string; command: string }
  /** A shell script that does not `exec` node. */
  | { kind: 'wrapper-script'; path: string; interpreter: string }
  /** Something else: whether it execs node cannot be told from here. */
  | { kind: 'unknown'; path: string };

const PACKAGE_MANAGERS = new Set(['npm', 'npx', 'pnpm', 'pnpx', 'yarn', 'corepack']);
const SHELLS = new Set(['sh', 'dash', 'bash', 'zsh', 'ksh', 'mksh', 'ash', 'busybox']);
/** Programs that exec the command they are given, keeping the pid. */
const EXECERS = new Set(['env', 'nice', 'ionice', 'chrt', 'taskset', 'setpriv', 'numactl', 'stdbuf', 'prlimit']);

function realName(path: string): string {
  try {
    return basename(realpathSync(path));
  } catch {
    return basename(path);
  }
}

/**
 * node, nodejs, node20, or the very node running this.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#ExecStart=
 */
export function isNode(path: string): boolean {
  if (/^node(js)?[\d.]*$/.test(basename(path))) return true;
  try {
    return realpathSync(path) === realpathSync(process.execPath);
  } catch {
    return false;
  }
}

/** The interpreter of a `#!` line, seen through `env` (`#!/usr/bin/env node` is node). */
function shebang(path: string): { interpreter: string; text: string } | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').slice(0, 65536);
  } catch {
    return undefined;
  }
  if (!text.startsWith('#!')) return undefined;
  const words = text.slice(2, text.indexOf('\n') === -1 ? undefined : text.indexOf('\n')).trim().split(/\s+/);
  let interpreter = words[0] ?? '';
  if (basename(interpreter) === 'env') interpreter = words.slice(1).find((w) => !w.startsWith('-') && !w.includes('=')) ?? interpreter;
  return { interpreter, text };
}

/** A shell command that ends by exec'ing node: `exec node app.js`, `exec /usr/bin/node "$@"`. */
function execsNode(line: string): boolean {
  const words = line.trim().split(/\s+/);
  if (words[0] !== 'exec') return false;
  const program = words.slice(1).find((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w) && !w.startsWith('-'));
  return program !== undefined && isNode(program.replace(/^["']|["']$/g, ''));
}

/**
 * What an ExecStart= command runs, seen through programs that exec their command (`env`,
 * `nice`, ...).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export function classifyExecStart(command: ExecCommand): ExecStartKind {
  let path = command.path;
  let args = command.argv.slice(1);
  for (let i = 0; i < 4 && EXECERS.has(basename(path)); i++) {
    // env VAR=x node app.js: skip options and assignments; the next word is the program.
    const at = args.findIndex((a) => !a.startsWith('-') && !(basename(path) === 'env' && a.includes('=')) && !/^\d+$/.test(a));
    if (at === -1) return { kind: 'unknown', path };
    path = args[at]!;
    args = args.slice(at + 1);
  }
  const name = basename(path);
  if (isNode(path)) return { kind: 'node' };
  if (PACKAGE_MANAGERS.has(name)) {
    const words = args.filter((a) => !a.startsWith('-'));
    const script = words[0] === 'run' || words[0] === 'run-script' ? words[1] : words[0];
    return { kind: 'package-manager', tool: name, script };
  }
  if (SHELLS.has(name)) {
    const c = args.indexOf('-c');
    if (c === -1) {
      const script = args.find((a) => !a.startsWith('-'));
      return script === undefined ? { kind: 'unknown', path } : classifyScript(script, path);
    }
    const text = args.slice(c + 1).join(' ');
    if (/^\s*exec\s/.test(text)) return { kind: 'node' };
    // bash execs a lone simple command itself; dash (Debian's /bin/sh) forks for it.
    if (realName(path) === 'bash' && !/[;&|\n`]|\$\(/.test(text) && isNode(text.trim().split(/\s+/)[0] ?? '')) return { kind: 'node' };
    return { kind: 'shell', shell: path, command: text };
  }
  return classifyScript(path, undefined);
}

function classifyScript(path: string, shell: string | undefined): ExecStartKind {
  const found = shebang(path);
  const interpreter = shell ?? found?.interpreter;
  if (interpreter === undefined) return { kind: 'unknown', path };
  if (isNode(interpreter)) return { kind: 'node' };
  if (!SHELLS.has(basename(interpreter))) return { kind: 'unknown', path };
  if (found && found.text.split('\n').some(execsNode)) return { kind: 'node' };
  return { kind: 'wrapper-script', path, interpreter };
}

/**
 * The command a package.json script runs when it is `node FILE ...`, with FILE made absolute,
 * or undefined: what `npm start` would have started, written for ExecStart=.
 *
 * @see https://docs.npmjs.com/cli/v11/using-npm/scripts
 */
export function packageScriptCommand(dir: string, script: string | undefined, args: readonly string[]): string | undefined {
  // npm --prefix DIR / yarn --cwd DIR: the package is there.
  const at = args.findIndex((a) => a === '--prefix' || a === '--cwd' || a === '-C' || a === '--dir');
  const root = at !== -1 && args[at + 1] ? resolve(dir, args[at + 1]!) : dir;
  let scripts: Record<string, unknown>;
  try {
    scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, unknown> }).scripts ?? {};
  } catch {
    return undefined;
  }
  const text = scripts[script ?? 'start'];
  if (typeof text !== 'string') return undefined;
  const match = /^\s*node\s+([^\s;&|<>`$]+)([^;&|<>`$]*)$/.exec(text);
  if (!match) return undefined;
  const file = isAbsolute(match[1]!) ? match[1]! : join(root, match[1]!);
  return `${process.execPath} ${file}${match[2]!.trimEnd() ? ` ${match[2]!.trim()}` : ''}`;
}
