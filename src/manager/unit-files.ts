/*
 * The .socket and .service files that make systemd do what `sd-activate run` does with the same
 * options: the run command line's Supervisor options in, unit files out. Pure but for finding
 * the command (PATH) and reading a script's #! line, as ExecStart= needs an absolute path.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { classifyExecStart, isNode } from './exec-start.js';
import type { ListenSpec, SocketSpec } from './listen-spec.js';
import { resolveCommand } from './service-process.js';
import type { SupervisorOptions } from './supervisor-options.js';
import { quote } from '../core/quote.js';

/**
 * How the units are named and where they run.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.unit.html
 */
export interface UnitFilesOptions {
  /** NAME.service, and NAME.socket (NAME-FDNAME.socket each when the sockets have several names). */
  name: string;
  /** For the user's manager: WantedBy=default.target rather than multi-user.target. */
  user?: boolean;
  /** The working directory: relative paths of the command and of sockets are taken from it (default process.cwd()). */
  cwd?: string;
  /** The `-E NAME=VALUE` assignments, written as Environment= lines. */
  environment?: ReadonlyArray<readonly [string, string]>;
  /** The command line they come from, for a comment at the top of each file. */
  commandLine?: string;
}

/**
 * One unit file.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.unit.html
 */
export interface UnitFile {
  /** `app.service`, `app.socket`, `app@.service`. */
  name: string;
  text: string;
}

/**
 * The units, and what differs from `sd-activate run` all the same.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.unit.html
 */
export interface GeneratedUnits {
  files: UnitFile[];
  /** Sentences for the person who runs the command (written to stderr). */
  notes: string[];
}

const UNIT_NAME = /^[A-Za-z0-9:_.\\-]{1,200}$/;

/**
 * A word of a command line as ExecStart= reads it: `%` and `$` taken literally, quoted when needed.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#Command%20lines
 */
