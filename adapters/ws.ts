/**
 * sd-activate/ws: WebSockets of the `ws` package that stay open across upgrades. At an upgrade
 * (see upgrader()), the old process hands each WebSocket of a WebSocketServer over to the new
 * one between two frames, with the application's state of it; the new process's server takes it
 * as one of its clients, and the client keeps its one TCP connection. A WebSocket whose state
 * cannot move is closed with 1012 (Service Restart) instead, once the new version is the main
 * process: one with permessage-deflate (its compression contexts live in this process's zlib),
 * one in the middle of a message that does not end within `boundaryTimeoutMs`.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#ExecReload=
 * @see https://www.iana.org/assignments/websocket/websocket.xhtml#close-code-number (1012)
 * @module
 */
import type { EventEmitter as Emitter } from 'node:events';
import type { Socket } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import { SystemdError, type HandoverEvent, type Upgrader } from '../src/index.js';
import { atFrameBoundary, serverRunning, serverUnsupportedBy, serverWebSocket, socketOf, unsupportedBy } from './ws-private.js';

const { EventEmitter } = process.getBuiltinModule('node:events');

/** The `to` of pass(): the new process's connections('ws') alone takes these connections. */
const TO = 'ws';
/** Service Restart, in the IANA WebSocket Close Code Number Registry (RFC 6455, section 11.7). */
const SERVICE_RESTART = 1012;
/** How often a WebSocket in the middle of a message is looked at again, besides after each message. */
const POLL_MS = 10;
/** ws's binary types ('blob' since ws 8.18). */
const BINARY_TYPES: readonly string[] = ['nodebuffer', 'arraybuffer', 'fragments', 'blob'];

/** Options of {@link handOverWebSockets}. */
export interface WebSocketHandoverOptions {
  /**
   * Old process: the application's state of a WebSocket, carried with it to the new process's
   * 'connection' event (JSON, at most 64 KiB: a user, subscriptions, a heartbeat's times). Asked
   * right before the WebSocket goes, with its reading stopped. Default: none (undefined).
   */
  state?: (ws: WebSocket) => unknown;
  /**
   * Old process: how long a WebSocket that is in the middle of a message (a fragmented one, a
   * frame in part) may take to reach a frame boundary, from the start of the hand-over, before
   * it is closed with 1012 (default 2000). Keep it below the upgrader's `stopTimeoutMs`, which
   * cuts what is left.
   */
  boundaryTimeoutMs?: number;
}

/** Events of a {@link WebSocketHandover}. */
export interface WebSocketHandoverEvents {
  /**
   * New process: a WebSocket the old process handed over, open, one of the server's clients,
   * with the state it was given (see {@link WebSocketHandoverOptions.state}). Serve it as one
   * from the server's own 'connection' event; there is no upgrade request.
   */
  connection: [ws: WebSocket, state: unknown];
  /**
   * Old process: `ws` is the new process's now. It closes here next (its 'close' event says
   * 1006, a connection ended without a closing handshake, as far as this process can tell):
   * tell this apart from a client that left. Nothing sent on it from now on is delivered.
   */
  passed: [ws: WebSocket];
  /** Old process: `ws` was closed with 1012 (Service Restart) instead of passed, and why. */
  restart: [ws: WebSocket, reason: string];
  /** Something that stops one WebSocket from passing, not the upgrade (a state() that throws, a ws whose privates changed). */
  warning: [error: Error];
}

/** What {@link handOverWebSockets} returns: the events of the hand-over, on both sides. */
export type WebSocketHandover = Emitter<WebSocketHandoverEvents>;

/** The carried record of one WebSocket. */
interface Carried {
  v: 1;
  protocol: string;
  binaryType: WebSocket['binaryType'];
  state?: unknown;
}

/** One WebSocket of the old process during an upgrade. */
interface Track {
  deadline: number;
  phase: 'waiting' | 'passing' | 'passed' | 'stuck';
  why?: string;
  /** Whether pass()'s `ready` was asked: a 'kept' without it means the new process did not take it. */
  asked: boolean;
  off: Array<() => void>;
}

