/*
 * Finishing what a process serves before it exits, without failing a client: what an upgrade's
 * old process does once the new one is the main process, and what a stop does.
 *
 * http.Server.close() closes the connections that have no request in flight at once. A
 * connection accepted a moment ago whose request has not been read yet is one of them, and so is
 * a keep-alive connection on which the client is sending its next request right now: both
 * clients see a reset. So an http server is closed as a net.Server (it stops accepting, nothing
 * more), every response from then on says `Connection: close`, and idle connections get until
 * the deadline to send their next request (answered, then closed) or to time out by themselves.
 * What is left at the deadline is cut.
 */
import type { Socket as DgramSocket } from 'node:dgram';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import type { Closable } from './lifecycle.js';

interface Tracked {
  server: Closable;
  kind: 'http' | 'net' | 'dgram' | 'other';
  sockets: Set<Socket>;
  responses: Set<ServerResponse>;
}

function kindOf(server: Closable): Tracked['kind'] {
  const s = server as unknown as Record<string, unknown>;
  if (typeof s.getConnections === 'function' && typeof s.listen === 'function') {
    return typeof s.closeIdleConnections === 'function' ? 'http' : 'net';
  }
  if (typeof s.send === 'function' && typeof s.addMembership === 'function') return 'dgram';
  return 'other';
}

/**
 * Watches the connections and requests of each server from now on, so that {@link Drain.close}
 * can end them well. Create it before the servers get traffic.
 *
 * @internal
 */
export class Drain {
  readonly #tracked: Tracked[];
  #draining = false;

  constructor(servers: readonly Closable[]) {
    this.#tracked = servers.map((server) => {
      const tracked: Tracked = { server, kind: kindOf(server), sockets: new Set(), responses: new Set() };
      if (tracked.kind === 'http' || tracked.kind === 'net') {
        const net = server as unknown as NetServer;
        net.on('connection', (socket: Socket) => {
          tracked.sockets.add(socket);
          socket.once('close', () => tracked.sockets.delete(socket));
        });
      }
      if (tracked.kind === 'http') {
        // First in line, so that the header is set before any handler can send the response.
        (server as unknown as NetServer).prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
          if (this.#draining) res.setHeader('Connection', 'close');
          tracked.responses.add(res);
          res.once('close', () => tracked.responses.delete(res));
        });
      }
      return tracked;
    });
  }

  /**
   * Stops accepting (and reading datagrams) on every server, lets what is in flight finish, and
   * cuts what is still open after `deadlineMs`. Resolves once every server is closed.
   */
  async close(deadlineMs: number): Promise<void> {
    this.#draining = true;
    const { Server } = await import('node:net');
    const closed = this.#tracked.map((t) => this.#closeOne(t, Server));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
    });
    const outcome = await Promise.race([Promise.all(closed), deadline]);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      for (const t of this.#tracked) for (const socket of t.sockets) socket.destroy();
      // Destroyed connections let the net servers emit 'close'; others get a moment more.
      await Promise.race([Promise.all(closed), new Promise((resolve) => setTimeout(resolve, 100))]);
    }
  }

  #closeOne(t: Tracked, NetServerClass: typeof NetServer): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        resolve();
      };
      try {
        if (t.kind === 'http') {
          for (const res of t.responses) if (!res.headersSent) res.setHeader('Connection', 'close');
          // net.Server's close: stop accepting, and leave the connections to finish (see above).
          NetServerClass.prototype.close.call(t.server as unknown as NetServer, () => finish());
        } else if (t.kind === 'dgram') {
          // Every datagram read so far has been emitted: closing leaves the rest in the socket's
          // queue, for the process that shares it.
          (t.server as unknown as DgramSocket).close(() => finish());
        } else {
          // Callbacks report "not running" as an error; for a drain that is as good as closed.
          const result = t.server.close(() => finish());
          if (result && typeof (result as Promise<unknown>).then === 'function') (result as Promise<unknown>).then(finish, finish);
        }
      } catch {
        finish();
      }
    });
  }
}