export function execWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (escaped !== '' && !/[\s"'\\;]/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

/** A value of a setting that takes the rest of the line (a path): only specifiers need escaping. */
function plain(value: string): string {
  if (/[\n\r]/.test(value)) throw new TypeError(`${quote(value)} has a line break: a unit file cannot hold it`);
  return value.replace(/%/g, '%%');
}

/** An Environment= assignment, quoted: `"NAME=VALUE"`. */
function environmentLine(name: string, value: string): string {
  const text = `${name}=${value}`.replace(/%/g, '%%').replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  return `Environment="${text}"`;
}

/**
 * Milliseconds as a systemd time span: `90s`, `1500ms`, `250us`, `infinity`.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.time.html
 */
export function timespan(ms: number): string {
  if (!Number.isFinite(ms)) return 'infinity';
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  if (Number.isInteger(ms)) return `${ms}ms`;
  return `${Math.round(ms * 1000)}us`;
}

/** The Listen*= line of one spec, paths made absolute from `cwd`. */
function listenLine(spec: ListenSpec, cwd: string): string {
  switch (spec.kind) {
    case 'fifo':
      return `ListenFIFO=${plain(resolve(cwd, spec.path))}`;
    case 'mqueue':
      return `ListenMessageQueue=${plain(spec.path)}`;
    case 'special':
      return `ListenSpecial=${plain(resolve(cwd, spec.path))}`;
    case 'socket':
      break;
  }
  const key = spec.type === 'stream' ? 'ListenStream' : spec.type === 'dgram' ? 'ListenDatagram' : 'ListenSequentialPacket';
  const a = spec.address;
  if (a.family === 'unix') return `${key}=${plain('abstract' in a ? `@${a.abstract}` : resolve(cwd, a.path))}`;
  if (a.port === 0) {
    throw new TypeError(`${quote(spec.text)} has port 0: systemd binds the port its unit names and cannot let the kernel choose; give a port`);
  }
  if (spec.anyAddress) return `${key}=${a.port}`;
  return `${key}=${a.family === 'ipv4' ? `${a.address}:${a.port}` : `[${a.address}${a.scopeId ? `%${a.scopeId}` : ''}]:${a.port}`}`;
}

/** The [Socket] settings a spec carries besides its address: they are the socket unit's, for all its Listen*= lines. */
function socketSettings(spec: ListenSpec): string[] {
  const lines: string[] = [];
  if (spec.kind === 'socket') {
    const s = spec as SocketSpec;
    if (s.backlog !== undefined) lines.push(`Backlog=${s.backlog}`);
    if (s.v6Only !== undefined) lines.push(`BindIPv6Only=${s.v6Only ? 'ipv6-only' : 'both'}`);
    if (s.reusePort !== undefined) lines.push(`ReusePort=${s.reusePort ? 'yes' : 'no'}`);
  }
  if ((spec.kind === 'socket' || spec.kind === 'fifo' || spec.kind === 'mqueue') && spec.mode !== undefined) lines.push(`SocketMode=${spec.mode.toString(8).padStart(4, '0')}`);
  if (spec.kind === 'mqueue' && spec.maxmsg !== undefined) lines.push(`MessageQueueMaxMessages=${spec.maxmsg}`, `MessageQueueMessageSize=${spec.msgsize}`);
  return lines;
}

/** A unit name for an fd name: what a unit name may hold, and nothing else. */
function unitPart(fdName: string): string {
  return fdName.replace(/[^A-Za-z0-9:_.\\-]/g, '-');
}

/**
 * The units for `sd-activate run`'s options: one .socket per fd name (all its Listen*= lines,
 * FileDescriptorName=), or one with Accept=yes and a template service; a .service with ExecStart=
 * the command's absolute path and, for node, the script's. Without `lazy` the service is started
 * at once (WantedBy=), as run starts it; with `lazy` only the sockets are, and the first
 * connection starts it.
 *
 * @throws TypeError for what systemd cannot do as run does: `watch`, port 0, a command that is
 *   not node itself (npm, a shell that does not exec, a wrapper script: LISTEN_PID would name it),
 *   sockets of one name with different settings, a bad unit name
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html
 */
export function unitFiles(options: SupervisorOptions, settings: UnitFilesOptions): GeneratedUnits {
  const { name } = settings;
  if (!UNIT_NAME.test(name)) throw new TypeError(`${quote(name)} cannot name a unit: letters, digits and ':', '_', '.', '-', '\\' only`);
  const cwd = settings.cwd ?? process.cwd();
  if (options.watch?.length) {
    throw new TypeError('--watch has no systemd equivalent (a .path unit could restart the service; none is written): leave it out for the units');
  }
  const notes: string[] = [];
  const specs = (options.listen ?? []).map((s) => {
    if (typeof s === 'string') throw new TypeError('listen must hold parsed specs');
    return s;
  });

  // --- ExecStart=: node itself, with the script's absolute path.
  const command = resolveCommand(options.command, process.env.PATH, cwd);
  const args = [...(options.args ?? [])];
  if (isNode(command)) {
    const script = args.findIndex((a) => !a.startsWith('-'));
    if (script !== -1 && !isAbsolute(args[script]!) && existsSync(resolve(cwd, args[script]!))) args[script] = resolve(cwd, args[script]!);
  }
  const how = classifyExecStart({ path: command, argv: [command, ...args], ignoreErrors: false });
  if (how.kind === 'package-manager' || how.kind === 'shell' || how.kind === 'wrapper-script') {
    const what = how.kind === 'package-manager' ? how.tool : how.kind === 'shell' ? `a shell (${how.shell} -c without exec)` : `the script ${how.path}`;
    throw new TypeError(
      `ExecStart= would run ${what}, and node as its child: LISTEN_PID would name ${what}, and NotifyAccess=main would drop node's notifications. ` +
        'Give the node command itself: sd-activate units [options] -- node server.js',
    );
  }
  const execStart = [command, ...args].map(execWord).join(' ');

  // --- Sockets: one unit per fd name, or one Accept=yes unit.
  const accept = options.accept === true;
  const groups = new Map<string, ListenSpec[]>();
  for (const spec of specs) {
    const key = accept ? '' : spec.name;
    groups.set(key, [...(groups.get(key) ?? []), spec]);
  }
  const service = accept ? `${name}@.service` : `${name}.service`;
  const single = groups.size === 1;
  const header = settings.commandLine === undefined ? [] : [`# Written by sd-activate units, for what this does: ${settings.commandLine.replace(/\n/g, ' ')}`];
  const files: UnitFile[] = [];
  const socketNames: string[] = [];
  for (const [fdName, group] of groups) {
    const unit = single ? `${name}.socket` : `${name}-${unitPart(fdName)}.socket`;
    if (socketNames.includes(unit)) throw new TypeError(`the fd names ${quote(fdName)} and another both make the unit name ${unit}: rename one`);
    socketNames.push(unit);
    const extra = socketSettings(group[0]!);
    for (const spec of group.slice(1)) {
      if (socketSettings(spec).join('\n') !== extra.join('\n')) {
        throw new TypeError(`the sockets named "${fdName}" have different settings (${group.map((s) => s.text).join(', ')}): one .socket unit holds them, with one set of settings; give them the same ones`);
      }
    }
    const lines = [...header, '[Unit]', `Description=Sockets of ${name}${accept ? '' : ` (fd name "${fdName}")`}`, '', '[Socket]', ...group.map((s) => listenLine(s, cwd))];
    if (accept) {
      lines.push('Accept=yes');
      if (options.maxConnections !== undefined) lines.push(`MaxConnections=${options.maxConnections}`);
    } else {
      lines.push(`FileDescriptorName=${plain(fdName)}`);
      if (!single) lines.push(`Service=${service}`);
    }
    if (options.removeOnStop !== undefined) extra.push(`RemoveOnStop=${options.removeOnStop ? 'yes' : 'no'}`);
    lines.push(...extra, '', '[Install]', 'WantedBy=sockets.target');
    files.push({ name: unit, text: `${lines.join('\n')}\n` });
  }
  if (groups.size > 1) notes.push('systemd passes the fds of several .socket units in an order of its own: ask for them by name, not by position');
  if (specs.some((s) => s.name === 'unknown') && !accept) notes.push('a socket given without NAME= is named "unknown", as under run: FileDescriptorName=unknown');

  // --- The service.
  const unitSection = [...header, '[Unit]', `Description=${name}`];
  if (!accept && socketNames.length > 0) unitSection.push(`Requires=${socketNames.join(' ')}`, `After=${socketNames.join(' ')}`);
  if (options.startLimitIntervalMs !== undefined) unitSection.push(`StartLimitIntervalSec=${timespan(options.startLimitIntervalMs)}`);
  if (options.startLimitBurst !== undefined) unitSection.push(`StartLimitBurst=${options.startLimitBurst}`);
  const serviceSection = ['[Service]', `Type=${options.type ?? 'simple'}`];
  // run's default is systemd's (main for Type=notify, a watchdog or a store; else none).
  if (options.notifyAccess !== undefined) serviceSection.push(`NotifyAccess=${options.notifyAccess}`);
  serviceSection.push(`ExecStart=${execStart}`, `WorkingDirectory=${plain(cwd)}`);
  if (options.standardInput === 'socket') {
    // run keeps the service's stderr its own; systemd's default would put it on the socket too.
    serviceSection.push('StandardInput=socket', 'StandardError=journal');
  }
  for (const [key, value] of settings.environment ?? []) serviceSection.push(environmentLine(key, value));
  if (options.restart !== undefined) serviceSection.push(`Restart=${options.restart}`);
  if (options.restartMs !== undefined) serviceSection.push(`RestartSec=${timespan(options.restartMs)}`);
  if (options.timeoutStartMs !== undefined) serviceSection.push(`TimeoutStartSec=${options.timeoutStartMs === 0 ? 'infinity' : timespan(options.timeoutStartMs)}`);
  if (options.timeoutStopMs !== undefined) serviceSection.push(`TimeoutStopSec=${timespan(options.timeoutStopMs)}`);
  if (options.watchdogMs !== undefined) serviceSection.push(`WatchdogSec=${timespan(options.watchdogMs)}`);
  if (options.fdStoreMax !== undefined) serviceSection.push(`FileDescriptorStoreMax=${options.fdStoreMax}`);
  const lines = [...unitSection, '', ...serviceSection];
  // Started at once, as run starts it; with --lazy (or per connection) the sockets start it.
  if (!options.lazy && !accept) lines.push('', '[Install]', `WantedBy=${settings.user ? 'default.target' : 'multi-user.target'}`);
  files.push({ name: service, text: `${lines.join('\n')}\n` });
  if (options.sdBooted) notes.push('--sd-booted has nothing to write: sd_booted() is true in every service of systemd');
  if (options.removeOnStop === undefined && specs.some((s) => s.kind !== 'socket' || s.address.family === 'unix')) {
    notes.push('run removes the socket files and FIFOs it created when it exits; systemd leaves them (RemoveOnStop=no): give --remove-on-stop for one or the other');
  }
  notes.push('the service gets the environment of its manager and the Environment= lines, not that of the shell run would have passed on');
  return { files, notes };
}
