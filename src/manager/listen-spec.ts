/*
 * `--listen [NAME=]SPEC[,OPTION...]`: what a .socket unit's Listen*= lines say, in one argument.
 * Pure: text in, a description out, no I/O. Opening what it describes is src/manager/listeners.ts's job.
 */
import { SystemdError } from '../core/errors.js';
import { FDNAME_MAX, isValidFdName } from '../core/fd-name.js';
import { parseIPv4, parseIPv6, type BindAddress } from '../core/sockaddr.js';
import { clip, quote } from '../core/quote.js';

interface SpecCommon {
  /** The fd name (FileDescriptorName=), "unknown" when the argument gave none, as sd_listen_fds_with_names(3) reports it. */
  name: string;
  /** The argument as given, for messages. */
  text: string;
}

/** A socket: ListenStream=, ListenDatagram= or ListenSequentialPacket=. */
export interface SocketSpec extends SpecCommon {
  kind: 'socket';
  type: 'stream' | 'dgram' | 'seqpacket';
  address: BindAddress;
  /** Backlog= */
  backlog?: number;
  /** BindIPv6Only=: true for ipv6-only, false for both, undefined for the kernel default. */
  v6Only?: boolean;
  /** ReusePort= */
  reusePort?: boolean;
  /** SocketMode= of a unix socket file. */
  mode?: number;
  /**
   * True for a bare port (`8080`, `tcp:8080`): `[::]:PORT`, which falls back to `0.0.0.0:PORT` on a
   * host without IPv6, as systemd does for ListenStream=PORT.
   */
  anyAddress?: boolean;
}

/** ListenFIFO= */
export interface FifoSpec extends SpecCommon {
  kind: 'fifo';
  path: string;
  /** SocketMode= (the FIFO's mode), default 0666 as in systemd. */
  mode?: number;
}

/** ListenMessageQueue= */
export interface MessageQueueSpec extends SpecCommon {
  kind: 'mqueue';
  /** `/name`, as mq_open(3) takes it. */
  path: string;
  mode?: number;
  /** MessageQueueMaxMessages= */
  maxmsg?: number;
  /** MessageQueueMessageSize= */
  msgsize?: number;
}

/** ListenSpecial=: a file or character device, opened read-write. */
export interface SpecialSpec extends SpecCommon {
  kind: 'special';
  path: string;
}

/**
 * One `--listen` argument, parsed.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html
 */
export type ListenSpec = SocketSpec | FifoSpec | MessageQueueSpec | SpecialSpec;

/** Settings that apply to every `--listen` that does not set its own (the run command's global flags). */
export interface ListenDefaults {
  backlog?: number;
  v6Only?: boolean;
  reusePort?: boolean;
  mode?: number;
}

const OPTION_KEYS = ['backlog', 'ipv6-only', 'reuse-port', 'mode', 'maxmsg', 'msgsize'] as const;
type OptionKey = (typeof OPTION_KEYS)[number];

function invalid(text: string, reason: string): SystemdError {
  return new SystemdError('ERR_SD_LISTEN_SPEC_INVALID', `bad --listen ${quote(text)}: ${reason}`);
}

/** An fd name (core/fd-name.ts) without `,` and `=`, which separate the parts of a `--listen` argument. */
export function isValidSpecName(name: string): boolean {
  return isValidFdName(name) && !/[,=]/.test(name);
}

function parsePort(text: string, port: string): number {
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw invalid(text, `port ${quote(port)} is not a number from 0 to 65535`);
  return Number(port);
}

