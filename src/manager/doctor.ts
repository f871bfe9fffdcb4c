/*
 * `sd-activate doctor`: a service unit checked against what the program uses and systemd's
 * rules, each finding with the line to change. The unit is read through systemctl (what systemd
 * made of it, drop-ins included); what the program uses is what the caller says, since nothing
 * here runs it: the fd names it asks for, the names it stores, whether it upgrades, pings a
 * watchdog, and how long it drains.
 */
import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseTimespan } from '../core/timespan.js';
import { classifyExecStart, packageScriptCommand } from './exec-start.js';
import { catUnit, lastSetting, listUnitFiles, parseExecCommand, showUnits, type ExecCommand, type SystemctlOptions, type UnitProperties } from './systemctl.js';
import { clip, quote } from '../core/quote.js';

/**
 * What the program uses, as far as the doctor is told, and which manager to ask.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html
 */
export interface DoctorOptions extends SystemctlOptions {
  /** The fd names the program asks for (systemdFd(), systemdFds(), the adapters' listen() and bind()). */
  names?: readonly string[];
  /** The names it gives openStoredSocket(), one socket each: they come from the fd store. */
  stored?: readonly string[];
  /** It calls upgrader(). */
  upgrader?: boolean;
  /** It calls startWatchdog(). */
  watchdog?: boolean;
  /** The `stopTimeoutMs` it gives lifecycle() or upgrader() (default theirs, 10000). */
  stopTimeoutMs?: number;
  /** The `idleTimeoutMs` it gives lifecycle() or upgrader(): it exits when idle. */
  idleTimeoutMs?: number;
}

/**
 * How bad a finding is: an error makes the unit fail at what the program needs; `doctor` then exits 1.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html
 */
export type FindingLevel = 'error' | 'warning' | 'note';

/**
 * The findings, by code (listed in the README).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html
 */
export type FindingCode =
  | 'unit-not-found'
  | 'unit-load-error'
  | 'exec-package-manager'
  | 'exec-shell'
  | 'exec-wrapper-script'
  | 'exec-unknown'
  | 'type-forking'
  | 'type-not-notify'
  | 'socket-name-missing'
  | 'socket-name-unused'
  | 'socket-names'
  | 'fdstore-off'
  | 'fdstore-too-small'
  | 'fdstore-no-restart'
  | 'upgrade-no-notify-socket'
  | 'upgrade-type'
  | 'upgrade-no-reload'
  | 'upgrade-reload-signal'
  | 'upgrade-reload-unreported'
  | 'upgrade-killmode'
  | 'watchdog-unused'
  | 'watchdog-off'
  | 'watchdog-no-restart'
  | 'stop-timeout-short'
  | 'killmode-none'
  | 'idle-no-socket'
  | 'idle-stored'
  | 'idle-start-limit';

/**
 * One thing to change.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.syntax.html
 */
export interface Finding {
  level: FindingLevel;
  code: FindingCode;
  /** The unit the change goes in (the service, or one of its sockets). */
  unit: string;
  message: string;
  /** The file to edit, when known (a socket to create names its new path). */
  file: string | null;
  /** The section of the line, e.g. `Service`. */
  section: 'Unit' | 'Service' | 'Socket';
  /** The setting concerned, e.g. `ExecStart`. */
  key: string;
  /** The line to write there, e.g. `Type=notify`; null when the setting is to be removed, or the fix is not one line. */
  line: string | null;
}

/**
 * What the doctor found about one service.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html#FileDescriptorName=
 */
export interface Diagnosis {
  unit: string;
  findings: Finding[];
  /** The fd names the unit's sockets pass, with the socket unit of each. */
  sockets: Array<{ unit: string; name: string; listen: string[] }>;
}

const SERVICE_PROPERTIES = [
  'Id',
  'LoadState',
  'LoadError',
  'ActiveState',
  'FragmentPath',
  'Type',
  'NotifyAccess',
  'ExecStart',
  'ExecReload',
  'WorkingDirectory',
  'FileDescriptorStoreMax',
  'WatchdogUSec',
  'TimeoutStopUSec',
  'KillMode',
  'Restart',
  'TriggeredBy',
  'StartLimitBurst',
  'StartLimitIntervalUSec',
];
const SOCKET_PROPERTIES = ['Id', 'LoadState', 'FragmentPath', 'FileDescriptorName', 'Listen', 'Accept', 'Triggers'];

