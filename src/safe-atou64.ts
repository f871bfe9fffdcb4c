import { constants as osConstants } from 'node:os';

/*
 * systemd's own number parsing, for the environment variables it sets: what libsystemd accepts,
 * a service must accept, and what it refuses must be refused the same way. Checked against the
 * installed libsystemd by test/notify-libsystemd.test.ts (sd_watchdog_enabled() on WATCHDOG_USEC
 * and WATCHDOG_PID).
 */

const { EINVAL, ERANGE } = osConstants.errno;

/** UINT64_MAX, which systemd reads as infinity (USEC_INFINITY). */
export const U64_MAX = (1n << 64n) - 1n;
const INT_MAX = 0x7fffffffn;
/** systemd's WHITESPACE, skipped before its prefix check. */
const WHITESPACE = ' \t\n\r';
/** isspace(3) in the C locale, which strtoull(3) skips once more. */
const C_SPACE = ' \t\n\v\f\r';
/** Past every limit checked here; a long run of digits stops growing the bigint at this size. */
const CLAMP = 1n << 66n;

/**
 * An errno from a refused number, positive (EINVAL: not a number; ERANGE: out of range).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export interface ParseFailure {
  errno: number;
}

/**
 * safe_atou64() (and safe_atolu(), the same on 64-bit Linux): leading whitespace skipped,
 * Python-style `0b`/`0o` prefixes, otherwise strtoull(3) with base 0 (so `0x` is hex and a
 * leading `0` octal); nothing may follow the digits; a `-` is refused unless the value is 0;
 * beyond 2^64-1 is ERANGE.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export function safeAtou64(input: string): bigint | ParseFailure {
  let s = input;
  let i = 0;
  while (i < s.length && WHITESPACE.includes(s[i]!)) i++;
  s = s.slice(i);
  let base = 0;
  const prefix = s.slice(0, 2).toLowerCase();
  if (prefix === '0b') base = 2;
  else if (prefix === '0o') base = 8;
  if (base !== 0) s = s.slice(2);

  // strtoull(s, &end, base)
  let j = 0;
  while (j < s.length && C_SPACE.includes(s[j]!)) j++;
  let negative = false;
  if (s[j] === '+' || s[j] === '-') negative = s[j++] === '-';
  if (base === 0) {
    // "0x" is a prefix only when a hex digit follows: "0xg" is 0 followed by "xg".
    if (s[j] === '0' && (s[j + 1] === 'x' || s[j + 1] === 'X') && digit(s[j + 2], 16) >= 0) {
      base = 16;
      j += 2;
    } else {
      base = s[j] === '0' ? 8 : 10;
    }
  }
  const start = j;
  let magnitude = 0n;
  for (let d: number; j < s.length && (d = digit(s[j], base)) >= 0; j++) {
    if (magnitude < CLAMP) magnitude = magnitude * BigInt(base) + BigInt(d);
  }
  // systemd's order: strtoull's errno first, then "no digits" / "something follows" (EINVAL).
  if (j === start) return { errno: EINVAL };
  if (magnitude > U64_MAX) return { errno: ERANGE };
  if (j < s.length) return { errno: EINVAL };
  const value = negative ? (U64_MAX + 1n - magnitude) & U64_MAX : magnitude;
  // systemd looks at the first character after its prefix only: "0b -1" passes as UINT64_MAX.
  if (value !== 0n && s[0] === '-') return { errno: ERANGE };
  return value;
}

/**
 * parse_pid(): safe_atolu(), then it must fit a pid_t and be above 0 (ERANGE otherwise).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export function parsePid(input: string): number | ParseFailure {
  const value = safeAtou64(input);
  if (typeof value !== 'bigint') return value;
  if (value < 1n || value > INT_MAX) return { errno: ERANGE };
  return Number(value);
}

function digit(c: string | undefined, base: number): number {
  if (c === undefined) return -1;
  const code = c.charCodeAt(0);
  const d = code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 122 ? code - 87 : code >= 65 && code <= 90 ? code - 55 : -1;
  return d >= 0 && d < base ? d : -1;
}
