import { errno as errnoValues } from './builtins.js';
import { SystemdError } from './errors.js';
import { U64_MAX, parsePid, safeAtou64 } from './parse-number.js';
import { quote } from './quote.js';

/*
 * sd_watchdog_enabled(3)'s reading of the environment, pure: the pinger (service/watchdog.ts) and
 * the check for a watchdog never started (service/warnings.ts, on the notify client's send path)
 * both read it.
 */

const { EINVAL, ERANGE } = errnoValues;

/**
 * What WATCHDOG_USEC and WATCHDOG_PID say, by sd_watchdog_enabled(3)'s rules. A pure function of
 * the environment and the pid: nothing is read or unset.
 *
 * - WATCHDOG_USEC unset: no watchdog (`null`).
 * - WATCHDOG_USEC unparsable, 0, or infinity (2^64-1): an error.
 * - WATCHDOG_PID unparsable or not a valid pid: an error; set to another pid: no watchdog (`null`).
 *
 * @returns the timeout in microseconds, or null when no watchdog is asked of this process
 * @throws SystemdError `ERR_SD_WATCHDOG_USEC_INVALID` or `ERR_SD_WATCHDOG_PID_INVALID`, with
 *   `cause.errno` the negative errno libsystemd returns for the same value
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export function parseWatchdogEnvironment(env: Readonly<Record<string, string | undefined>>, pid: number): bigint | null {
  const usecText = env.WATCHDOG_USEC;
  if (usecText === undefined) return null;
  const usec = safeAtou64(usecText);
  if (typeof usec !== 'bigint') {
    throw watchdogError('ERR_SD_WATCHDOG_USEC_INVALID', 'WATCHDOG_USEC', usecText, usec.errno, usec.errno === ERANGE ? 'is out of range' : 'is not a number');
  }
  if (usec === 0n || usec === U64_MAX) {
    throw watchdogError('ERR_SD_WATCHDOG_USEC_INVALID', 'WATCHDOG_USEC', usecText, EINVAL, usec === 0n ? 'is 0' : 'is infinity');
  }
  const pidText = env.WATCHDOG_PID;
  if (pidText !== undefined) {
    const target = parsePid(pidText);
    if (typeof target !== 'number') {
      throw watchdogError('ERR_SD_WATCHDOG_PID_INVALID', 'WATCHDOG_PID', pidText, target.errno, target.errno === ERANGE ? 'is not a valid pid' : 'is not a number');
    }
    // Meant for another process: the one systemd started, which then exec'd or forked us.
    if (target !== pid) return null;
  }
  return usec;
}

function watchdogError(code: 'ERR_SD_WATCHDOG_USEC_INVALID' | 'ERR_SD_WATCHDOG_PID_INVALID', variable: string, value: string, errno: number, problem: string): SystemdError {
  return new SystemdError(code, `${variable}=${quote(value)} ${problem}`, { cause: { errno: -errno } });
}
