import { nodeModule } from './builtins.js';
import { quote, show } from './quote.js';
import type { Address4, Address6 } from 'ip-address';

/*
 * struct sockaddr_* in and out of bytes. Linux layouts: sa_family is host order,
 * ports network order, sin6_flowinfo network order, sin6_scope_id host order.
 */

/** Host byte order, as os.endianness() says, without loading node:os at start-up. */
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const AF_VSOCK = 40;
const UNIX_PATH_OFFSET = 2;
const UNIX_PATH_MAX = 108;

let ipAddressModule: typeof import('ip-address') | undefined;
/** ip-address costs milliseconds to load: only those who ask for the object pay. */
function ipAddress(): typeof import('ip-address') {
  ipAddressModule ??= nodeModule().createRequire(import.meta.url)('ip-address') as typeof import('ip-address');
  return ipAddressModule;
}

/**
 * An IPv4 or IPv6 socket address, decoded from sockaddr_in / sockaddr_in6.
 *
 * @see https://man7.org/linux/man-pages/man7/ipv6.7.html
 */
export class InetAddress {
  /** Canonical text, as inet_ntop(3) prints it: `127.0.0.1`, `::1`, `::ffff:10.0.0.1`. */
  readonly address: string;
  readonly family: 'ipv4' | 'ipv6';
  readonly port: number;
  /** sin6_flowinfo (0 for IPv4). */
  readonly flowinfo: number;
  /** sin6_scope_id: the interface index of a link-local address (0 for IPv4). */
  readonly scopeId: number;
  /** True for an IPv6 socket bound to an IPv4-mapped address (`::ffff:a.b.c.d`). */
  readonly v4Mapped: boolean;

  constructor(init: { family: 'ipv4' | 'ipv6'; address: string; port: number; flowinfo?: number; scopeId?: number; v4Mapped?: boolean }) {
    this.family = init.family;
    this.address = init.address;
    this.port = init.port;
    this.flowinfo = init.flowinfo ?? 0;
    this.scopeId = init.scopeId ?? 0;
    this.v4Mapped = init.v4Mapped ?? false;
  }

  /** The address as an `ip-address` object (Address4 or Address6), loaded on first use. */
  get ip(): Address4 | Address6 {
    const { Address4, Address6 } = ipAddress();
    return this.family === 'ipv4' ? new Address4(this.address) : new Address6(this.address);
  }

  /** `127.0.0.1:80`, `[::1]:80`, `[fe80::1%2]:80`: the form systemd prints in `Listen:`. */
  toString(): string {
    if (this.family === 'ipv4') return `${this.address}:${this.port}`;
    return `[${this.address}${this.scopeId ? `%${this.scopeId}` : ''}]:${this.port}`;
  }
}

/** An AF_UNIX address: a filesystem path, an abstract name, or none at all. */
export type UnixAddress =
  | { family: 'unix'; kind: 'path'; path: string }
  | { family: 'unix'; kind: 'abstract'; name: string }
  | { family: 'unix'; kind: 'unnamed' };

/** An AF_NETLINK address: the port id (nl_pid) and multicast groups. */
export interface NetlinkAddress {
  family: 'netlink';
  portId: number;
  groups: number;
}

/** An AF_VSOCK address. */
export interface VsockAddress {
  family: 'vsock';
  cid: number;
  port: number;
}

/** Any other family, by number, with its raw bytes. */
export interface OtherAddress {
  family: 'other';
  domain: number;
  bytes: string;
}

/** Every address a socket can report. */
export type SocketAddress = InetAddress | UnixAddress | NetlinkAddress | VsockAddress | OtherAddress;

function u16(buf: Buffer, offset: number): number {
  return LE ? buf.readUInt16LE(offset) : buf.readUInt16BE(offset);
}
function u32(buf: Buffer, offset: number): number {
  return LE ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset);
}

/**
 * Decodes the bytes getsockname(2)/getpeername(2) wrote. A unix address is unnamed when only
 * sa_family was written, abstract when the path starts with NUL (its length is exact, so
 * embedded NULs stay), and a path otherwise.
 */
export function decodeSockaddr(buf: Buffer): SocketAddress {
  if (buf.length < 2) return { family: 'other', domain: 0, bytes: buf.toString('hex') };
  const domain = u16(buf, 0);
  switch (domain) {
    case AF_INET:
      if (buf.length < 8) break;
      return new InetAddress({ family: 'ipv4', address: formatIPv4(buf, 4), port: buf.readUInt16BE(2) });
    case AF_INET6: {
      if (buf.length < 24) break;
      const bytes = buf.subarray(8, 24);
      return new InetAddress({
        family: 'ipv6',
        address: formatIPv6(bytes),
        port: buf.readUInt16BE(2),
        flowinfo: buf.readUInt32BE(4),
        scopeId: buf.length >= 28 ? u32(buf, 24) : 0,
        v4Mapped: isV4Mapped(bytes),
      });
    }
    case AF_UNIX: {
      if (buf.length <= UNIX_PATH_OFFSET) return { family: 'unix', kind: 'unnamed' };
      const path = buf.subarray(UNIX_PATH_OFFSET);
      if (path[0] === 0) return { family: 'unix', kind: 'abstract', name: path.subarray(1).toString('utf8') };
      const end = path.indexOf(0);
      return { family: 'unix', kind: 'path', path: path.subarray(0, end === -1 ? path.length : end).toString('utf8') };
    }
    case AF_NETLINK:
      if (buf.length < 12) break;
      return { family: 'netlink', portId: u32(buf, 4), groups: u32(buf, 8) };
    case AF_VSOCK:
      if (buf.length < 12) break;
      return { family: 'vsock', port: u32(buf, 4), cid: u32(buf, 8) };
  }
  return { family: 'other', domain, bytes: buf.toString('hex') };
}

