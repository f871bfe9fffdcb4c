import { errno as errnoValues } from './builtins.js';

/*
 * systemd's own number parsing (safe_atoi, safe_atou64/safe_atolu, parse_pid), for the variables
 * systemd sets: what libsystemd accepts a service must accept, and what it refuses must be refused
 * with the same errno. Proven against the installed libsystemd by test/env-libsystemd.test.ts
 * (LISTEN_*) and test/notify-libsystemd.test.ts (WATCHDOG_*).
 */

const { EINVAL, ERANGE } = errnoValues;
const INT_MAX = 2 ** 31 - 1;

/** A refused number: the positive errno (EINVAL: not a number; ERANGE: out of range). */
export interface ParseFailure {
  errno: number;
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
  // STARTSWITH_SET(s, "0b", "0B") and (s, "0o", "0O"): exact bytes, no case folding beyond these.
  const prefix = s.slice(0, 2);
  if (prefix === '0b' || prefix === '0B') return [s.slice(2), 2];
  if (prefix === '0o' || prefix === '0O') return [s.slice(2), 8];
  return [s, 0];
}

/** Larger than any limit a caller checks (UINT64_MAX, LONG_MAX, -LONG_MIN). */
const SCAN_CLAMP = 1n << 65n;

/** What strtol(3)/strtoull(3) saw in a string, before the caller's checks. */
interface StrtoScan {
  negative: boolean;
  /** The digits' value, exact up to {@link SCAN_CLAMP} (above, only "too large" matters): the caller decides what overflows. */
  magnitude: bigint;
  /** False when there were no digits at all (strtol leaves endptr at the very start). */
  digits: boolean;
  /** True when characters follow the digits (`*endptr != 0`). */
  trailing: boolean;
}

/** strtol/strtoull's scan of `input` in `base` (0: decide from a 0x or 0 prefix). */
function strtoScan(input: string, base: number): StrtoScan {
  let i = 0;
  while (i < input.length && C_SPACE.includes(input[i]!)) i++;
  let negative = false;
  if (input[i] === '+' || input[i] === '-') {
    negative = input[i] === '-';
    i++;
  }
  if (base === 0 || base === 16) {
    // "0x" counts as a prefix only when a hex digit follows: "0xg" is the number 0, then "xg".
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
    // Stop growing once past every limit: a 128 KiB run of digits would otherwise cost seconds of bigint work.
    if (magnitude <= SCAN_CLAMP) magnitude = magnitude * BigInt(base) + BigInt(parseInt(input[i]!, base));
    i++;
  }
  return { negative, magnitude, digits: i > start, trailing: i < input.length };
}

function isDigit(c: string | undefined, base: number): boolean {
  if (c === undefined) return false;
  const value = parseInt(c, 36);
  return !Number.isNaN(value) && value < base;
}

/**
 * The checks every safe_ato*() makes after strtol/strtoull, in systemd's order: errno first
 * (ERANGE, set while strtol consumed the digits, so even "99999999999999999999x" is ERANGE,
 * not EINVAL), then "no digits" or "something follows the digits" (EINVAL).
 * Returns an errno, or 0 when the scan is a whole number that did not overflow.
 */
function strtoErrno(scan: StrtoScan, overflows: boolean): number {
  if (!scan.digits) return EINVAL;
  if (overflows) return ERANGE;
  if (scan.trailing) return EINVAL;
  return 0;
}

/**
 * What a service manager writes: 1 to 9 decimal digits, no sign, no leading zero, nothing else.
 * Every parser here reads such a string as the decimal number it is (below INT_MAX), so they
 * take it as it is, without the scan that reproduces strtol(3) for everything else: a process
 * reads LISTEN_PID and LISTEN_FDS at start-up, where each function compiled costs time.
 */
function isPlainDecimal(s: string): boolean {
  if (s.length === 0 || s.length > 9 || s.charCodeAt(0) === 0x30) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** UINT64_MAX, which systemd reads as infinity (USEC_INFINITY) where it reads microseconds. */
export const U64_MAX = (1n << 64n) - 1n;
const LONG_MAX = (1n << 63n) - 1n;

/**
 * safe_atou64(), and safe_atolu() (the same on 64-bit Linux): strtoull(3) underneath.
 * Returns the value or the errno libsystemd would return.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export function safeAtou64(s: string): bigint | ParseFailure {
  return isPlainDecimal(s) ? BigInt(s) : scanAtou64(s);
}

/*
 * The general cases of safeAtou64() and safeAtoi() live in functions of their own: V8 compiles a
 * function, all of it, on its first call, and a service reading what systemd wrote never needs them.
 */
/** What strtol(3) and strtoull(3) share: leading white space skipped, the base's prefix read, the digits scanned. */
function scanFrom(s: string): { mangled: string; scan: StrtoScan } {
  let i = 0;
  while (i < s.length && WHITESPACE.includes(s[i]!)) i++;
  const [mangled, base] = mangleBase(s.slice(i));
  return { mangled, scan: strtoScan(mangled, base) };
}

function scanAtou64(s: string): bigint | ParseFailure {
  const { mangled, scan } = scanFrom(s);
  // strtoull overflows on the magnitude, whatever the sign.
  const errno = strtoErrno(scan, scan.magnitude > U64_MAX);
  if (errno !== 0) return { errno };
  // strtoull negates in unsigned arithmetic; systemd then refuses a '-' as the very first character
  // after its prefix, unless the value is 0. ("0b -1", with a space, is UINT64_MAX: glibc skips the
  // space, systemd looks only at the first character.)
  const value = scan.negative ? (U64_MAX + 1n - scan.magnitude) & U64_MAX : scan.magnitude;
  if (value !== 0n && mangled[0] === '-') return { errno: ERANGE };
  return value;
}

/**
 * safe_atoi(): strtol(3) into a long, then refused if it does not fit an int.
 * Returns the value or the errno libsystemd would return.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export function safeAtoi(s: string): number | ParseFailure {
  return isPlainDecimal(s) ? Number(s) : scanAtoi(s);
}

function scanAtoi(s: string): number | ParseFailure {
  const { scan } = scanFrom(s);
  // strtol overflows (errno ERANGE) past LONG_MAX, or past -LONG_MIN for a negative number.
  const errno = strtoErrno(scan, scan.magnitude > (scan.negative ? LONG_MAX + 1n : LONG_MAX));
  if (errno !== 0) return { errno };
  const value = scan.negative ? -scan.magnitude : scan.magnitude;
  if (value > BigInt(INT_MAX) || value < -BigInt(INT_MAX) - 1n) return { errno: ERANGE };
  return Number(value);
}

/**
 * parse_pid(): safe_atolu(), then it must fit a pid_t and be above 0 (ERANGE otherwise).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export function parsePid(input: string): number | ParseFailure {
  const value = safeAtou64(input);
  if (typeof value !== 'bigint') return value;
  if (value < 1n || value > BigInt(INT_MAX)) return { errno: ERANGE };
  return Number(value);
}
