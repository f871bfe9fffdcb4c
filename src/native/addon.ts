import { nodeModule, url } from '../core/builtins.js';
import { SystemdError, isNativeErrno, systemError } from '../core/errors.js';
import type { NativeConstants, RawFdFacts } from '../core/fd-facts.js';

export type { NativeConstants, RawFdFacts } from '../core/fd-facts.js';

/** The addon's functions, one per syscall (or two, where they always go together). */
export interface NativeBinding {
  inspect(fd: number): RawFdFacts;
  getCloexec(fd: number): boolean;
  setCloexec(fd: number, on: boolean): void;
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: number): void;
  bind(fd: number, sockaddr: Buffer): void;
  connect(fd: number, sockaddr: Buffer): void;
  listen(fd: number, backlog: number): void;
  close(fd: number): void;
  mkfifo(path: string, mode: number): void;
  mqOpen(name: string, oflag: number, mode: number, maxmsg: number, msgsize: number): number;
  mqUnlink(name: string): void;
  pidfdInodeId(): bigint | null;
  pipe(): [number, number];
  /** socketpair(2) of AF_UNIX sockets of `type` (SOCK_STREAM, ...), close-on-exec. */
  socketpair(type: number): [number, number];
  /** getsockopt(SO_PEERCRED): who is at the other end of a connected unix socket, as of its connect(2). */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  setChildSubreaper(on: boolean): void;
  /** waitid(2) with WNOHANG: null while the child runs; the signal as a number. */
  reapChild(pid: number): { code: number | null; signal: number | null } | null;
  notifySend(
    sockaddr: Buffer,
    message: Buffer,
    fds: readonly number[] | null,
    cred: { pid: number; uid: number; gid: number } | null,
  ): number;
  /** socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): messages arrive whole and in order, and a peer's end is seen. */
  seqpacketPair(): [number, number];
  /**
   * One sendmsg(2) with MSG_NOSIGNAL | MSG_DONTWAIT: `payload` (not empty) and up to SCM_MAX_FD fds
   * by SCM_RIGHTS (more: E2BIG). A full socket throws EAGAIN: wait with watchEvents(). The fds
   * stay open here; the receiver gets its own references.
   */
  sendFds(fd: number, payload: Buffer, fds: readonly number[]): number;
  /** One recvmsg(2) with MSG_DONTWAIT | MSG_CMSG_CLOEXEC: null when nothing is queued; empty `data` at the peer's end. */
  receiveFds(fd: number): ReceivedFds | null;
  /** ioctl(SIOCINQ): bytes received on a stream socket and not read yet. */
  inq(fd: number): number;
  /** ioctl(SIOCOUTQ): bytes written and not yet acknowledged by a TCP peer; for unix sockets, the memory of what the peer has not read. */
  outq(fd: number): number;
  /** fcntl(F_DUPFD_CLOEXEC): another fd for the same open file, close-on-exec. */
  dup(fd: number): number;
  /**
   * A libuv poll in the event loop: callback(0, events) while `fd` is readable (level-triggered;
   * `events` has 1 for readable, 2 for room to write), callback(errno, 0) when polling fails (a
   * socket error, POLLERR, comes as EBADF, and stops the watcher). One watcher per fd: libuv
   * refuses a second (EEXIST).
   */
  watchReadable(fd: number, callback: (errno: number, events: number) => void): object;
  /** What a watcher waits for from now on: readability, room to write, or both. */
  watchEvents(watcher: object, readable: boolean, writable: boolean): void;
  /** Stops a watcher; the fd may be closed right after. Idempotent. */
  unwatch(watcher: object): void;
  /** Whether a watcher keeps the event loop alive. */
  watchRef(watcher: object, on: boolean): void;
  /** socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC), SO_PASSCRED, bind(2) to `sockaddr`: a notify socket's receiving end (notify_receiver.c). */
  notifyReceiverOpen(sockaddr: Buffer): number;
  /** One datagram with its fds and the sender's credentials, at most `maxBytes` of it kept; null when nothing is queued (notify_receiver.c). */
  notifyReceive(fd: number, maxBytes: number): NotifyDatagram | null;
  /**
   * poll(2) on a libuv worker thread, off the event loop (watch.c): resolves with the fds that are
   * readable (or, those of `hangupOnly`, hung up), after at most `timeoutMs` (-1: no limit).
   */
  pollReadable(fds: readonly number[], timeoutMs: number, hangupOnly?: readonly number[]): Promise<number[]>;
  /** accept4(2) with SOCK_CLOEXEC on a listening socket (watch.c): blocks unless it is readable. */
  accept(fd: number): number;
  constants: NativeConstants;
}

