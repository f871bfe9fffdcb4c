import { errno as errnoValues } from '../core/builtins.js';
import { SystemdError, systemError, type SystemError } from '../core/errors.js';
import { native } from '../native/addon.js';
import { encodeSockaddr } from '../core/sockaddr.js';
import { checkFdName } from '../core/fd-name.js';
import { quote, show } from '../core/quote.js';
import { checkFds, checkPid, checkStatus, checkValue, encodeFields, errnoNumber, hasLoneSurrogate, usec } from './notify-message.js';
import { checkFdStore, forgetStored, observeSend } from './warnings.js';
import type { FdStoreOptions, Notify, NotifyFields, NotifyOptions, NotifySendOptions, ReloadingOptions } from './notify-types.js';

export type { FdStoreOptions, Notify, NotifyFields, NotifyFlag, NotifyOptions, NotifySendOptions, NotifyValue, ReloadingOptions } from './notify-types.js';

/*
 * The sd_notify(3) client. Everything libsystemd's sd_pid_notify_with_fds() decides is decided here,
 * the same way; the addon only does the one sendmsg(2). Checked byte for byte against libsystemd
 * by test/notify-libsystemd.test.ts.
 */

const { EINVAL, ENAMETOOLONG, ETIMEDOUT } = errnoValues;

/** sizeof(sockaddr_un.sun_path) - 1: libsystemd wants room for a trailing NUL, even for an abstract name. */
const NOTIFY_SOCKET_MAX = 107;

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
  return new SystemdError('ERR_SD_NOTIFY_SOCKET_INVALID', `NOTIFY_SOCKET=${quote(value)} ${problem}`, { cause: { errno: -errno } });
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
  observeSend(message, options?.pid);
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
    throw new TypeError(`options.pid must be a pid (an integer 0 to 2147483647), got ${show(pid)}`);
  }
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
    if (message.includes('\0')) throw new TypeError(`a notify message must not contain NUL: ${quote(message)}`);
    if (hasLoneSurrogate(message)) throw new TypeError(`a notify message must be valid Unicode (it has a lone surrogate): ${quote(message)}`);
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
    throw new TypeError(`timeoutMs must be a number of milliseconds from 1 to 2147483647, or Infinity; got ${show(timeoutMs)}`);
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
    const list = checkFds(fds, true)!;
    const fdName = checkFdName(name, 'FDNAME');
    const poll = options?.poll;
    if (poll !== undefined && typeof poll !== 'boolean') throw new TypeError('options.poll must be a boolean');
    checkOptions(options);
    checkFdStore(fdName, list, options?.socket ?? process.env.NOTIFY_SOCKET);
    return sendText(`FDSTORE=1\nFDNAME=${fdName}${poll === false ? '\nFDPOLL=0' : ''}`, list, options);
  },
  fdStoreRemove: (name: string, options?: NotifyOptions) => {
    const sent = sendText(`FDSTOREREMOVE=1\nFDNAME=${checkFdName(name, 'FDNAME')}`, null, options);
    forgetStored(name);
    return sent;
  },
  barrier,
});
