import { errno as errnoValues, os } from '../core/builtins.js';
import { SystemdError, systemError, type SystemError } from '../core/errors.js';
import { native } from '../native/addon.js';
import { encodeSockaddr } from '../core/sockaddr.js';

/*
 * The sd_notify(3) client. Everything libsystemd's sd_pid_notify_with_fds() decides is decided here,
 * the same way; the addon only does the one sendmsg(2). Checked byte for byte against libsystemd
 * by test/notify-libsystemd.test.ts.
 */

const { EINVAL, ENAMETOOLONG, ETIMEDOUT } = errnoValues;

/** sizeof(sockaddr_un.sun_path) - 1: libsystemd wants room for a trailing NUL, even for an abstract name. */
const NOTIFY_SOCKET_MAX = 107;

/**
 * Options every notify call takes.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface NotifyOptions {
  /**
   * Send on behalf of this process (sd_pid_notify(3)): the datagram carries SCM_CREDENTIALS naming
   * it. 0 or `process.pid` is this process, which needs no credentials: the kernel supplies them.
   * Claiming another pid needs CAP_SYS_ADMIN; without it the message is sent again with this
   * process's own credentials, as libsystemd does.
   */
  pid?: number;
  /**
   * Remove NOTIFY_SOCKET from `process.env` once read, whatever the outcome (sd_notify's
   * `unset_environment`), so that child processes do not talk to the service manager by mistake.
   */
  unsetEnvironment?: boolean;
  /**
   * The socket to send to, in NOTIFY_SOCKET's form (an absolute path or `@abstract`), instead of
   * the NOTIFY_SOCKET of `process.env`: for code that captured the variable once and must keep
   * using it after the environment changed (an upgrade's old process, which removed it so that
   * the processes it starts do not inherit it).
   */
  socket?: string;
}

/**
 * Options of {@link notify} itself.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface NotifySendOptions extends NotifyOptions {
  /** fds to pass with SCM_RIGHTS (sd_pid_notify_with_fds(3)); at most 253 (SCM_MAX_FD), or E2BIG. */
  fds?: readonly number[];
}

/**
 * Options of {@link Notify.fdStore}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface FdStoreOptions extends NotifyOptions {
  /**
   * false sends FDPOLL=0: systemd then does not watch the fds for POLLHUP/POLLERR, which would
   * otherwise drop them from the store (needed for fds that are not sockets or pipes; systemd 246+).
   */
  poll?: boolean;
}

/**
 * Options of {@link Notify.reloading}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface ReloadingOptions extends NotifyOptions {
  /** A STATUS= to send in the same message, as systemd's own notify_reloading_full() does. */
  status?: string;
}

/**
 * `1`, as systemd's boolean fields are written; true and '1' say the same.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export type NotifyFlag = 1 | '1' | true;

/**
 * A value of a field: written in decimal (numbers must be integers), as text, or `1` for true.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export type NotifyValue = string | number | bigint | boolean;

/**
 * The fields of one notify message, by systemd's own names, sent in the object's order as
 * `KEY=VALUE` lines. Fields set to `undefined`, `null` or `false` are left out. Durations are
 * in microseconds here, as on the wire; the helpers on {@link notify} take milliseconds.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#Well-known%20assignments
 */
