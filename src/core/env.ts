import { SystemdError, type SystemdErrorCode } from './errors.js';
import { safeAtoi, safeAtou64 } from './parse-number.js';
import { quote } from './quote.js';

/** The first inherited fd, `SD_LISTEN_FDS_START`. */
export const LISTEN_FDS_START = 3;

export { LISTEN_VARIABLES, MANAGER_VARIABLES } from './variables.js';

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
 * test/env-libsystemd.test.ts compares it with libsystemd 252's own function. LISTEN_PIDFDID is
 * newer than 252 (which ignores it) and is read the way current libsystemd reads it.
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
  if (typeof names === 'number') {
    throw listenError('ERR_SD_LISTEN_FDNAMES_INVALID', 'LISTEN_FDNAMES', rawNames!, names, 'cannot be split into names: it ends in a lone backslash');
  }

  const rawPid = env.LISTEN_PID;
  if (rawPid === undefined) return { activated: false, reason: 'LISTEN_PID is not set' };
  // parse_pid(): safe_atolu(), then ERANGE for anything that is not a valid pid_t above 0.
  const pid = safeAtou64(rawPid);
  if (typeof pid !== 'bigint') throw listenError('ERR_SD_LISTEN_PID_INVALID', 'LISTEN_PID', rawPid, pid.errno);
  if (pid <= 0n || pid > BigInt(INT_MAX)) {
    throw listenError('ERR_SD_LISTEN_PID_INVALID', 'LISTEN_PID', rawPid, ERANGE, `is not a pid (1 to ${INT_MAX})`);
  }
  if (Number(pid) !== self.pid) {
    return {
      activated: false,
      reason:
        `LISTEN_PID=${spelled(rawPid, pid)} names another process than this one (pid ${self.pid}): ` +
        'a wrapper such as `npm start` or `sh -c` stands between systemd and node; start node directly, or exec it',
    };
  }

  const rawPidfdId = env.LISTEN_PIDFDID;
  if (rawPidfdId !== undefined) {
    // Newer libsystemd (LISTEN_PIDFDID postdates systemd 252, which ignores it): safe_atou64(),
    // read only once LISTEN_PID matched; compared only where pidfds have unique inode ids.
    const id = safeAtou64(rawPidfdId);
    if (typeof id !== 'bigint') throw listenError('ERR_SD_LISTEN_PIDFDID_INVALID', 'LISTEN_PIDFDID', rawPidfdId, id.errno);
    const own = self.pidfdId();
    if (own !== null && own !== id) {
      return { activated: false, reason: `LISTEN_PIDFDID=${spelled(rawPidfdId, id)} names another process than this one` };
    }
  }

  const rawFds = env.LISTEN_FDS;
  if (rawFds === undefined) return { activated: false, reason: 'LISTEN_FDS is not set' };
  const count = safeAtoi(rawFds);
  if (typeof count === 'object') throw listenError('ERR_SD_LISTEN_FDS_INVALID', 'LISTEN_FDS', rawFds, count.errno);
  // EINVAL, not ERANGE, for a count that fits an int but not the protocol (0 included).
  if (count <= 0) throw listenError('ERR_SD_LISTEN_FDS_INVALID', 'LISTEN_FDS', rawFds, EINVAL, 'is not a positive fd count');
  if (count > INT_MAX - LISTEN_FDS_START) {
    throw listenError('ERR_SD_LISTEN_FDS_INVALID', 'LISTEN_FDS', rawFds, EINVAL, `is larger than ${INT_MAX - LISTEN_FDS_START}, the most fds sd_listen_fds(3) accepts`);
  }

  if (names === undefined) return { activated: true, count, names: unknownNames(count) };
  if (names.length !== count) {
    throw new SystemdError(
      'ERR_SD_LISTEN_FDNAMES_INVALID',
      `LISTEN_FDNAMES has ${names.length} name${names.length === 1 ? '' : 's'} (${quote(rawNames!)}) ` +
        `but LISTEN_FDS=${spelled(rawFds, count)} says ${count} fd${count === 1 ? '' : 's'}`,
      { cause: { errno: -EINVAL } },
    );
  }
  return { activated: true, count, names };
}

/**
 * Above this many fds, the "unknown" names are not allocated one by one: see {@link unknownNames}.
 * 2^20 is the kernel's default fs.nr_open, the usual ceiling of RLIMIT_NOFILE.
 */
const EAGER_NAMES_MAX = 1 << 20;

/**
 * `count` times "unknown". LISTEN_FDS may say up to INT_MAX - 3, and filling an array that long
 * aborts node (out of memory) before anything could notice that most of those fds do not exist;
 * libsystemd fails with EBADF at the first closed fd, before it allocates a single name. So a
 * count beyond what a process normally can have open gets an array that reads "unknown" at
 * every index below `count` without storing any of them.
 */
function unknownNames(count: number): string[] {
  if (count <= EAGER_NAMES_MAX) return new Array<string>(count).fill('unknown');
  const isIndex = (key: string | symbol): boolean => typeof key === 'string' && /^(0|[1-9]\d*)$/.test(key) && Number(key) < count;
  return new Proxy(new Array<string>(count), {
    get: (target, key, receiver) => (isIndex(key) ? 'unknown' : Reflect.get(target, key, receiver)),
    has: (target, key) => isIndex(key) || Reflect.has(target, key),
    getOwnPropertyDescriptor: (target, key) =>
      isIndex(key) ? { value: 'unknown', writable: true, enumerable: true, configurable: true } : Reflect.getOwnPropertyDescriptor(target, key),
  });
}

/**
 * The error for a variable libsystemd refuses: the message names the variable and its value, then
 * says what is wrong (`problem`; by default from the errno: EINVAL "is not a number", ERANGE "is out of range").
 */
function listenError(code: SystemdErrorCode, variable: string, value: string, errno: number, problem?: string): SystemdError {
  const why = problem ?? (errno === ERANGE ? 'is out of range' : 'is not a number');
  return new SystemdError(code, `${variable}=${quote(value)} ${why}`, { cause: { errno: -errno } });
}

/**
 * A number's variable as written when that is the plain number (`LISTEN_PID=1`), else quoted: the
 * parsers take leading white space and prefixes, so a valid value can be kilobytes long.
 */
function spelled(raw: string, value: number | bigint): string {
  return raw === String(value) ? raw : quote(raw);
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
