import { fs } from './builtins.js';
import type { NativeConstants, RawFdFacts } from './fd-facts.js';
import {
  decodeSockaddr,
  InetAddress,
  type NetlinkAddress,
  type OtherAddress,
  type UnixAddress,
  type VsockAddress,
} from './sockaddr.js';

/** SO_TYPE in words. */
export type SocketType = 'stream' | 'dgram' | 'seqpacket' | 'raw' | 'rdm' | 'unknown';

interface SocketCommon {
  kind: 'socket';
  type: SocketType;
  /** SO_ACCEPTCONN: listen(2) was called on it. */
  listening: boolean;
}

/** An AF_INET or AF_INET6 socket. */
export interface InetSocketInfo extends SocketCommon {
  family: 'ipv4' | 'ipv6';
  /** SO_PROTOCOL in words: 'tcp', 'udp', 'sctp', 'mptcp', 'udplite', or `ipproto-N`. */
  protocol: string;
  local: InetAddress;
  /** The peer of a connected socket (Accept=yes), else null. */
  peer: InetAddress | null;
}

/** An AF_UNIX socket. */
export interface UnixSocketInfo extends SocketCommon {
  family: 'unix';
  local: UnixAddress;
  peer: UnixAddress | null;
}

/** An AF_NETLINK socket (ListenNetlink=). */
export interface NetlinkSocketInfo extends SocketCommon {
  family: 'netlink';
  /** The netlink protocol (0 is NETLINK_ROUTE). */
  protocol: number;
  local: NetlinkAddress;
  peer: NetlinkAddress | null;
}

/** An AF_VSOCK socket. */
export interface VsockSocketInfo extends SocketCommon {
  family: 'vsock';
  local: VsockAddress;
  peer: VsockAddress | null;
}

/** A socket of any other family (AF_PACKET, ...), by number. */
export interface OtherSocketInfo extends SocketCommon {
  family: 'other';
  domain: number;
  protocol: number;
  local: OtherAddress;
}

/** A FIFO (ListenFIFO=). */
export interface FifoInfo {
  kind: 'fifo';
  /** Where it is in the filesystem, as /proc/self/fd tells. */
  path: string | null;
}

/** A regular file (ListenSpecial= on a file). */
export interface FileInfo {
  kind: 'file';
  path: string | null;
  size: number;
}

/** A character device (ListenSpecial= on /dev/...). */
export interface CharacterDeviceInfo {
  kind: 'character-device';
  path: string | null;
  major: number;
  minor: number;
}

/** A POSIX message queue (ListenMessageQueue=). */
export interface MessageQueueInfo {
  kind: 'mqueue';
  path: string | null;
  maxmsg: number;
  msgsize: number;
  curmsgs: number;
}

/** Anything else: a directory, a block device, an eventfd, ... */
export interface OtherFdInfo {
  kind: 'other';
  path: string | null;
  /** st_mode & S_IFMT */
  mode: number;
}

/** A socket of any family. */
export type SocketInfo = InetSocketInfo | UnixSocketInfo | NetlinkSocketInfo | VsockSocketInfo | OtherSocketInfo;

/**
 * What an inherited fd really is, as a union to switch on: `kind` first, then `family` for sockets.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_is_socket.html
 */
export type FdInfo = SocketInfo | FifoInfo | FileInfo | CharacterDeviceInfo | MessageQueueInfo | OtherFdInfo;

const PROTOCOLS: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp', 136: 'udplite', 262: 'mptcp' };

function socketType(type: number | undefined, c: NativeConstants): SocketType {
  switch (type) {
    case c.SOCK_STREAM:
      return 'stream';
    case c.SOCK_DGRAM:
      return 'dgram';
    case c.SOCK_SEQPACKET:
      return 'seqpacket';
    case c.SOCK_RAW:
      return 'raw';
    case c.SOCK_RDM:
      return 'rdm';
    default:
      return 'unknown';
  }
}