export interface NotifyFields {
  /** Start-up is finished (Type=notify). */
  READY?: NotifyFlag;
  /** Reloading its configuration; Type=notify-reload (systemd 253+) needs MONOTONIC_USEC with it. */
  RELOADING?: NotifyFlag;
  /** Shutting down. */
  STOPPING?: NotifyFlag;
  /** CLOCK_MONOTONIC in microseconds, when RELOADING=1 was decided. */
  MONOTONIC_USEC?: number | bigint;
  /** One line of UTF-8 shown by `systemctl status`. */
  STATUS?: string;
  /** Changes NotifyAccess= at runtime (systemd 254+). */
  NOTIFYACCESS?: 'none' | 'main' | 'exec' | 'all';
  /** An errno describing the failure: `2` for ENOENT. */
  ERRNO?: number;
  /** A D-Bus error name describing the failure. */
  BUSERROR?: string;
  /** The exit status to report (systemd 254+). */
  EXIT_STATUS?: number | string;
  /** The main pid of the service, when it is not the sender. */
  MAINPID?: number;
  /** `1` pings the watchdog; `'trigger'` fails the service as if it had timed out. */
  WATCHDOG?: NotifyFlag | 'trigger';
  /** Resets WatchdogSec= at runtime, in microseconds. */
  WATCHDOG_USEC?: number | bigint;
  /** Extends the current start, runtime or stop timeout by this many microseconds from now. */
  EXTEND_TIMEOUT_USEC?: number | bigint;
  /** Store the fds sent with this message (FileDescriptorStoreMax= must be above 0). */
  FDSTORE?: NotifyFlag;
  /** Remove the stored fds named by FDNAME. */
  FDSTOREREMOVE?: NotifyFlag;
  /** The name of the fds of FDSTORE=1 or FDSTOREREMOVE=1: printable ASCII, no ':', at most 255 chars. */
  FDNAME?: string;
  /** `0`: do not poll the stored fds for hang-ups. */
  FDPOLL?: 0 | '0';
  /** Synchronization; use {@link Notify.barrier}, which also sends the fd this needs. */
  BARRIER?: NotifyFlag;
  /** Private fields: systemd ignores them, other receivers may not. */
  [key: `X_${string}`]: NotifyValue | null | undefined;
}

/**
 * {@link notify}: a function, plus one helper per field of sd_notify(3).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface Notify {
  /**
   * Sends one notify datagram to the service manager, as sd_notify(3) does.
   *
   * @param message - the message as systemd reads it (`'READY=1\nSTATUS=Up'`, sent as-is; NUL is
   *   refused) or a {@link NotifyFields} object, whose values are checked so that no value can add
   *   a field of its own
   * @returns false when NOTIFY_SOCKET is unset (not running under a service manager is not an
   *   error), true once the datagram is sent
   * @throws SystemdError `ERR_SD_NOTIFY_SOCKET_INVALID` when NOTIFY_SOCKET is neither an absolute
   *   path nor an `@abstract` name of at most 107 bytes
   * @throws SystemError (`code`, `errno`, `syscall: 'sendmsg'`, `path`) when the send fails:
   *   ECONNREFUSED or ENOENT when the receiver is gone, E2BIG for more than 253 fds
   * @throws TypeError for a field that cannot be sent as given
   * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
   */
  (message: string | NotifyFields, options?: NotifySendOptions): boolean;
  /** READY=1: start-up is finished. */
  ready(options?: NotifyOptions): boolean;
  /** STATUS=: one line of UTF-8 for `systemctl status`. @throws TypeError for a line break, a NUL or a lone surrogate. */
  status(text: string, options?: NotifyOptions): boolean;
  /** STOPPING=1: shutting down. */
  stopping(options?: NotifyOptions): boolean;
  /**
   * RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC now), as Type=notify-reload (systemd 253+)
   * requires; send {@link Notify.ready} when the reload is done.
   */
  reloading(options?: ReloadingOptions): boolean;
  /** WATCHDOG=1: keeps the service's watchdog from firing. See {@link startWatchdog}. */
  watchdog(options?: NotifyOptions): boolean;
  /** WATCHDOG=trigger: fails the service as if its watchdog had timed out. */
  watchdogTrigger(options?: NotifyOptions): boolean;
  /** WATCHDOG_USEC=: sets the watchdog timeout at runtime. @param ms - milliseconds, sent as microseconds */
  watchdogUsec(ms: number, options?: NotifyOptions): boolean;
  /** MAINPID=: the service's main process, when it is not the sender. */
  mainPid(pid: number, options?: NotifyOptions): boolean;
  /** EXTEND_TIMEOUT_USEC=: asks for `ms` more from now on the current start/runtime/stop timeout. */
  extendTimeout(ms: number, options?: NotifyOptions): boolean;
  /** ERRNO=: why the service failed, as a number (`2`) or a name (`'ENOENT'`). */
  errno(error: number | string, options?: NotifyOptions): boolean;
  /** BUSERROR=: why the service failed, as a D-Bus error name. */
  busError(name: string, options?: NotifyOptions): boolean;
  /**
   * FDSTORE=1 with FDNAME=: keeps `fds` in the service manager across restarts; they come back in
   * LISTEN_FDS with this name. Needs FileDescriptorStoreMax= above 0, or systemd drops them silently.
   * The fds stay open here too: close them when they are no longer needed.
   */
  fdStore(name: string, fds: readonly number[], options?: FdStoreOptions): boolean;
  /** FDSTOREREMOVE=1 with FDNAME=: drops the stored fds of that name. */
  fdStoreRemove(name: string, options?: NotifyOptions): boolean;
  /**
   * BARRIER=1 (sd_notify_barrier(3)): resolves once the service manager has processed every
   * message sent before it. Waits on a pipe in the event loop, never blocking it.
   *
   * @param timeoutMs - how long to wait (default 5000, as `systemd-notify`; Infinity to wait forever)
   * @returns false when NOTIFY_SOCKET is unset, true once the manager answered
   * @throws SystemError `ETIMEDOUT` (rejects) when it did not answer in time
   */
  barrier(timeoutMs?: number, options?: NotifyOptions): Promise<boolean>;
}

