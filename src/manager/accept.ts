/*
 * Accept=yes: the manager accepts each connection itself and starts one service instance for it,
 * with the connection at fd 3 named "connection" (or at fds 0 and 1 with StandardInput=socket),
 * and REMOTE_ADDR and REMOTE_PORT naming the client. At most MaxConnections= run at once: a
 * connection beyond that is accepted and closed at once, as systemd's socket_enter_running() does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { decodeSockaddr, InetAddress } from '../core/sockaddr.js';
import { native } from '../native/addon.js';
import type { ServiceInstance } from './instance.js';
import { acceptConnection } from './readiness.js';
import type { SupervisorEvents } from './supervisor-options.js';

/** What the accept loop needs of its supervisor. */
export interface AcceptHost {
  /** True once the supervisor is stopping: the loop ends. */
  readonly stopping: boolean;
  /** How many instances run now. */
  running(): number;
  /** The listening fds that are readable, or [] when woken for another reason. */
  readable(fds: readonly number[]): Promise<number[]>;
  /** Starts an instance for an accepted connection; the caller closes its own copy of the fd afterwards. */
  startFor(connection: number): ServiceInstance;
  emit<K extends keyof SupervisorEvents>(event: K, ...args: SupervisorEvents[K]): boolean;
}

/**
 * Accepts on `fds` until the supervisor stops, one instance per connection.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html#MaxConnections=
 */
export async function acceptLoop(fds: readonly number[], maxConnections: number, host: AcceptHost): Promise<void> {
  host.emit('waiting');
  for (;;) {
    if (host.stopping) return;
    for (const fd of await host.readable(fds)) {
      if (host.stopping) return;
      let connection: number;
      try {
        connection = acceptConnection(fd);
      } catch (error) {
        host.emit('warning', new Error(`accept on fd ${fd}: ${(error as Error).message}`, { cause: error }));
        continue;
      }
      try {
        const running = host.running();
        if (running >= maxConnections) {
          // systemd's own words, which its users search for.
          host.emit('warning', new Error(`Too many incoming connections (${running}), dropping connection (MaxConnections=${maxConnections})`));
          continue;
        }
        host.startFor(connection);
      } finally {
        // Dropped, or the service has its own copy now.
        native().close(connection);
      }
    }
  }
}

/** The name of network interface `index` (what systemd prints after '%'), or the index when it has none. */
function interfaceName(index: number): string {
  try {
    for (const name of readdirSync('/sys/class/net')) {
      if (readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim() === String(index)) return name;
    }
  } catch {
    // no sysfs: the number will do
  }
  return String(index);
}

/**
 * REMOTE_ADDR and REMOTE_PORT for a connection, as systemd's service_spawn() sets them: for IPv4
 * and IPv6 peers only (an IPv4-mapped address as IPv4, a link-local one with its interface), none
 * for a unix socket or a peer that is gone already.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#%24REMOTE_ADDR
 */
export function remoteVariables(connection: number): Record<string, string> {
  let peer: unknown;
  try {
    const raw = native().inspect(connection).peer;
    peer = raw ? decodeSockaddr(raw) : undefined;
  } catch {
    return {};
  }
  if (!(peer instanceof InetAddress)) return {};
  const address = peer.v4Mapped ? peer.address.slice(peer.address.lastIndexOf(':') + 1) : peer.scopeId ? `${peer.address}%${interfaceName(peer.scopeId)}` : peer.address;
  return { REMOTE_ADDR: address, REMOTE_PORT: String(peer.port) };
}
