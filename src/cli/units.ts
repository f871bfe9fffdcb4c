/*
 * `sd-activate units`: run's command line in, the unit files that do the same under systemd out
 * (printed, or written with --write). The translation is src/manager/unit-files.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { isNode } from '../manager/exec-start.js';
import { unitFiles, type GeneratedUnits } from '../manager/unit-files.js';
import { runOptions } from './run.js';
import { UsageError } from './usage-error.js';

export const UNITS_HELP = `usage: sd-activate units [run's options] [--name NAME] [--user] [--write DIR]
                        [--] COMMAND [ARGS...]

Print the .socket and .service files that make systemd do what
'sd-activate run' does with the same options: a .socket unit per fd name
(FileDescriptorName=), or one with Accept=yes; a .service with ExecStart= the
absolute path of node and of the script, Type=, Restart=, WatchdogSec=,
FileDescriptorStoreMax=, Environment= for -E, ... Without --lazy the service is
enabled to start at once, as run starts it; with --lazy only the sockets are.

Options (besides all of run's: see 'sd-activate help run'):
      --name NAME     the units' name: NAME.service, NAME.socket (default: the
                      script's or the program's name)
      --user          for the user's manager (WantedBy=default.target)
      --write DIR     write the files into DIR instead of printing them
                      (e.g. /etc/systemd/system, ~/.config/systemd/user)

Refused, as systemd has no equivalent: --watch, port 0 (systemd binds the port
its unit names), and a COMMAND that is not node itself (npm start, sh -c
without exec: LISTEN_PID would name them).

Examples:
  sd-activate units -l web=8080 --type notify --restart always -- node server.js
  sd-activate units --user --write ~/.config/systemd/user -- node app.js
`;

const EXTRA = {
  name: { type: 'string' },
  user: { type: 'boolean' },
  write: { type: 'string' },
} as const;

/** The units' default name: the node script's, or the program's, without extension. */
function defaultName(command: string, args: readonly string[]): string {
  const script = isNode(command) ? args.find((a) => !a.startsWith('-')) : undefined;
  const base = basename(script ?? command);
  const stem = base.slice(0, base.length - extname(base).length) || base;
  return stem.replace(/[^A-Za-z0-9:_.\\-]/g, '-');
}

/** The run command line these units stand for: `args` without the options of units alone. */
function runArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return [...out, ...args.slice(i)];
    if (arg === '--user' || arg.startsWith('--name=') || arg.startsWith('--write=')) continue;
    if (arg === '--name' || arg === '--write') {
      i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}

/** A command line as a person would retype it, for the comment at the top of the files. */
function shellLine(args: readonly string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The command line's units, or a UsageError. Exported for tests; reads PATH and the script, writes nothing. */
export function unitsOf(args: readonly string[]): { help: true } | { help: false; units: GeneratedUnits; write: string | undefined; user: boolean; name: string } {
  const parsed = runOptions(args, 'units', EXTRA);
  if (parsed.help) return { help: true };
  const { options, setenv, extra } = parsed;
  const name = (extra.name as string | undefined) ?? defaultName(options.command, options.args ?? []);
  const user = extra.user === true;
  try {
    const units = unitFiles(options, { name, user, environment: setenv, commandLine: `sd-activate run ${shellLine(runArgs(args))}` });
    return { help: false, units, write: extra.write as string | undefined, user, name };
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(error.message);
    throw error;
  }
}

/** Runs `sd-activate units ARGS`: prints the files, or writes them; resolves with the exit status. */
export async function units(args: readonly string[], stderr: (line: string) => void): Promise<number> {
  const result = unitsOf(args);
  if (result.help) {
    process.stdout.write(UNITS_HELP);
    return 0;
  }
  const { units: generated, write, user } = result;
  for (const note of generated.notes) stderr(`note: ${note}`);
  if (write === undefined) {
    process.stdout.write(generated.files.map((f) => `# ${f.name}\n${f.text}`).join('\n'));
    return 0;
  }
  const dir = resolve(write);
  mkdirSync(dir, { recursive: true });
  for (const file of generated.files) {
    writeFileSync(join(dir, file.name), file.text);
    stderr(`wrote ${join(dir, file.name)}`);
  }
  const systemctl = `systemctl${user ? ' --user' : ''}`;
  const enable = generated.files.filter((f) => f.text.includes('\n[Install]\n')).map((f) => f.name);
  stderr(`next: ${systemctl} daemon-reload && ${systemctl} enable --now ${enable.join(' ')}`);
  return 0;
}
