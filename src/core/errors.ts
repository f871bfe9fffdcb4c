import { os, util } from './builtins.js';

const { getSystemErrorName } = util;

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
  /** An inherited fd could not be used (closed, or fcntl/fstat failed on it), or a connection to hand over has no fd (destroyed, still connecting). */
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
  | 'ERR_SD_UNSUPPORTED_PLATFORM'
  /**
   * The JavaScript runtime (Bun, Deno) cannot do what was asked, where Node can: the message says
   * what does not work there, and what to do instead.
   */
  | 'ERR_SD_UNSUPPORTED_RUNTIME'
  /**
   * NOTIFY_SOCKET is set but is not an absolute path or an `@abstract` name that fits a
   * sockaddr_un (sd_notify(3) fails with -EINVAL or -ENAMETOOLONG for it too, and sends nothing).
   */
  | 'ERR_SD_NOTIFY_SOCKET_INVALID'
  /** WATCHDOG_USEC is set but is not a number of microseconds above 0 and below infinity (sd_watchdog_enabled(3) fails too). */
  | 'ERR_SD_WATCHDOG_USEC_INVALID'
  /** WATCHDOG_PID is set but is not a valid pid (sd_watchdog_enabled(3) fails too). */
  | 'ERR_SD_WATCHDOG_PID_INVALID'
  /** A NotifyReceiver was closed while a receive() was waiting on it. */
  | 'ERR_SD_NOTIFY_RECEIVER_CLOSED'
  /** A `--listen` argument (or a socket given to `sd-activate/testing`) cannot be parsed. */
  | 'ERR_SD_LISTEN_SPEC_INVALID'
  /** A socket, FIFO or message queue to pass could not be created (address in use, no permission, ...). */
  | 'ERR_SD_LISTEN_FAILED'
  /** The command to run is not found, or not executable. */
  | 'ERR_SD_COMMAND_NOT_FOUND'
  /** The service did not send READY=1 within the start timeout. */
  | 'ERR_SD_START_TIMEOUT'
  /** The service exited while it was awaited: before READY=1, or before a message a test waited for. */
  | 'ERR_SD_SERVICE_EXITED'
  /** The service was started StartLimitBurst= times within StartLimitIntervalSec=, and not again (Result=start-limit-hit). */
  | 'ERR_SD_START_LIMIT_HIT'
  /** `sd-activate/testing`: what a test waited for (a notify message, a line of output) did not come in time. */
  | 'ERR_SD_WAIT_TIMEOUT'
  /** An upgrade could not hand over (the new process could not be started or told it is the main process), or was cancelled. */
  | 'ERR_SD_UPGRADE_FAILED'
  /** `idleTimeoutMs` asked of a service whose sockets would not outlive it: they are not all inherited from the service manager. */
  | 'ERR_SD_IDLE_EXIT_UNSAFE'
  /** This Node.js keeps a connection's fd elsewhere than sd-activate reads it (its private net.Socket `_handle`): connections cannot be handed over. */
  | 'ERR_SD_NODE_UNSUPPORTED'
  /** `sd-activate doctor`: systemctl could not be run, or failed to read the unit. */
  | 'ERR_SD_SYSTEMCTL_FAILED'
  /** This `ws` keeps a WebSocket's state elsewhere than sd-activate/ws reads it: its WebSockets are closed with 1012 at upgrades instead of handed over. */
  | 'ERR_SD_WS_UNSUPPORTED';

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

  /**
   * `instanceof SystemdError` holds for an error made by any copy of this class: sd-activate/testing,
   * the CLI and the lazily loaded upgrade and worker-pool code each carry one, as does a second
   * install of the package. A subclass keeps the ordinary rule.
   */
  static override [Symbol.hasInstance](value: unknown): value is SystemdError {
    if (this !== SystemdError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
  }
}

/** What every copy of SystemdError puts on its prototype (a registered symbol: one for all copies). */
const BRAND = Symbol.for('sd-activate.SystemdError');
Object.defineProperty(SystemdError.prototype, BRAND, { value: true });
// The class's own name, whatever binding a bundler gives it: esbuild turns a class whose body names
// itself into `var SystemdError = class _SystemdError`, a minifier into `class a`, and Node prints an
// uncaught error under its constructor's name ("_SystemdError: ..." beside err.name).
Object.defineProperty(SystemdError, 'name', { value: 'SystemdError' });

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
  let code: string | undefined;
  try {
    code = getSystemErrorName(-positive);
  } catch {
    // Not a number libuv takes.
  }
  // libuv names only the errnos it maps ("Unknown system error -10" for ECHILD): the system's own name then.
  if (code === undefined || !code.startsWith('E')) {
    code = Object.entries(os().constants.errno).find(([, value]) => value === positive)?.[0] ?? `E${positive}`;
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
