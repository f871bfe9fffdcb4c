/*
 * The facts the addon reports about an fd, and the constants it reads from the system headers:
 * plain data, so that the code that decodes them (socket-info.ts) needs no addon to be tested.
 */

/** What `inspect(fd)` reports: fstat(2), and getsockopt(2)/getsockname(2)/getpeername(2) for sockets. */
export interface RawFdFacts {
  /** `st_mode & S_IFMT` */
  mode: number;
  rdevMajor: number;
  rdevMinor: number;
  size: number;
  domain?: number;
  type?: number;
  protocol?: number;
  acceptConn?: boolean;
  /** The raw sockaddr from getsockname(2), exactly as long as the kernel said. */
  local?: Buffer;
  /** The raw sockaddr from getpeername(2); absent when not connected. */
  peer?: Buffer;
  /** mq_getattr(3) of a POSIX message queue. */
  mq?: { flags: number; maxmsg: number; msgsize: number; curmsgs: number };
}

/** The constants the addon reports from the system headers. */
export interface NativeConstants {
  AF_UNIX: number;
  AF_INET: number;
  AF_INET6: number;
  AF_NETLINK: number;
  AF_PACKET: number;
  AF_VSOCK: number;
  SOCK_STREAM: number;
  SOCK_DGRAM: number;
  SOCK_SEQPACKET: number;
  SOCK_RAW: number;
  SOCK_RDM: number;
  SOCK_CLOEXEC: number;
  SOCK_NONBLOCK: number;
  SOL_SOCKET: number;
  SO_REUSEADDR: number;
  SO_REUSEPORT: number;
  SO_PASSCRED: number;
  IPPROTO_IPV6: number;
  IPV6_V6ONLY: number;
  IPPROTO_TCP: number;
  IPPROTO_UDP: number;
  IPPROTO_SCTP: number;
  S_IFSOCK: number;
  S_IFIFO: number;
  S_IFREG: number;
  S_IFCHR: number;
  S_IFDIR: number;
  S_IFBLK: number;
  S_IFLNK: number;
  O_RDWR: number;
  O_RDONLY: number;
  O_WRONLY: number;
  O_CREAT: number;
  O_NONBLOCK: number;
  O_CLOEXEC: number;
  SCM_MAX_FD: number;
}