/** The library's own default drain (lifecycle() and upgrader()). */
const DEFAULT_STOP_TIMEOUT_MS = 10_000;

function one(props: UnitProperties, key: string): string {
  return props.get(key)?.[0] ?? '';
}

function seconds(ms: number): string {
  return `${Math.ceil(ms / 1000)}s`;
}

/** `kill -HUP $MAINPID` in any of its spellings: the signal upgrader() takes by default, sent to the main process. */
function sendsHupToMain(command: ExecCommand): boolean {
  if (basename(command.path) !== 'kill') return false;
  const args = command.argv.slice(1);
  const hup = args.some((a, i) => /^-(HUP|SIGHUP|1)$/.test(a) || (/^(-s|--signal)$/.test(a) && /^((SIG)?HUP|1)$/.test(args[i + 1] ?? '')));
  return hup && args.some(MAINPID);
}

const MAINPID = (word: string): boolean => word === '$MAINPID' || word === '${MAINPID}';

/** `sd-activate reload $MAINPID`: the package's bin, or node running its cli/main.js. */
function reloadsThroughCli(command: ExecCommand): boolean {
  const words = [command.path, ...command.argv.slice(1)];
  const at = words.findIndex((w, i) => words[i + 1] === 'reload' && (/(^|\/)sd-activate$/.test(w) || /\/cli\/main\.js$/.test(w)));
  return at !== -1 && words.slice(at + 2).some(MAINPID);
}

/**
 * The ExecReload= that reports the upgrade's outcome, with the sd-activate this doctor is: its
 * bin as it was run (node_modules/.bin/sd-activate, /usr/bin/sd-activate), or node and its script.
 */
function reloadLine(): string {
  const script = process.argv[1] ?? '';
  const command = basename(script) === 'sd-activate' ? script : `${process.execPath} ${existsSync(script) ? realpathSync(script) : script}`;
  return `ExecReload=${command} reload $MAINPID`;
}

/**
 * Checks one service unit. The unit name may omit `.service`.
 *
 * What cannot be known without running the program is taken from `options`: with no `names`, the
 * sockets' names are listed (a note) instead of checked; with no `watchdog`, a WatchdogSec= is
 * taken as unused. ExecStart= arguments containing spaces read as several words (systemd 252
 * prints them joined).
 *
 * @throws SystemdError `ERR_SD_SYSTEMCTL_FAILED` when systemctl cannot be run or cannot reach the manager
 * @throws TypeError for a unit that is not a service, or bad options
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html
 */
