/*
 * Finishing what a process serves before it exits, without failing a client: what a stop does
 * (lifecycle(), upgrader()) and what an upgrade's old process does once the new one serves.
 *
 * http.Server.close() closes the connections that have no request in flight at once. A
 * connection accepted a moment ago whose request has not been read yet is one of them, and so is
 * a keep-alive connection on which the client is sending its next request right now: both
 * clients see a reset. So an http server is closed as a net.Server (it stops accepting, nothing
 * more), and every response from then on says `Connection: close`, but on a connection that an
 * upgrade hands over to the new process (see {@link Drain.handingOver}). What happens to idle
 * keep-alive connections is the caller's choice (see DrainOptions.idleConnections). HTTP/2
 * sessions are closed gracefully (GOAWAY: the streams in flight finish, the client opens no new
 * one here). What is left at the deadline is cut.
 *
 * This module holds no state of its own: the lazily loaded upgrade code may carry a copy.
 */
import type { Socket as DgramSocket } from 'node:dgram';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';

/**
 * Anything a stop can close: net/http/https/http2 servers and dgram sockets from the adapters
 * (close with a callback), or an object whose close() returns a promise (Fastify, a worker pool).
 */
export interface Closable {
  close(callback?: (error?: Error) => void): unknown;
}

/**
 * Resolves once `server` listens: at once for one that already does or cannot say (no
 * `listening` property or no `once`), else on its 'listening' event.
 */
export function waitListening(server: Closable): Promise<void> {
  const s = server as { listening?: boolean; once?: (event: string, listener: () => void) => unknown };
  if (s.listening !== false || typeof s.once !== 'function') return Promise.resolve();
  return new Promise((resolve) => s.once!('listening', resolve));
}

/** How a {@link Drain} ends the connections of its servers. */
export interface DrainOptions {
  /**
   * Idle keep-alive connections of http servers: 'close' them at once (a stop: waiting for them
   * would hold a restart while new connections queue for the next process, and browsers and
   * proxies resend an idempotent request when a reused connection closes under them), or 'drain'
   * them (an upgrade's old process, while the new one serves: each gets until the deadline to send
   * its next request, answered with `Connection: close`, or to time out).
   */
  idleConnections: 'close' | 'drain';
}

interface Tracked {
  server: Closable;
  kind: 'http' | 'net' | 'dgram' | 'other';
  sockets: Set<Socket>;
  responses: Set<ServerResponse>;
  /** The HTTP/2 sessions of an http2 server. */
  sessions: Set<{ close(): void }>;
}

/** The connections a server accepted since its {@link Drain} watches it, still open. */
export interface TrackedConnections {
  server: Closable;
  sockets: ReadonlySet<Socket>;
}

interface HttpLike {
  closeIdleConnections?: () => void;
  closeAllConnections?: () => void;
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
 * can end them well. Create it before the servers get traffic where possible; connections an http
 * server accepted before are still cut at the deadline (closeAllConnections()).
 *
 * @internal
 */
export class Drain {
  readonly #tracked: Tracked[];
  readonly #options: DrainOptions;
  #draining = false;
  #activity: (() => void) | undefined;
  #handingOver: ((socket: Socket) => boolean) | undefined;
  /** Connections no server accepted: handed over by an upgrade's old process (see {@link Drain.track}). */
  readonly #adopted = new Set<Socket>();
  /** Called each time a connection closes while close() waits for the last one. */
  #closedOne: (() => void) | undefined;

  constructor(servers: readonly Closable[], options: DrainOptions) {
    this.#options = options;
    this.#tracked = servers.map((server) => {
      const tracked: Tracked = { server, kind: kindOf(server), sockets: new Set(), responses: new Set(), sessions: new Set() };
      if (tracked.kind === 'http' || tracked.kind === 'net') {
        const net = server as unknown as NetServer;
        net.on('connection', (socket: Socket) => {
          tracked.sockets.add(socket);
          this.#activity?.();
          socket.once('close', () => {
            tracked.sockets.delete(socket);
            this.#activity?.();
            this.#closedOne?.();
          });
        });
        if (typeof (server as { updateSettings?: unknown }).updateSettings === 'function') {
          // An http2 server: its sessions, to be sent GOAWAY.
          net.on('session', (session: { close(): void; once(event: 'close', listener: () => void): unknown }) => {
            tracked.sessions.add(session);
            session.once('close', () => tracked.sessions.delete(session));
            if (this.#draining) session.close();
          });
        }
      }
      if (tracked.kind === 'http') {
        // First in line, so that the header is set before any handler can send the response.
        (server as unknown as NetServer).prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
          if (this.#draining && !this.#handingOver?.(req.socket)) res.setHeader('Connection', 'close');
          tracked.responses.add(res);
          res.once('close', () => tracked.responses.delete(res));
        });
      }
      if (tracked.kind === 'dgram') (server as unknown as DgramSocket).on('message', () => this.#activity?.());
      return tracked;
    });
  }

