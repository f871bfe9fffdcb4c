import { util } from '../core/builtins.js';
import { LISTEN_FDS_START, LISTEN_VARIABLES, parseListenEnvironment } from '../core/env.js';
import { SystemdError } from '../core/errors.js';
import { native } from '../native/addon.js';
import { describeFdInfo, toFdInfo, type FdInfo } from '../core/socket-info.js';
import { isValidFdName } from '../core/fd-name.js';
import { list, quote, show } from '../core/quote.js';
import type { RawFdFacts } from '../core/fd-facts.js';
import { observeStart } from './warnings.js';

/**
 * One inherited fd: its number, its name from LISTEN_FDNAMES, and what it really is.
 * Pass it as-is to `server.listen()` or `socket.bind()`: both read its `fd`.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export class ListenFd {
  /** The fd number, 3 or more. */
  readonly fd: number;
  /** Its name: FileDescriptorName= of the .socket unit, FDNAME= of the fd store, "unknown", "stored" or "connection". */
  readonly name: string;
  #info: FdInfo | (() => FdInfo);

  /**
   * @param info what the fd is, or a function that decodes it on first read (listenFds() reads
   *   each fd's facts with one syscall each at once, and turns them into objects only when asked:
   *   a service that only passes the fd to listen() never pays for the decoding).
   */
  constructor(fd: number, name: string, info: FdInfo | (() => FdInfo)) {
    this.fd = fd;
    this.name = name;
    this.#info = info;
  }

  /** What getsockname/getsockopt/fstat said it was when the environment was read. */
  get info(): FdInfo {
    if (typeof this.#info === 'function') this.#info = this.#info();
    return this.#info;
  }

  /**
   * Not a property of the fd: a guard for Bun. Bun's http and https servers read `tls` from their
   * listen options and never `fd`, and bind a random port on `::` instead (oven-sh/bun#22559,
   * open with Bun 1.4.5), while its net.Server reads `fd` and never `tls`. So on Bun,
   * `http.createServer().listen(systemdFd('web'))` throws here, at the listen() call, instead of
   * serving nobody; elsewhere this is undefined.
   *
   * @throws SystemdError `ERR_SD_UNSUPPORTED_RUNTIME` on Bun
   * @internal
   */
  get tls(): undefined {
    if (process.versions.bun === undefined) return undefined;
    throw new SystemdError(
      'ERR_SD_UNSUPPORTED_RUNTIME',
      `fd ${this.fd} "${this.name}": Bun's http and https servers cannot listen on an inherited fd (they bind a random port instead: ` +
        `oven-sh/bun#22559, open as of Bun ${process.versions.bun}); serve it with sd-activate/http, sd-activate/express or ` +
        'sd-activate/fastify, which hand its connections to the server through a net.Server on Bun, or with net.createServer()',
    );
  }

  /** `tcp 127.0.0.1:8080 (ipv4 stream, listening)` */
  describe(): string {
    return describeFdInfo(this.info);
  }

  toJSON(): { fd: number; name: string; description: string; info: FdInfo } {
    return { fd: this.fd, name: this.name, description: this.describe(), info: this.info };
  }

  [util.inspect.custom](): string {
    return `ListenFd { fd: ${this.fd}, name: ${JSON.stringify(this.name)}, ${this.describe()} }`;
  }
}

/** Options of {@link listenFds}. */
export interface ListenFdsOptions {
  /**
   * Remove LISTEN_PID, LISTEN_PIDFDID, LISTEN_FDS and LISTEN_FDNAMES from `process.env`, so child
   * processes do not take them for their own (default true, as sd_listen_fds(1)).
   * Only the first call decides: the environment is read once.
   */
  unsetEnvironment?: boolean;
}

type Outcome = { fds: readonly ListenFd[]; reason: string } | { error: unknown };
let outcome: Outcome | undefined;
/* Sockets this process opened itself (openStoredSocket()): found by name like inherited ones. */
const opened: ListenFd[] = [];
/* Names asked for through systemdFd()/systemdFds(): the ones fdStoreRemoveUnused() keeps. */
const claimed = new Set<string>();
/* fds of this registry closed since (fdStoreRemoveUnused(), a replaced socket): never handed on. */
const released = new Set<ListenFd>();

/**
 * What an event loop is made of, as /proc/self/fd names it: the first fd a runtime opens at
 * start-up is its loop's epoll (Node, Deno and Bun alike), at fd 3 when nothing was passed. No
 * service manager passes one of these: a .socket unit passes sockets, FIFOs, files and queues,
 * and the fd store keeps what a service handed it, none of which outlives the loop it served.
 * (FD_CLOEXEC cannot tell either: Node sets it on every fd it inherits, at start-up.)
 */
const RUNTIME_OWNED = /^anon_inode:\[?(eventpoll|eventfd|io_uring|signalfd|timerfd|inotify)\]?$/;