/* The last NOTIFY_SOCKET parsed and its sockaddr: the variable is read at every call (it may
 * change, or be removed), the parse is redone only when the text changes. */
let cachedSocket: string | undefined;
let cachedAddress: Buffer | undefined;

/**
 * NOTIFY_SOCKET to a sockaddr, by libsystemd 252's rules: '/' or '@' then at least one byte, and
 * at most 107 bytes in all. ('@' is the leading NUL of an abstract name, and no trailing NUL is
 * sent for one.) Newer systemd also takes `vsock:` addresses; 252 refuses them, and so do we.
 */
function notifyAddress(value: string): Buffer {
  if (value === cachedSocket) return cachedAddress!;
  const first = value.charCodeAt(0);
  if ((first !== 0x2f && first !== 0x40) || value.length < 2) {
    throw invalidSocket(value, EINVAL, 'is not an absolute path or an @abstract socket name');
  }
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > NOTIFY_SOCKET_MAX) {
    // libsystemd says ENAMETOOLONG for a path and EINVAL for an abstract name: kept, for `cause`.
    throw invalidSocket(value, first === 0x2f ? ENAMETOOLONG : EINVAL, `is ${bytes} bytes, more than the ${NOTIFY_SOCKET_MAX} a socket address holds`);
  }
  const address = first === 0x40 ? encodeSockaddr({ family: 'unix', abstract: value.slice(1) }) : encodeSockaddr({ family: 'unix', path: value });
  cachedSocket = value;
  cachedAddress = address;
  return address;
}

function invalidSocket(value: string, errno: number, problem: string): SystemdError {
  return new SystemdError('ERR_SD_NOTIFY_SOCKET_INVALID', `NOTIFY_SOCKET=${JSON.stringify(value)} ${problem}`, { cause: { errno: -errno } });
}

interface Credentials {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * libsystemd attaches SCM_CREDENTIALS only when it has something to claim that the kernel would
 * not fill in by itself: another pid, or the real ids of a set-uid/set-gid process (the kernel
 * would report the effective ones). Read at each call: process.setuid() can change them.
 */
function credentials(pid: number | undefined): Credentials | null {
  const uid = process.getuid!();
  const gid = process.getgid!();
  const other = pid !== undefined && pid !== 0 && pid !== process.pid;
  if (!other && uid === process.geteuid!() && gid === process.getegid!()) return null;
  return { pid: other ? pid : process.pid, uid, gid };
}

/**
 * The one send path of every notify call. The addon opens a fresh socket for each datagram, as
 * libsystemd does: bench/notify.ts measures the whole call at libsystemd's own cost, so there is
 * no reason to keep a socket open between calls (and in every fork's fd table).
 */
function send(message: Buffer, fds: readonly number[] | null, options: NotifyOptions | undefined): boolean {
  const value = options?.socket ?? process.env.NOTIFY_SOCKET;
  if (value === undefined) return false;
  try {
    const address = notifyAddress(value);
    const cred = credentials(options?.pid);
    const binding = native();
    try {
      binding.notifySend(address, message, fds, cred);
    } catch (error) {
      if (cred === null) throw error;
      // As libsystemd: a claim the kernel refuses (EPERM without CAP_SYS_ADMIN) is retried as ourselves.
      binding.notifySend(address, message, fds, null);
    }
    return true;
  } catch (error) {
    throw withSocket(error, value);
  } finally {
    if (options?.unsetEnvironment === true) delete process.env.NOTIFY_SOCKET;
  }
}

/** Names the notify socket in a failed send: "ECONNREFUSED: connection refused, sendmsg '/run/…/notify'". */
function withSocket(error: unknown, socket: string): unknown {
  const e = error as Partial<SystemError>;
  if (error instanceof Error && typeof e.errno === 'number' && typeof e.syscall === 'string' && e.path === undefined) {
    e.path = socket;
    error.message += ` '${socket}'`;
  }
  return error;
}

function checkOptions(options: NotifyOptions | undefined): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { pid, socket } = options;
  if (socket !== undefined && typeof socket !== 'string') throw new TypeError(`options.socket must be a string (NOTIFY_SOCKET's form), got ${typeof socket}`);
  if (pid !== undefined && !(Number.isInteger(pid) && pid >= 0 && pid <= 0x7fffffff)) {
    throw new TypeError(`options.pid must be a pid (an integer 0 to 2147483647), got ${String(pid)}`);
  }
}

