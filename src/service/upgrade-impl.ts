/*
 * What upgrader() does once this file is loaded (it is loaded with import() on first use, and
 * bundled with what it imports into a file of its own): check the options, start the servers,
 * and hand over to an UpgraderProcess (upgrader-process.ts).
 */
import type { Internals } from './internals.js';
import { Drain, waitListening, type Closable } from './drain.js';
import { idleExitUnsafe, watchIdle } from './idle.js';
import { listenForReloads } from './upgrade-control.js';
import { receiveHandover } from './handover-receiver.js';
import { watchResponses } from './http-idle.js';
import { handoverRuntime } from './upgrade-launcher.js';
import { takeOver } from './upgrade-successor.js';
import { UpgraderProcess } from './upgrader-process.js';
import { serveWorkerHandover } from './worker-handover.js';
import type { UpgraderOptions } from './upgrade-types.js';

function checkOptions(options: UpgraderOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (typeof options.servers !== 'function') checkServers(options.servers ?? []);
  for (const key of ['readyTimeoutMs', 'stopTimeoutMs', 'idleTimeoutMs'] as const) {
    const v = options[key];
    if (v !== undefined && !(typeof v === 'number' && v > 0 && v <= 0x7fffffff)) throw new TypeError(`options.${key} must be a number of milliseconds above 0`);
  }
  if (options.command !== undefined && (typeof options.command !== 'string' || options.command === '')) throw new TypeError('options.command must be a non-empty string');
  if (options.args !== undefined && (!Array.isArray(options.args) || options.args.some((a) => typeof a !== 'string'))) {
    throw new TypeError('options.args must be an array of strings');
  }
  if (options.onStop !== undefined && typeof options.onStop !== 'function') throw new TypeError('options.onStop must be a function');
  if (options.status !== undefined && (typeof options.status !== 'string' || /[\r\n\0]/.test(options.status))) {
    throw new TypeError('options.status must be one line of text');
  }
}

function checkServers(servers: unknown): asserts servers is readonly Closable[] {
  if (!Array.isArray(servers) || servers.some((s) => !s || typeof (s as Closable).close !== 'function')) {
    throw new TypeError('options.servers must hold servers or sockets with a close() method (or be a function that starts them)');
  }
}

/** What upgrader() does, once this module is loaded. */
export async function startUpgrader(options: UpgraderOptions, core: Internals): Promise<UpgraderProcess> {
  checkOptions(options);
  const channel = core.upgradeChannel();
  const lifeline = core.workerLifeline();
  const pool = core.poolChannel();
  // What the hand-over needs, loaded before the servers start (when given as a function).
  await import('node:net');
  // Every request counted from the start: an HTTP connection passes at an upgrade only when none is in flight.
  const handingOver = handoverRuntime();
  if (handingOver) watchResponses();
  const servers = typeof options.servers === 'function' ? await options.servers() : (options.servers ?? []);
  checkServers(servers);
  // Idle keep-alive connections get until the deadline: the new process already serves.
  const drain = new Drain(servers, { idleConnections: 'drain' });
  if (options.idleTimeoutMs !== undefined) {
    const unsafe = idleExitUnsafe({ held: core.heldFds(), inherited: core.listenFds() }, drain);
    if (unsafe) throw new core.SystemdError('ERR_SD_IDLE_EXIT_UNSAFE', `cannot exit when idle: ${unsafe}`);
  }
  const handover = channel?.handover ?? null;
  const receiving = handover !== null && handingOver;
  if (handover !== null && !receiving) core.native().close(handover);
  if (pool !== null && !handingOver) core.native().close(pool.fd);
  const poolHandover = pool !== null && handingOver ? pool : null;
  // The old process of an upgrade is not this one's parent: the service manager adopted this one.
  const up = new UpgraderProcess(core, options, drain, channel === null ? undefined : (channel.from ?? process.ppid), receiving || (poolHandover?.expecting ?? false));
  await Promise.all(servers.map(waitListening));
  const warn = (error: Error): unknown => (up.listenerCount('warning') > 0 ? up.emit('warning', error) : process.emitWarning(error));
  // Before READY=1: the old process hands connections over as soon as it has it.
  if (receiving) receiveHandover(handover, servers, up.incoming, warn);
  // A worker of a pool: its pool's upgrades hand its connections over, and bring it others.
  const heldTimeoutMs = Math.min(10_000, options.readyTimeoutMs ?? 30_000);
  if (poolHandover) serveWorkerHandover(poolHandover.fd, poolHandover.expecting, { up, servers, drain, warn, heldTimeoutMs });
  up.listen();
  if (lifeline !== null) {
    // A worker of a pool: when the primary is gone (even killed), finish and exit.
    const { Socket } = await import('node:net');
    const socket = new Socket({ fd: lifeline, readable: true, writable: false });
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.once('close', () => void up.stopQuietly());
    socket.unref();
  }
  if (channel === null) {
    core.notify(options.status === undefined ? { READY: 1 } : { READY: 1, STATUS: options.status });
  } else {
    await takeOver(up, core, channel.fd, options.status, receiving);
  }
  // `sd-activate reload PID` asks this process for an upgrade, and waits for its outcome.
  if (up.isMain) listenForReloads(up, core, warn);
  if (options.idleTimeoutMs !== undefined) {
    const stopWatching = watchIdle(drain, options.idleTimeoutMs, () => void (up.isMain ? up.stop() : undefined));
    up.once('upgraded', stopWatching);
  }
  // The next version's process is started while nothing is going on, rather than in the upgrade
  // signal's handler, where every millisecond is one that requests wait; not right now either, in
  // a new process that has just become the only one serving.
  up.prepareSoon();
  return up;
}
