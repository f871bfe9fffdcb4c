/**
 * Differential test: parseListenEnvironment() against the installed libsystemd's own
 * sd_listen_fds_with_names(), through test/support/listen-fds-harness.c (compiled here, once).
 *
 * The harness runs every case in one process whose fds 3 .. 3+K-1 are open and everything above is
 * closed, and substitutes @SELF@ (its pid), @SELFHEX@, @SELFOCT@, @SELFBIN@ and @OTHER@ (pid + 1)
 * in the values; this file substitutes the same pid before calling the TypeScript parser.
 *
 * Two differences between the two sides are modelled explicitly, nothing else is tolerated:
 *
 * - fds. libsystemd sets FD_CLOEXEC on fds 3 .. 3+n-1 and fails with -EBADF on the first closed
 *   one; the pure parser looks at no fd. So "the parser says activated with count > K" must be
 *   exactly "libsystemd says -EBADF" (also when LISTEN_FDNAMES then has the wrong number of names:
 *   libsystemd compares the counts only after the fds passed).
 *
 * - LISTEN_PIDFDID. libsystemd 252 (Debian 12) predates it and never reads it; newer libsystemd
 *   parses it with safe_atou64() once LISTEN_PID matched (an unparsable value is an error) and,
 *   where the kernel gives pidfds unique inode ids, treats a different id as "not for us". The
 *   parser follows the newer rules. Against 252 it is therefore run with `pidfdId: () => null`
 *   ("no unique ids", which makes newer libsystemd skip the comparison too), an
 *   ERR_SD_LISTEN_PIDFDID_INVALID is checked against libsystemd's own safe_atou64() instead
 *   (sd_watchdog_enabled() parses WATCHDOG_USEC with it, and the harness runs it on the same
 *   value), and otherwise the result must be the same as without LISTEN_PIDFDID.
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseListenEnvironment, type ProcessIdentity } from '../../src/core/env.js';
import { SystemdError } from '../../src/core/errors.js';

const HARNESS_SOURCE = fileURLToPath(new URL('../../../test/support/listen-fds-harness.c', import.meta.url));

const EINVAL = 22;
const EBADF = 9;
const U64_MAX = (1n << 64n) - 1n;
const INT_MAX = 2 ** 31 - 1;

/** One setting of the four variables; undefined: unset. Values may hold the harness's tokens. */
interface Case {
  LISTEN_PID?: string | undefined;
  LISTEN_PIDFDID?: string | undefined;
  LISTEN_FDS?: string | undefined;
  LISTEN_FDNAMES?: string | undefined;
}

const VARIABLES = ['LISTEN_PID', 'LISTEN_PIDFDID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

type Outcome =
  | { kind: 'error'; errno: number; code?: string }
  | { kind: 'not-activated' }
  | { kind: 'activated'; count: number; names: string[] };

/** What the harness reports for one case. */
interface HarnessResult {
  listen: Outcome;
  /** sd_watchdog_enabled() on the LISTEN_PIDFDID value: undefined when unset. */
  watchdog?: { r: number; usec?: bigint };
}

interface HarnessRun {
  pid: number;
  openFds: number;
  results: HarnessResult[];
}

function encodeField(value: string | undefined): string {
  if (value === undefined) return '-';
  if (value.includes('\0')) throw new Error(`an environment variable cannot hold NUL: ${JSON.stringify(value)}`);
  return '=' + Buffer.from(value, 'utf8').toString('hex');
}

function runHarness(binary: string, cases: readonly Case[]): HarnessRun {
  const input = cases.map((c) => VARIABLES.map((v) => encodeField(c[v])).join(' ') + '\n').join('');
  const child = spawnSync(binary, [], { input, encoding: 'utf8', env: {}, maxBuffer: 256 * 1024 * 1024 });
  if (child.error) throw child.error;
  expect(child.status, `harness failed: ${child.stderr}`).to.equal(0);
  const lines = child.stdout.split('\n');
  expect(lines.pop(), 'the harness output ends with a newline').to.equal('');
  const header = /^ready (\d+) (\d+)$/.exec(lines.shift() ?? '');
  expect(header, 'the harness header').to.not.equal(null);
  expect(lines.length, 'one output line per case').to.equal(cases.length);
  const results = lines.map((line): HarnessResult => {
    const [r, w, usec, ...names] = line.split(' ');
    const count = Number(r);
    const listen: Outcome =
      count < 0
        ? { kind: 'error', errno: count }
        : count === 0
          ? { kind: 'not-activated' }
          : { kind: 'activated', count, names: names.map((n) => Buffer.from(n.slice(1), 'hex').toString('utf8')) };
    const result: HarnessResult = { listen };
    if (w !== '-') result.watchdog = usec === '-' ? { r: Number(w) } : { r: Number(w), usec: BigInt(usec!) };
    return result;
  });
  return { pid: Number(header![1]), openFds: Number(header![2]), results };
}

/** The harness's token substitution, for the TypeScript side. */
function substitute(value: string | undefined, pid: number): string | undefined {
  if (value === undefined) return undefined;
  const texts: Record<string, string> = {
    SELF: pid.toString(10),
    SELFHEX: pid.toString(16),
    SELFOCT: pid.toString(8),
    SELFBIN: pid.toString(2),
    OTHER: (pid + 1).toString(10),
  };
  return value.replace(/@(SELF|SELFHEX|SELFOCT|SELFBIN|OTHER)@/g, (_, token: string) => texts[token]!);
}

function environmentOf(c: Case, pid: number): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const v of VARIABLES) {
    const value = substitute(c[v], pid);
    if (value !== undefined) env[v] = value;
  }
  return env;
}

