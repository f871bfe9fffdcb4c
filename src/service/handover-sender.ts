/*
 * The old process's side of the connection hand-over during an upgrade (upgrader-process.ts says
 * when): established connections pass to the new process over the seqpacket socket the launcher
 * made (connection-handover.ts is the protocol, per batch), so that their clients stay on the one
 * TCP connection they have.
 *
 * It starts once the new process serves, and before the old one tells the service manager
 * MAINPID=: if the new process dies meanwhile, every connection not passed yet is still this
 * process's, which rolls back and serves on, as it never stopped accepting. What is ready passes
 * at once; what is busy passes as it becomes ready, before and after the switch, until the stop's
 * deadline; what is left then drains as before.
 *
 * - HTTP/1.1 connections of the plain http.Servers given to upgrader() pass by themselves, each
 *   when nothing of a request is inside Node (http-idle.ts), and the new process's server adopts
 *   them: an idle keep-alive connection at once, one with a request in flight right after its
 *   response. Until then their responses do not say `Connection: close` (see Drain.handingOver).
 * - Any other connection passes when the application says so: the 'handover' event gives it
 *   `pass(socket, state)`, to call at a boundary of its protocol.
 * - A worker pool's workers hand theirs over to the new pool's (pool-handover.ts): this process
 *   gives each of its workers a socket to one of them, and waits for what was ready to pass.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { EventEmitter } from 'node:events';
import { SystemdError } from '../core/errors.js';
import { unsupportedOnDeno } from '../core/runtime.js';
import { native } from '../native/addon.js';
import { isAlive } from '../shared/process-state.js';
import { sendConnections, type OutgoingConnection } from './connection-handover.js';
import type { Drain } from './drain.js';
import { HandoverChannel } from './handover-channel.js';
import { handoverHttpServers, httpIdleCheck, httpIdleSupported, idleFor, onHttpActivity } from './http-idle.js';
import { PassQueue } from './handover-pass.js';
import { handOverPools, type PoolSender } from './pool-handover.js';
import { poolLinks, type PoolLink } from './pool-link.js';
import type { Message } from './upgrade-channel.js';
import { handoverRuntime, takeHandover, type Launched } from './upgrade-launcher.js';
import type { UpgraderEvents } from './upgrade-types.js';

/**
 * What the new process says first on the hand-over socket: the version of this protocol, the
 * servers it adopts HTTP connections for, its pid, and how many worker pools it serves.
 */
export interface Hello {
  t: 'hello';
  v: 1;
  http: string[];
  pid?: number;
  pools?: number;
}

/** The state record sent with each connection. */
export type ConnectionRecord = { k: 'http'; server: string; idleMs?: number } | { k: 'raw'; state: unknown; to?: string };

/** How long the new process's hello may take: it is sent before its READY=1, so it is queued already. */
const HELLO_TIMEOUT_MS = 2000;
/** How often connections that were busy are looked at again, besides after each response. */
const SWEEP_MS = 100;

/** What a hand-over needs from the upgrader. */
export interface SenderContext {
  /** This end of the hand-over socket. */
  fd: number;
  /** The new process; undefined: the one its hello names (a worker's hand-over, see worker-handover.ts). */
  pid: number | undefined;
  drain: Drain;
  events: EventEmitter<UpgraderEvents>;
  warn: (error: Error) => void;
  /** How long a batch may wait for the new process to hold it. */
  heldTimeoutMs: number;
  /** This process's worker pools, whose workers hand their connections over too (pool-handover.ts). */
  pools?: readonly PoolLink[];
  /** Called when the new process's end closes before close() (it died, or never said hello). */
  ended?: () => void;
}

interface HttpSource {
  server: Server;
  key: string;
  sockets: ReadonlySet<Socket>;
  ready: (socket: Socket) => boolean;
}

let warnedNoIdleList = false;

