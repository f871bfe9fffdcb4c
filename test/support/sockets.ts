import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../../src/native/addon.js';
import { closeFd, openSocket, type SocketDescription } from '../../src/shared/open-socket.js';
import { decodeSockaddr, InetAddress } from '../../src/core/sockaddr.js';

/** Sockets made outside Node's event loop, as a service manager makes them, closed by `closeAll()`. */
export class SocketSet {
  private readonly fds: number[] = [];
  private dir: string | undefined;

  open(desc: SocketDescription): number {
    const fd = openSocket(desc);
    this.fds.push(fd);
    return fd;
  }

  /** A listening TCP socket on an ephemeral port. */
  tcp(host = '127.0.0.1'): { fd: number; port: number } {
    const fd = this.open({ type: 'stream', address: { family: host.includes(':') ? 'ipv6' : 'ipv4', address: host, port: 0 }, v6Only: host.includes(':') ? true : undefined });
    return { fd, port: portOf(fd) };
  }

  /** A bound UDP socket on an ephemeral port. */
  udp(host = '127.0.0.1'): { fd: number; port: number } {
    const fd = this.open({ type: 'dgram', address: { family: host.includes(':') ? 'ipv6' : 'ipv4', address: host, port: 0 }, v6Only: host.includes(':') ? true : undefined });
    return { fd, port: portOf(fd) };
  }

  /** A unix socket of `type` at a fresh path in this set's temp dir. */
  unix(type: 'stream' | 'dgram' | 'seqpacket', file = `${type}.sock`): { fd: number; path: string } {
    const path = join(this.tempDir(), file);
    return { fd: this.open({ type, address: { family: 'unix', path } }), path };
  }

  tempDir(): string {
    this.dir ??= mkdtempSync(join(tmpdir(), 'sd-activate-'));
    return this.dir;
  }

  /** Adopts an fd made elsewhere, so closeAll() closes it too. */
  adopt(fd: number): number {
    this.fds.push(fd);
    return fd;
  }

  closeAll(): void {
    for (const fd of this.fds.splice(0)) {
      try {
        closeFd(fd);
      } catch {
        // already closed by the test
      }
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}

/** The port a socket is bound to. */
export function portOf(fd: number): number {
  const local = native().inspect(fd).local;
  if (!local) throw new Error(`fd ${fd} is not a socket`);
  const address = decodeSockaddr(local);
  if (!(address instanceof InetAddress)) throw new Error(`fd ${fd} is not an IP socket`);
  return address.port;
}
