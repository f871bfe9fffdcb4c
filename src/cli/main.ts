#!/usr/bin/env node
/*
 * The `sd-activate` command: dispatch to a subcommand, print help, and turn any failure into one
 * line on stderr and a non-zero exit (a stack trace only with --verbose).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { clip } from '../core/quote.js';
import { packageRoot } from '../native/addon.js';
import { doctor, DOCTOR_HELP } from './doctor.js';
import { ls, LS_HELP } from './ls.js';
import { reload, RELOAD_HELP } from './reload.js';
import { run, RUN_HELP } from './run.js';
import { units, UNITS_HELP } from './units.js';
import { UsageError } from './usage-error.js';

export const MAIN_HELP = `usage: sd-activate [--version] [--help] <command> [<args>]

Run a program the way systemd runs a socket-activated service, on a laptop or
in CI: sockets opened for it and passed at fd 3+, a NOTIFY_SOCKET, restarts
that keep the sockets open, a watchdog and an fd store.

Commands:
  run [options] -- COMMAND [ARGS...]   open sockets and run COMMAND with them
  ls [--json]                          list the fds this process inherited
  reload PID                           upgrade service PID, wait for the outcome
  units [options] -- COMMAND [ARGS...] the unit files that do what run does
  doctor [--user] [options] UNIT       check a unit against what a program uses
  help [COMMAND]                       show help for a command

Options:
  -h, --help       show this help
  -V, --version    print the version
  -v, --verbose    print stack traces with errors

Examples:
  sd-activate run -l web=tcp:127.0.0.1:8080 -- node server.js
  sd-activate run -l web=8080 --type notify --restart always -- node server.js
  sd-activate run -l web=tcp:127.0.0.1:0 -- sd-activate ls

See 'sd-activate help <command>' for the options of a command.
`;

const HELP: Record<string, string> = { run: RUN_HELP, ls: LS_HELP, reload: RELOAD_HELP, units: UNITS_HELP, doctor: DOCTOR_HELP };
const COMMANDS = 'run, ls, reload, units and doctor';

function version(): string {
  // Found as the addon is: this file is dist/pkg/cli/main.js in the package, dist/src/cli/main.js unbundled.
  const pkg = JSON.parse(readFileSync(`${packageRoot(import.meta.url)}/package.json`, 'utf8')) as { version: string };
  return pkg.version;
}

/** Exit status for an error: 2 for a bad command line, 127 for a command not found, 1 otherwise. */
export function exitStatusOf(error: unknown): number {
  if (error instanceof UsageError) return 2;
  const code = (error as { code?: unknown }).code;
  if (code === 'ERR_SD_LISTEN_SPEC_INVALID') return 2;
  if (code === 'ERR_SD_COMMAND_NOT_FOUND') return 127;
  return 1;
}

/** Runs the command line `args` (without node and the script); resolves with the exit status. */
export async function main(args: readonly string[]): Promise<number> {
  const stderr = (line: string): void => void process.stderr.write(`sd-activate: ${line}\n`);
  // --verbose anywhere before the command to run asks for stack traces.
  const end = args.indexOf('--');
  const verbose = (end === -1 ? args : args.slice(0, end)).some((a) => a === '--verbose' || a === '-v');
  try {
    const [command, ...rest] = args;
    switch (command) {
      case 'run':
        return await run(rest, stderr);
      case 'ls':
        return await ls(rest.filter((a) => a !== '--verbose' && a !== '-v'), stderr);
      case 'reload':
        return await reload(rest.filter((a) => a !== '--verbose' && a !== '-v'), stderr);
      case 'units':
        return await units(rest, stderr);
      case 'doctor':
        return await doctor(rest);
      case 'help': {
        // `help --help`: the usage of help is a line of the main help.
        const topic = rest[0] === '--help' || rest[0] === '-h' ? undefined : rest[0];
        if (topic !== undefined && !HELP[topic]) throw new UsageError(`no such command: ${clip(topic)}; the commands are ${COMMANDS}`);
        process.stdout.write(topic ? HELP[topic]! : MAIN_HELP);
        return 0;
      }
      case '-V':
      case '--version':
        process.stdout.write(`sd-activate ${version()}\n`);
        return 0;
      case undefined:
      case '-h':
      case '--help':
        process.stdout.write(MAIN_HELP);
        return 0;
      case '-v':
      case '--verbose':
        return await main(rest.length ? rest : ['--help']);
      default:
        throw new UsageError(`'${clip(command)}' is not a command; the commands are ${COMMANDS} (see 'sd-activate --help')`);
    }
  } catch (error) {
    stderr((error as Error).message ?? String(error));
    if (verbose) process.stderr.write(`${(error as Error).stack ?? ''}\n${(error as Error).cause ? `cause: ${String(((error as Error).cause as Error).stack ?? (error as Error).cause)}\n` : ''}`);
    return exitStatusOf(error);
  }
}

// Run only as the program, not when imported (by tests).
const invoked = process.argv[1];
if (invoked && import.meta.url === pathToFileURL(realpathSync(invoked)).href) {
  const status = await main(process.argv.slice(2));
  // Everything is closed by now; exit at once rather than wait for a stray handle.
  process.exit(status);
}