/**
 * Starts the connection hand-over to the new process `pid` of `launched`, which said `ready`, and
 * runs its first round; undefined when there is none: the new process takes no connections (a
 * version without the hand-over), or this runtime cannot hand them over (they drain, as before;
 * on Deno a warning says so).
 */
export async function startHandover(launched: Launched, pid: number, ready: Message, context: Omit<SenderContext, 'fd' | 'pid'>): Promise<HandoverSender | undefined> {
  const fd = takeHandover(launched);
  if (!handoverRuntime()) {
    const refused = unsupportedOnDeno(
      'handing connections over at an upgrade',
      "Deno has neither the fd of a net.Socket nor libuv's poll for Node-API addons, which the hand-over needs; connections drain instead",
    );
    if (refused && (context.events.listenerCount('handover') > 0 || context.drain.connections().length > 0)) context.warn(refused);
    return undefined;
  }
  if (fd === undefined) return undefined;
  if (ready.get('HANDOVER') !== '1') {
    native().close(fd);
    return undefined;
  }
  return HandoverSender.start({ ...context, fd, pid, pools: poolLinks(context.drain.servers) });
}

/** Reads the new process's hello: undefined when it does not come (a version without the hand-over), null when the new process is gone. */
function hello(channel: HandoverChannel): Promise<Hello | undefined | null> {
  return new Promise((resolve) => {
    const done = (value: Hello | undefined | null): void => {
      clearTimeout(timer);
      channel.off('message', onMessage);
      channel.off('end', onEnd);
      resolve(value);
    };
    const onMessage = (message: unknown): void => {
      const m = message as Partial<Hello> | null;
      done(m?.t === 'hello' && m.v === 1 && Array.isArray(m.http) && m.http.every((k) => typeof k === 'string') ? (m as Hello) : undefined);
    };
    const onEnd = (): void => done(null);
    const timer = setTimeout(() => done(undefined), HELLO_TIMEOUT_MS);
    channel.on('message', onMessage);
    channel.once('end', onEnd);
  });
}

/** One upgrade's hand-over, from its first round until close(). */
export class HandoverSender {
  readonly #channel: HandoverChannel;
  readonly #context: SenderContext & { pid: number };
  readonly #http: HttpSource[];
  /** The hand-over of this process's pools, if any. */
  #pools: PoolSender | undefined;
  /** Connections in a batch now: never in two at once. */
  readonly #inFlight = new Set<Socket>();
  /** Rounds and pass() batches under way: close() waits for them, since each release must reach the new process. */
  readonly #running = new Set<Promise<unknown>>();
  /** The application's pass() calls. */
  readonly #passes: PassQueue;
  readonly #stops: Array<() => void> = [];
  #active = true;
  #peerGone = false;
  #immediate: NodeJS.Immediate | undefined;
  #again = false;
  #round: Promise<void> | undefined;

  private constructor(channel: HandoverChannel, context: SenderContext & { pid: number }, http: HttpSource[]) {
    this.#channel = channel;
    this.#context = context;
    this.#http = http;
    this.#passes = new PassQueue((items) => {
      const readyOf = new Map(items.map((item) => [item.socket, item.ready]));
      const records = items.map(({ socket, state, to }) => ({ socket, state: (to === undefined ? { k: 'raw', state } : { k: 'raw', state, to }) satisfies ConnectionRecord }));
      // The application's check last: when it says yes, the socket goes (PassOptions.ready).
      return this.#send(records, (socket) => socket.writableLength === 0 && (readyOf.get(socket)?.(socket) ?? true));
    }, (socket) => this.#inFlight.has(socket));
    channel.setMaxListeners(0);
    channel.once('end', () => this.#ended());
    channel.once('error', (error) => {
      context.warn(error);
      this.#ended();
    });
  }

