/*
 * Starting one service process the way systemd's exec does: fds at 3+, LISTEN_* naming them,
 * LISTEN_PID (and WATCHDOG_PID) set to the process's own pid, stdin on /dev/null, its own
 * process group so that stopping it reaches everything it started (KillMode=control-group).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { MANAGER_VARIABLES } from '../core/env.js';
import { SystemdError } from '../core/errors.js';


function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The absolute path of `command`: as is when it holds a slash (relative to `cwd`), else the first
 * executable of that name on PATH, as execvp(3) and systemd's ExecStart= search it.
 *
 * @throws SystemdError `ERR_SD_COMMAND_NOT_FOUND`
 */
export function resolveCommand(command: string, path = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', cwd = process.cwd()): string {
  if (typeof command !== 'string' || command.length === 0) throw new SystemdError('ERR_SD_COMMAND_NOT_FOUND', 'no command given');
  if (command.includes('/')) {
    const full = isAbsolute(command) ? command : resolve(cwd, command);
    let exists = true;
    try {
      statSync(full);
    } catch {
      exists = false;
    }
    if (!exists) throw new SystemdError('ERR_SD_COMMAND_NOT_FOUND', `command not found: ${command}`);
    if (!isExecutableFile(full)) throw new SystemdError('ERR_SD_COMMAND_NOT_FOUND', `command is not an executable file: ${command}`);
    return full;
  }
  for (const dir of path.split(delimiter)) {
    const candidate = join(dir === '' ? cwd : resolve(cwd, dir), command);
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new SystemdError('ERR_SD_COMMAND_NOT_FOUND', `command not found: ${command} (searched PATH)`);
}

/** What {@link spawnService} needs. */
export interface ServiceSpawnOptions {
  /** An absolute path (see {@link resolveCommand}). */
  command: string;
  args: readonly string[];
  /** fds of this process to pass, in order: the service sees them at 3, 4, ... */
  fds: readonly number[];
  /** One name per fd, for LISTEN_FDNAMES. */
  names: readonly string[];
  /** The service's environment before the manager's variables are added. */
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdout and stderr: the terminal ('inherit'), pipes to read ('pipe'), or nothing ('ignore'). */
  stdio: 'inherit' | 'pipe' | 'ignore';
  /** NOTIFY_SOCKET */
  notifySocket?: string;
  /** WATCHDOG_USEC; WATCHDOG_PID is then set to the service's pid. */
  watchdogUsec?: number;
}

/**
 * What systemd's exec sets for every service besides the protocol's variables: INVOCATION_ID, a
 * new 128-bit id for each start (what journald and the tools that look for systemd read), and
 * SYSTEMD_EXEC_PID, the pid it execs (systemd 248+).
 */
const EXEC_VARIABLES = ['INVOCATION_ID', 'SYSTEMD_EXEC_PID'];

/**
 * Spawns the service. Node has no fork-then-exec hook to learn the pid before exec, so
 * `sh -c 'LISTEN_PID=$$ ... exec "$0" "$@"'` sets it: `exec` keeps the shell's pid.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html
 */
export function spawnService(options: ServiceSpawnOptions): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...options.env };
  for (const name of [...MANAGER_VARIABLES, ...EXEC_VARIABLES]) delete env[name];
  env.INVOCATION_ID = randomBytes(16).toString('hex');
  const pidVariables: string[] = ['SYSTEMD_EXEC_PID'];
  if (options.fds.length > 0) {
    env.LISTEN_FDS = String(options.fds.length);
    env.LISTEN_FDNAMES = options.names.join(':');
    pidVariables.push('LISTEN_PID');
  }
  if (options.notifySocket !== undefined) env.NOTIFY_SOCKET = options.notifySocket;
  if (options.watchdogUsec !== undefined) {
    env.WATCHDOG_USEC = String(options.watchdogUsec);
    pidVariables.push('WATCHDOG_PID');
  }
  const assign = pidVariables.map((v) => `${v}=$$; export ${v}; `).join('');
  return spawn('/bin/sh', ['-c', `${assign}exec "$0" "$@"`, options.command, ...options.args], {
    cwd: options.cwd,
    env,
    stdio: ['ignore', options.stdio, options.stdio, ...options.fds],
    // Its own process group: signals reach what it started too, and a terminal's Ctrl-C reaches
    // only the supervisor, which stops the service as systemd would (SIGTERM, then SIGKILL).
    detached: true,
  });
}

/** Sends `signal` to the service's process group, or to the process alone if the group is gone. */
export function signalService(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}
