/* The public types of upgrader(), apart from its code so that the lazily loaded implementation can use them. */
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { SystemdError } from '../core/errors.js';
import type { Closable } from './drain.js';
import type { StopOptions } from './stop.js';

/**
 * Options of {@link upgrader}, besides how it stops (see {@link StopOptions}). Durations are in milliseconds.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#MAINPID=%E2%80%A6
 */
export interface UpgraderOptions extends StopOptions {
  /**
   * What this process serves: net/http/https servers and dgram sockets from the adapters, a
   * worker pool, or anything with a close() (callback or promise). They stop accepting (and
   * reading) at the hand-over and on a stop. At an upgrade, the HTTP/1.1 connections of plain
   * http servers (from the http, Express and Fastify adapters too) pass to the new process, idle
   * ones at once, busy ones right after their response; https and http2 ones drain: what is in
   * flight is answered with `Connection: close` (HTTP/2: GOAWAY) instead of cutting idle connections.
   *
   * Or a function that starts them (`() => listen('web', handler)`): it is called once
   * everything the upgrader needs is loaded, and READY=1 follows at once, so that a new process
   * has nothing left to do when its first connections arrive.
   */
  servers?: readonly Closable[] | (() => readonly Closable[] | Promise<readonly Closable[]>);
  /** STATUS= sent with READY=1. */
  status?: string;
  /** The program of the new version (default `process.execPath`, this Node). */
  command?: string;
  /** Its arguments (default this process's: `process.execArgv`, then `process.argv.slice(1)`). */
  args?: readonly string[];
  /** Its working directory (default this process's). */
  cwd?: string;
  /**
   * Its environment (default `process.env`); the service manager's variables are set anew. The next
   * version's process is started ahead of time, waiting; when the environment or the fds have
   * changed by the time of the upgrade, it is replaced by one started then.
   */
  env?: NodeJS.ProcessEnv;
  /** How long the new process may take to be ready before it is killed and this one serves on (default 30000). */
  readyTimeoutMs?: number;
  /** The signal that starts an upgrade (default 'SIGHUP', what `ExecReload=kill -HUP $MAINPID` and Type=notify-reload send); null for none. */
  upgradeSignal?: NodeJS.Signals | null;
}

/** How an upgrade ended. */
export interface UpgradeResult {
  /** True when the new process is the main process now (and this one is finishing). */
  upgraded: boolean;
  /** The new process's pid, if one was started. */
  pid: number | undefined;
  /** Why not, when not upgraded. */
  error?: SystemdError;
}

/** What became of a connection given to {@link HandoverEvent.pass}: the new process's now, or still this one's (reading again). */
export type PassOutcome = 'passed' | 'kept';

/** Options of {@link HandoverEvent.pass}. */
export interface PassOptions {
  /**
   * Who takes the connection in the new process: the name given there to
   * `connections(to)`, which alone gets it (not the 'connection' event). For a library that
   * hands over connections of its own beside the application's (`sd-activate/ws` uses `'ws'`).
   * At most 64 characters.
   */
  to?: string;
  /**
   * The last word on the boundary: called at the moment the new process holds the socket, with
   * reading stopped, right before it is let go and in the same synchronous run: true lets it
   * go (it passes), false keeps it here ('kept'). For state that can change after `pass()` was
   * called (a frame arriving in a parser, a queued write).
   */
  ready?: (socket: Socket) => boolean;
}

/**
 * The 'handover' event of an {@link Upgrader}, in the old process of an upgrade: established
 * connections may pass to the new process now.
 */