  /**
   * Starts a hand-over to the new process `context.pid`, which said READY=1 with HANDOVER=1:
   * hands over what is ready now, and resolves once that is passed or kept (the new process
   * died: then it is all kept). Undefined when there is nothing to do it with: the new process
   * sent no hello (`context.fd` is closed then).
   */
  static async start(context: SenderContext): Promise<HandoverSender | undefined> {
    const channel = new HandoverChannel(context.fd);
    channel.ref(false);
    const said = await hello(channel);
    const pid = context.pid ?? (Number.isInteger(said?.pid) ? said!.pid : undefined);
    if (!said || pid === undefined) {
      channel.close();
      if (said === null) context.ended?.();
      return undefined;
    }
    const http: HttpSource[] = [];
    const byServer = new Map(context.drain.connections().map((c) => [c.server as object, c.sockets]));
    for (const { server, key } of handoverHttpServers([...byServer.keys()])) {
      if (!said.http.includes(key)) continue;
      const ready = httpIdleCheck(server);
      if (!ready || !httpIdleSupported(server)) {
        if (!warnedNoIdleList) {
          warnedNoIdleList = true;
          context.warn(
            new SystemdError(
              'ERR_SD_NODE_UNSUPPORTED',
              `this Node.js (${process.version}) keeps no list of idle HTTP connections where sd-activate reads it: HTTP connections are not handed over at upgrades, they drain`,
            ),
          );
        }
        continue;
      }
      http.push({ server, key, sockets: byServer.get(server)!, ready });
    }
    const sender = new HandoverSender(channel, { ...context, pid }, http);
    const pools = (context.pools ?? []).slice(0, typeof said.pools === 'number' ? said.pools : 0);
    // An old worker waits for its batches to be adopted at most twice that, after a hello.
    if (pools.length > 0) sender.#pools = handOverPools(channel, pools, 2 * context.heldTimeoutMs + HELLO_TIMEOUT_MS);
    await Promise.all([sender.#firstRound(), sender.#pools?.first]);
    return sender;
  }

  /** False once the hand-over is over: closed, or the new process gone. */
  get active(): boolean {
    return this.#active;
  }

  /**
   * True once the new process's end of the socket is closed: it is dead, or dying (a process
   * closes its fds as it exits, before /proc shows it gone), since it never closes it otherwise;
   * or once /proc shows it gone, which can come first: a batch kept because the new process had
   * died is known before the end of its socket is read.
   */
  get peerGone(): boolean {
    return this.#peerGone || !isAlive(this.#context.pid) || (this.#pools?.peerGone ?? false);
  }

  async #firstRound(): Promise<void> {
    const { drain, events } = this.#context;
    const mine = new Set(this.#http.map((h) => h.sockets));
    drain.handingOver((socket) => this.#active && this.#http.some((h) => h.sockets.has(socket)));
    this.#stops.push(() => drain.handingOver(undefined));
    if (this.#http.length > 0) {
      this.#stops.push(onHttpActivity('finish', (socket) => [...mine].some((s) => s.has(socket)) && this.#schedule()));
      for (const { server } of this.#http) {
        const onConnection = (): void => this.#schedule();
        server.on('connection', onConnection);
        this.#stops.push(() => server.off('connection', onConnection));
      }
      const sweep = setInterval(() => this.#schedule(), SWEEP_MS);
      sweep.unref();
      this.#stops.push(() => clearInterval(sweep));
    }
    try {
      events.emit('handover', { pid: this.#context.pid, pass: (socket, state, options) => this.#passes.pass(socket, state, options) });
    } catch (error) {
      this.#context.warn(error instanceof Error ? error : new Error(String(error)));
    }
    // What the application passed from its listeners is on its way after this turn.
    await new Promise((resolve) => setImmediate(resolve));
    const round = this.#httpRound();
    await Promise.all([round, ...this.#running]);
  }

  /**
   * Looks at the HTTP connections again once this turn of the event loop is over (a response
   * finished, a connection came): those of one turn together. Not later: a client's next request
   * takes the loop's next turn at the earliest, so a connection whose response just finished is
   * still idle then, also with a client that sends its requests back to back.
   */
  #schedule(): void {
    if (!this.#active || this.#immediate) return;
    this.#immediate = setImmediate(() => {
      this.#immediate = undefined;
      if (this.#round) this.#again = true;
      else void this.#httpRound();
    });
  }

  /**
   * From `ms` from now on, the responses of the connections that have not passed yet say
   * `Connection: close` again: a client that never leaves its connection idle (requests back to
   * back, or pipelined) reconnects by itself before the deadline cuts what is left.
   */
  closeBusyAfter(ms: number): void {
    if (!this.#active) return;
    const timer = setTimeout(() => this.#context.drain.handingOver(undefined), ms);
    timer.unref();
    this.#stops.push(() => clearTimeout(timer));
  }

  /** Hands over every HTTP connection that is ready now. */
  async #httpRound(): Promise<void> {
    if (!this.#active || this.#http.length === 0) return;
    const items: OutgoingConnection[] = [];
    const readyOf = new Map<Socket, (socket: Socket) => boolean>();
    for (const { key, sockets, ready } of this.#http) {
      for (const socket of sockets) {
        if (this.#inFlight.has(socket) || !ready(socket)) continue;
        const idleMs = idleFor(socket);
        readyOf.set(socket, ready);
        items.push({ socket, state: (idleMs === undefined ? { k: 'http', server: key } : { k: 'http', server: key, idleMs }) satisfies ConnectionRecord });
      }
    }
    if (items.length === 0) return;
    this.#round = this.#send(items, (socket) => readyOf.get(socket)!(socket)).then(() => undefined);
    await this.#round;
    this.#round = undefined;
    if (this.#again) {
      this.#again = false;
      this.#schedule();
    }
  }

  /** One sendConnections() call: resolves with the sockets passed. */
  async #send(items: OutgoingConnection[], ready: (socket: Socket) => boolean): Promise<Set<Socket>> {
    if (!this.#active || items.length === 0) return new Set();
    for (const item of items) this.#inFlight.add(item.socket);
    const { events, pid, heldTimeoutMs } = this.#context;
    const watched = events.listenerCount('passed') > 0;
    const told: Array<UpgraderEvents['passed'][0]> = [];
    const records = new Map(items.map((item) => [item.socket, item.state as ConnectionRecord]));
    const sending = sendConnections(this.#channel, items, {
      ready,
      heldTimeoutMs,
      peerAlive: () => isAlive(pid),
      beforePass: watched
        ? (socket) => {
            const record = records.get(socket)!;
            const to = record.k === 'raw' && record.to !== undefined ? { to: record.to } : {};
            told.push({ pid, kind: record.k, ...to, remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, localPort: socket.localPort });
          }
        : undefined,
    });
    this.#running.add(sending);
    const result = await sending;
    this.#running.delete(sending);
    for (const item of items) this.#inFlight.delete(item.socket);
    for (const event of told) {
      try {
        events.emit('passed', event);
      } catch (error) {
        this.#context.warn(error instanceof Error ? error : new Error(String(error)));
      }
    }
    return new Set(result.passed);
  }

  /** The new process is gone: nothing more passes, and the connections left drain here. */
  #ended(): void {
    this.#peerGone = true;
    if (this.#active) {
      this.#stop();
      this.#context.ended?.();
    }
  }

  #stop(): void {
    this.#active = false;
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#immediate = undefined;
    for (const stop of this.#stops.splice(0)) stop();
    this.#passes.stop();
    this.#pools?.close();
  }

  /**
   * Ends the hand-over: nothing more is sent; resolves once every batch under way is settled and
   * its release sent, then closes the socket (the new process sees its end).
   */
  async close(): Promise<void> {
    this.#stop();
    while (this.#running.size > 0) await Promise.all([...this.#running]);
    this.#channel.close();
  }
}