/** `PORT`, `A.B.C.D:PORT`, `[V6]:PORT`, `[V6%SCOPE]:PORT`. */
function parseInet(text: string, rest: string): { address: BindAddress; anyAddress: boolean } {
  if (/^\d+$/.test(rest)) return { address: { family: 'ipv6', address: '::', port: parsePort(text, rest) }, anyAddress: true };
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1 || rest[close + 1] !== ':') throw invalid(text, 'an IPv6 address is written [ADDRESS]:PORT, e.g. [::1]:8080');
    let host = rest.slice(1, close);
    let scopeId: number | undefined;
    const percent = host.indexOf('%');
    if (percent !== -1) {
      const scope = host.slice(percent + 1);
      if (!/^\d+$/.test(scope)) throw invalid(text, `the scope after % must be an interface index (see \`ip link\`), got ${quote(scope)}`);
      scopeId = Number(scope);
      host = host.slice(0, percent);
    }
    try {
      parseIPv6(host);
    } catch {
      throw invalid(text, `${quote(host)} is not an IPv6 address`);
    }
    const port = parsePort(text, rest.slice(close + 2));
    return { address: scopeId === undefined ? { family: 'ipv6', address: host, port } : { family: 'ipv6', address: host, port, scopeId }, anyAddress: false };
  }
  const colon = rest.lastIndexOf(':');
  if (colon === -1) throw invalid(text, 'expected PORT, HOST:PORT or [IPV6]:PORT');
  const host = rest.slice(0, colon);
  if (host.includes(':')) throw invalid(text, `write an IPv6 address in brackets: ${clip(`[${host}]:${rest.slice(colon + 1)}`)}`);
  try {
    parseIPv4(host);
  } catch {
    throw invalid(
      text,
      `${quote(host)} is not an IP address (host names are not resolved, as in ListenStream=; use 127.0.0.1, 0.0.0.0 or [::1])`,
    );
  }
  return { address: { family: 'ipv4', address: host, port: parsePort(text, rest.slice(colon + 1)) }, anyAddress: false };
}

/** A unix socket: `/path`, `@abstract`, or (for `run`, resolved against the working directory) `./relative`. */
function parseUnix(text: string, rest: string): BindAddress {
  if (rest.startsWith('@')) {
    if (rest.length === 1) throw invalid(text, 'an abstract socket needs a name after @');
    return { family: 'unix', abstract: rest.slice(1) };
  }
  if (rest.length === 0) throw invalid(text, 'a unix socket needs a path');
  if (rest.includes('\0')) throw invalid(text, 'a path cannot contain NUL');
  // sun_path holds 108 bytes with the terminating NUL.
  if (Buffer.byteLength(rest) > 107) throw invalid(text, `the path is ${Buffer.byteLength(rest)} bytes; a unix socket path can have at most 107`);
  return { family: 'unix', path: rest };
}

function parsePath(text: string, rest: string, what: string): string {
  if (rest.length === 0) throw invalid(text, `${what} needs a path`);
  if (rest.includes('\0')) throw invalid(text, 'a path cannot contain NUL');
  return rest;
}

function parseBoolean(text: string, key: string, value: string | undefined): boolean {
  if (value === undefined) return true;
  if (/^(1|yes|true|on)$/i.test(value)) return true;
  if (/^(0|no|false|off)$/i.test(value)) return false;
  throw invalid(text, `${key}= takes yes or no, got ${quote(value)}`);
}

function parseCount(text: string, key: string, value: string | undefined, min: number): number {
  if (value === undefined || !/^\d+$/.test(value) || Number(value) < min || Number(value) > 2 ** 31 - 1) {
    throw invalid(text, `${key}= takes a whole number${min > 0 ? ` from ${min}` : ''}, got ${quote(value ?? '')}`);
  }
  return Number(value);
}

/** `0600`, `600`, `0o600`: always octal, as SocketMode= is. */
export function parseMode(value: string): number | undefined {
  const digits = value.replace(/^0o/i, '');
  if (!/^[0-7]{1,4}$/.test(digits)) return undefined;
  return parseInt(digits, 8);
}

/** Splits `SPEC,key=value,flag` into the spec and its options. Paths may contain commas: only known keys are split off them. */
function splitOptions(text: string, body: string, isPath: boolean): { spec: string; options: Array<[OptionKey, string | undefined]> } {
  const parts = body.split(',');
  const options: Array<[OptionKey, string | undefined]> = [];
  while (parts.length > 1) {
    const last = parts[parts.length - 1]!;
    const eq = last.indexOf('=');
    const key = eq === -1 ? last : last.slice(0, eq);
    if (!(OPTION_KEYS as readonly string[]).includes(key)) {
      if (isPath) break;
      throw invalid(text, `unknown option ${quote(key)} (there are ${OPTION_KEYS.join(', ')})`);
    }
    options.unshift([key as OptionKey, eq === -1 ? undefined : last.slice(eq + 1)]);
    parts.pop();
  }
  return { spec: parts.join(','), options };
}

const PREFIXES = ['tcp', 'udp', 'unix', 'unix-stream', 'unix-dgram', 'seqpacket', 'unix-seqpacket', 'fifo', 'mqueue', 'special'] as const;
type Prefix = (typeof PREFIXES)[number];

