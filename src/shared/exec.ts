/*
 * Starting a process the way socket activation starts a service, and signalling what it started:
 * the one way `sd-activate run`, an upgrade's new version and a worker pool's workers are started.
 *
 * The fds go at 3, 4, ... with LISTEN_FDS and LISTEN_FDNAMES naming them, and LISTEN_PID (with the
 * other pid variables) set to the new process's own pid. Node has no fork-then-exec hook to learn
 * that pid before the exec, so `sh -c '... LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"'` sets
 * it: `exec` keeps the shell's pid. The process leads a process group of its own, so that a stop
 * reaches what it started too (KillMode=control-group, as far as process groups reach), and a
 * terminal's Ctrl-C reaches only the process that started it.
 *
 * node:child_process is fetched when first needed: a service loads this module only with an
 * upgrade or a pool, and it must not cost start-up time before.
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { MANAGER_VARIABLES, PRIVATE_VARIABLES } from '../core/variables.js';

/** What {@link execActivated} starts, and with what. */
export interface ExecActivatedOptions {
  /** The program: an absolute path, or a name looked up on PATH by the shell. */
  command: string;
  args: readonly string[];
  /** fds of this process passed as socket activation passes them: at 3, 4, ..., counted in LISTEN_FDS. */
  listenFds: readonly number[];
  /** One name per fd of `listenFds`, for LISTEN_FDNAMES. */
  listenNames: readonly string[];
  /**
   * More fds after those, not counted in LISTEN_FDS: an fd of this process, or 'pipe' for a new
   * socketpair to this process (found in `child.stdio` at the same place).
   */
  extraFds?: ReadonlyArray<number | 'pipe'>;
  /**
   * The environment to start from. Every variable a service manager sets for one process
   * (LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*) and the library's private ones are removed from it
   * first: the new process must not take them for its own.
   */
  env: NodeJS.ProcessEnv;
  /** Variables set afterwards (NOTIFY_SOCKET, WATCHDOG_USEC, INVOCATION_ID, ...). */
  set?: Readonly<Record<string, string>>;
  /** Variables set to the new process's own pid; LISTEN_PID is added when `listenFds` is not empty. */
  pidVariables?: readonly string[];
  /**
   * An fd, as the new process sees it, on which it waits for the line "go" before the exec (and
   * exits 0 on anything else): a process started ahead of time, to be used later.
   */
  waitForGoOn?: number;
  cwd?: string;
  /** stdin: /dev/null, as systemd's StandardInput=null, or this process's. */
  stdin: 'ignore' | 'inherit';
  /** stdout and stderr: this process's, pipes to read, or none. */
  output: 'inherit' | 'pipe' | 'ignore';
  /**
   * An fd of this process put at both fd 0 and fd 1 instead, as StandardInput=socket does (the
   * inetd way): `stdin` is then unused, and `output` is stderr's alone.
   */
  inetd?: number;
}

/**
 * `env` without what a service manager sets for one process (LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*)
 * and without the library's private variables: what a process started as activated inherits.
 */
export function inheritedEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const name of [...MANAGER_VARIABLES, ...PRIVATE_VARIABLES]) delete out[name];
  return out;
}

/**
 * Starts `command` as an activated process (see the module comment), in a process group of its own.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html
 */
export function execActivated(options: ExecActivatedOptions): ChildProcess {
  const env = inheritedEnvironment(options.env);
  const pidVariables = [...(options.pidVariables ?? [])];
  if (options.listenFds.length > 0) {
    env.LISTEN_FDS = String(options.listenFds.length);
    env.LISTEN_FDNAMES = options.listenNames.join(':');
    pidVariables.push('LISTEN_PID');
  }
  Object.assign(env, options.set);
  // `read` takes the line byte by byte, so nothing meant for the program is consumed.
  const waitForGo = options.waitForGoOn === undefined ? '' : `read -r go <&${options.waitForGoOn} || exit 0; [ "$go" = go ] || exit 0; `;
  const assign = pidVariables.map((v) => `${v}=$$; export ${v}; `).join('');
  const standard = options.inetd === undefined ? [options.stdin, options.output] : [options.inetd, options.inetd];
  const stdio: StdioOptions = [...standard, options.output, ...options.listenFds, ...(options.extraFds ?? [])];
  const { spawn } = process.getBuiltinModule('node:child_process');
  return spawn('/bin/sh', ['-c', `${waitForGo}${assign}exec "$0" "$@"`, options.command, ...options.args], {
    cwd: options.cwd,
    env,
    stdio,
    detached: true,
  });
}

/**
 * Sends `signal` to the process group `child` leads, which holds what it started too, even when
 * `child` itself has exited; to `child` alone when there is no such group. Never throws.
 */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}