/** What notifyReceive() reports of one datagram. */
export interface NotifyDatagram {
  /** At most maxBytes of the datagram. */
  data: Buffer;
  /** The datagram's whole length. */
  size: number;
  /** The fds that came with it, close-on-exec: the receiver's to close. */
  fds: number[];
  /** SCM_CREDENTIALS: absent when the kernel sent none. */
  pid?: number;
  uid?: number;
  gid?: number;
  truncated: boolean;
  controlTruncated: boolean;
}

/** What receiveFds() reports of one message. */
export interface ReceivedFds {
  /** The payload; empty at the end of the peer (senders never send an empty one). */
  data: Buffer;
  /** The fds that came with it, close-on-exec: the receiver's to close. */
  fds: number[];
  /** The payload was longer than what was read (only when another reader raced this one). */
  truncated: boolean;
  /** The kernel had to cut the fds (this process ran out of them): those that arrived were closed, `fds` is empty. */
  controlTruncated: boolean;
}

let binding: NativeBinding | undefined;

/**
 * The addon, loaded on first use: a process that is not activated never pays for it.
 * Every function is wrapped so that a failed syscall surfaces as a Node-style error
 * (`code`, `errno`, `syscall`, and the `fd` it was about).
 *
 * @throws SystemdError `ERR_SD_UNSUPPORTED_PLATFORM` outside Linux, or when no binary fits.
 */
export function native(): NativeBinding {
  if (binding) return binding;
  if (process.platform !== 'linux') {
    throw new SystemdError(
      'ERR_SD_UNSUPPORTED_PLATFORM',
      `systemd socket activation and sd_notify exist only on Linux (this is ${process.platform})`,
    );
  }
  let raw: NativeBinding;
  try {
    const root = packageRoot(ownUrl());
    // One addon per install for the whole process: the index, sd-activate/testing, the CLI and the
    // lazily loaded upgrade and worker-pool code each carry a copy of this file, and share it.
    const loaded = globalThis as { [key: symbol]: NativeBinding | undefined };
    const key = Symbol.for(`sd-activate.addon ${root}`);
    raw = loaded[key] ??= loadKnown(root) ?? (nodeModule().createRequire(import.meta.url)('node-gyp-build') as (dir: string) => NativeBinding)(root);
  } catch (cause) {
    throw new SystemdError(
      'ERR_SD_UNSUPPORTED_PLATFORM',
      `sd-activate's native addon could not be loaded for ${process.platform}-${process.arch}: ${(cause as Error).message}`,
      { cause },
    );
  }
  binding = wrap(raw);
  return binding;
}

/**
 * This file's URL. The first import.meta of a process costs it 0.2 ms on Node 20 (Node builds
 * import.meta.resolve() and the path helpers); a one-frame stack trace names the file for a
 * fifth of that. import.meta.url whenever the stack cannot say (a frozen Error, say).
 */
function ownUrl(): string {
  const hadPrepare = Object.hasOwn(Error, 'prepareStackTrace');
  const { prepareStackTrace, stackTraceLimit } = Error;
  try {
    Error.stackTraceLimit = 1;
    Error.prepareStackTrace = (_error, sites) => sites[0]?.getFileName();
    const probe: { stack?: unknown } = {};
    Error.captureStackTrace(probe, ownUrl);
    if (typeof probe.stack === 'string' && probe.stack.startsWith('file:')) return probe.stack;
  } catch {
    // Falls back below.
  } finally {
    try {
      if (hadPrepare) Error.prepareStackTrace = prepareStackTrace;
      else Reflect.deleteProperty(Error, 'prepareStackTrace');
      Error.stackTraceLimit = stackTraceLimit;
    } catch {
      // Nothing was changed if nothing can be.
    }
  }
  return import.meta.url;
}