/**
 * Parses one `--listen` argument:
 *
 * | SPEC | like |
 * |---|---|
 * | `8080`, `tcp:8080` | `ListenStream=8080`: `[::]:8080`, IPv4 too unless ipv6-only |
 * | `127.0.0.1:8080`, `tcp:[::1]:8080` | `ListenStream=` |
 * | `udp:5353`, `udp:[::1]:5353` | `ListenDatagram=` |
 * | `/run/app.sock`, `@name`, `unix:PATH` | `ListenStream=` on a unix socket |
 * | `unix-dgram:PATH` | `ListenDatagram=` on a unix socket |
 * | `seqpacket:PATH` | `ListenSequentialPacket=` |
 * | `fifo:PATH` | `ListenFIFO=` |
 * | `mqueue:/NAME` | `ListenMessageQueue=` |
 * | `special:PATH` | `ListenSpecial=` |
 *
 * Options after commas: `backlog=N`, `ipv6-only[=yes|no]`, `reuse-port[=yes|no]`, `mode=0600`
 * (`maxmsg=N`, `msgsize=N` for a message queue). `NAME=` in front sets the fd name.
 * A port of 0 lets the kernel choose (systemd refuses it; it is useful in tests).
 *
 * @throws SystemdError `ERR_SD_LISTEN_SPEC_INVALID`, its message saying what is wrong and how to write it
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html
 */