  /** The servers it watches, as given. */
  get servers(): readonly Closable[] {
    return this.#tracked.map((t) => t.server);
  }

  /** Whether every server's activity can be seen: net and http servers, dgram sockets. */
  get observable(): boolean {
    return this.#tracked.every((t) => t.kind !== 'other');
  }

  /** Whether a connection is open on any server (a request in flight has one), or one handed over. */
  get busy(): boolean {
    return this.#adopted.size > 0 || this.#tracked.some((t) => t.sockets.size > 0);
  }

  /**
   * A connection this process did not accept, handed over by an upgrade's old process to the
   * application: a stop waits for it to close as for an accepted one, and cuts it at the deadline.
   * (A server counts only the connections it accepted itself: one handed to it with
   * `emit('connection')` does not hold its close().)
   */
  track(socket: Socket): void {
    if (socket.destroyed) return;
    this.#adopted.add(socket);
    this.#activity?.();
    socket.once('close', () => {
      this.#adopted.delete(socket);
      this.#activity?.();
      this.#closedOne?.();
    });
  }

  /** Resolves once no connection is open: those the servers do not count (handed over) included. */
  #allClosed(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.busy) return;
        this.#closedOne = undefined;
        resolve();
      };
      this.#closedOne = check;
      check();
    });
  }

  /** Calls `listener` on every connection opened or closed and every datagram read. */
  onActivity(listener: () => void): void {
    this.#activity = listener;
  }

  /** The connections of each net or http server, as tracked so far (an upgrade hands them over). */
  connections(): TrackedConnections[] {
    return this.#tracked.filter((t) => t.kind === 'http' || t.kind === 'net').map((t) => ({ server: t.server, sockets: t.sockets }));
  }

  /**
   * While set, a response on a connection for which `keep` is true does not say `Connection:
   * close` when draining: an upgrade hands that connection over once the response is sent.
   * Unset (the hand-over is over), every response from then on says it again.
   */
  handingOver(keep: ((socket: Socket) => boolean) | undefined): void {
    this.#handingOver = keep;
    if (keep === undefined && this.#draining) {
      for (const t of this.#tracked) for (const res of t.responses) if (!res.headersSent) res.setHeader('Connection', 'close');
    }
  }

  /**
   * Stops accepting (and reading datagrams) on every server, lets what is in flight finish, and
   * cuts what is still open after `deadlineMs`. Resolves once every server is closed.
   * `idleConnections` overrides the option given at construction, for this close.
   */
  async close(deadlineMs: number, idleConnections: DrainOptions['idleConnections'] = this.#options.idleConnections): Promise<void> {
    this.#draining = true;
    const { Server } = process.getBuiltinModule('node:net');
    const closed = [...this.#tracked.map((t) => this.#closeOne(t, Server, idleConnections)), this.#allClosed()];
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
    });
    const outcome = await Promise.race([Promise.all(closed), deadline]);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      for (const socket of this.#adopted) socket.destroy();
      for (const t of this.#tracked) {
        for (const socket of t.sockets) socket.destroy();
        (t.server as HttpLike).closeAllConnections?.();
      }
      // Destroyed connections let the net servers emit 'close'; others get a moment more.
      await Promise.race([Promise.all(closed), new Promise((resolve) => setTimeout(resolve, 100))]);
    }
  }

  #closeOne(t: Tracked, NetServerClass: typeof NetServer, idleConnections: DrainOptions['idleConnections']): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        resolve();
      };
      try {
        for (const session of t.sessions) session.close();
        if (t.kind === 'http') {
          for (const res of t.responses) if (!res.headersSent && !(res.socket && this.#handingOver?.(res.socket))) res.setHeader('Connection', 'close');
          // net.Server's close: stop accepting, and leave the connections to finish (see above).
          // An http server that is no net.Server (Bun's, served through a net.Server by the
          // adapters) closes its own way.
          if (t.server instanceof NetServerClass) NetServerClass.prototype.close.call(t.server, () => finish());
          else t.server.close(() => finish());
          if (idleConnections === 'close') (t.server as HttpLike).closeIdleConnections?.();
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