/**
 * The error for a promised fd that is the process's own: taking it would hand the runtime's fd
 * to listen(), or close it with fdStoreRemoveUnused() (node then aborts).
 */
function notPassed(fd: number, count: number, name: string, path: string): SystemdError {
  return new SystemdError(
    'ERR_SD_FD_INVALID',
    `LISTEN_FDS=${count} promises fd ${fd} (${quote(name)}), but fd ${fd} is ${path}, this process's own event loop: ` +
      'no service manager passed it. LISTEN_PID and LISTEN_FDS were probably inherited by mistake (exported by a ' +
      'parent, or kept across an exec that did not keep the fds); nothing was taken or closed',
  );
}

function readOnce(options: ListenFdsOptions): Outcome {
  if (options.unsetEnvironment !== undefined && typeof options.unsetEnvironment !== 'boolean') {
    throw new TypeError('options.unsetEnvironment must be a boolean');
  }
  const unset = options.unsetEnvironment ?? true;
  observeStart();
  try {
    const parsed = parseListenEnvironment(process.env, { pid: process.pid, pidfdId: () => native().pidfdInodeId() });
    if (!parsed.activated) return { fds: Object.freeze([]), reason: parsed.reason };
    const binding = native();
    const fds: ListenFd[] = [];
    for (let i = 0; i < parsed.count; i++) {
      const fd = LISTEN_FDS_START + i;
      let facts: RawFdFacts;
      try {
        // As sd_listen_fds() does first (a runtime's own fd has the flag already: nothing changes on it).
        binding.setCloexec(fd, true);
        facts = binding.inspect(fd);
      } catch (cause) {
        throw new SystemdError(
          'ERR_SD_FD_INVALID',
          `LISTEN_FDS=${parsed.count} promises fd ${fd} (${quote(parsed.names[i]!)}), but it cannot be used: ${(cause as Error).message}`,
          { cause },
        );
      }
      // A socket's facts are all in hand, decoded when first read; anything else is named by
      // its path in /proc now, while the fd is surely still the one inherited.
      const decode = (): FdInfo => toFdInfo(fd, facts, binding.constants);
      const info = facts.mode === binding.constants.S_IFSOCK ? decode : decode();
      if (typeof info !== 'function' && info.kind !== 'socket' && info.path !== null && RUNTIME_OWNED.test(info.path)) {
        throw notPassed(fd, parsed.count, parsed.names[i]!, info.path);
      }
      fds.push(new ListenFd(fd, parsed.names[i]!, info));
    }
    return { fds: Object.freeze(fds), reason: '' };
  } catch (error) {
    return { error };
  } finally {
    // On every path, errors too, as libsystemd does.
    if (unset) for (const name of LISTEN_VARIABLES) delete process.env[name];
  }
}

/**
 * Every fd the service manager passed, in order (fd 3 onwards), each with its name and what it is.
 * An empty array when the process was not socket-activated. The environment is read once;
 * later calls return the same array (or throw the same error).
 *
 * @throws SystemdError `ERR_SD_LISTEN_PID_INVALID`, `ERR_SD_LISTEN_FDS_INVALID`,
 *   `ERR_SD_LISTEN_FDNAMES_INVALID`, `ERR_SD_LISTEN_PIDFDID_INVALID` for a malformed environment;
 *   `ERR_SD_FD_INVALID` when a promised fd is closed, or is the process's own event loop (an
 *   epoll, eventfd, io_uring, signalfd, timerfd or inotify fd: no service manager passes one; the
 *   environment was inherited by mistake), which is never taken, changed or closed.
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export function listenFds(options: ListenFdsOptions = {}): readonly ListenFd[] {
  outcome ??= readOnce(options);
  if ('error' in outcome) throw outcome.error;
  return outcome.fds;
}

/** True when the process was socket-activated with at least one fd. */
export function isActivated(): boolean {
  return listenFds().length > 0;
}

/**
 * What to listen on when the process was not socket-activated: a port (`8080`), a unix socket
 * path (`'/run/app.sock'`), or listen options (`{ host: '127.0.0.1', port: 8080 }`).
 */
export type ListenFallback = number | string | { host?: string; port: number } | { path: string };

/**
 * Options built from a {@link ListenFallback}, for streams and datagrams alike: `server.listen()`
 * reads `host`, `socket.bind()` of node:dgram reads `address`, and both read `port` (or `path`,
 * for a unix stream socket). A host is set under both names.
 */
export type FallbackListenOptions = { port: number; host?: string; address?: string } | { path: string };