export function parseListenSpec(text: string, defaults: ListenDefaults = {}): ListenSpec {
  if (typeof text !== 'string' || text.length === 0) throw invalid(String(text), 'empty; expected e.g. web=tcp:127.0.0.1:8080');
  let name = 'unknown';
  let body = text;
  // A name is what comes before the first '=' if that part cannot be the start of an address.
  const eq = text.indexOf('=');
  if (eq !== -1 && !/[:/@[,]/.test(text.slice(0, eq))) {
    name = text.slice(0, eq);
    body = text.slice(eq + 1);
    if (!isValidSpecName(name)) {
      throw invalid(text, `fd name ${quote(name)} is not valid: 1 to ${FDNAME_MAX} printable ASCII characters, no ':', ',' or '='`);
    }
    if (body.length === 0) throw invalid(text, `nothing to listen on after "${name}="`);
  }

  const colon = body.indexOf(':');
  const head = colon === -1 ? '' : body.slice(0, colon);
  let prefix: Prefix | undefined = (PREFIXES as readonly string[]).includes(head) ? (head as Prefix) : undefined;
  // `localhost:8080` is a host and a port, not an unknown kind: parseInet() says why it is refused.
  if (prefix === undefined && /^[a-z][a-z-]*$/.test(head) && !/^\d+(,|$)/.test(body.slice(colon + 1))) {
    throw invalid(text, `unknown kind ${quote(head)}: use ${PREFIXES.filter((p) => !p.startsWith('unix-')).join(', ')}, unix-dgram or unix-seqpacket`);
  }
  let rest = prefix === undefined ? body : body.slice(colon + 1);
  if (prefix === undefined) {
    // Bare forms, as in ListenStream=: a path or @name is a unix stream socket, anything else TCP.
    prefix = rest.startsWith('/') || rest.startsWith('@') ? 'unix' : 'tcp';
  }
  const isPath = !(prefix === 'tcp' || prefix === 'udp') && !rest.startsWith('@');
  const split = splitOptions(text, rest, isPath);
  rest = split.spec;
  const options = new Map(split.options);
  for (const [key] of split.options) {
    if (split.options.filter(([k]) => k === key).length > 1) throw invalid(text, `${key} is given twice`);
  }

  const only = (allowed: readonly OptionKey[], what: string): void => {
    for (const key of options.keys()) if (!allowed.includes(key)) throw invalid(text, `${key} does not apply to ${what}`);
  };
  const backlogOf = (): number | undefined => (options.has('backlog') ? parseCount(text, 'backlog', options.get('backlog'), 0) : defaults.backlog);
  const modeOf = (): number | undefined => {
    if (!options.has('mode')) return defaults.mode;
    const mode = parseMode(options.get('mode') ?? '');
    if (mode === undefined) throw invalid(text, `mode= takes an octal mode like 0600, got ${quote(options.get('mode') ?? '')}`);
    return mode;
  };

  switch (prefix) {
    case 'tcp':
    case 'udp': {
      const type = prefix === 'tcp' ? 'stream' : 'dgram';
      only(type === 'stream' ? ['backlog', 'ipv6-only', 'reuse-port'] : ['ipv6-only', 'reuse-port'], `${prefix} sockets`);
      if (rest.length === 0) throw invalid(text, `${prefix}: needs PORT, HOST:PORT or [IPV6]:PORT`);
      const { address, anyAddress } = parseInet(text, rest);
      const spec: SocketSpec = { kind: 'socket', name, text, type, address };
      if (anyAddress) spec.anyAddress = true;
      const v6Only = options.has('ipv6-only') ? parseBoolean(text, 'ipv6-only', options.get('ipv6-only')) : defaults.v6Only;
      if (v6Only !== undefined && address.family === 'ipv6') spec.v6Only = v6Only;
      if (options.has('ipv6-only') && address.family !== 'ipv6') throw invalid(text, 'ipv6-only applies to IPv6 addresses only');
      const reusePort = options.has('reuse-port') ? parseBoolean(text, 'reuse-port', options.get('reuse-port')) : defaults.reusePort;
      if (reusePort !== undefined) spec.reusePort = reusePort;
      const backlog = type === 'stream' ? backlogOf() : undefined;
      if (backlog !== undefined) spec.backlog = backlog;
      return spec;
    }
    case 'unix':
    case 'unix-stream':
    case 'unix-dgram':
    case 'seqpacket':
    case 'unix-seqpacket': {
      const type = prefix === 'unix-dgram' ? 'dgram' : prefix === 'seqpacket' || prefix === 'unix-seqpacket' ? 'seqpacket' : 'stream';
      const address = parseUnix(text, rest);
      const isFile = 'path' in address;
      only([...(type === 'dgram' ? [] : (['backlog'] as const)), ...(isFile ? (['mode'] as const) : [])], isFile ? `unix ${type} sockets` : 'abstract sockets');
      const spec: SocketSpec = { kind: 'socket', name, text, type, address };
      const backlog = type === 'dgram' ? undefined : backlogOf();
      if (backlog !== undefined) spec.backlog = backlog;
      const mode = isFile ? modeOf() : undefined;
      if (mode !== undefined) spec.mode = mode;
      return spec;
    }
    case 'fifo': {
      only(['mode'], 'FIFOs');
      const spec: FifoSpec = { kind: 'fifo', name, text, path: parsePath(text, rest, 'fifo:') };
      const mode = modeOf();
      if (mode !== undefined) spec.mode = mode;
      return spec;
    }
    case 'mqueue': {
      only(['mode', 'maxmsg', 'msgsize'], 'message queues');
      if (!/^\/[^/]+$/.test(rest)) throw invalid(text, 'a message queue name is one slash and a name, e.g. mqueue:/app');
      if (Buffer.byteLength(rest) > 255) throw invalid(text, 'a message queue name can have at most 255 bytes');
      const spec: MessageQueueSpec = { kind: 'mqueue', name, text, path: rest };
      const mode = modeOf();
      if (mode !== undefined) spec.mode = mode;
      if (options.has('maxmsg')) spec.maxmsg = parseCount(text, 'maxmsg', options.get('maxmsg'), 1);
      if (options.has('msgsize')) spec.msgsize = parseCount(text, 'msgsize', options.get('msgsize'), 1);
      if ((spec.maxmsg === undefined) !== (spec.msgsize === undefined)) throw invalid(text, 'give maxmsg and msgsize together, or neither');
      return spec;
    }
    case 'special':
      only([], 'special files');
      return { kind: 'special', name, text, path: parsePath(text, rest, 'special:') };
  }
}

/** A spec in the words of a .socket unit, for messages: `tcp [::]:8080`, `unix /run/app.sock`, `fifo /run/app.fifo`. */
export function describeSpec(spec: ListenSpec): string {
  if (spec.kind !== 'socket') return `${spec.kind} ${spec.path}`;
  const a = spec.address;
  if (a.family === 'unix') return `unix${spec.type === 'stream' ? '' : `-${spec.type}`} ${'path' in a ? a.path : `@${a.abstract}`}`;
  const where = a.family === 'ipv4' ? `${a.address}:${a.port}` : `[${a.address}${a.scopeId ? `%${a.scopeId}` : ''}]:${a.port}`;
  return `${spec.type === 'stream' ? 'tcp' : 'udp'} ${where}`;
}
