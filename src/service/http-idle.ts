/*
 * When an HTTP/1.1 connection of a Node http.Server can be handed to another process: when
 * nothing of a request is inside Node. Node's http server reads a connection with
 * parser.consume(): the bytes go from the socket straight into llhttp, and a request that has
 * arrived in part (a first packet of it, or a pipelined one behind another) is parsed state in
 * this process, invisible from JavaScript and impossible to carry along. Such a connection stays
 * here until its request is complete and answered.
 *
 * Node keeps, per server, the one list that says which parsers are between messages: the list
 * server.closeIdleConnections() closes. It is private (a symbol-keyed property), read in
 * node-private.ts, the one place the library reads Node's privates; a Node without it hands no
 * HTTP connection over: they drain as before. Everything else is public:
 * which requests are waiting for their response (diagnostics_channel), what Node still buffers
 * (readableLength, writableLength), what it has read (bytesRead).
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { httpConnectionsList as connectionsList } from './node-private.js';

/** Requests started and not yet answered in full, per socket, from Node's public diagnostics channels. */
const pending = new WeakMap<object, number>();
/** When each socket's last response was finished (Date.now()). */
const finishedAt = new WeakMap<object, number>();
/** Who wants to know when a response is finished. */
const finishListeners = new Set<(socket: Socket) => void>();
/** Who wants to know when a request starts. */
const startListeners = new Set<(socket: Socket) => void>();
let subscribed = false;

/**
 * Starts counting requests and responses on every http.Server of this process: a check made by
 * {@link httpIdleCheck} is right for the connections whose requests all started after this.
 *
 * @internal
 */
export function watchResponses(): void {
  if (subscribed) return;
  subscribed = true;
  const dc = process.getBuiltinModule('node:diagnostics_channel');
  dc.subscribe('http.server.request.start', (message) => {
    const socket = (message as { socket?: Socket }).socket;
    if (!socket) return;
    pending.set(socket, (pending.get(socket) ?? 0) + 1);
    for (const listener of startListeners) listener(socket);
  });
  dc.subscribe('http.server.response.finish', (message) => {
    const socket = (message as { socket?: Socket }).socket;
    if (!socket) return;
    pending.set(socket, Math.max(0, (pending.get(socket) ?? 0) - 1));
    finishedAt.set(socket, Date.now());
    for (const listener of finishListeners) listener(socket);
  });
}

/**
 * Calls `listener` with the socket of each response finished from now on (when Node publishes it,
 * before it has set the connection up for the next request: look at it a moment later), or of
 * each request started, until the returned function is called.
 *
 * @internal
 */
export function onHttpActivity(event: 'finish' | 'start', listener: (socket: Socket) => void): () => void {
  watchResponses();
  const set = event === 'finish' ? finishListeners : startListeners;
  set.add(listener);
  return () => void set.delete(listener);
}

/** How long `socket` has been idle since its last response was finished; undefined when none was, or before watchResponses(). @internal */
export function idleFor(socket: Socket): number | undefined {
  const at = finishedAt.get(socket);
  return at === undefined ? undefined : Math.max(0, Date.now() - at);
}

/**
 * A check for {@link sendConnections}'s `ready`: true when `socket` (a connection of `server`,
 * with reading stopped) has no request in Node's hands: none waiting for its response, nothing
 * unwritten, nothing buffered unparsed, and its parser between two messages (or nothing read at
 * all yet). Create it before the server's first request, so that every response is counted.
 *
 * Returns undefined when this Node keeps no list of idle parsers: HTTP connections cannot be
 * handed over on it.
 *
 * @internal
 */
export function httpIdleCheck(server: Server): ((socket: Socket) => boolean) | undefined {
  if (typeof server.closeIdleConnections !== 'function') return undefined;
  watchResponses();
  let idle: Set<unknown> | undefined;
  return (socket) => {
    if (socket.destroyed || socket.readableLength > 0 || socket.writableLength > 0 || (pending.get(socket) ?? 0) > 0) return false;
    if (socket.bytesRead === 0) return true;
    if (!idle) {
      // One snapshot per synchronous run of checks (a release checks a whole batch at once).
      const list = connectionsList(server);
      if (!list) return false;
      idle = new Set(list.idle().map((parser) => parser.socket));
      queueMicrotask(() => (idle = undefined));
    }
    return idle.has(socket);
  };
}

/** Whether this Node keeps the list of idle parsers where {@link httpIdleCheck} reads it (after the server listens). */
export function httpIdleSupported(server: Server): boolean {
  return connectionsList(server) !== undefined;
}

/**
 * The servers among `servers` whose connections can be handed over: plain http.Servers (not
 * https: TLS state lives in this process; not http2), each with a key that names the listening
 * socket it serves the same way in the old and the new process: its address, and its rank among
 * the servers of the same address (unix sockets inherited as fds all have none).
 *
 * @internal
 */
export function handoverHttpServers(servers: readonly object[]): Array<{ server: Server; key: string }> {
  const { Server: HttpServer } = process.getBuiltinModule('node:http');
  const seen = new Map<string, number>();
  const out: Array<{ server: Server; key: string }> = [];
  for (const server of servers) {
    if (!(server instanceof HttpServer)) continue;
    const address = JSON.stringify(server.address() ?? null);
    const rank = seen.get(address) ?? 0;
    seen.set(address, rank + 1);
    out.push({ server, key: `${address}#${rank}` });
  }
  return out;
}

/**
 * Gives an adopted connection the idle time it had in the old process, so that it is timed out
 * (and handed over again) as if it had never moved.
 *
 * @internal
 */
export function setIdleFor(socket: Socket, ms: number): void {
  finishedAt.set(socket, Date.now() - ms);
}
