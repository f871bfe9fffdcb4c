/*
 * When an HTTP/1.1 connection of a Node http.Server can be handed to another process: when
 * nothing of a request is inside Node. Node's http server reads a connection with
 * parser.consume(): the bytes go from the socket straight into llhttp, and a request that has
 * arrived in part (a first packet of it, or a pipelined one behind another) is parsed state in
 * this process, invisible from JavaScript and impossible to carry along. Such a connection stays
 * here until its request is complete and answered.
 *
 * Node keeps, per server, the one list that says which parsers are between messages: the list
 * server.closeIdleConnections() closes. It is private (a symbol-keyed property); this module
 * reads it, read-only, in one feature-detected place, and says so when a Node does not have it:
 * connections are then not handed over at all, and drain as before. Everything else is public:
 * which requests are waiting for their response (diagnostics_channel), what Node still buffers
 * (readableLength, writableLength), what it has read (bytesRead).
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** The description of the symbol under which Node 18.2+ keeps the list (lib/_http_server.js). */
const CONNECTIONS = 'http.server.connections';

interface ConnectionsList {
  idle(): Array<{ socket?: unknown }>;
}

function connectionsList(server: Server): ConnectionsList | undefined {
  const key = Object.getOwnPropertySymbols(server).find((s) => s.description === CONNECTIONS);
  const list = key === undefined ? undefined : (server as unknown as Record<symbol, unknown>)[key];
  return typeof list === 'object' && list !== null && typeof (list as ConnectionsList).idle === 'function' ? (list as ConnectionsList) : undefined;
}

/** Requests started and not yet answered in full, per socket, from Node's public diagnostics channels. */
const pending = new WeakMap<object, number>();
let subscribed = false;

function watchResponses(): void {
  if (subscribed) return;
  subscribed = true;
  const dc = process.getBuiltinModule('node:diagnostics_channel');
  dc.subscribe('http.server.request.start', (message) => {
    const socket = (message as { socket?: object }).socket;
    if (socket) pending.set(socket, (pending.get(socket) ?? 0) + 1);
  });
  dc.subscribe('http.server.response.finish', (message) => {
    const socket = (message as { socket?: object }).socket;
    if (socket) pending.set(socket, Math.max(0, (pending.get(socket) ?? 0) - 1));
  });
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