/**
 * The package root: the directory above the last `dist/` of this file's path. Every copy of this
 * file lives under it, bundled or not: dist/pkg/index.js, dist/pkg/cli/main.js, dist/src/native/addon.js.
 * A file: URL on Linux is the path, percent-encoded; decoded by hand, because the first URL object
 * and fileURLToPath() cost a service a quarter of a millisecond of start-up. Node's own loader
 * makes these URLs: no host, no query, no fragment. The CLI finds package.json with it too.
 *
 * @throws Error when the path has no `/dist/` (the package's files moved, or bundled into another
 *   program): the message says where the module is.
 */
export function packageRoot(moduleUrl: string): string {
  const path = moduleUrl.startsWith('file:///') ? decodeURIComponent(moduleUrl.slice('file://'.length)) : url.fileURLToPath(moduleUrl);
  const dist = path.lastIndexOf('/dist/');
  if (dist === -1) throw new Error(`${path} is not inside the package's dist/ directory`);
  return path.slice(0, dist);
}

/**
 * The binary node-gyp-build would pick in the two usual cases, loaded without node-gyp-build:
 * loading node-gyp-build (and node:module to require it) and letting it search costs about 2 ms
 * of a service's start-up, most of the addon's share. A local build wins, as with node-gyp-build
 * (unless PREBUILDS_ONLY is set); then the glibc prebuild of this architecture. Anything else
 * (musl, a binary that does not load) falls through to node-gyp-build, which knows every case.
 */
function loadKnown(root: string): NativeBinding | undefined {
  const candidates = [`${root}/prebuilds/linux-${process.arch}/sd-activate.glibc.node`];
  if (!process.env.PREBUILDS_ONLY) candidates.unshift(`${root}/build/Release/sd_activate.node`);
  for (const file of candidates) {
    try {
      // What require() does with a .node file, without node:module. No stat first: a missing
      // file fails dlopen() as cheaply, and the usual first candidate exists.
      const addon = { exports: {} as NativeBinding };
      process.dlopen(addon, file);
      return addon.exports;
    } catch {
      // Missing or unloadable: left to node-gyp-build, which reports what fits and what does not.
    }
  }
  return undefined;
}

/**
 * The functions whose first argument is a number but not an fd: socket(domain, ...) or
 * reapChild(pid) failing must not read "(fd 2)". Every other leading number is the fd the call
 * was about, and a leading string the path or queue name.
 */
const NUMBER_FIRST_NOT_FD = new Set(['socket', 'socketpair', 'reapChild']);

function wrap(raw: NativeBinding): NativeBinding {
  const out: Record<string, unknown> = { constants: raw.constants };
  // Object.keys() and a plain loop: `for (const [name, fn] of Object.entries(raw))` costs a
  // service 0.15 ms more of start-up (V8 compiles the array destructuring on first use).
  for (const name of Object.keys(raw)) {
    const fn = (raw as unknown as Record<string, unknown>)[name];
    if (typeof fn === 'function') out[name] = guard(name, fn as (...args: unknown[]) => unknown);
  }
  return out as unknown as NativeBinding;
}

/** `fn`, throwing Node-style errors that name the fd or path the call was about. */
function guard(name: string, fn: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  return function (this: unknown, ...args: unknown[]): unknown {
    try {
      return fn(...args);
    } catch (error) {
      if (!isNativeErrno(error)) throw error;
      const first = args[0];
      // The addon names the fd itself where a call takes several (notifySend's fds to pass).
      const named = (error as { fd?: unknown }).fd;
      const detail =
        typeof named === 'number'
          ? { fd: named }
          : typeof first === 'number' && !NUMBER_FIRST_NOT_FD.has(name)
            ? { fd: first }
            : typeof first === 'string'
              ? { path: first }
              : {};
      throw systemError(error.errno, error.syscall, detail, error.message);
    }
  };
}