function checkArguments(up: Upgrader, wss: WebSocketServer, options: WebSocketHandoverOptions): void {
  if (typeof up !== 'object' || up === null || typeof up.on !== 'function' || typeof up.connections !== 'function') throw new TypeError('up must be an Upgrader, from upgrader()');
  if (typeof wss !== 'object' || wss === null || typeof (wss as { handleUpgrade?: unknown }).handleUpgrade !== 'function') throw new TypeError('wss must be a WebSocketServer of the ws package');
  if (!(wss.clients instanceof Set)) throw new TypeError('the WebSocketServer must track its clients (clientTracking: true, the default)');
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (options.state !== undefined && typeof options.state !== 'function') throw new TypeError('options.state must be a function');
  const timeout = options.boundaryTimeoutMs;
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && timeout <= 0x7fffffff)) throw new TypeError('options.boundaryTimeoutMs must be a number of milliseconds above 0');
}

class Handover extends EventEmitter<WebSocketHandoverEvents> {
  readonly #up: Upgrader;
  readonly #wss: WebSocketServer;
  readonly #state: ((ws: WebSocket) => unknown) | undefined;
  readonly #boundaryTimeoutMs: number;
  readonly #tracks = new Map<WebSocket, Track>();
  /** Handed-over connections waiting for a 'connection' listener. */
  readonly #pending: Array<{ socket: Socket; carried: Carried }> = [];
  #pass: HandoverEvent['pass'] | undefined;
  #upgraded = false;
  #poll: NodeJS.Timeout | undefined;
  #warnedUnsupported = false;