function ours(env: Record<string, string | undefined>, self: ProcessIdentity): Outcome {
  try {
    const parsed = parseListenEnvironment(env, self);
    return parsed.activated ? { kind: 'activated', count: parsed.count, names: parsed.names } : { kind: 'not-activated' };
  } catch (error) {
    if (!(error instanceof SystemdError)) throw error;
    const errno = (error.cause as { errno?: unknown } | undefined)?.errno;
    if (typeof errno !== 'number') throw new Error(`a SystemdError without cause.errno: ${error.message}`);
    return { kind: 'error', errno, code: error.code };
  }
}

/**
 * A comparable, printable summary. An activated outcome with more names than the harness has fds
 * (LISTEN_FDS may say up to INT_MAX - 3) is summed up by its length and a few samples.
 */
function summary(o: Outcome): string {
  if (o.kind !== 'activated') return JSON.stringify(o);
  if (o.names.length <= 4096) return JSON.stringify(o);
  const last = o.names.length - 1;
  return JSON.stringify({ ...o, names: { length: o.names.length, 0: o.names[0], 1: o.names[1], [last]: o.names[last], past: o.names[last + 1] } });
}

function without(env: Record<string, string | undefined>, variable: string): Record<string, string | undefined> {
  const copy = { ...env };
  delete copy[variable];
  return copy;
}

/**
 * What libsystemd 252, with fds 3 .. 3+openFds-1 open, returns according to our parser;
 * or a string saying why the parser contradicts itself or libsystemd's safe_atou64().
 */