export interface HandoverEvent {
  /** The new process. */
  pid: number;
  /**
   * Hands `socket` (a TCP or unix stream connection of this process, not TLS) over to the new
   * process with `state` (JSON, at most 64 KiB): call it at a boundary of the protocol, when
   * nothing the application has read is half-handled, and put what it holds of the connection
   * (a partial message, a session) in `state`. Reading stops at once; what Node has read and not
   * emitted goes along, what the client sends meanwhile waits in the kernel for the new process.
   * Resolves 'passed' once the socket is the new process's (destroyed here: no FIN, no RST reaches
   * the client), or 'kept' when the new process did not take it (gone, or the hand-over is over):
   * the socket is this process's again, reading as before. The new process gets it through its
   * upgrader's 'connection' event or connections() (or `connections(options.to)`).
   *
   * @throws (rejects) TypeError when `socket` is not a net.Socket, `state` is not JSON or too
   *   big, or `options` are not valid; SystemdError `ERR_SD_FD_UNSUITABLE` for a TLS socket, `ERR_SD_FD_INVALID` for one that
   *   is destroyed or still connecting, `ERR_SD_NODE_UNSUPPORTED` when this Node keeps a socket's
   *   fd elsewhere than sd-activate knows
   * @see https://man7.org/linux/man-pages/man7/unix.7.html (SCM_RIGHTS)
   */
  pass(socket: Socket, state?: unknown, options?: PassOptions): Promise<PassOutcome>;
}

/** The 'passed' event of an {@link Upgrader}: one connection is the new process's now. */
export interface PassedEvent {
  /** The new process. */
  pid: number;
  /** An HTTP/1.1 connection handed over by itself, or one given to {@link HandoverEvent.pass}. */
  kind: 'http' | 'raw';
  /** The `to` it was passed with (see {@link PassOptions.to}). */
  to?: string;
  /** The client's address and port (none for a unix socket), as they were before the hand-over. */
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  localPort: number | undefined;
}

/** A connection handed over by the previous process, with the state it passed (see {@link HandoverEvent.pass}). */
export interface HandedOverConnection {
  socket: Socket;
  state: unknown;
}

/** Events of an {@link Upgrader}. */
export interface UpgraderEvents {
  /** A new process was started. */
  upgrading: [event: { pid: number }];
  /** The new process is the main process; this one stops accepting and finishes. */
  upgraded: [event: { pid: number }];
  /** The new process failed, or was not ready in time, and was killed; this one serves on. */
  failed: [event: { pid: number | undefined; error: SystemdError }];
  /** Something went wrong that does not stop the upgrade (a BARRIER=1 not answered in time). */
  warning: [error: Error];
  /**
   * Old process: the new one serves and takes connections; hand yours over with `pass()` (HTTP/1.1
   * connections of the plain http servers given to upgrader() pass by themselves). Emitted before
   * the service manager is told MAINPID=; pass() works until the stop's deadline.
   */
  handover: [event: HandoverEvent];
  /** Old process: a connection passed to the new process. */
  passed: [event: PassedEvent];
  /**
   * New process: a connection the old process passed with `pass()` (without `to`), and its state. Those that
   * come before a listener is added (they come before upgrader() resolves) wait, unread, for the
   * first listener or connections().
   */
  connection: [socket: Socket, state: unknown];
}

/**
 * A running upgrader, from {@link upgrader}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#MAINPID=%E2%80%A6
 */
export interface Upgrader extends EventEmitter<UpgraderEvents> {
  /** In a process started by an upgrade, the pid of the process it took over from. */
  readonly previousPid: number | undefined;
  /** True once this process is the service's main process (always, unless it was started by an upgrade that is not confirmed yet). */
  readonly isMain: boolean;
  /**
   * Starts the new version and hands over to it once it is ready (what the upgrade signal does).
   * Never rejects: a new process that fails, or is not ready within `readyTimeoutMs`, is killed,
   * this one serves on, and the result says why. Calls while one runs share its result.
   */
  upgrade(): Promise<UpgradeResult>;
  /**
   * Stops: STOPPING=1 (from the main process only), stop accepting, let in-flight work finish
   * within `stopTimeoutMs`, onStop, exit. A new process being started is killed first. Idempotent.
   */
  stop(): Promise<void>;
  /** Removes the signal handlers (the servers keep running). */
  dispose(): void;
  /**
   * The connections the previous process handed over with `pass()` (see the 'connection' event),
   * as they come; it ends once that hand-over is over (at once in a process not started by an
   * upgrade). Each connection goes to one taker: a 'connection' listener or one iterator.
   * With `to`: only those passed with that `to` (see {@link PassOptions.to}), which go nowhere else.
   *
   * @throws TypeError when `to` is not a string of 1 to 64 characters
   */
  connections(to?: string): AsyncIterableIterator<HandedOverConnection>;
}