export async function diagnoseUnit(name: string, options: DoctorOptions = {}): Promise<Diagnosis> {
  const unit = /\.[a-z]+$/.test(name) ? name : `${name}.service`;
  if (!unit.endsWith('.service')) throw new TypeError(`${quote(name)} is not a service: give the .service unit (its sockets are checked with it)`);
  const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  if (!(stopTimeoutMs >= 0)) throw new TypeError('options.stopTimeoutMs must be 0 or more');

  const [service] = await showUnits([unit], SERVICE_PROPERTIES, options);
  const findings: Finding[] = [];
  const file = one(service!, 'FragmentPath') || null;
  const add = (level: FindingLevel, code: FindingCode, message: string, key: string, line: string | null, where: Partial<Pick<Finding, 'unit' | 'file' | 'section'>> = {}): void => {
    findings.push({ level, code, unit: where.unit ?? unit, message, file: where.file === undefined ? file : where.file, section: where.section ?? 'Service', key, line });
  };

  const loadState = one(service!, 'LoadState');
  if (loadState === 'not-found') {
    add('error', 'unit-not-found', `${unit} does not exist${options.user ? ' in the user manager' : ' (for a user unit, add --user)'}`, 'ExecStart', null);
    return { unit, findings, sockets: [] };
  }
  if (loadState !== 'loaded') {
    add('error', 'unit-load-error', `${unit} could not be loaded (${loadState}): ${one(service!, 'LoadError') || 'see systemctl status'}`, 'ExecStart', null);
    return { unit, findings, sockets: [] };
  }

  const type = one(service!, 'Type');
  const notifyAccess = one(service!, 'NotifyAccess');
  const restart = one(service!, 'Restart');
  const killMode = one(service!, 'KillMode');
  const storeMax = Number(one(service!, 'FileDescriptorStoreMax') || '0');
  const cwd = one(service!, 'WorkingDirectory').replace(/^[!-]+/, '') || '/';

  // --- ExecStart=: node must be the process systemd starts.
  const exec = (service!.get('ExecStart') ?? []).map(parseExecCommand).find((c) => c !== undefined);
  if (exec) {
    const how = classifyExecStart(exec);
    const nodeLine = `ExecStart=${process.execPath} /path/to/app.js`;
    const consequence =
      'so node is not the process systemd started: LISTEN_PID names another process (no socket is passed to node), ' +
      'with NotifyAccess=main systemd drops node\'s notifications (READY=1, the watchdog) and SIGTERM goes to the other process';
    const shown = clip(exec.argv.join(' '));
    if (how.kind === 'package-manager') {
      const direct = packageScriptCommand(cwd, how.script, exec.argv.slice(1));
      add('error', 'exec-package-manager', `ExecStart= runs ${how.tool} (${shown}), which starts node as its child, ${consequence}. Run node directly.`, 'ExecStart', direct ? `ExecStart=${direct}` : nodeLine);
    } else if (how.kind === 'shell') {
      add('error', 'exec-shell', `ExecStart= runs a shell (${shown}) that does not exec its command, ${consequence}. Run node directly, or begin the command with exec.`, 'ExecStart', nodeLine);
    } else if (how.kind === 'wrapper-script') {
      add('error', 'exec-wrapper-script', `ExecStart= runs the script ${how.path} (${how.interpreter}), which does not exec node, ${consequence}. End the script with \`exec node ...\`, or run node directly.`, 'ExecStart', nodeLine);
    } else if (how.kind === 'unknown') {
      add('note', 'exec-unknown', `ExecStart= runs ${how.path}, which is neither node nor a script of it: the doctor cannot tell whether it execs node (it must, for LISTEN_PID and NotifyAccess=main).`, 'ExecStart', null);
    }
  }

  // --- Type= and NotifyAccess=.
  const hasNotifySocket = notifyAccess !== 'none';
  if (type === 'forking') {
    add('error', 'type-forking', 'Type=forking waits for the started process to fork and exit, which node does not do: systemd times out or loses the main process.', 'Type', 'Type=notify');
  } else if (type !== 'notify' && type !== 'notify-reload' && !options.upgrader) {
    add('note', 'type-not-notify', `Type=${type}: systemd takes the service as started at once${hasNotifySocket ? '' : ', and gives it no NOTIFY_SOCKET (READY=1 and STATUS= go nowhere)'}; Type=notify makes it wait for READY=1, which lifecycle() and upgrader() send once the servers listen.`, 'Type', 'Type=notify');
  }

  // --- Sockets and their names. A socket that names the service with Service= is known to it
  // only once loaded (enabled, or started): every socket unit file is looked at.
  const triggeredBy = one(service!, 'TriggeredBy').split(/\s+/).filter((u) => u.endsWith('.socket'));
  const sameName = unit.replace(/\.service$/, '.socket');
  const candidates = [...new Set([...triggeredBy, sameName, ...(await listUnitFiles('socket', options))])];
  const socketProps = await showUnits(candidates, SOCKET_PROPERTIES, options);
  const sockets = socketProps
    .filter((p) => one(p, 'LoadState') === 'loaded' && one(p, 'Triggers').split(/\s+/).includes(unit))
    .map((p) => ({ unit: one(p, 'Id'), name: one(p, 'FileDescriptorName'), listen: [...(p.get('Listen') ?? [])], file: one(p, 'FragmentPath') || null }));
  const stored = options.stored ?? [];
  if (options.names) {
    const available = new Set([...sockets.map((s) => s.name), ...stored]);
    const missing = options.names.filter((n) => !available.has(n));
    const unused = sockets.filter((s) => !options.names!.includes(s.name) && !stored.includes(s.name));
    missing.forEach((name, i) => {
      // The first socket whose name nothing asks for is likely the one meant.
      const target = unused[i];
      if (target) {
        add('error', 'socket-name-missing', `the program asks for fds named "${name}", and none of the unit's sockets passes that name (${target.unit} passes "${target.name}")`, 'FileDescriptorName', `FileDescriptorName=${name}`, { unit: target.unit, file: target.file, section: 'Socket' });
      } else {
        const socketUnit = sockets.length === 0 ? sameName : unit.replace(/\.service$/, `-${name}.socket`);
        add('error', 'socket-name-missing', `the program asks for fds named "${name}", and no socket of the unit passes that name: create ${socketUnit} with its Listen*= line${socketUnit === sameName ? '' : ` and Service=${unit}`}`, 'FileDescriptorName', `FileDescriptorName=${name}`, { unit: socketUnit, file: file ? join(dirname(file), socketUnit) : null, section: 'Socket' });
      }
    });
    for (const socket of unused.slice(missing.length)) {
      add('warning', 'socket-name-unused', `${socket.unit} passes fds named "${socket.name}" (${socket.listen.join(', ')}), and the program asks for no such name: they stay unused`, 'FileDescriptorName', null, { unit: socket.unit, file: socket.file, section: 'Socket' });
    }
  } else {
    for (const socket of sockets) {
      add('note', 'socket-names', `${socket.unit} passes fds named "${socket.name}" (${socket.listen.join(', ')}): the program must ask for that name (tell the doctor the names it asks for with --names to check them)`, 'FileDescriptorName', `FileDescriptorName=${socket.name}`, { unit: socket.unit, file: socket.file, section: 'Socket' });
    }
  }

  // --- The fd store.
  if (stored.length > 0) {
    if (storeMax === 0) {
      add('error', 'fdstore-off', `the program keeps ${stored.length} socket${stored.length === 1 ? '' : 's'} in the fd store (${stored.join(', ')}), and FileDescriptorStoreMax= is 0: systemd drops them without a word, and a restart finds none`, 'FileDescriptorStoreMax', `FileDescriptorStoreMax=${stored.length}`);
    } else if (storeMax < stored.length) {
      add('error', 'fdstore-too-small', `the program keeps ${stored.length} sockets in the fd store (${stored.join(', ')}), and FileDescriptorStoreMax=${storeMax}: systemd drops the rest`, 'FileDescriptorStoreMax', `FileDescriptorStoreMax=${stored.length}`);
    }
    if (restart === 'no') {
      add('warning', 'fdstore-no-restart', 'Restart=no: after a crash the service is not started again, so the fd store is emptied and the sockets in it close (systemd keeps it only across restarts)', 'Restart', 'Restart=on-failure');
    }
  }

  // --- Upgrades.
  if (options.upgrader) {
    if (!hasNotifySocket) {
      add('error', 'upgrade-no-notify-socket', `Type=${type} with NotifyAccess=none: the service gets no NOTIFY_SOCKET, so an upgrade cannot tell systemd MAINPID= and is refused`, 'Type', 'Type=notify');
    } else if (type !== 'notify' && type !== 'notify-reload') {
      add('warning', 'upgrade-type', `Type=${type}: systemd does not wait for READY=1, at start or during an upgrade`, 'Type', 'Type=notify');
    }
    const reloads = (service!.get('ExecReload') ?? []).map(parseExecCommand).filter((c): c is ExecCommand => c !== undefined);
    if (type !== 'notify-reload') {
      if (reloads.length === 0) {
        add('error', 'upgrade-no-reload', 'no ExecReload=: `systemctl reload` cannot start an upgrade; `sd-activate reload $MAINPID` starts one and reports its outcome', 'ExecReload', reloadLine());
      } else if (reloads.some(reloadsThroughCli)) {
        // The upgrade is asked for, and `systemctl reload` fails when it rolls back.
      } else if (reloads.some(sendsHupToMain)) {
        add('note', 'upgrade-reload-unreported', 'ExecReload= sends SIGHUP and returns at once: `systemctl reload` succeeds even when the upgrade rolls back (systemd 252 has no Type=notify-reload to wait); `sd-activate reload $MAINPID` waits for the outcome', 'ExecReload', reloadLine());
      } else {
        add('warning', 'upgrade-reload-signal', `ExecReload= runs ${clip(reloads.map((c) => c.argv.join(' ')).join('; '))}, which neither asks for an upgrade nor sends SIGHUP to $MAINPID (upgrader()'s upgradeSignal)`, 'ExecReload', reloadLine());
      }
    }
    if (killMode === 'process' || killMode === 'none') {
      add('warning', 'upgrade-killmode', `KillMode=${killMode}: after an upgrade the old process (finishing its connections) and any worker are not the main process, and \`systemctl stop\` leaves them running`, 'KillMode', 'KillMode=control-group');
    }
  } else if (killMode === 'none') {
    add('warning', 'killmode-none', 'KillMode=none: `systemctl stop` leaves the service\'s processes running (deprecated by systemd)', 'KillMode', 'KillMode=control-group');
  }

  // --- The watchdog. systemd 252 shows WatchdogUSec= only while the unit runs: the files say it otherwise.
  const active = ['active', 'reloading'].includes(one(service!, 'ActiveState'));
  let watchdogMs = active ? parseTimespan(one(service!, 'WatchdogUSec')) : undefined;
  if (!active) {
    const text = await catUnit(unit, options);
    const setting = text === null ? undefined : lastSetting(text, 'Service', 'WatchdogSec');
    watchdogMs = setting === undefined ? 0 : parseTimespan(setting);
  }
  const watchdogOn = watchdogMs !== undefined && watchdogMs > 0 && Number.isFinite(watchdogMs);
  if (watchdogOn && !options.watchdog) {
    add('warning', 'watchdog-unused', `WatchdogSec=${seconds(watchdogMs!)}: systemd kills the service unless it sends WATCHDOG=1 that often; the program must call startWatchdog() (tell the doctor with --watchdog), or remove the line`, 'WatchdogSec', null);
  } else if (!watchdogOn && options.watchdog) {
    add('note', 'watchdog-off', 'no WatchdogSec=: startWatchdog() sends nothing, and a stuck event loop goes unnoticed', 'WatchdogSec', 'WatchdogSec=30s');
  }
  if (watchdogOn && restart === 'no' && !findings.some((f) => f.key === 'Restart')) {
    add('warning', 'watchdog-no-restart', 'Restart=no: a service the watchdog kills stays down', 'Restart', 'Restart=on-failure');
  }

  // --- The stop: SIGTERM, the drain, then SIGKILL after TimeoutStopSec=.
  const stopMs = parseTimespan(one(service!, 'TimeoutStopUSec'));
  if (stopMs !== undefined && stopMs <= stopTimeoutMs) {
    add('warning', 'stop-timeout-short', `TimeoutStopSec=${seconds(stopMs)} is not longer than the drain (stopTimeoutMs ${stopTimeoutMs}): systemd sends SIGKILL while requests are still finishing, and the stop ends in Result=timeout`, 'TimeoutStopSec', `TimeoutStopSec=${seconds(stopTimeoutMs + 5000)}`);
  }

  // --- Exit when idle: the next connection must find the sockets held, and start it again.
  const idleMs = options.idleTimeoutMs;
  if (idleMs !== undefined) {
    if (sockets.length === 0) {
      add('error', 'idle-no-socket', 'the program exits when idle, and no .socket unit holds its sockets: it is refused (ERR_SD_IDLE_EXIT_UNSAFE), since nothing would listen, nor start it, once it is gone: create it with the address the program listens on', 'ListenStream', 'ListenStream=ADDRESS', { unit: sameName, file: file ? join(dirname(file), sameName) : null, section: 'Socket' });
    }
    if (stored.length > 0) {
      add('error', 'idle-stored', `the program exits when idle and opens ${stored.join(', ')} itself (the fd store): the store keeps sockets across a restart, not a stop, so idle exit is refused for them; let a .socket unit hold them, with their address`, 'FileDescriptorName', `FileDescriptorName=${stored[0]}`, { unit: sameName, file: file ? join(dirname(file), sameName) : null, section: 'Socket' });
    }
    // Each start after an idle exit counts for StartLimitBurst= within StartLimitIntervalSec=.
    const burst = Number(one(service!, 'StartLimitBurst') || '0');
    const intervalMs = parseTimespan(one(service!, 'StartLimitIntervalUSec')) ?? 0;
    if (burst > 0 && intervalMs > 0 && Number.isFinite(intervalMs) && burst <= Math.floor(intervalMs / idleMs)) {
      add('warning', 'idle-start-limit', `the program exits after ${idleMs} ms idle, so the next connections may start it ${Math.floor(intervalMs / idleMs) + 1} times within StartLimitIntervalSec=${seconds(intervalMs)}, more than StartLimitBurst=${burst}: systemd then refuses to start it (start-limit-hit) and the connection is refused`, 'StartLimitBurst', `StartLimitBurst=${Math.floor(intervalMs / idleMs) + 2}`, { section: 'Unit' });
    }
  }

  return { unit, findings, sockets: sockets.map(({ unit: u, name: n, listen }) => ({ unit: u, name: n, listen })) };
}
