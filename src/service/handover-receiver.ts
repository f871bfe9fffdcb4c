/*
 * The new process's side of the connection hand-over (handover-sender.ts is the old one's): from
 * its start, before its READY=1, it says which HTTP servers it adopts connections for, holds each
 * batch the old process sends, and takes what is released:
 *
 * - an HTTP/1.1 connection goes to the http.Server serving the same listening socket, as if it
 *   had just accepted it (`server.emit('connection', socket)`, before Node reads from it); one
 *   that was idle gets the rest of its keep-alive time, as Node arms that timer only after a
 *   response;
 * - any other connection goes to the application, with its state (incoming-connections.ts);
 * - in the primary of a worker pool, the old primary's sockets for its workers go to this
 *   process's workers, and the connections come to them on those (pool-handover.ts).
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { receiveConnections, type IncomingConnection } from './connection-handover.js';
import { HandoverChannel } from './handover-channel.js';
import type { ConnectionRecord, Hello } from './handover-sender.js';
import { handoverHttpServers, onHttpActivity, setIdleFor, watchResponses } from './http-idle.js';
import type { IncomingConnections } from './incoming-connections.js';
import { forwardToWorkers } from './pool-handover.js';
import { poolLinks } from './pool-link.js';

/** Node's margin over the advertised keep-alive timeout before it closes an idle connection (lib/_http_server.js); 22+ makes it a server property. */
const KEEP_ALIVE_BUFFER_MS = 1000;

/** Connections adopted idle whose keep-alive timer is ours until their first request. */
const armed = new WeakSet<Socket>();
let stopWatchingRequests: (() => void) | undefined;

/** The keep-alive time left to an adopted idle connection, as Node counts it after a response. */
function armKeepAlive(server: Server, socket: Socket, idleMs: number): void {
  if (!(server.keepAliveTimeout > 0)) return;
  const buffer = (server as Server & { keepAliveTimeoutBuffer?: number }).keepAliveTimeoutBuffer ?? KEEP_ALIVE_BUFFER_MS;
  socket.setTimeout(Math.max(1, server.keepAliveTimeout + buffer - idleMs));
  armed.add(socket);
  // Node's own request handling resets the timer it armed itself, not this one: at the first
  // request the socket gets the server's timeout back, as Node would give it.
  stopWatchingRequests ??= onHttpActivity('start', (started) => {
    if (!armed.has(started)) return;
    armed.delete(started);
    started.setTimeout((started as Socket & { server?: Server }).server?.timeout ?? 0);
  });
}

/**
 * Receives the connections of the old process on `fd` (this process's end of the hand-over
 * socket, which it owns from now on), for `servers` (HTTP) and `incoming` (the application's).
 * Sends the hello first: call it before READY=1. Returns what ends it early: the channel closes
 * (batches held and not released go back to the old process, which keeps them).
 *
 * @internal
 */
export function receiveHandover(fd: number, servers: readonly object[], incoming: Pick<IncomingConnections, 'add' | 'end'>, warn: (error: Error) => void): () => void {
  watchResponses();
  const channel = new HandoverChannel(fd);
  // It never keeps this process alive: it ends with the old process.
  channel.ref(false);
  const http = new Map(handoverHttpServers(servers).map(({ server, key }) => [key, server]));
  const pools = poolLinks(servers);
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    channel.close();
    incoming.end();
    for (const pool of pools) pool.over();
  };
  channel.once('end', end);
  channel.once('error', (error) => {
    warn(error);
    end();
  });
  channel.send({ t: 'hello', v: 1, http: [...http.keys()], pid: process.pid, pools: pools.length } satisfies Hello).catch(() => undefined);
  const net = process.getBuiltinModule('node:net');
  receiveConnections(channel, (connection) => adopt(connection, http, incoming), { net, others: pools.length > 0 ? forwardToWorkers(pools) : undefined });
  return end;
}

function adopt(connection: IncomingConnection, http: ReadonlyMap<string, Server>, incoming: Pick<IncomingConnections, 'add'>): void {
  const record = connection.state as ConnectionRecord | null;
  if (record?.k === 'raw') {
    incoming.add(connection, record.state, typeof record.to === 'string' ? record.to : undefined);
    return;
  }
  const server = record?.k === 'http' ? http.get(record.server) : undefined;
  if (!server) {
    // Not one of ours (the hello says which are): the old process never sends such a one.
    connection.close();
    return;
  }
  // At once: Node reads from a socket as soon as it exists, and the server must be the reader.
  const socket = connection.open({ allowHalfOpen: (server as Server & { allowHalfOpen?: boolean }).allowHalfOpen ?? true });
  server.emit('connection', socket);
  // After the server set the socket up (it gives it server.timeout).
  if (record?.k === 'http' && typeof record.idleMs === 'number') {
    setIdleFor(socket, record.idleMs);
    armKeepAlive(server, socket, record.idleMs);
  }
}
