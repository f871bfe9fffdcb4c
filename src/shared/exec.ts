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
   * Start the program through a shell that stays its parent only until told to let go (SIGUSR1,
   * see {@link releaseLauncher}) and then exits, so that the program is adopted by the nearest
   * child subreaper above: the service manager, which must see its exit, with its status, once it
   * is the main process. The shell's stdin is then `control`, a socket of this process's: the
   * shell writes the program's pid there as the message `PID=<pid>`, and its exit status as
   * `EXIT=<status>` if it ends while the shell is still its parent; with `waitForGo`, the shell
   * first waits there for the line "go". The program's stdin is /dev/null, as StandardInput=null's.
   */
  orphan?: { control: number; waitForGo: boolean };
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
  let script = `${pidVariables.map((v) => `${v}=$$; export ${v}; `).join('')}exec "$0" "$@"`;
  let stdin: 'ignore' | 'inherit' | number = options.stdin;
  if (options.orphan) {
    // A shell of its own for $$ to be the program's pid. Only fd 0 is used here: dash takes no
    // fd number above 9 in a redirection, and the fds passed may go beyond. `read` takes the
    // line byte by byte, so nothing after it is consumed.
    // The trap comes first: a SIGUSR1 before it would end the shell anyway, as asked.
    const waitForGo = options.orphan.waitForGo ? 'read -r go || exit 0; [ "$go" = go ] || exit 0; ' : '';
    script =
      `trap 'exit 0' USR1; ${waitForGo}sh -c '${script}' "$0" "$@" </dev/null & n=$!; ` +
      `printf 'PID=%s\n\n' "$n" >&0; wait "$n"; printf 'EXIT=%s\n\n' "$?" >&0`;
    stdin = options.orphan.control;
  }
  const standard = options.inetd === undefined ? [stdin, options.output] : [options.inetd, options.inetd];
  const stdio: StdioOptions = [...standard, options.output, ...options.listenFds, ...(options.extraFds ?? [])];
  const { spawn } = process.getBuiltinModule('node:child_process');
  return spawn('/bin/sh', ['-c', script, options.command, ...options.args], {
    cwd: options.cwd,
    env,
    stdio,
    detached: true,
  });
}

/**
 * Tells the shell of an `orphan` start to let go of the program: it exits, and the program is
 * adopted. Resolves once the shell is gone (at once if it is already).
 */
export function releaseLauncher(launcher: ChildProcess): Promise<void> {
  if (launcher.exitCode !== null || launcher.signalCode !== null || launcher.pid === undefined) return Promise.resolve();
  const gone = new Promise<void>((resolve) => launcher.once('exit', () => resolve()));
  try {
    process.kill(launcher.pid, 'SIGUSR1');
  } catch {
    return Promise.resolve();
  }
  return gone;
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