function fallbackOptions(name: string, fallback: ListenFallback | undefined): FallbackListenOptions {
  if (fallback === undefined) {
    const reason = outcome && 'reason' in outcome ? outcome.reason : 'LISTEN_FDS is not set';
    // How to run it activated, for a name a .socket unit can give (at most 255 characters).
    const how = isValidFdName(name)
      ? `Start it from a .socket unit with FileDescriptorName=${name}, or locally with ` +
        `\`systemd-socket-activate -l 8080 --fdname=${name} node app.js\`, or give a fallback: systemdFd('${name}', 8080)`
      : "No .socket unit can give it that name (FileDescriptorName= takes 1 to 255 printable ASCII characters, no ':'): give a fallback";
    throw new SystemdError('ERR_SD_NOT_ACTIVATED', `no socket named ${quote(name)}: this process was not socket-activated (${reason}). ${how}`);
  }
  if (typeof fallback === 'number') {
    if (!Number.isInteger(fallback) || fallback < 0 || fallback > 65535) throw new RangeError(`fallback port must be 0..65535, got ${fallback}`);
    return { port: fallback };
  }
  if (typeof fallback === 'string') {
    if (fallback.length === 0) throw new TypeError('fallback path must not be empty');
    return { path: fallback };
  }
  if (typeof fallback === 'object' && fallback !== null) {
    if ('path' in fallback && typeof fallback.path === 'string') return { path: fallback.path };
    if ('port' in fallback && typeof fallback.port === 'number') {
      return fallback.host === undefined ? { port: fallback.port } : { host: fallback.host, address: fallback.host, port: fallback.port };
    }
  }
  throw new TypeError(`fallback must be a port, a unix socket path, { host, port } or { path }, got ${show(fallback)}`);
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError(`name must be a non-empty string, got ${show(name)}`);
}

function notFound(name: string, fds: readonly ListenFd[]): SystemdError {
  const have = list(fds.map((f) => `${quote(f.name)} (fd ${f.fd}: ${f.describe()})`));
  const how = isValidFdName(name) ? `Set FileDescriptorName=${name} in the .socket unit` : 'A .socket unit names its fds with FileDescriptorName=';
  return new SystemdError(
    'ERR_SD_FD_NOT_FOUND',
    `no inherited fd is named ${quote(name)}; the service manager passed ${have}. ${how} (names come from LISTEN_FDNAMES)`,
  );
}

/**
 * The one inherited fd named `name`, ready for `server.listen()` / `socket.bind()`. When the
 * process was not socket-activated, the `fallback` as listen options, so the same code runs
 * on a laptop.
 *
 * @throws SystemdError `ERR_SD_FD_NOT_FOUND` (activated, no such name: the message lists the names
 *   there are), `ERR_SD_FD_AMBIGUOUS` (several fds have it: use {@link systemdFds}),
 *   `ERR_SD_NOT_ACTIVATED` (not activated and no fallback), or any error of {@link listenFds}.
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html#FileDescriptorName=
 */
export function systemdFd(name: string, fallback?: ListenFallback): ListenFd | FallbackListenOptions {
  const all = systemdFds(name, fallback);
  if (all.length > 1) {
    const which = list(all.map((f) => `fd ${(f as ListenFd).fd}: ${(f as ListenFd).describe()}`));
    throw new SystemdError(
      'ERR_SD_FD_AMBIGUOUS',
      `${all.length} inherited fds are named ${quote(name)} (${which}); serve them all with systemdFds(${quote(name)}) or an adapter`,
    );
  }
  return all[0]!;
}

/**
 * Every inherited fd named `name` (one name often covers an IPv4 and an IPv6 socket), or the
 * fallback alone when the process was not socket-activated. Sockets this process opened with
 * openStoredSocket() are found by their name the same way.
 *
 * @throws the errors of {@link systemdFd} but `ERR_SD_FD_AMBIGUOUS`
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
export function systemdFds(name: string, fallback?: ListenFallback): Array<ListenFd | FallbackListenOptions> {
  checkName(name);
  const fds = listenFds();
  claimed.add(name);
  const named = heldFds().filter((f) => f.name === name);
  if (named.length > 0) return named;
  if (fds.length === 0) return [fallbackOptions(name, fallback)];
  throw notFound(name, fds);
}

/**
 * Every fd this process holds by name: the inherited ones not closed since, then the sockets it
 * opened itself (openStoredSocket()). What an upgrade hands to the new process.
 *
 * @internal
 */
export function heldFds(): ListenFd[] {
  return [...listenFds(), ...opened].filter((f) => !released.has(f));
}

/** Adds sockets this process opened to the registry, under their names. @internal */
export function addOpenedFds(fds: readonly ListenFd[]): void {
  opened.push(...fds);
}

/** Marks a name as used, as systemdFd() does. @internal */
export function claimName(name: string): void {
  claimed.add(name);
}

/** The names asked for so far. @internal */
export function claimedNames(): ReadonlySet<string> {
  return claimed;
}

/** Takes an fd out of the registry once it is closed. @internal */
export function releaseFd(fd: ListenFd): void {
  released.add(fd);
}
