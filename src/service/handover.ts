/*
 * The private side of an upgrade: how a process started by upgrader() finds the channel to the
 * process that started it, and what it must hold back until it is the service's main process.
 *
 * The old process passes one end of a socketpair after the listening fds, at fd 3+LISTEN_FDS,
 * and names it in SD_ACTIVATE_UPGRADE_FD, with SD_ACTIVATE_UPGRADE_PID set to the new process's
 * own pid (as LISTEN_PID is): a child that inherited the variables by mistake does not take the
 * channel for its own. SD_ACTIVATE_UPGRADE_FROM names the old process: it is not the new one's
 * parent, which is the service manager. The fd is not one of LISTEN_FDS, so listenFds() never hands it out.
 * One more fd, named in SD_ACTIVATE_HANDOVER_FD, is a seqpacket socket for the established
 * connections the old process hands over (connection-handover.ts).
 *
 * A worker of a pool gets, after its lifeline (an fd whose end of file says the primary is gone),
 * a seqpacket channel to the primary in SD_ACTIVATE_POOL_FD, over which the pool's upgrades give it
 * the sockets its connections are handed over on (worker-handover.ts).
 *
 * Until the old process has told the service manager MAINPID=<this pid>, this process is not
 * the main process, and with NotifyAccess=main systemd drops its notify messages: the fd store
 * changes it makes meanwhile are queued here and sent once it is.
 */
import { native } from '../native/addon.js';
import {
  HANDOVER_FD_VARIABLE,
  LIFELINE_FD_VARIABLE,
  LIFELINE_PID_VARIABLE,
  POOL_FD_VARIABLE,
  POOL_HANDOVER_VARIABLE,
  UPGRADE_FD_VARIABLE,
  UPGRADE_FROM_VARIABLE,
  UPGRADE_PID_VARIABLE,
} from '../core/variables.js';

/** What a process started by an upgrade got from the old process. */
interface UpgradeChannel {
  /** The stream channel of the switch (upgrade-channel.ts). */
  fd: number;
  /** The old process's pid. */
  from: number | undefined;
  /** The seqpacket channel established connections come over (connection-handover.ts); null from a version that has none. */
  handover: number | null;
}

let channel: UpgradeChannel | null | undefined;
let pending = false;
const queued: Array<() => void> = [];

/**
 * The channel's fd when this process was started by an upgrade, else null. Read once: the
 * variables are removed from `process.env` and the fd made close-on-exec, so that nothing this
 * process starts sees them.
 *
 * @internal
 */
export function upgradeChannel(): UpgradeChannel | null {
  if (channel !== undefined) return channel;
  const fromText = process.env[UPGRADE_FROM_VARIABLE];
  delete process.env[UPGRADE_FROM_VARIABLE];
  const pidText = process.env[UPGRADE_PID_VARIABLE];
  delete process.env[UPGRADE_PID_VARIABLE];
  const fd = claim(UPGRADE_FD_VARIABLE, pidText, 'SOCK_STREAM');
  const handover = claim(HANDOVER_FD_VARIABLE, pidText, 'SOCK_SEQPACKET');
  if (fd === null && handover !== null) native().close(handover);
  channel = fd === null ? null : { fd, from: fromText !== undefined && /^[1-9]\d*$/.test(fromText) ? Number(fromText) : undefined, handover };
  pending = channel !== null;
  return channel;
}

/** What a worker of a pool got from its primary: the lifeline, and the channel of the pool's hand-over. */
interface WorkerChannels {
  lifeline: number | null;
  /** The seqpacket channel to the primary (worker-handover.ts), and whether connections of an upgrade in progress come to this worker too. */
  pool: { fd: number; expecting: boolean } | null;
}

let worker: WorkerChannels | undefined;

/**
 * Reads an fd passed by name (for the pid in `pidText`) once, removes the variable, makes the fd
 * close-on-exec; null unless it is a unix socket of `type`.
 */
function claim(fdVariable: string, pidText: string | undefined, type: 'SOCK_STREAM' | 'SOCK_SEQPACKET'): number | null {
  const fdText = process.env[fdVariable];
  delete process.env[fdVariable];
  if (fdText === undefined || pidText !== String(process.pid) || !/^[1-9]\d*$/.test(fdText)) return null;
  const fd = Number(fdText);
  try {
    // What the old process passes is a unix socket of that type (a 'pipe' of spawn(), a
    // seqpacket pair). Anything else is not the channel: most likely this process's own (Node's
    // event loop takes the low fds when nothing is passed), which must be neither used nor closed.
    const binding = native();
    const facts = binding.inspect(fd);
    const c = binding.constants;
    if (facts.mode !== c.S_IFSOCK || facts.domain !== c.AF_UNIX || facts.type !== c[type]) return null;
    binding.setCloexec(fd, true);
  } catch {
    // Not open: the variables came from elsewhere.
    return null;
  }
  return fd;
}

/** The fds a worker of a pool got, read once (one pid variable names them all). */
function workerChannels(): WorkerChannels {
  if (worker === undefined) {
    const pidText = process.env[LIFELINE_PID_VARIABLE];
    delete process.env[LIFELINE_PID_VARIABLE];
    const expecting = process.env[POOL_HANDOVER_VARIABLE] === '1';
    delete process.env[POOL_HANDOVER_VARIABLE];
    const lifeline = claim(LIFELINE_FD_VARIABLE, pidText, 'SOCK_STREAM');
    const pool = claim(POOL_FD_VARIABLE, pidText, 'SOCK_SEQPACKET');
    worker = { lifeline, pool: pool === null ? null : { fd: pool, expecting } };
  }
  return worker;
}

/**
 * In a worker of a pool, the fd whose end of file says the primary is gone, else null. Read once.
 *
 * @internal
 */
export function workerLifeline(): number | null {
  return workerChannels().lifeline;
}

/**
 * In a worker of a pool, its channel to the primary for the connection hand-over of upgrades,
 * else null. Read once.
 *
 * @internal
 */
export function poolChannel(): WorkerChannels['pool'] {
  return workerChannels().pool;
}

/** True while this process was started by an upgrade and is not yet the main process. @internal */
export function handoverPending(): boolean {
  upgradeChannel();
  return pending;
}

/** Runs `action` now, or once this process is the main process. @internal */
export function whenMain(action: () => void): void {
  if (handoverPending()) queued.push(action);
  else action();
}

/** This process is the main process now: runs what was queued, in order, and returns what failed. @internal */
export function becameMain(): Error[] {
  pending = false;
  const errors: Error[] = [];
  for (const action of queued.splice(0)) {
    try {
      action();
    } catch (error) {
      errors.push(error instanceof Error ? error : new Error(String(error)));
    }
  }
  return errors;
}
