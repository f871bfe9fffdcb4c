/*
 * Warnings about a unit that cannot give the program what it uses, each emitted once, at the
 * moment it matters, with a literal code so that it can be filtered
 * (`node --disable-warning=SD_ACTIVATE_NOT_MAIN_PROCESS`, or process.on('warning')).
 *
 * Only what the environment proves is reported: a unit that works gets none. What a process
 * cannot see (NotifyAccess=, FileDescriptorStoreMax= before systemd 254, ExecReload=) is
 * `sd-activate doctor`'s to check, from the unit itself.
 *
 * Start-up cost: nothing is read when the module loads; the first listenFds() or notify call
 * reads a few variables, and a timer is armed only when WATCHDOG_USEC asks this process for pings.
 */
import { upgradeChannel } from './handover.js';
import { WORKER_VARIABLE } from '../core/variables.js';
import { parseWatchdogEnvironment } from '../core/watchdog-env.js';

/**
 * The codes of the warnings the library emits with `process.emitWarning()` (listed in the README),
 * for a `process.on('warning')` filter or `node --disable-warning=CODE`.
 *
 * @see https://nodejs.org/api/process.html#processemitwarningwarning-options
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#NotifyAccess=
 */
export type SystemdWarningCode =
  | 'SD_ACTIVATE_NOT_MAIN_PROCESS'
  | 'SD_ACTIVATE_FDSTORE_DROPPED'
  | 'SD_ACTIVATE_WATCHDOG_NOT_STARTED'
  | 'SD_ACTIVATE_UPGRADE_UNAVAILABLE';

const given = new Set<SystemdWarningCode>();

function warn(code: SystemdWarningCode, message: string): void {
  if (given.has(code)) return;
  given.add(code);
  process.emitWarning(message, { code });
}

/* LISTEN_PID as systemd set it: listenFds() removes it from the environment once read. */
let listenPid: string | undefined;
let observed = false;
let senderChecked = false;
/* Armed while WATCHDOG_USEC asks this process for pings and none has been sent yet. */
let watchdogTimer: NodeJS.Timeout | undefined;
/* fds sent to the store by name (notify.fdStore()), counted only where FDSTORE= says the limit. */
const stored = new Map<string, Set<number>>();

/* A pid as systemd writes one; anything longer is not echoed into a message. */
const PID = /^[1-9]\d{0,9}$/;

/** A pool's worker talks to its pool, not to systemd: its NOTIFY_SOCKET and pids are the pool's business. */
function inWorker(): boolean {
  return process.env[WORKER_VARIABLE] !== undefined;
}

/**
 * The pid systemd started, when the environment names one other than this process: SYSTEMD_EXEC_PID
 * (systemd 248+), else LISTEN_PID. A process started by upgrader() differs legitimately (it
 * becomes the main process through MAINPID=), and so does a worker of a pool.
 */
function otherStartedPid(): string | undefined {
  const execPid = process.env.SYSTEMD_EXEC_PID;
  const started = execPid !== undefined && PID.test(execPid) ? execPid : listenPid !== undefined && PID.test(listenPid) ? listenPid : undefined;
  if (started === undefined || started === String(process.pid)) return undefined;
  if (inWorker() || upgradeChannel() !== null) return undefined;
  return started;
}

/**
 * The service's first contact with the library (listenFds(), or a notify call): LISTEN_PID is
 * kept before it is removed, and the watchdog check is armed.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_watchdog_enabled.html
 */
export function observeStart(): void {
  if (observed) return;
  observed = true;
  listenPid = process.env.LISTEN_PID;
  // The usual case costs two reads: nothing else is called (nor compiled) without a watchdog.
  if (process.env.WATCHDOG_USEC !== undefined) armWatchdogCheck();
}