function expectedFromOurs(env: Record<string, string | undefined>, pid: number, openFds: number, watchdog: HarnessResult['watchdog']): Outcome | string {
  const noIds: ProcessIdentity = { pid, pidfdId: () => null };
  const full = ours(env, noIds);
  const withoutPidfdId = ours(without(env, 'LISTEN_PIDFDID'), noIds);
  if (full.kind === 'error' && full.code === 'ERR_SD_LISTEN_PIDFDID_INVALID') {
    // 252 ignores the variable; the number parser is checked against its safe_atou64().
    if (watchdog === undefined || watchdog.r !== full.errno) {
      return `ERR_SD_LISTEN_PIDFDID_INVALID with errno ${full.errno}, but safe_atou64 says ${JSON.stringify(watchdog)}`;
    }
    // Newer libsystemd reads LISTEN_PIDFDID only after the names split and LISTEN_PID matched.
    const reached = ours({ LISTEN_PID: env.LISTEN_PID, LISTEN_FDS: '1', LISTEN_FDNAMES: env.LISTEN_FDNAMES === undefined ? undefined : 'x' }, noIds);
    const splits = ours({ LISTEN_FDNAMES: env.LISTEN_FDNAMES }, noIds).kind !== 'error';
    if (reached.kind !== 'activated' || !splits) return `ERR_SD_LISTEN_PIDFDID_INVALID before LISTEN_PID matched: ${JSON.stringify(env)}`;
  } else if (summary(full) !== summary(withoutPidfdId)) {
    return `LISTEN_PIDFDID changed the result without pidfd ids: ${summary(full)} vs ${summary(withoutPidfdId)}`;
  }

  const result = withoutPidfdId;
  if (result.kind === 'activated' && result.count > openFds) return { kind: 'error', errno: -EBADF };
  if (result.kind === 'error' && result.code === 'ERR_SD_LISTEN_FDNAMES_INVALID') {
    // Either the split failed (libsystemd fails first, too) or the name count differs, which
    // libsystemd checks only after fd_cloexec() passed on every fd.
    const splitFails = ours({ LISTEN_FDNAMES: env.LISTEN_FDNAMES }, noIds).kind === 'error';
    const nameless = ours(without(without(env, 'LISTEN_FDNAMES'), 'LISTEN_PIDFDID'), noIds);
    if (!splitFails && nameless.kind === 'activated' && nameless.count > openFds) return { kind: 'error', errno: -EBADF };
  }
  return result;
}

/**
 * Checks our reading of LISTEN_PIDFDID's number against libsystemd's safe_atou64() (through
 * sd_watchdog_enabled(), which returns -EINVAL for 0 and UINT64_MAX and 1 with the value otherwise),
 * probing the parsed value through the pidfd id comparison. Returns a complaint or null.
 */
function checkPidfdIdNumber(value: string, pid: number, watchdog: NonNullable<HarnessResult['watchdog']>): string | null {
  const env = { LISTEN_PID: String(pid), LISTEN_FDS: '1', LISTEN_PIDFDID: value };
  const withId = (id: bigint) => ours(env, { pid, pidfdId: () => id }).kind;
  const plain = ours(env, { pid, pidfdId: () => null });
  if (plain.kind === 'error') {
    if (watchdog.r !== plain.errno) return `parser errno ${plain.errno}, safe_atou64 ${watchdog.r}`;
    return null;
  }
  if (watchdog.r === 1 && watchdog.usec !== undefined) {
    if (withId(watchdog.usec) !== 'activated') return `parser does not read ${watchdog.usec}`;
    if (withId(watchdog.usec ^ 1n) !== 'not-activated') return `parser reads a value other than ${watchdog.usec}`;
    return null;
  }
  if (watchdog.r === -EINVAL) {
    // safe_atou64() either failed with EINVAL or gave 0 or UINT64_MAX, which the watchdog refuses.
    if (withId(0n) === 'activated' || withId(U64_MAX) === 'activated') return null;
    return `parser accepts the value, safe_atou64 says EINVAL (and it is neither 0 nor UINT64_MAX)`;
  }
  return `parser accepts the value, safe_atou64 says ${watchdog.r}`;
}

interface Mismatch {
  case: Case;
  env: Record<string, string | undefined>;
  libsystemd: Outcome;
  ours: Outcome | string;
  note?: string;
}

function compareAll(binary: string, cases: readonly Case[]): { mismatches: Mismatch[]; run: HarnessRun; expected: Outcome[] } {
  const run = runHarness(binary, cases);
  const mismatches: Mismatch[] = [];
  const expected: Outcome[] = [];
  cases.forEach((c, i) => {
    const env = environmentOf(c, run.pid);
    const got = run.results[i]!;
    const exp = expectedFromOurs(env, run.pid, run.openFds, got.watchdog);
    if (typeof exp === 'string') {
      mismatches.push({ case: c, env, libsystemd: got.listen, ours: exp });
      return;
    }
    expected.push(exp);
    const comparable: Outcome = exp.kind === 'error' ? { kind: 'error', errno: exp.errno } : exp;
    if (summary(comparable) !== summary(got.listen)) {
      mismatches.push({ case: c, env, libsystemd: got.listen, ours: exp });
    }
    if (env.LISTEN_PIDFDID !== undefined) {
      const complaint = got.watchdog ? checkPidfdIdNumber(env.LISTEN_PIDFDID, run.pid, got.watchdog) : 'no safe_atou64 result';
      if (complaint) mismatches.push({ case: c, env, libsystemd: got.listen, ours: exp, note: `LISTEN_PIDFDID: ${complaint}` });
    }
  });
  return { mismatches, run, expected };
}

