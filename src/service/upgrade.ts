import { internals } from './internals.js';
import type { UpgraderOptions, UpgradeResult, UpgraderEvents, Upgrader } from './upgrade-types.js';
import { checkUpgrade } from './warnings.js';

export type { HandedOverConnection, HandoverEvent, PassedEvent, PassOptions, PassOutcome, UpgraderOptions, UpgradeResult, UpgraderEvents, Upgrader } from './upgrade-types.js';

/**
 * Ties a service to systemd's lifecycle, as lifecycle() does, and upgrades it without losing a
 * connection or a datagram: on the upgrade signal (SIGHUP by default: `systemctl reload` with
 * `ExecReload=kill -HUP $MAINPID`, or Type=notify-reload) this process starts the new version
 * with every socket it holds, passed as socket activation passes them (fds 3+, LISTEN_FDNAMES);
 * the new version starts up completely while this one serves; when it calls upgrader() in turn,
 * this process hands its established connections over (HTTP/1.1 keep-alive ones by themselves,
 * others through the 'handover' event's `pass()`), systemd is told `MAINPID=<new>` and `READY=1`,
 * and only then does this process stop accepting and reading, hand over what becomes ready and
 * finish the rest within `stopTimeoutMs`, and exit. A new version that fails, or is not ready
 * within `readyTimeoutMs`, is killed, and this one serves on as the main process, with every
 * connection it had not passed.
 *
 * Call it once every server listens, or give it a function that starts them: in a cold start it
 * sends READY=1 (with STATUS=); in a process started by an upgrade it sends READY=1 to the old
 * process instead, and resolves once it is the main process. On a stop signal: STOPPING=1, stop
 * accepting, finish, exit. In a worker of a pool (see workerPool()) READY=1 goes to the pool, the
 * worker stops when the pool's process is gone, and an upgrade of the worker alone is refused.
 *
 * The unit needs Type=notify (or notify-reload) and NotifyAccess=main (the default), exec or
 * all, so that MAINPID= is accepted; FileDescriptorStoreMax= for sockets the service opens
 * itself (see openStoredSocket()). Outside systemd (no NOTIFY_SOCKET) the same upgrade runs and
 * nobody is told. Without a NOTIFY_SOCKET under systemd an upgrade is refused, since the old
 * process's exit would end the service.
 *
 * @example
 * ```js
 * openStoredSocket('web', { type: 'stream', address: { family: 'ipv4', address: '0.0.0.0', port: 8080 } });
 * await upgrader({ servers: () => listen('web', handler), status: 'Serving' }); // listen from sd-activate/http
 * ```
 * @throws TypeError for options that are not valid; SystemdError `ERR_SD_UPGRADE_FAILED` (with
 *   `exit: false`) in a new process whose old process did not hand over; the errors of notify()
 *   for READY=1
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#MAINPID=%E2%80%A6
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#NotifyAccess=
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#ExecReload=
 */
export async function upgrader(options: UpgraderOptions = {}): Promise<Upgrader> {
  checkUpgrade();
  // Loaded on first use: a service that never upgrades does not pay for it at start-up.
  const { startUpgrader } = await import('./upgrade-impl.js');
  return startUpgrader(options, internals);
}