/** A value may hold neither a newline (it would start a field of its own) nor NUL (systemd stops reading there). */
function checkValue(key: string, value: string): string {
  if (/[\n\0]/.test(value)) throw new TypeError(`${key}= must not contain a newline or NUL: ${JSON.stringify(value)}`);
  return value;
}

/**
 * Whether `text` has a lone surrogate, which has no UTF-8 form. A loop, not /\p{Cs}/u: building that
 * regexp cost every service 0.2 ms of start-up (ICU's property tables).
 */
function hasLoneSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    // A high surrogate followed by a low one is a pair; anything else is alone.
    if (unit > 0xdbff) return true;
    const next = text.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return true;
    i++;
  }
  return false;
}

/**
 * STATUS is shown as one line: CR is refused with LF. A lone UTF-16 surrogate has no UTF-8 form
 * (it would be sent as U+FFFD), so it is refused rather than changed behind the caller's back.
 */
function checkStatus(text: unknown): string {
  if (typeof text !== 'string') throw new TypeError(`STATUS must be a string, got ${typeof text}`);
  if (/[\r\n\0]/.test(text)) throw new TypeError(`STATUS must be a single line without NUL: ${JSON.stringify(text)}`);
  if (hasLoneSurrogate(text)) throw new TypeError(`STATUS must be valid Unicode (it has a lone surrogate): ${JSON.stringify(text)}`);
  return text;
}

/**
 * systemd's fdname_is_valid(): printable ASCII, no ':', at most 255 chars. systemd also takes an
 * empty name; it is refused here, since it comes back as an empty field of LISTEN_FDNAMES and is
 * far more often an unset variable than a choice.
 */
function checkFdName(name: unknown): string {
  if (typeof name !== 'string') throw new TypeError(`FDNAME must be a string, got ${typeof name}`);
  if (!/^[\x20-\x39\x3b-\x7e]{1,255}$/.test(name)) {
    throw new TypeError(`FDNAME must be 1 to 255 printable ASCII characters without ':': ${JSON.stringify(name)}`);
  }
  return name;
}

function checkFds(fds: unknown, atLeastOne: boolean): readonly number[] | null {
  if (fds === undefined || fds === null) {
    if (atLeastOne) throw new TypeError('fds must be a non-empty array of fds');
    return null;
  }
  if (!Array.isArray(fds) || fds.some((fd) => !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff)) {
    throw new TypeError('fds must be an array of fds (non-negative integers)');
  }
  if (atLeastOne && fds.length === 0) throw new TypeError('fds must be a non-empty array of fds');
  return fds.length === 0 ? null : (fds as number[]);
}

/** Milliseconds to whole microseconds, for the *_USEC fields. */
function usec(what: string, ms: unknown): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new TypeError(`${what} must be a finite number of milliseconds >= 0, got ${String(ms)}`);
  return BigInt(Math.round(ms * 1000)).toString();
}

function checkPid(what: string, pid: unknown): number {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0 || pid > 0x7fffffff) throw new TypeError(`${what} must be a pid (a positive integer), got ${String(pid)}`);
  return pid;
}

