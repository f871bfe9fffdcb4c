/*
 * What an fd name may be: systemd's fdname_is_valid(), the rule of FileDescriptorName=, FDNAME= and
 * LISTEN_FDNAMES alike. One rule for every place that names an fd.
 */
import { quote } from './quote.js';

/** The longest fd name systemd accepts (FDNAME_MAX in fdname_is_valid()). */
export const FDNAME_MAX = 255;

/**
 * systemd's fdname_is_valid(): printable ASCII but ':', which separates LISTEN_FDNAMES, at most 255
 * characters. systemd also takes an empty name; it is refused here, since it comes back as an empty
 * field of LISTEN_FDNAMES and is far more often an unset variable than a choice.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_pid_notify_with_fds.html
 */
export function isValidFdName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= FDNAME_MAX && /^[\x20-\x39\x3b-\x7e]+$/.test(name);
}

/**
 * `name`, when it is a valid fd name.
 *
 * @param what - how the caller calls it in the message: 'FDNAME', 'name'
 * @throws TypeError saying what an fd name may be
 */
export function checkFdName(name: unknown, what: string): string {
  if (typeof name !== 'string') throw new TypeError(`${what} must be a string (an FDNAME=), got ${typeof name}`);
  if (!isValidFdName(name)) throw new TypeError(`${what} must be 1 to ${FDNAME_MAX} printable ASCII characters without ':' (an FDNAME=): ${quote(name)}`);
  return name;
}