function report(mismatches: readonly Mismatch[]): string {
  const shown = mismatches.slice(0, 25).map((m) => {
    const note = m.note ? `\n    ${m.note}` : '';
    const theirs = summary(m.libsystemd);
    const mine = typeof m.ours === 'string' ? m.ours : summary(m.ours);
    return `  env ${JSON.stringify(m.env)}\n    libsystemd: ${theirs}\n    ours:       ${mine}${note}`;
  });
  const more = mismatches.length > shown.length ? `\n  ... and ${mismatches.length - shown.length} more` : '';
  return `${mismatches.length} case(s) where the parser and libsystemd disagree:\n${shown.join('\n')}${more}\n`;
}

/** mulberry32: a small seeded generator, so a failure reproduces. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Hand-written cases

const SELF = '@SELF@';

/** LISTEN_PID spellings; each is run with LISTEN_FDS=1 and with LISTEN_FDS=abc. */
const PID_VALUES = [
  '', ' ', '\t', '-', '+', '@SELF@', ' @SELF@', '  @SELF@', '\t@SELF@', '\n@SELF@', '\r@SELF@', '\v@SELF@', '\f@SELF@',
  ' \t\n\r@SELF@', '\v \t@SELF@', '@SELF@ ', '@SELF@\t', '@SELF@\n', ' @SELF@ ', '+@SELF@', ' +@SELF@', '-@SELF@',
  '+ @SELF@', '- @SELF@', '++@SELF@', '+-@SELF@', '0@SELFOCT@', '00@SELFOCT@', '0o@SELFOCT@', '0O@SELFOCT@',
  ' 0o@SELFOCT@', '0o 0@SELFOCT@', '0o+@SELFOCT@', '0o-@SELFOCT@', '0x@SELFHEX@', '0X@SELFHEX@', ' 0x@SELFHEX@',
  '+0x@SELFHEX@', '-0x@SELFHEX@', '0x0x@SELFHEX@', '0b@SELFBIN@', '0B@SELFBIN@', '0b 0@SELFBIN@', '0b\t@SELFBIN@',
  '0b+@SELFBIN@', '0b-@SELFBIN@', '+0b@SELFBIN@', '\v0b@SELFBIN@', '\f0o@SELFOCT@', ' \v0x@SELFHEX@', '\r0b@SELFBIN@', '0@SELF@', '@SELF@x', 'x@SELF@', '@SELF@.0', '@SELF@:', '@OTHER@',
  ' @OTHER@', '0', '-0', '+0', '00', '0x', '0x0', '0X', '0b', '0B', '0o', '0O', '0b2', '0o8', '08', '09', '0xg', '0x-1',
  '0b-1', '0b-0', '0o-0', '-1', '1', '2', '-2147483648', '2147483647', '2147483648', '4294967295', '4294967296',
  '-4294967295', '9223372036854775807', '9223372036854775808', '18446744073709551615', '18446744073709551616',
  '-18446744073709551615', '-18446744073709551616', '99999999999999999999', '99999999999999999999x',
  '-99999999999999999999x', '99999999999x', '18446744073709551615x', '18446744073709551616x', '-18446744073709551615x',
  '-18446744073709551616x', '9223372036854775808x', '0x10000000000000000 ', '0x10000000000000000', '0x1ffffffffffffffffz', '0b' + '1'.repeat(65),
  '0b' + '1'.repeat(65) + '2', '0o' + '7'.repeat(23) + '8', 'abc', '1e3', '1.0', '1_000', '1,000', '٣', '３',
  '\u00a0@SELF@', '@SELF@\u00a0',
];