const KEY = /^[A-Z0-9_]+$/;

/** A fields object to its message: `KEY=VALUE` lines joined by '\n', no trailing newline (as libsystemd users write it). */
function encodeFields(fields: NotifyFields): string {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) throw new TypeError('message must be a string or a fields object');
  const lines: string[] = [];
  for (const key of Object.keys(fields)) {
    const value: unknown = (fields as Record<string, unknown>)[key];
    if (value === undefined || value === null || value === false) continue;
    if (!KEY.test(key)) throw new TypeError(`field names are upper-case letters, digits and '_': ${JSON.stringify(key)}`);
    let text: string;
    if (value === true) text = '1';
    else if (typeof value === 'bigint') text = value.toString();
    else if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new TypeError(`${key}= must be an integer, got ${value}`);
      text = value.toString();
    } else if (typeof value === 'string') {
      text = key === 'STATUS' ? checkStatus(value) : key === 'FDNAME' ? checkFdName(value) : checkValue(key, value);
      // checkStatus() has looked already.
      if (key !== 'STATUS' && hasLoneSurrogate(text)) throw new TypeError(`${key}= must be valid Unicode (it has a lone surrogate)`);
    } else {
      throw new TypeError(`${key}= must be a string, number, bigint or boolean, got ${typeof value}`);
    }
    lines.push(`${key}=${text}`);
  }
  return lines.join('\n');
}

/* Messages that never change, encoded once. */
const READY = Buffer.from('READY=1');
const STOPPING = Buffer.from('STOPPING=1');
const WATCHDOG = Buffer.from('WATCHDOG=1');
const WATCHDOG_TRIGGER = Buffer.from('WATCHDOG=trigger');
const BARRIER = Buffer.from('BARRIER=1');

function sendText(text: string, fds: readonly number[] | null, options: NotifyOptions | undefined): boolean {
  checkOptions(options);
  return send(Buffer.from(text, 'utf8'), fds, options);
}

function notifyFunction(message: string | NotifyFields, options?: NotifySendOptions): boolean {
  let text: string;
  if (typeof message === 'string') {
    // Sent as-is, as sd_notify() sends its string; a NUL would end that C string early, and a lone
    // surrogate has no UTF-8 form to send as-is.
    if (message.includes('\0')) throw new TypeError(`a notify message must not contain NUL: ${JSON.stringify(message)}`);
    if (hasLoneSurrogate(message)) throw new TypeError(`a notify message must be valid Unicode (it has a lone surrogate): ${JSON.stringify(message)}`);
    text = message;
  } else {
    text = encodeFields(message);
  }
  return sendText(text, checkFds(options?.fds, false), options);
}

/**
 * Waits for EOF on the read end of the barrier pipe, in the event loop: net.Socket takes a pipe fd
 * and reports 'end' when the last write end (the one the manager holds) is closed.
 */
