/*
 * `sd-activate doctor UNIT`: the command line of src/doctor.ts, and its findings printed.
 */
import { diagnoseUnit, type Diagnosis, type DoctorOptions } from '../manager/doctor.js';
import { parseOptions } from './args.js';
import { parseTimespan } from '../core/timespan.js';
import { UsageError } from './usage-error.js';
import { quote } from '../core/quote.js';

export const DOCTOR_HELP = `usage: sd-activate doctor [options] UNIT

Check a service unit (and its sockets) against what the program uses and
systemd's rules: ExecStart= runs node directly (not npm, a shell or a wrapper
script), Type= and NotifyAccess=, the fd names of its sockets, the fd store,
ExecReload= for upgrades, WatchdogSec=, TimeoutStopSec= against the drain,
KillMode=. Each finding names the unit file, the section and the line to write.
The unit is read with systemctl show (and systemctl cat); nothing is started.

Options:
      --user               the user's manager (systemctl --user)
      --names NAME,...     fd names the program asks for (systemdFd(), listen())
      --stored NAME,...    names it gives openStoredSocket() (the fd store)
      --upgrader           it calls upgrader()
      --watchdog           it calls startWatchdog()
      --stop-timeout SEC   the stopTimeoutMs it gives lifecycle() or upgrader(),
                           as a time span (default 10s, theirs)
      --idle-exit SEC      the idleTimeoutMs it gives them: it exits when idle
      --json               print the findings as JSON
  -h, --help               show this help

The doctor does not run the program: what it uses is what these options say.
Without --names the sockets' names are listed, not checked; without --watchdog
a WatchdogSec= is taken as unused.

Examples:
  sd-activate doctor --user app.service --names web,admin --watchdog
  sd-activate doctor app --names web --stored cache --upgrader

Exit status: 0 when there is no error (warnings and notes may remain), 1 when
there is one, 2 for a bad command line.
`;

const OPTIONS = {
  user: { type: 'boolean' },
  names: { type: 'string', multiple: true },
  stored: { type: 'string', multiple: true },
  upgrader: { type: 'boolean' },
  watchdog: { type: 'boolean' },
  'stop-timeout': { type: 'string' },
  'idle-exit': { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

function nameList(option: string, values: string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  const names = values.flatMap((v) => v.split(','));
  const bad = names.find((n) => !/^[\x20-\x39\x3b-\x7e]{1,255}$/.test(n));
  if (bad !== undefined) throw new UsageError(`--${option} takes fd names (printable ASCII without ':'), comma-separated; got ${quote(bad)}`);
  return names;
}

/** The command line as doctor options, or a UsageError. Exported for tests; no I/O. */
export function doctorOptions(args: readonly string[]): { help: true } | { help: false; unit: string; options: DoctorOptions; json: boolean } {
  const { values: v, positionals } = parseOptions([...args], OPTIONS, 'doctor');
  if (v.help) return { help: true };
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'no unit to check; usage: sd-activate doctor [options] UNIT' : `one unit at a time; got ${positionals.length}`);
  const options: DoctorOptions = { user: v.user === true, upgrader: v.upgrader === true, watchdog: v.watchdog === true };
  const names = nameList('names', v.names as string[] | undefined);
  if (names) options.names = names;
  const stored = nameList('stored', v.stored as string[] | undefined);
  if (stored) options.stored = stored;
  if (v['stop-timeout'] !== undefined) {
    const ms = parseTimespan(v['stop-timeout'] as string);
    if (ms === undefined || !Number.isFinite(ms)) throw new UsageError(`--stop-timeout takes a time span like 10, 10s or 500ms, got ${quote(v['stop-timeout'] as string)}`);
    options.stopTimeoutMs = ms;
  }
  if (v['idle-exit'] !== undefined) {
    const ms = parseTimespan(v['idle-exit'] as string);
    if (ms === undefined || !Number.isFinite(ms) || ms <= 0) throw new UsageError(`--idle-exit takes a time span above 0 like 30s, got ${quote(v['idle-exit'] as string)}`);
    options.idleTimeoutMs = ms;
  }
  const unit = positionals[0]!;
  if (/\.[a-z]+$/.test(unit) && !unit.endsWith('.service')) throw new UsageError(`${quote(unit)} is not a service: give the .service unit (its sockets are checked with it)`);
  return { help: false, unit, options, json: v.json === true };
}

/** The findings as a person reads them: one paragraph each, the line to write indented. */
export function formatDiagnosis(diagnosis: Diagnosis): string {
  const out: string[] = [];
  for (const f of diagnosis.findings) {
    out.push(`${f.level} [${f.code}] ${f.unit}: ${f.message}`);
    const where = `${f.file ? `${f.file}, ` : ''}[${f.section}]`;
    out.push(f.line === null ? `    in ${where}: remove ${f.key}=` : `    in ${where}:`, ...(f.line === null ? [] : [`    ${f.line}`]));
  }
  const count = (level: string): number => diagnosis.findings.filter((f) => f.level === level).length;
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
  out.push(
    diagnosis.findings.length === 0
      ? `${diagnosis.unit}: no findings`
      : `${diagnosis.unit}: ${plural(count('error'), 'error')}, ${plural(count('warning'), 'warning')}, ${plural(count('note'), 'note')}`,
  );
  return `${out.join('\n')}\n`;
}

/** Runs `sd-activate doctor ARGS`; resolves with the exit status. */
export async function doctor(args: readonly string[]): Promise<number> {
  const parsed = doctorOptions(args);
  if (parsed.help) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  let diagnosis: Diagnosis;
  try {
    diagnosis = await diagnoseUnit(parsed.unit, parsed.options);
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(error.message);
    throw error;
  }
  process.stdout.write(parsed.json ? `${JSON.stringify(diagnosis, null, 2)}\n` : formatDiagnosis(diagnosis));
  return diagnosis.findings.some((f) => f.level === 'error') ? 1 : 0;
}