function formatIPv4(buf: Buffer, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

function isV4Mapped(bytes: Buffer): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * RFC 5952 text, exactly as inet_ntop(3) (and so Node and systemd) prints it: the longest run of
 * two or more zero groups becomes `::`, and IPv4-mapped or -compatible addresses end dotted.
 */
export function formatIPv6(bytes: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestBase = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestBase = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      out += `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
      break;
    }
    out += words[i]!.toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

/** Where a socket is to be bound: the `address` of a socket description (openSocket(), openStoredSocket()). */
export type BindAddress =
  | { family: 'ipv4'; address: string; port: number }
  | { family: 'ipv6'; address: string; port: number; flowinfo?: number; scopeId?: number }
  | { family: 'unix'; path: string }
  | { family: 'unix'; abstract: string };

/**
 * The bytes of a sockaddr for bind(2) or connect(2).
 *
 * @throws TypeError for an address that cannot be written (bad IP text, a path too long)
 */
export function encodeSockaddr(address: BindAddress): Buffer {
  if (address.family === 'ipv4') {
    const buf = Buffer.alloc(16);
    writeFamily(buf, AF_INET);
    buf.writeUInt16BE(checkPort(address.port), 2);
    parseIPv4(address.address).forEach((b, i) => (buf[4 + i] = b));
    return buf;
  }
  if (address.family === 'ipv6') {
    const buf = Buffer.alloc(28);
    writeFamily(buf, AF_INET6);
    buf.writeUInt16BE(checkPort(address.port), 2);
    buf.writeUInt32BE(address.flowinfo ?? 0, 4);
    Buffer.from(parseIPv6(address.address)).copy(buf, 8);
    if (LE) buf.writeUInt32LE(address.scopeId ?? 0, 24);
    else buf.writeUInt32BE(address.scopeId ?? 0, 24);
    return buf;
  }
  if (address.family !== 'unix') {
    throw new TypeError(`address.family must be 'ipv4', 'ipv6' or 'unix', got ${show((address as { family?: unknown }).family)}`);
  }
  const abstract = 'abstract' in address;
  const text: unknown = abstract ? address.abstract : address.path;
  if (typeof text !== 'string') throw new TypeError(`unix socket ${abstract ? 'abstract name' : 'path'} must be a string`);
  const name = Buffer.from(text, 'utf8');
  const length = name.length + 1; // the leading NUL of an abstract name, or the trailing one of a path
  if (length > UNIX_PATH_MAX || name.length === 0) {
    throw new TypeError(`unix socket ${abstract ? 'name' : 'path'} must be 1 to ${UNIX_PATH_MAX - 1} bytes`);
  }
  // The kernel ends a path at its first NUL: "a\0b" would bind "a". An abstract name is
  // taken by its exact length, so a NUL inside one is just a byte.
  if (!abstract && name.includes(0)) throw new TypeError(`unix socket path must not contain NUL: ${quote(text)}`);
  // An abstract name is exactly as long as given (no trailing NUL), as systemd binds it;
  // a path gets its terminating NUL counted, as systemd does too.
  const buf = Buffer.alloc(UNIX_PATH_OFFSET + length);
  writeFamily(buf, AF_UNIX);
  name.copy(buf, UNIX_PATH_OFFSET + (abstract ? 1 : 0));
  return buf;
}

function writeFamily(buf: Buffer, family: number): void {
  if (LE) buf.writeUInt16LE(family, 0);
  else buf.writeUInt16BE(family, 0);
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port must be 0..65535, got ${show(port)}`);
  return port;
}

/** Dotted-quad only, as inet_pton(3) takes it: no leading zeros (`010` is not 10 there, nor 8). */
export function parseIPv4(text: string): number[] {
  if (typeof text !== 'string') throw new TypeError(`not an IPv4 address: ${show(text)}`);
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255)) {
    throw new TypeError(`not an IPv4 address: ${quote(text)}`);
  }
  return parts.map(Number);
}

/** RFC 4291 text (with an optional dotted IPv4 tail) to 16 bytes. */
export function parseIPv6(text: string): Uint8Array {
  const fail = (): never => {
    throw new TypeError(`not an IPv6 address: ${show(text)}`);
  };
  if (typeof text !== 'string') fail();
  let hex = text;
  const lastColon = hex.lastIndexOf(':');
  if (lastColon === -1) fail();
  if (hex.slice(lastColon + 1).includes('.')) {
    const v4 = parseIPv4(hex.slice(lastColon + 1));
    hex = `${hex.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const halves = hex.split('::');
  if (halves.length > 2) fail();
  const parse = (s: string): number[] =>
    s === '' ? [] : s.split(':').map((g) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : fail()));
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  if (halves.length === 2 ? left.length + right.length > 7 : left.length !== 8) fail();
  const words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}
