/*
 * Starting an upgrade's new process: socket activation, exactly, with every fd this process holds
 * at 3+ (LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID), so that the new version takes its sockets with the
 * same calls as on a cold start and binds nothing; one more fd after those, the channel.
 *
 * The next version's process is started ahead of time, while nothing is going on: a shell waiting
 * for "go" on the channel, which then execs the program as it is on disk at that moment. Starting
 * a process costs the event loop a few milliseconds (fork, then the wait for exec); the upgrade
 * signal only writes a line.
 */
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { ownArguments } from '../core/runtime.js';
import { UPGRADE_FD_VARIABLE, UPGRADE_PID_VARIABLE } from '../core/variables.js';
import { execActivated, inheritedEnvironment, signalGroup } from '../shared/exec.js';
import type { Internals } from './internals.js';
import type { UpgraderOptions } from './upgrade-types.js';

/** A process of the next version, started, or waiting to be told to go. */
export interface Launched {
  child: ChildProcess;
  /** The socketpair: "go" to a waiting launcher, READY=1 back, MAINPID= to confirm. */
  channel: Socket;
  /** Resolves with why it ended: "it exited with status 1". */
  exited: Promise<string>;
  /** What it was started with: one whose fds or environment are not this process's any more is not used. */
  key: string;
}

/** What the new process is given besides the fds: the service manager's variables of this process, captured at start. */
export interface LaunchContext {
  notifySocket: string | undefined;
  watchdogUsec: string | undefined;
}

/** The fds and the environment of the new process, as they are now. */
function plan(options: UpgraderOptions, context: LaunchContext, heldFds: Internals['heldFds']): { fds: ReturnType<Internals['heldFds']>; set: Record<string, string>; env: NodeJS.ProcessEnv; key: string } {
  const fds = heldFds();
  const set: Record<string, string> = { [UPGRADE_FD_VARIABLE]: String(3 + fds.length) };
  if (context.notifySocket !== undefined) set.NOTIFY_SOCKET = context.notifySocket;
  if (context.watchdogUsec !== undefined) set.WATCHDOG_USEC = context.watchdogUsec;
  const env = options.env ?? process.env;
  // A launcher started with other fds or another environment is not the one to use now.
  const key = JSON.stringify([fds.map((f) => [f.fd, f.name]), inheritedEnvironment(env), set]);
  return { fds, set, env, key };
}

/**
 * Starts the new process: now (`wait` false), or ahead of time, waiting for "go" on the channel.
 *
 * @throws what child_process.spawn() throws synchronously
 */
export function launch(options: UpgraderOptions, context: LaunchContext, heldFds: Internals['heldFds'], wait: boolean): Launched {
  const { fds, set, env, key } = plan(options, context, heldFds);
  const channelFd = 3 + fds.length;
  const child = execActivated({
    command: options.command ?? process.execPath,
    args: options.args ?? ownArguments('the upgrade'),
    listenFds: fds.map((f) => f.fd),
    listenNames: fds.map((f) => f.name),
    extraFds: ['pipe'],
    env,
    set,
    pidVariables: [UPGRADE_PID_VARIABLE, ...(set.WATCHDOG_USEC !== undefined ? ['WATCHDOG_PID'] : [])],
    waitForGoOn: wait ? channelFd : undefined,
    cwd: options.cwd,
    stdin: 'inherit',
    output: 'inherit',
  });
  const channel = child.stdio[channelFd] as Socket;
  channel.on('error', () => undefined);
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `it was killed by ${signal}` : `it exited with status ${code}`));
    child.once('error', (error) => resolve(`it could not be started: ${error.message}`));
  });
  return { child, channel, exited, key };
}

/** Whether a launcher started ahead of time can still be used: running, and started with what would be given now. */
export function stillFits(launched: Launched, options: UpgraderOptions, context: LaunchContext, heldFds: Internals['heldFds']): boolean {
  const { child } = launched;
  return child.exitCode === null && child.signalCode === null && launched.key === plan(options, context, heldFds).key;
}

/** Ends a launcher at once, with whatever it started. */
export function killLauncher(launched: Launched): void {
  launched.channel.destroy();
  signalGroup(launched.child, 'SIGKILL');
}
