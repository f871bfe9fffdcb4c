/*
 * Binding an inherited UDP socket on Deno. Deno's node:dgram refuses `bind({ fd })` for a UDP
 * socket ("Unsupported fd type: UNKNOWN", Deno 2.9: its guess of an fd's type knows no UDP), but
 * its UDP handle opens an fd (`UDP.prototype.open`, which Deno implements for dgram sockets sent
 * over IPC) and `socket.bind(handle)` adopts a handle, as Node's cluster does. Checked only when the
 * dgram adapter binds an inherited fd.
 */
import type { Socket } from 'node:dgram';
import { SystemdError, type ListenFd } from '../src/index.js';

interface UdpHandle {
  open(fd: number): number;
}

/** True on Deno, whose dgram.Socket cannot bind({ fd }). */
export function cannotBindFd(): boolean {
  return process.versions.deno !== undefined;
}

/** What `socket.bind({ fd })` does on Node: the socket adopts the inherited fd. */
export function bindThroughHandle(socket: Socket, handle: ListenFd, callback: () => void): void {
  let udp: UdpHandle;
  try {
    const { UDP } = (process as unknown as { binding(name: string): { UDP: new () => UdpHandle } }).binding('udp_wrap');
    udp = new UDP();
    const status = udp.open(handle.fd);
    if (status !== 0) throw new Error(`UDP.open() returned ${status}`);
  } catch (cause) {
    throw new SystemdError(
      'ERR_SD_UNSUPPORTED_RUNTIME',
      `fd ${handle.fd} "${handle.name}": this Deno's node:dgram can bind neither an fd nor a handle opened on one (${(cause as Error).message})`,
      { cause },
    );
  }
  (socket.bind as unknown as (handle: UdpHandle, callback: () => void) => void)(udp, callback);
}
