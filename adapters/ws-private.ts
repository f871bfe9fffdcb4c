/*
 * What sd-activate/ws reads and writes of the `ws` package's privates, and the one place it does
 * (as src/service/node-private.ts is for Node's). ws offers no public way to know that a
 * WebSocket's parser is between two frames, to reach its socket, or to build a server-side
 * WebSocket on a connection whose handshake another process made. Every field is
 * feature-detected: a ws that changes them gets a description of what is missing from
 * {@link unsupportedBy}, its WebSockets are closed with 1012 at upgrades instead of passed, and
 * test/adapters/ws-private.test.ts, run against each ws minor that changed them, fails loudly.
 *
 * Read from ws 8's lib/receiver.js, lib/sender.js, lib/websocket.js, lib/websocket-server.js.
 */
import type { Socket } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';

/** The Receiver's state between two frames: GET_INFO, 0 in every ws 8. */
const GET_INFO = 0;
/** The Sender's state when it compresses nothing and reads no Blob: DEFAULT (ws 8.18+; before, `_deflating`). */
const SENDER_DEFAULT = 0;
/** WebSocketServer states (RUNNING, CLOSING, CLOSED in lib/websocket-server.js). */
const SERVER_RUNNING = 0;
const SERVER_CLOSED = 2;
/** WebSocket.OPEN. */
const OPEN = 1;

interface ReceiverPrivates {
  _state: number;
  _bufferedBytes: number;
  /** 0 (false), or the opcode of the fragmented message in progress. */
  _fragmented: number | boolean;
  /** Chunks the Receiver (a Writable) holds while it inflates or defers an event. */
  writableLength: number;
}

interface SenderPrivates {
  _queue: unknown[];
  _bufferedBytes: number;
  _state?: number;
  _deflating?: boolean;
}

interface WebSocketPrivates {
  _socket: Socket | null;
  _receiver: ReceiverPrivates | null;
  _sender: SenderPrivates | null;
  _protocol: string;
  setSocket(socket: Socket, head: Buffer, options: object): void;
}

interface ServerPrivates {
  options: { WebSocket?: new (address: null, protocols: undefined, options: object) => WebSocket } & Record<string, unknown>;
  _state?: number;
  _shouldEmitClose?: boolean;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;
const isCount = (value: unknown): boolean => typeof value === 'number' && Number.isInteger(value) && value >= 0;

/**
 * What sd-activate cannot find in this open WebSocket of a server (its socket, its Receiver's
 * and Sender's state), or undefined when it finds all of it.
 */
export function unsupportedBy(ws: WebSocket): string | undefined {
  const p = ws as unknown as Partial<WebSocketPrivates>;
  if (typeof p.setSocket !== 'function') return 'WebSocket#setSocket is not a function';
  if (!isObject(p._socket) || typeof (p._socket as Partial<Socket>).destroy !== 'function') return 'an open WebSocket has no _socket';
  const r = p._receiver as unknown;
  if (!isObject(r) || !isCount(r._state) || !isCount(r._bufferedBytes) || !(isCount(r._fragmented) || typeof r._fragmented === 'boolean') || !isCount(r.writableLength)) {
    return "its _receiver has no numeric _state, _bufferedBytes, _fragmented and writableLength";
  }
  const s = p._sender as unknown;
  if (!isObject(s) || !Array.isArray(s._queue) || !isCount(s._bufferedBytes) || !(isCount(s._state) || typeof s._deflating === 'boolean')) {
    return 'its _sender has no _queue, _bufferedBytes, and _state or _deflating';
  }
  if (typeof p._protocol !== 'string') return 'its _protocol is not a string';
  return undefined;
}

/** What sd-activate cannot find in `wss` to build a WebSocket on a handed-over connection, or undefined. */
export function serverUnsupportedBy(wss: WebSocketServer): string | undefined {
  const p = wss as unknown as Partial<ServerPrivates>;
  if (!isObject(p.options) || typeof p.options.WebSocket !== 'function') return 'the WebSocketServer has no options.WebSocket class';
  if (p._state !== undefined && !isCount(p._state)) return 'its _state is not a number';
  return undefined;
}

/** The socket of an open WebSocket (after {@link unsupportedBy} said nothing). */
export function socketOf(ws: WebSocket): Socket {
  return (ws as unknown as WebSocketPrivates)._socket!;
}

/**
 * Whether `ws` (open, checked by {@link unsupportedBy}) is between two frames with nothing of a
 * message inside ws: no partial frame, no fragmented message in progress, no chunk waiting in
 * the Receiver (an event deferred, a message inflating), nothing queued or being compressed in
 * the Sender. What its socket still has to write is pass()'s to wait for.
 */
export function atFrameBoundary(ws: WebSocket): boolean {
  if (ws.readyState !== OPEN) return false;
  const { _receiver: r, _sender: s } = ws as unknown as WebSocketPrivates;
  if (!r || !s) return false;
  const senderIdle = s._state === undefined ? s._deflating !== true : s._state === SENDER_DEFAULT;
  return r._state === GET_INFO && r._bufferedBytes === 0 && !r._fragmented && r.writableLength === 0 && senderIdle && s._queue.length === 0 && s._bufferedBytes === 0;
}

/** Whether `wss` still takes WebSockets (not closed or closing). */
export function serverRunning(wss: WebSocketServer): boolean {
  const state = (wss as unknown as ServerPrivates)._state;
  return state === undefined || state === SERVER_RUNNING;
}

/**
 * A server-side WebSocket of `wss` on `socket`, whose opening handshake was made by another
 * process (with `protocol` agreed, and no extension): what WebSocketServer#completeUpgrade does
 * after it has written its 101 answer. It is one of `wss.clients` (with client tracking), and
 * leaves them when it closes, the last one ending a close() of the server as ws's own would.
 *
 * @throws Error when `wss` lacks what {@link serverUnsupportedBy} looks for
 */
export function serverWebSocket(wss: WebSocketServer, socket: Socket, carried: { protocol: string; binaryType: WebSocket['binaryType'] }): WebSocket {
  const unsupported = serverUnsupportedBy(wss);
  if (unsupported) throw new Error(unsupported);
  const server = wss as unknown as ServerPrivates;
  const ws = new server.options.WebSocket!(null, undefined, server.options);
  const p = ws as unknown as WebSocketPrivates;
  if (typeof p.setSocket !== 'function') throw new Error('WebSocket#setSocket is not a function');
  p._protocol = carried.protocol;
  ws.binaryType = carried.binaryType;
  // The server's own options, as completeUpgrade gives them (maxPayload, allowSynchronousEvents, ...).
  p.setSocket(socket, Buffer.alloc(0), server.options);
  const clients = wss.clients as Set<WebSocket> | undefined;
  if (clients) {
    clients.add(ws);
    ws.on('close', () => {
      clients.delete(ws);
      if (server._shouldEmitClose && clients.size === 0) {
        process.nextTick(() => {
          server._state = SERVER_CLOSED;
          wss.emit('close');
        });
      }
    });
  }
  return ws;
}