/** LISTEN_FDS spellings; each is run with LISTEN_PID=@SELF@ (and names unset). */
const FDS_VALUES = [
  '', ' ', '\t', '-', '+', '0', '-0', '+0', '00', '1', '2', '3', ' 3', '  3', '\t3', '\n3', '\r3', '\v3', '\f3', ' \v3',
  '3 ', '3\t', '3\n', ' 3 ', '+3', ' +3', '-1', '-3', ' -3', '+ 3', '- 3', '++3', '--3', '+-3', '010', '0010', '08',
  '09', '0x10', '0X10', '0x0f', '0xF', '0x0', '0x', '0X', '0xg', '0x 1', '0x+1', '0x-1', '+0x3', '-0x3', ' 0x3',
  '0x0x3', '0b11', '0B11', '0b', '0B', '0b2', '0b 11', '0b\t11', '0b\v11', '0b+11', '0b-11', '0b-0', '+0b11', '-0b11',
  '0b0b11', '0b0x3', '\v0b11', '\f0b11', '\v0o7', '\f0x3', '\r0b11', '\n0o7', '0o7', '0O7', '0o', '0o8', '0o 7', '0o+7', '0o-7', '0o0o7', '0o010', '0b010', 'abc', 'a', 'x',
  '3abc', '3a', '3:', '1.5', '3.0', '1e1', '16', '17', '0x11', '0b10001', '0o21', '021', '0b10000', '0o20', '020',
  '2147483644', '2147483645', '2147483646', '2147483647', '2147483648', '-2147483648', '-2147483649', '4294967295',
  '4294967296', '4294967299', '9223372036854775807', '9223372036854775808', '-9223372036854775808',
  '-9223372036854775809', '18446744073709551615', '18446744073709551616', '99999999999999999999',
  '99999999999999999999x', '-99999999999999999999x', '99999999999999999999 ', '9999999999x', '4294967296x',
  '9223372036854775807x', '9223372036854775808x', '-9223372036854775808x', '-9223372036854775809x',
  '18446744073709551615x', '18446744073709551616x', '-18446744073709551616x', '0x8000000000000000:', '-0x8000000000000001:',
  '0x7fffffff', '0x7ffffffc', '0x80000000', '0xffffffffffffffff', '0x10000000000000000', '0x10000000000000000g',
  '0b' + '1'.repeat(31), '0b' + '1'.repeat(64), '0b' + '1'.repeat(64) + '2', '0o17777777774', '0o' + '7'.repeat(30) + 'x',
  '٣', '３', '\u00a03', '3\u00a0', '@SELF@', '9'.repeat(100_000), '9'.repeat(100_000) + 'x', '0'.repeat(100_000) + '3',
];

/** LISTEN_FDNAMES values, each with the LISTEN_FDS counts to try it with (LISTEN_PID=@SELF@). */
const NAMES_VALUES: Array<[string, string[]]> = [
  ['', ['1', '2']],
  [':', ['1', '2', '3']],
  ['::', ['2', '3']],
  ['a', ['1', '2']],
  ['a:b', ['1', '2', '3']],
  ['a::b', ['2', '3', '4']],
  ['a:', ['1', '2']],
  [':a', ['1', '2']],
  [':a:', ['3']],
  ['a\\', ['1', '2']],
  ['\\', ['1']],
  ['\\\\', ['1']],
  ['\\\\\\', ['1']],
  ['a\\\\', ['1']],
  ['a\\\\:b', ['2']],
  ['a\\:b', ['1', '2']],
  ['a\\::b', ['2']],
  ['\\:', ['1', '2']],
  ['\\a', ['1']],
  ['a\\b', ['1']],
  ['\\n', ['1']],
  ['a:b\\', ['2']],
  ['a\\:b\\', ['1']],
  [' a : b ', ['2']],
  ['\t', ['1']],
  ['a\nb:c', ['2']],
  ['"a:b"', ['1', '2']],
  ["'a:b'", ['1', '2']],
  ['"a\\:b"', ['1']],
  ['a=b:c=d', ['2']],
  ['é:ü', ['2']],
  ['\\é:\\ü', ['2']],
  ['x'.repeat(300), ['1']],
  ['http:https:metrics', ['3']],
  ['stored:connection:unknown', ['3']],
  [Array.from({ length: 16 }, (_, i) => `n${i}`).join(':'), ['15', '16', '17', '0x10']],
  [Array.from({ length: 17 }, (_, i) => `n${i}`).join(':'), ['16', '17', '3']],
  ['a:b:c', ['17', '2147483644', '2147483645', 'abc', '0', '3']],
  ['a:b:c\\', ['3', '17', 'abc']],
];