function waitForHangUp(Socket: typeof import('node:net').Socket, readFd: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let socket: import('node:net').Socket;
    try {
      socket = new Socket({ fd: readFd, readable: true, writable: false });
    } catch (error) {
      native().close(readFd);
      reject(error);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const finish = (error?: Error): void => {
      if (timer) clearTimeout(timer);
      socket.removeAllListeners('end');
      socket.removeAllListeners('data');
      socket.destroy();
      // destroy() closes the fd; an 'error' after it has nobody to tell.
      socket.on('error', () => {});
      if (error) reject(error);
      else resolve();
    };
    socket.on('data', () => {}); // nothing should come; drain it anyway so 'end' can
    socket.once('end', () => finish());
    socket.once('error', (error) => finish(error));
    if (timeoutMs !== Infinity) {
      timer = setTimeout(
        () => finish(systemError(ETIMEDOUT, 'poll', {}, `the service manager did not answer BARRIER=1 within ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
  });
}

async function barrier(timeoutMs = 5000, options?: NotifyOptions): Promise<boolean> {
  // setTimeout() cannot wait longer than 2**31-1 ms (it would fire at once): beyond that, Infinity.
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0 && (timeoutMs <= 0x7fffffff || timeoutMs === Infinity))) {
    throw new TypeError(`timeoutMs must be a number of milliseconds from 1 to 2147483647, or Infinity; got ${String(timeoutMs)}`);
  }
  checkOptions(options);
  if ((options?.socket ?? process.env.NOTIFY_SOCKET) === undefined) return false;
  // Sent before the first await, so that it is ordered with the calls made before and after it.
  const [readFd, writeFd] = native().pipe();
  try {
    send(BARRIER, [writeFd], options);
  } catch (error) {
    native().close(readFd);
    throw error;
  } finally {
    // Ours must go at once: the manager's copy closing is the answer, and ours would hide it.
    native().close(writeFd);
  }
  let Socket: typeof import('node:net').Socket;
  try {
    // node:net costs milliseconds to load: only a barrier needs it.
    ({ Socket } = await import('node:net'));
  } catch (error) {
    native().close(readFd);
    throw error;
  }
  await waitForHangUp(Socket, readFd, timeoutMs);
  return true;
}

/**
 * Tells the service manager about the service's state: `notify.ready()`, `notify.status('…')`,
 * `notify({ READY: 1, STATUS: '…' })`. See {@link Notify} for each helper.
 *
 * NOTIFY_SOCKET is read at each call; when it is unset every call returns false (or resolves
 * false) and sends nothing.
 *
 * @example
 * ```ts
 * import { notify } from 'sd-activate';
 * server.listen(8080, () => notify.ready());
 * ```
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export const notify: Notify = Object.assign(notifyFunction, {
  ready: (options?: NotifyOptions) => (checkOptions(options), send(READY, null, options)),
  status: (text: string, options?: NotifyOptions) => sendText(`STATUS=${checkStatus(text)}`, null, options),
  stopping: (options?: NotifyOptions) => (checkOptions(options), send(STOPPING, null, options)),
  reloading: (options?: ReloadingOptions) => {
    const status = options?.status === undefined ? '' : `\nSTATUS=${checkStatus(options.status)}`;
    // Read as late as possible: it says when the reload began, and systemd compares it with its own clock.
    return sendText(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}${status}`, null, options);
  },
  watchdog: (options?: NotifyOptions) => (checkOptions(options), send(WATCHDOG, null, options)),
  watchdogTrigger: (options?: NotifyOptions) => (checkOptions(options), send(WATCHDOG_TRIGGER, null, options)),
  watchdogUsec: (ms: number, options?: NotifyOptions) => sendText(`WATCHDOG_USEC=${usec('ms', ms)}`, null, options),
  mainPid: (pid: number, options?: NotifyOptions) => sendText(`MAINPID=${checkPid('pid', pid)}`, null, options),
  extendTimeout: (ms: number, options?: NotifyOptions) => sendText(`EXTEND_TIMEOUT_USEC=${usec('ms', ms)}`, null, options),
  errno: (error: number | string, options?: NotifyOptions) => sendText(`ERRNO=${errnoNumber(error)}`, null, options),
  busError: (name: string, options?: NotifyOptions) => {
    if (typeof name !== 'string' || name === '') throw new TypeError('name must be a D-Bus error name');
    return sendText(`BUSERROR=${checkValue('BUSERROR', name)}`, null, options);
  },
  fdStore: (name: string, fds: readonly number[], options?: FdStoreOptions) => {
    const list = checkFds(fds, true);
    const poll = options?.poll;
    if (poll !== undefined && typeof poll !== 'boolean') throw new TypeError('options.poll must be a boolean');
    return sendText(`FDSTORE=1\nFDNAME=${checkFdName(name)}${poll === false ? '\nFDPOLL=0' : ''}`, list, options);
  },
  fdStoreRemove: (name: string, options?: NotifyOptions) => sendText(`FDSTOREREMOVE=1\nFDNAME=${checkFdName(name)}`, null, options),
  barrier,
});

function errnoNumber(error: unknown): number {
  if (typeof error === 'string') {
    const n = (os().constants.errno as Record<string, number | undefined>)[error];
    if (n === undefined) throw new TypeError(`not an errno name: ${JSON.stringify(error)}`);
    return n;
  }
  if (typeof error !== 'number' || !Number.isInteger(error) || error < 0) throw new TypeError(`errno must be a non-negative integer or an errno name, got ${String(error)}`);
  return error;
}
