/*
 * Starting one service process the way systemd's exec does: fds at 3+, LISTEN_* naming them,
 * LISTEN_PID (and WATCHDOG_PID) set to the process's own pid, stdin on /dev/null, its own
 * process group so that stopping it reaches everything it started (KillMode=control-group).
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { SystemdError } from '../core/errors.js';
import { execActivated } from '../shared/exec.js';
import { clip } from '../core/quote.js';


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
    if (!exists) throw new SystemdError('ERR_SD_COMMAND_NOT_FOUND', `command not found: ${clip(command)}`);
    if (!isExecutableFile(full)) throw new SystemdError('ERR_SD_COMMAND_NOT_FOUND', `command is not an executable file: ${clip(command)}`);
    return full;
  }
  for (const dir of path.split(delimiter)) {
    const candidate = join(dir === '' ? cwd : resolve(cwd, dir), command);
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new SystemdError('ERR_SD_COMMAND_NOT_FOUND', `command not found: ${clip(command)} (searched PATH)`);
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
  /** StandardInput=socket: this fd at 0 and 1 (`fds` is then empty: no LISTEN_* either). */
  inetd?: number;
  /** More variables (REMOTE_ADDR and REMOTE_PORT of a connection). */
  set?: Readonly<Record<string, string>>;
  /** FileDescriptorStoreMax=: above 0 (with a NOTIFY_SOCKET), FDSTORE= tells the service, as systemd 254+ does. */
  fdStoreMax?: number;
}

/**
 * Spawns the service as socket activation does (see shared/exec.ts), with what systemd's exec sets
 * for every service besides the protocol's variables: INVOCATION_ID, a new 128-bit id for each
 * start (what journald and the tools that look for systemd read), SYSTEMD_EXEC_PID, the pid it
 * execs (systemd 248+), and FDSTORE, the size of the fd store (254+). stdin is /dev/null
 * (StandardInput=null), or with `inetd` the socket at 0 and 1 (StandardInput=socket).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html
 */
export function spawnService(options: ServiceSpawnOptions): ChildProcess {
  const set: Record<string, string> = { ...options.set, INVOCATION_ID: randomBytes(16).toString('hex') };
  const pidVariables = ['SYSTEMD_EXEC_PID'];
  if (options.notifySocket !== undefined) {
    set.NOTIFY_SOCKET = options.notifySocket;
    if ((options.fdStoreMax ?? 0) > 0) set.FDSTORE = String(options.fdStoreMax);
  }
  // FDSTORE= describes this store alone: one inherited from the caller's own manager must not pass.
  const env: NodeJS.ProcessEnv = { ...options.env };
  delete env.FDSTORE;
  if (options.watchdogUsec !== undefined) {
    set.WATCHDOG_USEC = String(options.watchdogUsec);
    pidVariables.push('WATCHDOG_PID');
  }
  return execActivated({
    command: options.command,
    args: options.args,
    listenFds: options.fds,
    listenNames: options.names,
    env,
    set,
    pidVariables,
    cwd: options.cwd,
    stdin: 'ignore',
    output: options.stdio,
    inetd: options.inetd,
  });
}