function handWrittenCases(): Case[] {
  const cases: Case[] = [
    {},
    { LISTEN_FDS: '1' },
    { LISTEN_FDS: '1', LISTEN_FDNAMES: 'a' },
    { LISTEN_PID: SELF },
    { LISTEN_PID: SELF, LISTEN_FDNAMES: 'a' },
    { LISTEN_PID: SELF, LISTEN_FDNAMES: '' },
    { LISTEN_PID: SELF, LISTEN_FDS: '2' },
    { LISTEN_PID: '@OTHER@', LISTEN_FDS: '1', LISTEN_FDNAMES: 'a' },
    // A bad LISTEN_FDNAMES is an error even when nothing else is set, or when the pid is another one.
    { LISTEN_FDNAMES: 'a\\' },
    { LISTEN_FDNAMES: '\\' },
    { LISTEN_PID: '@OTHER@', LISTEN_FDS: '1', LISTEN_FDNAMES: 'a\\' },
    { LISTEN_PID: 'abc', LISTEN_FDS: '1', LISTEN_FDNAMES: 'a\\' },
    { LISTEN_PID: SELF, LISTEN_FDS: 'abc', LISTEN_FDNAMES: 'a\\' },
    // LISTEN_FDNAMES that fails only on the count.
    { LISTEN_PID: '@OTHER@', LISTEN_FDS: '1', LISTEN_FDNAMES: 'a:b' },
    { LISTEN_FDS: '1', LISTEN_FDNAMES: 'a:b' },
  ];
  for (const pid of PID_VALUES) {
    cases.push({ LISTEN_PID: pid, LISTEN_FDS: '1' });
    cases.push({ LISTEN_PID: pid, LISTEN_FDS: 'abc' });
  }
  for (const fds of FDS_VALUES) {
    cases.push({ LISTEN_PID: SELF, LISTEN_FDS: fds });
    cases.push({ LISTEN_PID: '@OTHER@', LISTEN_FDS: fds });
  }
  for (const [names, counts] of NAMES_VALUES) {
    for (const fds of counts) cases.push({ LISTEN_PID: SELF, LISTEN_FDS: fds, LISTEN_FDNAMES: names });
    cases.push({ LISTEN_PID: '@OTHER@', LISTEN_FDS: counts[0], LISTEN_FDNAMES: names });
    cases.push({ LISTEN_FDS: counts[0], LISTEN_FDNAMES: names });
  }
  const pidfdIds = [
    '', ' ', '0', '1', '12345', ' 12345', '12345 ', '+12345', '-1', '-0', '0x10', '0b101', '0o17', '017', '019', '0x',
    'abc', '18446744073709551614', '18446744073709551615', '18446744073709551616', '-18446744073709551615',
    '99999999999999999999x', '0b -1', '0b 1', '0o -1', '@SELF@', '@SELF@x', '1:2',
  ];
  for (const id of pidfdIds) {
    cases.push({ LISTEN_PID: SELF, LISTEN_PIDFDID: id, LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:b' });
    cases.push({ LISTEN_PID: '@OTHER@', LISTEN_PIDFDID: id, LISTEN_FDS: '2' });
    cases.push({ LISTEN_PID: SELF, LISTEN_PIDFDID: id, LISTEN_FDS: 'abc' });
    cases.push({ LISTEN_PID: SELF, LISTEN_PIDFDID: id });
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// Seeded random cases

const NUMBER_ALPHABET = ['0', '0', '1', '2', '3', '7', '8', '9', ' ', '\t', '\n', '\v', '+', '-', 'x', 'X', 'b', 'B', 'o', 'O', 'a', 'f', ':', '\\', '@SELF@'];
const NAME_ALPHABET = ['a', 'b', 'a', 'b', ':', ':', ':', '\\', '\\', ' ', '0', 'x', '\t', 'é'];
const PID_TOKENS = ['@SELF@', '@SELF@', '0x@SELFHEX@', '0@SELFOCT@', '0o@SELFOCT@', '0b@SELFBIN@', '@OTHER@'];

function randomCases(seed: number, n: number): Case[] {
  const random = generator(seed);
  const int = (max: number) => Math.floor(random() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const word = (alphabet: readonly string[], maxLength: number) => Array.from({ length: int(maxLength + 1) }, () => pick(alphabet)).join('');
  const decorate = (core: string) => {
    if (random() < 0.55) return core;
    const prefix = word([' ', '\t', '\n', '\v', '\f', '\r', '+', '-', '0', 'x', 'b', 'o', ' '], 2);
    const suffix = random() < 0.5 ? '' : word([' ', 'x', '0', '\n', ':', '9'], 1);
    return prefix + core + suffix;
  };
  const number = (value: bigint) => {
    switch (int(5)) {
      case 0:
        return '0x' + value.toString(16);
      case 1:
        return '0' + value.toString(8);
      case 2:
        return '0o' + value.toString(8);
      case 3:
        return '0b' + value.toString(2);
      default:
        return value.toString(10);
    }
  };
  const count = () => {
    const r = random();
    if (r < 0.7) return BigInt(int(20));
    if (r < 0.8) return BigInt(INT_MAX - 6 + int(10));
    if (r < 0.9) return (1n << BigInt(30 + int(40))) + BigInt(int(3)) - 1n;
    if (r < 0.95) return (1n << BigInt(63 + int(2))) + BigInt(int(5)) - 2n; // the edges of long and u64
    return BigInt(int(1000000));
  };

  // Past LONG_MAX or UINT64_MAX, then a character that is not a digit: strtol's ERANGE must win over EINVAL.
  const overflowing = () => {
    const value = (1n << BigInt(63 + int(8))) + BigInt(int(5)) - 2n;
    return pick(['', ' ', '+', '-']) + number(value) + pick(['x', ' ', '\n', ':', 'g', '.5', '9x']);
  };

  const cases: Case[] = [];
  for (let i = 0; i < n; i++) {
    const c: Case = {};
    const p = random();
    if (p < 0.1) c.LISTEN_PID = undefined;
    else if (p < 0.6) c.LISTEN_PID = decorate(pick(PID_TOKENS));
    else if (p < 0.65) c.LISTEN_PID = decorate(number(count()));
    else if (p < 0.7) c.LISTEN_PID = overflowing();
    else c.LISTEN_PID = word(NUMBER_ALPHABET, 8);

    if (random() < 0.2) {
      const q = random();
      c.LISTEN_PIDFDID = q < 0.4 ? word(NUMBER_ALPHABET, 8) : q < 0.8 ? decorate(number(count())) : overflowing();
    }

    const f = random();
    if (f < 0.05) c.LISTEN_FDS = undefined;
    else if (f < 0.55) c.LISTEN_FDS = decorate(number(count()));
    else if (f < 0.65) c.LISTEN_FDS = overflowing();
    else c.LISTEN_FDS = word(NUMBER_ALPHABET, 6);

    const m = random();
    if (m < 0.3) c.LISTEN_FDNAMES = undefined;
    else if (m < 0.65) c.LISTEN_FDNAMES = word(NAME_ALPHABET, 12);
    else {
      // As many names as a small LISTEN_FDS might say, so the counts often match.
      const k = 1 + int(5);
      c.LISTEN_FDNAMES = Array.from({ length: k }, () => word(NAME_ALPHABET.filter((ch) => ch !== ':'), 3)).join(':');
      if (random() < 0.5) c.LISTEN_FDS = decorate(number(BigInt(k)));
    }
    cases.push(c);
  }
  return cases;
}

const RANDOM_SEED = 0x5d_ac_71_4e;
const RANDOM_CASES = 4000;

describe('parseListenEnvironment() against libsystemd sd_listen_fds_with_names()', function () {
  this.timeout(120_000);

  let dir: string;
  let harness: string;

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sd-activate-listen-fds-'));
    harness = path.join(dir, 'listen-fds-harness');
    execFileSync('cc', ['-std=c11', '-O1', '-Wall', '-Wextra', '-Werror', '-o', harness, HARNESS_SOURCE, '-lsystemd'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  });

  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the harness itself: activated, names, errors and EBADF past its open fds', function () {
    const cases: Case[] = [
      { LISTEN_PID: SELF, LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:b' },
      { LISTEN_PID: SELF, LISTEN_FDS: '2' },
      { LISTEN_PID: '@OTHER@', LISTEN_FDS: '2' },
      { LISTEN_PID: SELF, LISTEN_FDS: '0' },
      { LISTEN_PID: 'x', LISTEN_FDS: '1' },
      { LISTEN_PID: SELF, LISTEN_FDS: '1000' },
      { LISTEN_PID: SELF, LISTEN_PIDFDID: '0x10', LISTEN_FDS: '1' },
    ];
    const { results, openFds } = runHarness(harness, cases);
    expect(openFds).to.equal(16);
    expect(results.map((r) => r.listen)).to.deep.equal([
      { kind: 'activated', count: 2, names: ['a', 'b'] },
      { kind: 'activated', count: 2, names: ['unknown', 'unknown'] },
      { kind: 'not-activated' },
      { kind: 'error', errno: -EINVAL },
      { kind: 'error', errno: -EINVAL },
      { kind: 'error', errno: -EBADF },
      { kind: 'activated', count: 1, names: ['unknown'] },
    ]);
    expect(results[6]!.watchdog).to.deep.equal({ r: 1, usec: 16n });
  });

  it('agrees on every hand-written case', function () {
    const cases = handWrittenCases();
    const { mismatches } = compareAll(harness, cases);
    expect(mismatches.length, report(mismatches)).to.equal(0);
    expect(cases.length).to.be.greaterThan(500);
  });

  it(`agrees on ${RANDOM_CASES} seeded pseudo-random cases (seed ${RANDOM_SEED})`, function () {
    const cases = randomCases(RANDOM_SEED, RANDOM_CASES);
    const { mismatches, expected } = compareAll(harness, cases);
    expect(mismatches.length, report(mismatches)).to.equal(0);

    // The generator must reach every outcome, or agreeing would prove little.
    const tally = new Map<string, number>();
    for (const e of expected) {
      const key = e.kind === 'error' ? `errno ${e.errno}` : e.kind === 'activated' && e.names[0] !== 'unknown' ? 'activated, named' : e.kind;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
    for (const key of ['activated', 'activated, named', 'not-activated', 'errno -22', 'errno -34', 'errno -9']) {
      expect(tally.get(key) ?? 0, `random cases reaching "${key}": ${JSON.stringify([...tally])}`).to.be.at.least(50);
    }
  });

  it('libsystemd 252 ignores LISTEN_PIDFDID; the parser follows newer libsystemd, which reads it', function () {
    const base: Case = { LISTEN_PID: SELF, LISTEN_FDS: '1' };
    const cases: Case[] = [base, { ...base, LISTEN_PIDFDID: 'garbage' }, { ...base, LISTEN_PIDFDID: '-1' }, { ...base, LISTEN_PIDFDID: '77' }];
    const { results, pid } = runHarness(harness, cases);
    // If this fails, the installed libsystemd reads LISTEN_PIDFDID: compare it directly instead.
    for (const r of results) expect(r.listen).to.deep.equal({ kind: 'activated', count: 1, names: ['unknown'] });

    const env = (id: string) => environmentOf({ ...base, LISTEN_PIDFDID: id }, pid);
    expect(ours(env('garbage'), { pid, pidfdId: () => null })).to.deep.include({ kind: 'error', errno: -EINVAL });
    expect(ours(env('-1'), { pid, pidfdId: () => null })).to.deep.include({ kind: 'error', errno: -34 });
    expect(ours(env('77'), { pid, pidfdId: () => 78n })).to.deep.equal({ kind: 'not-activated' });
    expect(ours(env('77'), { pid, pidfdId: () => 77n })).to.deep.equal({ kind: 'activated', count: 1, names: ['unknown'] });
    expect(ours(env('77'), { pid, pidfdId: () => null })).to.deep.equal({ kind: 'activated', count: 1, names: ['unknown'] });
  });
});