function armWatchdogCheck(): void {
  let usec: bigint | null;
  try {
    usec = parseWatchdogEnvironment(process.env, process.pid);
  } catch {
    // A malformed WATCHDOG_USEC is startWatchdog()'s error to report.
    return;
  }
  if (usec === null || process.env.NOTIFY_SOCKET === undefined || inWorker()) return;
  const timeoutMs = Number(usec) / 1000;
  // Half the timeout: the interval startWatchdog() pings at, and still before systemd's SIGABRT.
  watchdogTimer = setTimeout(() => {
    watchdogTimer = undefined;
    warn(
      'SD_ACTIVATE_WATCHDOG_NOT_STARTED',
      `WATCHDOG_USEC=${usec} asks this process (pid ${process.pid}) for WATCHDOG=1 at least every ${formatMs(timeoutMs)} ` +
        `(WatchdogSec= of the unit), and none was sent in the first ${formatMs(timeoutMs / 2)}: systemd will kill it with SIGABRT (Result=watchdog). ` +
        'Call startWatchdog() at start-up, or remove WatchdogSec= from [Service].',
    );
  }, Math.min(Math.max(timeoutMs / 2, 1), 0x7fffffff));
  watchdogTimer.unref();
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(3)} s` : `${+ms.toFixed(3)} ms`;
}

/** True when `message` has a `WATCHDOG=1` line. */
function hasPing(message: Buffer): boolean {
  for (let at = message.indexOf('WATCHDOG=1'); at !== -1; at = message.indexOf('WATCHDOG=1', at + 1)) {
    const end = at + 10;
    if ((at === 0 || message[at - 1] === 0x0a) && (end === message.length || message[end] === 0x0a)) return true;
  }
  return false;
}

/**
 * Called for every datagram sent to NOTIFY_SOCKET: the first one checks the sender, and a
 * WATCHDOG=1 disarms the watchdog check. `claimedPid` is the pid the message is sent for
 * (sd_pid_notify), when not this process: it is then not this process that speaks.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#%24SYSTEMD_EXEC_PID
 */
export function observeSend(message: Buffer, claimedPid: number | undefined): void {
  observeStart();
  if (watchdogTimer !== undefined && hasPing(message)) {
    clearTimeout(watchdogTimer);
    watchdogTimer = undefined;
  }
  if (senderChecked || (claimedPid !== undefined && claimedPid !== 0 && claimedPid !== process.pid)) return;
  senderChecked = true;
  const started = otherStartedPid();
  if (started === undefined) return;
  warn(
    'SD_ACTIVATE_NOT_MAIN_PROCESS',
    `this process (pid ${process.pid}) sends notifications, but systemd started pid ${started} ` +
      `(${process.env.SYSTEMD_EXEC_PID !== undefined ? 'SYSTEMD_EXEC_PID' : 'LISTEN_PID'}): something stands between them, ` +
      'such as ExecStart=npm start (or pnpm, yarn, sh -c, a wrapper script), or this process was started by the service. ' +
      'With NotifyAccess=main, the default of Type=notify, systemd drops every notification from this process: the unit never becomes ready ' +
      '(a start timeout) and a watchdog kills it. Run node directly (ExecStart=/usr/bin/node /path/to/app.js), end a wrapper script ' +
      'with `exec node ...`, or set NotifyAccess=all in [Service].',
  );
}

/**
 * Before FDSTORE=1: warns when the environment shows that systemd will not keep these fds.
 * `socket` is the notify socket the message goes to (undefined: none).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#FileDescriptorStoreMax=
 */
export function checkFdStore(name: string, fds: readonly number[], socket: string | undefined): void {
  if (given.has('SD_ACTIVATE_FDSTORE_DROPPED') || inWorker()) return;
  if (socket === undefined) {
    // systemd gives a service a NOTIFY_SOCKET whenever FileDescriptorStoreMax= is above 0.
    if (process.env.INVOCATION_ID === undefined) return;
    warn(
      'SD_ACTIVATE_FDSTORE_DROPPED',
      `fds named "${name}" are to be kept in the fd store, but the service manager gave this process no NOTIFY_SOCKET, ` +
        'which systemd does for a unit with FileDescriptorStoreMax=0 and Type=simple: nothing is stored, and a restart finds no socket. ' +
        'Set FileDescriptorStoreMax= (and Type=notify) in [Service].',
    );
    return;
  }
  // FDSTORE= is systemd 254's: before it, or where it is absent, the limit cannot be known here.
  const limitText = process.env.FDSTORE;
  if (limitText === undefined || !/^\d{1,10}$/.test(limitText)) return;
  const set = stored.get(name) ?? new Set<number>();
  for (const fd of fds) set.add(fd);
  stored.set(name, set);
  let total = 0;
  for (const s of stored.values()) total += s.size;
  const limit = Number(limitText);
  if (total <= limit) return;
  warn(
    'SD_ACTIVATE_FDSTORE_DROPPED',
    `this process has sent ${total} fds to the fd store, and FDSTORE=${limitText} says it keeps at most ${limit} ` +
      `(FileDescriptorStoreMax=${limitText}): systemd drops the rest, "${name}" among them. Set FileDescriptorStoreMax=${Math.max(total, 1)} or more in [Service].`,
  );
}

/**
 * After FDSTOREREMOVE=1: those fds no longer count against the limit.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#FDSTOREREMOVE=1
 */
export function forgetStored(name: string): void {
  stored.delete(name);
}

/**
 * When upgrader() starts: warns when the environment shows that an upgrade cannot work in this unit.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#MAINPID=%E2%80%A6
 */
export function checkUpgrade(): void {
  if (inWorker()) return;
  const mainPid = process.env.MAINPID;
  if (mainPid !== undefined && PID.test(mainPid) && mainPid !== String(process.pid)) {
    warn(
      'SD_ACTIVATE_UPGRADE_UNAVAILABLE',
      `upgrader() runs in pid ${process.pid}, a control process of the unit (MAINPID=${mainPid} is the main process), started by ` +
        'ExecReload=, ExecStartPre= or the like: it cannot upgrade the service. Run upgrader() in the program of ExecStart=, and signal it ' +
        'from [Service] ExecReload=/bin/kill -HUP $MAINPID.',
    );
    return;
  }
  if (process.env.NOTIFY_SOCKET === undefined) {
    if (process.env.INVOCATION_ID === undefined) return;
    warn(
      'SD_ACTIVATE_UPGRADE_UNAVAILABLE',
      'upgrader() cannot upgrade this service: the service manager gave it no NOTIFY_SOCKET (Type=simple without NotifyAccess=), ' +
        'so MAINPID= cannot name the new process and the old one\'s exit would end the service. Set Type=notify in [Service].',
    );
    return;
  }
  const started = otherStartedPid();
  if (started === undefined) return;
  warn(
    'SD_ACTIVATE_UPGRADE_UNAVAILABLE',
    `upgrader() runs in pid ${process.pid}, but systemd started pid ${started}: with NotifyAccess=main its MAINPID= is dropped, ` +
      'and an upgrade rolls back. Run node directly (ExecStart=/usr/bin/node /path/to/app.js) or set NotifyAccess=all in [Service].',
  );
}
