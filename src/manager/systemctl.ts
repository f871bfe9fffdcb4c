/*
 * Reading units from a service manager through systemctl, as a person would: `systemctl show`
 * for what systemd made of the unit files (defaults applied, drop-ins merged), and `systemctl cat`
 * for the few settings that `show` reports only while the unit runs.
 */
import { execFile } from 'node:child_process';
import { SystemdError } from '../core/errors.js';

/**
 * Which manager to ask.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemctl.html
 */
export interface SystemctlOptions {
  /** The user's manager (`systemctl --user`) instead of the system's. */
  user?: boolean;
  /** The systemctl to run (default `systemctl`, found on PATH). */
  command?: string;
  /** How long one run may take (default 20000 ms). */
  timeoutMs?: number;
}

/**
 * One unit as `systemctl show` prints it: each property's lines (several for Listen=, ExecStart=).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/org.freedesktop.systemd1.html
 */
export type UnitProperties = ReadonlyMap<string, readonly string[]>;

function systemctl(args: readonly string[], options: SystemctlOptions): Promise<{ stdout: string; stderr: string; code: number }> {
  const command = options.command ?? 'systemctl';
  const argv = [...(options.user ? ['--user'] : []), '--no-pager', ...args];
  return new Promise((resolve, reject) => {
    execFile(
      command,
      argv,
      { env: { ...process.env, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0', LC_ALL: 'C' }, timeout: options.timeoutMs ?? 20_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr, code: 0 });
        const code = (error as { code?: unknown }).code;
        if (typeof code === 'number') return resolve({ stdout, stderr, code });
        reject(new SystemdError('ERR_SD_SYSTEMCTL_FAILED', `cannot run ${command} ${argv.join(' ')}: ${error.message}`, { cause: error }));
      },
    );
  });
}

/**
 * `systemctl show -p P1 -p P2 ... UNIT...`: one map per unit, in the order asked. A unit that
 * does not exist comes back too, with `LoadState=not-found`.
 *
 * @throws SystemdError `ERR_SD_SYSTEMCTL_FAILED` when systemctl cannot be run or fails (no manager to talk to)
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemctl.html#show%20PATTERN%E2%80%A6%7CJOB%E2%80%A6
 */
export async function showUnits(units: readonly string[], properties: readonly string[], options: SystemctlOptions = {}): Promise<UnitProperties[]> {
  // --all: properties with an empty value are printed too, so that each block is found whole.
  const result = await systemctl(['show', '--all', ...properties.map((p) => `--property=${p}`), '--', ...units], options);
  if (result.code !== 0) {
    throw new SystemdError('ERR_SD_SYSTEMCTL_FAILED', `systemctl${options.user ? ' --user' : ''} show ${units.join(' ')} failed (status ${result.code}): ${result.stderr.trim()}`);
  }
  // One block per unit, separated by an empty line; values hold no newline.
  const blocks = result.stdout.replace(/\n+$/, '').split(/\n\n/);
  return blocks.map((block) => {
    const map = new Map<string, string[]>();
    for (const line of block.split('\n')) {
      const eq = line.indexOf('=');
      if (eq <= 0) continue;
      const key = line.slice(0, eq);
      const list = map.get(key) ?? [];
      list.push(line.slice(eq + 1));
      map.set(key, list);
    }
    return map;
  });
}

/**
 * The names of the unit files of a type (`socket`), templates left out: what `systemctl
 * list-unit-files --type=TYPE` lists, loaded or not.
 *
 * @throws SystemdError `ERR_SD_SYSTEMCTL_FAILED` when systemctl cannot be run or fails
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemctl.html#list-unit-files%20PATTERN%E2%80%A6
 */
export async function listUnitFiles(type: string, options: SystemctlOptions = {}): Promise<string[]> {
  const result = await systemctl(['list-unit-files', `--type=${type}`, '--no-legend', '--plain'], options);
  if (result.code !== 0) throw new SystemdError('ERR_SD_SYSTEMCTL_FAILED', `systemctl${options.user ? ' --user' : ''} list-unit-files failed (status ${result.code}): ${result.stderr.trim()}`);
  return result.stdout
    .split('\n')
    .map((line) => line.split(/\s+/)[0] ?? '')
    .filter((name) => name.endsWith(`.${type}`) && !name.includes('@'));
}

/**
 * The text of a unit's files (fragment and drop-ins) as `systemctl cat` prints them, or null
 * when the unit has none.
 *
 * @throws SystemdError `ERR_SD_SYSTEMCTL_FAILED` when systemctl cannot be run
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemctl.html#cat%20PATTERN%E2%80%A6
 */
export async function catUnit(unit: string, options: SystemctlOptions = {}): Promise<string | null> {
  const result = await systemctl(['cat', '--', unit], options);
  return result.code === 0 ? result.stdout : null;
}

/**
 * The last value a setting gets in a section of `systemctl cat`'s text (an empty assignment
 * resets it), or undefined when it is never set. Lines continued with a backslash are joined.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.syntax.html
 */
export function lastSetting(text: string, section: string, key: string): string | undefined {
  let current = '';
  let value: string | undefined;
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('[') && trimmed.endsWith(']')) {
      current = trimmed.slice(1, -1);
      continue;
    }
    if (current !== section || trimmed.startsWith('#') || trimmed.startsWith(';')) continue;
    const eq = trimmed.indexOf('=');
    if (eq <= 0 || trimmed.slice(0, eq).trim() !== key) continue;
    const v = trimmed.slice(eq + 1).trim();
    value = v === '' ? undefined : v;
  }
  return value;
}

/**
 * One command of ExecStart= (or ExecReload=, ...), as `systemctl show` prints it.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#Command%20lines
 */
export interface ExecCommand {
  /** The program, exactly. */
  path: string;
  /**
   * Its arguments, argv[0] first. systemd 252 prints them joined by spaces, so an argument with
   * a space in it reads as several here.
   */
  argv: string[];
  /** `-` prefix: a failure is ignored. */
  ignoreErrors: boolean;
}

/**
 * Parses `{ path=/usr/bin/node ; argv[]=/usr/bin/node app.js ; ignore_errors=no ; ... }` (or the
 * `ExecStartEx=` form, with `flags=`); undefined for anything else.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#ExecStart=
 */
export function parseExecCommand(value: string): ExecCommand | undefined {
  const match = /^\{ path=(.*?) ; argv\[\]=(.*?) ; (?:ignore_errors=(yes|no)|flags=([^;]*)) ;/.exec(value);
  if (!match) return undefined;
  return {
    path: match[1]!,
    argv: match[2]!.split(' ').filter((word) => word.length > 0),
    ignoreErrors: match[3] === 'yes' || /\bignore-failure\b/.test(match[4] ?? ''),
  };
}
