import { SystemdError, type SystemdErrorCode } from './errors.js';

/** The first inherited fd, `SD_LISTEN_FDS_START`. */
export const LISTEN_FDS_START = 3;

/** The environment variables of the socket activation protocol, removed together. */
export const LISTEN_VARIABLES = ['LISTEN_PID', 'LISTEN_PIDFDID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

/** What the environment says, before any fd is looked at. */
export type ListenEnvironment =
  | {
      activated: false;
      /** Why not, in a sentence a person can act on. */
      reason: string;
    }
  | {
      activated: true;
      /** How many fds, at {@link LISTEN_FDS_START} onwards. */
      count: number;
      /** One name per fd; "unknown" for each when LISTEN_FDNAMES is absent. */
      names: string[];
    };

/** Who this process is, for the LISTEN_PID and LISTEN_PIDFDID checks. */
export interface ProcessIdentity {
  pid: number;
  /** The inode id of our own pidfd, or null where the kernel has no unique one (no pidfs). */
  pidfdId: () => bigint | null;
}

const EINVAL = 22;
const ERANGE = 34;
const INT_MAX = 2 ** 31 - 1;

/**
 * Reads LISTEN_PID, LISTEN_PIDFDID, LISTEN_FDS and LISTEN_FDNAMES with the exact semantics of
 * libsystemd's sd_listen_fds_with_names(): the same numbers accepted (strtol-style, with
 * systemd's 0b/0o/0x prefixes and leading white space), the same order of checks, the same
 * escapes in LISTEN_FDNAMES. A pure function: no I/O, nothing unset.
 *
 * Not being activated (no LISTEN_PID, another process's pid, no LISTEN_FDS) is not an error.
 *
 * @throws SystemdError with the errno libsystemd would return (`errno` is negative, e.g. -22 for EINVAL)
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export function parseListenEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  self: ProcessIdentity,
): ListenEnvironment {
  // libsystemd splits the names before it looks at anything else, so a malformed
  // LISTEN_FDNAMES is an error even when the rest says "not for us".
  const rawNames = env.LISTEN_FDNAMES;
  const names = rawNames === undefined ? undefined : splitNames(rawNames);
  if (typeof names === 'number') throw listenError('ERR_SD_LISTEN_FDNAMES_INVALID', 'LISTEN_FDNAMES', rawNames!, names);

  const rawPid = env.LISTEN_PID;
  if (rawPid === undefined) return { activated: false, reason: 'LISTEN_PID is not set' };
  const pid = parseUnsigned(rawPid, 64n);
  if (typeof pid === 'number' || pid <= 0n || pid > BigInt(INT_MAX)) {
    throw listenError('ERR_SD_LISTEN_PID_INVALID', 'LISTEN_PID', rawPid, typeof pid === 'number' ? pid : ERANGE);
  }
  if (Number(pid) !== self.pid) {
    return {
      activated: false,
      reason:
        `LISTEN_PID=${rawPid} names another process than this one (pid ${self.pid}): ` +
        'a wrapper such as `npm start` or `sh -c` stands between systemd and node; start node directly, or exec it',
    };
  }

  const rawPidfdId = env.LISTEN_PIDFDID;
  if (rawPidfdId !== undefined) {
    const id = parseUnsigned(rawPidfdId, 64n);
    if (typeof id === 'number') throw listenError('ERR_SD_LISTEN_PIDFDID_INVALID', 'LISTEN_PIDFDID', rawPidfdId, id);
    const own = self.pidfdId();
    if (own !== null && own !== id) {
      return { activated: false, reason: `LISTEN_PIDFDID=${rawPidfdId} names another process than this one` };
    }
  }

  const rawFds = env.LISTEN_FDS;
  if (rawFds === undefined) return { activated: false, reason: 'LISTEN_FDS is not set' };
  const count = parseInt32(rawFds);
  if (typeof count === 'object') throw listenError('ERR_SD_LISTEN_FDS_INVALID', 'LISTEN_FDS', rawFds, count.errno);
  if (count <= 0 || count > INT_MAX - LISTEN_FDS_START) {
    throw listenError('ERR_SD_LISTEN_FDS_INVALID', 'LISTEN_FDS', rawFds, EINVAL);
  }

  if (names === undefined) return { activated: true, count, names: new Array<string>(count).fill('unknown') };
  if (names.length !== count) {
    throw new SystemdError(
      'ERR_SD_LISTEN_FDNAMES_INVALID',
      `LISTEN_FDNAMES has ${names.length} name${names.length === 1 ? '' : 's'} (${JSON.stringify(rawNames)}) ` +
        `but LISTEN_FDS=${rawFds} says ${count} fd${count === 1 ? '' : 's'}`,
      { cause: { errno: -EINVAL } },
    );
  }
  return { activated: true, count, names };
}

function listenError(code: SystemdErrorCode, variable: string, value: string, errno: number): SystemdError {
  const why = errno === ERANGE ? 'out of range' : 'not a valid number';
  const what = variable === 'LISTEN_FDS' && errno === EINVAL && /^\s*[-+]?\d+$/.test(value) ? 'not a positive fd count' : why;
  const message =
    variable === 'LISTEN_FDNAMES'
      ? `LISTEN_FDNAMES=${JSON.stringify(value)} cannot be split into names (a trailing backslash)`
      : `${variable}=${JSON.stringify(value)} is ${what}`;
  return new SystemdError(code, message, { cause: { errno: -errno } });
}

/** systemd's WHITESPACE, skipped before its own prefix check. */
const WHITESPACE = ' \t\n\r';
/** isspace(3) in the C locale, which strtol(3) skips again. */
const C_SPACE = ' \t\n\v\f\r';

/**
 * systemd's mangle_base(): Python-style 0b and 0o prefixes. (0x is left to strtol.)
 * Returns the rest and the base to use (0: let strtol decide).
 */
function mangleBase(s: string): [string, number] {
  const prefix = s.slice(0, 2).toLowerCase();
  if (prefix === '0b') return [s.slice(2), 2];
  if (prefix === '0o') return [s.slice(2), 8];
  return [s, 0];
}

/** strtol/strtoull on the whole string: the sign, the magnitude, or an errno. */
function strtoWhole(input: string, base: number): { negative: boolean; magnitude: bigint } | number {
  let i = 0;
  while (i < input.length && C_SPACE.includes(input[i]!)) i++;
  let negative = false;
  if (input[i] === '+' || input[i] === '-') {
    negative = input[i] === '-';
    i++;
  }
  if (base === 0 || base === 16) {
    const hasHexPrefix = input[i] === '0' && (input[i + 1] === 'x' || input[i + 1] === 'X') && isDigit(input[i + 2], 16);
    if (hasHexPrefix) {
      base = 16;
      i += 2;
    } else if (base === 0) {
      base = input[i] === '0' ? 8 : 10;
    }
  }
  const start = i;
  let magnitude = 0n;
  while (i < input.length && isDigit(input[i], base)) {
    magnitude = magnitude * BigInt(base) + BigInt(parseInt(input[i]!, base));
    i++;
  }
  // No digits: strtol leaves endptr at the very start; either way systemd says EINVAL.
  if (i === start || i !== input.length) return EINVAL;
  return { negative, magnitude };
}

function isDigit(c: string | undefined, base: number): boolean {
  if (c === undefined) return false;
  const value = parseInt(c, 36);
  return !Number.isNaN(value) && value < base;
}

/** safe_atolu()/safe_atou64(): unsigned, `bits` wide. Returns the value or an errno. */
function parseUnsigned(s: string, bits: bigint): bigint | number {
  let rest = s;
  let i = 0;
  while (i < rest.length && WHITESPACE.includes(rest[i]!)) i++;
  rest = rest.slice(i);
  const [mangled, base] = mangleBase(rest);
  const parsed = strtoWhole(mangled, base);
  if (typeof parsed === 'number') return parsed;
  const max = (1n << bits) - 1n;
  if (parsed.magnitude > max) return ERANGE;
  // strtoull negates in unsigned arithmetic; systemd then refuses a leading '-' unless the value is 0.
  const value = parsed.negative ? (max + 1n - parsed.magnitude) & max : parsed.magnitude;
  if (value !== 0n && mangled[0] === '-') return ERANGE;
  return value;
}

/** safe_atoi(): a C int through strtol. Returns the value or { errno }. */
function parseInt32(s: string): number | { errno: number } {
  let i = 0;
  while (i < s.length && WHITESPACE.includes(s[i]!)) i++;
  const [mangled, base] = mangleBase(s.slice(i));
  const parsed = strtoWhole(mangled, base);
  if (typeof parsed === 'number') return { errno: parsed };
  const value = parsed.negative ? -parsed.magnitude : parsed.magnitude;
  // strtol saturates at the range of long; safe_atoi then refuses what does not fit an int.
  if (value > (1n << 63n) - 1n || value < -(1n << 63n)) return { errno: ERANGE };
  if (value > BigInt(INT_MAX) || value < -BigInt(INT_MAX) - 1n) return { errno: ERANGE };
  return Number(value);
}

/**
 * strv_split_full(value, ":", EXTRACT_DONT_COALESCE_SEPARATORS): empty fields are kept
 * ("a::b" is three names, "" is one empty name), and a backslash takes the next character
 * literally; a trailing backslash is EINVAL. Returns the names or an errno.
 */
function splitNames(value: string): string[] | number {
  const names: string[] = [];
  let word = '';
  for (let i = 0; ; i++) {
    if (i === value.length) {
      names.push(word);
      return names;
    }
    const c = value[i]!;
    if (c === '\\') {
      if (i + 1 === value.length) return EINVAL;
      word += value[++i];
    } else if (c === ':') {
      names.push(word);
      word = '';
    } else {
      word += c;
    }
  }
}