  constructor(up: Upgrader, wss: WebSocketServer, options: WebSocketHandoverOptions) {
    super();
    this.#up = up;
    this.#wss = wss;
    this.#state = options.state;
    this.#boundaryTimeoutMs = options.boundaryTimeoutMs ?? 2000;
    up.on('handover', ({ pass }) => {
      this.#pass = pass;
      this.#sweep();
    });
    up.on('upgraded', () => {
      this.#upgraded = true;
      this.#sweep();
      for (const [ws, track] of this.#tracks) if (track.phase === 'stuck') this.#restart(ws, track);
    });
    up.on('failed', () => this.#rolledBack());
    // A handshake that ends during the upgrade (its connection accepted before the switch, in this
    // process): that WebSocket goes too. After the application's own 'connection' listeners, which
    // give it the state to carry.
    wss.on('connection', (ws: WebSocket) => {
      if (!this.#pass && !this.#upgraded) return;
      setImmediate(() => {
        if ((this.#pass || this.#upgraded) && !this.#tracks.has(ws) && ws.readyState === ws.OPEN) this.#consider(ws);
      });
    });
    (this as Emitter).on('newListener', (event: string | symbol) => {
      if (event === 'connection' && this.#pending.length > 0) setImmediate(() => this.#deliver());
    });
    void this.#receive();
  }

  #warn(error: Error): void {
    if (this.listenerCount('warning') > 0) this.emit('warning', error);
    else process.emitWarning(error);
  }

  #emit<E extends 'passed' | 'restart' | 'connection'>(event: E, ...args: WebSocketHandoverEvents[E]): void {
    try {
      (this.emit as (event: E, ...args: WebSocketHandoverEvents[E]) => boolean)(event, ...args);
    } catch (error) {
      this.#warn(error instanceof Error ? error : new Error(String(error)));
    }
  }

  // ---- the old process ----

  /** Every open WebSocket of the server not looked at yet in this upgrade. */
  #sweep(): void {
    for (const ws of this.#wss.clients) if (ws.readyState === ws.OPEN && !this.#tracks.has(ws)) this.#consider(ws);
  }

  #consider(ws: WebSocket): void {
    const track: Track = { deadline: Date.now() + this.#boundaryTimeoutMs, phase: 'waiting', asked: false, off: [] };
    this.#tracks.set(ws, track);
    const onClose = (): void => {
      this.#forget(ws);
    };
    ws.once('close', onClose);
    track.off.push(() => ws.off('close', onClose));
    const unsupported = unsupportedBy(ws);
    if (unsupported) {
      if (!this.#warnedUnsupported) {
        this.#warnedUnsupported = true;
        this.#warn(new SystemdError('ERR_SD_WS_UNSUPPORTED', `this ws keeps a WebSocket's state where sd-activate does not read it (${unsupported}): WebSockets are closed with 1012 at upgrades instead of handed over`));
      }
      this.#stuck(ws, track, 'this version of ws cannot be handed over');
    } else if (/(^|,)\s*permessage-deflate\b/.test(ws.extensions)) {
      this.#stuck(ws, track, 'permessage-deflate: its compression state lives in this process');
    } else {
      this.#attempt(ws, track);
    }
  }

  #forget(ws: WebSocket): void {
    const track = this.#tracks.get(ws);
    if (!track) return;
    for (const off of track.off.splice(0)) off();
    this.#tracks.delete(ws);
    this.#pollIfWaiting();
  }

  #stuck(ws: WebSocket, track: Track, why: string): void {
    for (const off of track.off.splice(1)) off();
    track.phase = 'stuck';
    track.why = why;
    this.#pollIfWaiting();
    if (this.#upgraded) this.#restart(ws, track);
  }

  #restart(ws: WebSocket, track: Track): void {
    if (ws.readyState !== ws.OPEN) return;
    ws.close(SERVICE_RESTART, 'Service Restart');
    this.#emit('restart', ws, track.why ?? 'it could not be handed over');
  }

  /** Passes `ws` if it is between two frames now; else waits for the next boundary, until its deadline. */
  #attempt(ws: WebSocket, track: Track): void {
    const pass = this.#pass;
    if (!pass) {
      this.#stuck(ws, track, 'the new version takes no connections');
      return;
    }
    if (ws.readyState !== ws.OPEN) return;
    if (!atFrameBoundary(ws)) {
      this.#wait(ws, track);
      return;
    }
    const wasPaused = ws.isPaused;
    ws.pause();
    const resume = (): void => {
      if (!wasPaused) ws.resume();
    };
    let state: unknown;
    try {
      state = this.#state?.(ws);
    } catch (error) {
      resume();
      this.#warn(error instanceof Error ? error : new Error(String(error)));
      this.#stuck(ws, track, 'state() threw');
      return;
    }
    for (const off of track.off.splice(1)) off();
    track.phase = 'passing';
    track.asked = false;
    const carried: Carried = { v: 1, protocol: ws.protocol, binaryType: ws.binaryType, ...(state === undefined ? {} : { state }) };
    const ready = (): boolean => {
      track.asked = true;
      if (!atFrameBoundary(ws)) return false;
      // Before the socket's 'close', which comes once the release is over.
      queueMicrotask(() => this.#emit('passed', ws));
      return true;
    };
    pass(socketOf(ws), carried, { to: TO, ready }).then(
      (outcome) => {
        if (outcome === 'passed') {
          track.phase = 'passed';
          return;
        }
        resume();
        if (track.asked && this.#pass) this.#wait(ws, track);
        else this.#stuck(ws, track, 'the new process did not take it');
      },
      (error: Error) => {
        resume();
        this.#warn(error);
        this.#stuck(ws, track, error.message);
      },
    );
  }

  /** Looks again after its next message, or at the next poll; closes it at its deadline. */
  #wait(ws: WebSocket, track: Track): void {
    if (Date.now() >= track.deadline) {
      this.#stuck(ws, track, `a message in progress did not end within ${this.#boundaryTimeoutMs} ms`);
      return;
    }
    track.phase = 'waiting';
    if (track.off.length === 1) {
      // Right after a message: stop reading, so that the next one does not start before the look.
      const onMessage = (): void => {
        const paused = ws.isPaused;
        ws.pause();
        setImmediate(() => {
          if (track.phase !== 'waiting') return;
          if (!paused) ws.resume();
          this.#attempt(ws, track);
        });
      };
      ws.on('message', onMessage);
      track.off.push(() => ws.off('message', onMessage));
    }
    this.#pollIfWaiting();
  }

  #pollIfWaiting(): void {
    const waiting = [...this.#tracks.values()].some((t) => t.phase === 'waiting');
    if (waiting && !this.#poll) {
      this.#poll = setInterval(() => {
        for (const [ws, track] of this.#tracks) if (track.phase === 'waiting') this.#attempt(ws, track);
      }, POLL_MS);
    } else if (!waiting && this.#poll) {
      clearInterval(this.#poll);
      this.#poll = undefined;
    }
  }

  /** The upgrade failed: everything here serves on, as before. */
  #rolledBack(): void {
    this.#pass = undefined;
    for (const ws of [...this.#tracks.keys()]) this.#forget(ws);
  }

  // ---- the new process ----

  async #receive(): Promise<void> {
    for await (const { socket, state } of this.#up.connections(TO)) {
      const carried = state as Partial<Carried> | null;
      if (carried?.v !== 1 || typeof carried.protocol !== 'string' || !BINARY_TYPES.includes(String(carried.binaryType))) {
        socket.destroy();
        this.#warn(new Error('a WebSocket handed over by the previous process came with a state sd-activate/ws cannot read: it was closed'));
        continue;
      }
      this.#pending.push({ socket, carried: carried as Carried });
      this.#deliver();
    }
  }

  /** Builds the WebSockets of the connections waiting, once someone listens. */
  #deliver(): void {
    while (this.#pending.length > 0 && this.listenerCount('connection') > 0) {
      const { socket, carried } = this.#pending.shift()!;
      let ws: WebSocket;
      try {
        ws = serverWebSocket(this.#wss, socket, carried);
      } catch (error) {
        socket.destroy();
        const why = serverUnsupportedBy(this.#wss) ?? (error as Error).message;
        this.#warn(new SystemdError('ERR_SD_WS_UNSUPPORTED', `a WebSocket handed over by the previous process cannot be built on this ws (${why}): it was closed`, { cause: error }));
        continue;
      }
      // A server that is closing takes no client: this one goes, as the service restarts.
      if (serverRunning(this.#wss)) this.#emit('connection', ws, carried.state);
      else ws.close(SERVICE_RESTART, 'Service Restart');
    }
  }
}

/**
 * Keeps the WebSockets of `wss` open across upgrades of `up`: call it once in every version of
 * the service, right after upgrader(), and listen to its 'connection' event at once.
 *
 * - Old process, at an upgrade: each open WebSocket passes to the new process between two
 *   frames, with `options.state(ws)`, its subprotocol and binaryType; what the client sends
 *   meanwhile waits in the kernel for the new process. One in the middle of a message passes
 *   once the message is over; one that is not over within `boundaryTimeoutMs`, or one with
 *   permessage-deflate (its compression state cannot move: turn it off for WebSockets that
 *   should stay open), is closed with 1012 (Service Restart) once the new version is the main
 *   process: clients reconnect. An upgrade that fails leaves every WebSocket here, served as
 *   before. When the new version cannot take connections (an older sd-activate, Deno), every
 *   WebSocket is closed with 1012 at the switch.
 * - New process: each WebSocket the old one passed becomes one of `wss.clients`, open, built
 *   with the server's own options (what WebSocketServer does after a handshake), and comes with
 *   its state in the 'connection' event of the returned emitter.
 *
 * @example
 * ```js
 * const wss = new WebSocketServer({ server, perMessageDeflate: false });
 * const up = await upgrader({ servers: [server] });
 * const handover = handOverWebSockets(up, wss, { state: (ws) => sessions.get(ws) });
 * handover.on('connection', (ws, session) => serve(ws, session));
 * wss.on('connection', (ws) => serve(ws, newSession()));
 * ```
 * @throws TypeError when `up` is not an Upgrader, `wss` not a WebSocketServer that tracks its
 *   clients, or `options` not valid. A ws whose privates changed is warned of ('warning',
 *   SystemdError `ERR_SD_WS_UNSUPPORTED`) and its WebSockets are closed with 1012 instead
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#MAINPID=%E2%80%A6
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-7.4
 */
export function handOverWebSockets(up: Upgrader, wss: WebSocketServer, options: WebSocketHandoverOptions = {}): WebSocketHandover {
  checkArguments(up, wss, options);
  return new Handover(up, wss, options);
}
