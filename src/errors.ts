import { getSystemErrorName } from 'node:util';

/**
 * Every condition of sd-activate's own, by its literal `code`.
 * The README lists each with what to do about it.
 */
export type SystemdErrorCode =
  /** LISTEN_PID is set but is not a valid pid (sd_listen_fds(3) fails with it too). */
  | 'ERR_SD_LISTEN_PID_INVALID'
  /** LISTEN_PIDFDID is set but is not an unsigned 64-bit number. */
  | 'ERR_SD_LISTEN_PIDFDID_INVALID'
  /** LISTEN_FDS is not a positive integer in range. */
  | 'ERR_SD_LISTEN_FDS_INVALID'
  /** LISTEN_FDNAMES cannot be split, or does not have one name per fd. */
  | 'ERR_SD_LISTEN_FDNAMES_INVALID'
  /** An inherited fd could not be used (closed, or fcntl/fstat failed on it). */
  | 'ERR_SD_FD_INVALID'
  /** The process was not socket-activated and no fallback was given. */
  | 'ERR_SD_NOT_ACTIVATED'
  /** No inherited fd carries the name asked for. */
  | 'ERR_SD_FD_NOT_FOUND'
  /** Several fds carry the name, where one was asked for. */
  | 'ERR_SD_FD_AMBIGUOUS'
  /** The fd is of a kind the adapter cannot serve (a UDP socket given to HTTP, ...). */
  | 'ERR_SD_FD_UNSUITABLE'
  /** The native addon cannot be loaded on this platform (systemd is Linux-only). */
  | 'ERR_SD_UNSUPPORTED_PLATFORM';

/**
 * The one error class of sd-activate for its own conditions. Failed syscalls are
 * plain Node-style errors instead (see {@link systemError}), like those of `fs`.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export class SystemdError extends Error {
  /** A stable, literal code to switch on. */
  readonly code: SystemdErrorCode;

  constructor(code: SystemdErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SystemdError';
    this.code = code;
  }
}

/** A failed syscall, shaped like Node's own (`fs`, `net`): `code`, negative `errno`, `syscall`. */
export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  fd?: number;
  path?: string;
}

/**
 * The one place that maps an errno to an error, so every failed syscall reads the same:
 * `EBADF: bad file descriptor, fstat (fd 7)`.
 *
 * @param errno - the errno, either sign
 * @param syscall - the failing call
 * @param detail - the fd or path it was about
 * @param text - strerror(3)'s text for it, when known
 */
export function systemError(
  errno: number,
  syscall: string,
  detail: { fd?: number; path?: string } = {},
  text?: string,
): SystemError {
  const positive = Math.abs(errno);
  let code: string;
  try {
    code = getSystemErrorName(-positive);
  } catch {
    code = `E${positive}`;
  }
  const reason = text ? text.charAt(0).toLowerCase() + text.slice(1) : `errno ${positive}`;
  const where = detail.fd !== undefined ? ` (fd ${detail.fd})` : detail.path !== undefined ? ` '${detail.path}'` : '';
  const error = new Error(`${code}: ${reason}, ${syscall}${where}`) as SystemError;
  error.code = code;
  error.errno = -positive;
  error.syscall = syscall;
  if (detail.fd !== undefined) error.fd = detail.fd;
  if (detail.path !== undefined) error.path = detail.path;
  return error;
}

/** True for an error thrown by the addon: it carries a positive `errno` and a `syscall`. */
export function isNativeErrno(error: unknown): error is { errno: number; syscall: string; message: string } {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { errno?: unknown }).errno === 'number' &&
    typeof (error as { syscall?: unknown }).syscall === 'string'
  );
}