function fdPath(fd: number): string | null {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

/**
 * Turns the addon's facts about `fd` into an {@link FdInfo}. Pure but for the readlink of
 * /proc/self/fd for the path of a non-socket.
 */
export function toFdInfo(fd: number, facts: RawFdFacts, c: NativeConstants): FdInfo {
  if (facts.mode === c.S_IFSOCK && facts.local) {
    const common = { kind: 'socket' as const, type: socketType(facts.type, c), listening: facts.acceptConn === true };
    const local = decodeSockaddr(facts.local);
    const peer = facts.peer ? decodeSockaddr(facts.peer) : null;
    if (local instanceof InetAddress) {
      const protocol = PROTOCOLS[facts.protocol ?? 0] ?? `ipproto-${facts.protocol ?? 0}`;
      return { ...common, family: local.family, protocol, local, peer: peer instanceof InetAddress ? peer : null };
    }
    switch (local.family) {
      case 'unix':
        return { ...common, family: 'unix', local, peer: peer && peer.family === 'unix' ? peer : null };
      case 'netlink':
        // getpeername(2) never fails on netlink: a socket nobody connect()ed reports its default
        // destination, the kernel (port 0, no groups). That is no peer in the sense of the others.
        return {
          ...common,
          family: 'netlink',
          protocol: facts.protocol ?? 0,
          local,
          peer: peer && peer.family === 'netlink' && (peer.portId !== 0 || peer.groups !== 0) ? peer : null,
        };
      case 'vsock':
        return { ...common, family: 'vsock', local, peer: peer && peer.family === 'vsock' ? peer : null };
      default:
        return { ...common, family: 'other', domain: facts.domain ?? local.domain, protocol: facts.protocol ?? 0, local: local as OtherAddress };
    }
  }
  if (facts.mq) {
    const { maxmsg, msgsize, curmsgs } = facts.mq;
    return { kind: 'mqueue', path: fdPath(fd), maxmsg, msgsize, curmsgs };
  }
  if (facts.mode === c.S_IFIFO) return { kind: 'fifo', path: fdPath(fd) };
  if (facts.mode === c.S_IFREG) return { kind: 'file', path: fdPath(fd), size: facts.size };
  if (facts.mode === c.S_IFCHR) return { kind: 'character-device', path: fdPath(fd), major: facts.rdevMajor, minor: facts.rdevMinor };
  return { kind: 'other', path: fdPath(fd), mode: facts.mode };
}

const C_ESCAPES: Record<string, string> = { '\\': '\\\\', '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v' };

/**
 * Control bytes C-escaped, as systemd's cescape() prints socket names: an abstract name may hold
 * any byte (a NUL too), and a raw one in a log line or terminal would hide or garble the rest.
 */
function escapeName(name: string): string {
  return name.replace(/[\x00-\x1f\x7f\\]/g, (ch) => C_ESCAPES[ch] ?? `\\${ch.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/**
 * An address as systemd prints it after `Listen:`: `127.0.0.1:80`, `[::]:80`, `/run/x.sock`, `@name`.
 * Control characters and backslashes in unix names are C-escaped (`@a\000b` for a NUL).
 */
export function formatAddress(address: InetAddress | UnixAddress | NetlinkAddress | VsockAddress | OtherAddress): string {
  if (address instanceof InetAddress) return address.toString();
  switch (address.family) {
    case 'unix':
      return address.kind === 'path' ? escapeName(address.path) : address.kind === 'abstract' ? `@${escapeName(address.name)}` : '(unnamed)';
    case 'netlink':
      return `netlink ${address.portId}`;
    case 'vsock':
      return `vsock:${address.cid}:${address.port}`;
    default:
      return `family ${address.domain}`;
  }
}

/**
 * One line for a person: `tcp 127.0.0.1:8080 (ipv4 stream, listening)`, `unix /run/app.sock (dgram)`,
 * `netlink 4242 (raw)`, `fifo /run/app.fifo`, `character device /dev/null (1:3)`.
 */
export function describeFdInfo(info: FdInfo): string {
  if (info.kind !== 'socket') {
    const where = info.path ?? '(no path)';
    return info.kind === 'character-device' ? `character device ${where} (${info.major}:${info.minor})` : `${info.kind} ${where}`;
  }
  const inet = info.family === 'ipv4' || info.family === 'ipv6';
  // formatAddress() already names netlink, vsock and other families: no "netlink netlink 0".
  const what = inet ? `${info.protocol} ` : info.family === 'unix' ? 'unix ' : '';
  const state = info.listening ? ', listening' : 'peer' in info && info.peer ? `, connected to ${formatAddress(info.peer)}` : '';
  return `${what}${formatAddress(info.local)} (${inet ? `${info.family} ` : ''}${info.type}${state})`;
}
