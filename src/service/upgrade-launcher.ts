/*
 * Starting an upgrade's new process: socket activation, exactly, with every fd this process holds
 * at 3+ (LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID), so that the new version takes its sockets with the
 * same calls as on a cold start and binds nothing; one more fd after those, the channel.
 *
 * The new process is not a child of this one once it takes over: a shell starts it, reports its
 * exit status while it starts up, and exits when told to, before MAINPID= names the new process,
 * so that the service manager (a child subreaper, as systemd's is) adopts it. The manager then
 * sees its exit with its status, as it sees the exit of a main process it started itself: a new
 * version that dies after the switch fails the service, and Restart= acts on it. (A child of the
 * old process would die unseen: the old process would reap it.)
 *
 * The next version's shell is started ahead of time, while nothing is going on, and waits for
 * "go": starting a process costs the event loop a few milliseconds (fork, then the wait for
 * exec); the upgrade signal only writes a line.
 */
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { ownArguments } from '../core/runtime.js';
import { UPGRADE_FD_VARIABLE, UPGRADE_FROM_VARIABLE, UPGRADE_PID_VARIABLE } from '../core/variables.js';
import { execActivated, inheritedEnvironment, releaseLauncher, signalGroup } from '../shared/exec.js';
import { isAlive } from '../shared/process-state.js';
import { ChannelReader } from './upgrade-channel.js';
import type { Internals } from './internals.js';
import type { UpgraderOptions } from './upgrade-types.js';

/** A process of the next version, started, or waiting to be told to go. */
export interface Launched {
  /** The shell that starts it: its pid is the new version's process group. */
  launcher: ChildProcess;
  /** The shell's stdin: "go" to it, the new process's pid back. */
  control: Socket;
  /** The channel to the new process (see upgrade-channel.ts). */
  channel: ChannelReader;
  /** The new process's pid, once the shell started it; undefined when the shell ended first. */
  pid: Promise<number | undefined>;
  /** How the new process ended while the shell was its parent ("it exited with status 3"); undefined when the shell let go first. */
  ended: Promise<string | undefined>;
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
  const set: Record<string, string> = { [UPGRADE_FD_VARIABLE]: String(3 + fds.length), [UPGRADE_FROM_VARIABLE]: String(process.pid) };
  if (context.notifySocket !== undefined) set.NOTIFY_SOCKET = context.notifySocket;
  if (context.watchdogUsec !== undefined) set.WATCHDOG_USEC = context.watchdogUsec;
  const env = options.env ?? process.env;
  // A launcher started with other fds or another environment is not the one to use now.
  const key = JSON.stringify([fds.map((f) => [f.fd, f.name]), inheritedEnvironment(env), set]);
  return { fds, set, env, key };
}

/**
 * Starts the shell of the new process: it starts the program now (`wait` false), or waits for
 * "go" first.
 *
 * @throws what child_process.spawn() or socketpair(2) throws synchronously
 */
export function launch(options: UpgraderOptions, context: LaunchContext, core: Pick<Internals, 'heldFds' | 'native'>, wait: boolean): Launched {
  const { fds, set, env, key } = plan(options, context, core.heldFds);
  const native = core.native();
  const [ours, theirs] = native.socketpair(native.constants.SOCK_STREAM);
  let launcher: ChildProcess;
  try {
    launcher = execActivated({
      command: options.command ?? process.execPath,
      args: options.args ?? ownArguments('the upgrade'),
      listenFds: fds.map((f) => f.fd),
      listenNames: fds.map((f) => f.name),
      extraFds: ['pipe'],
      env,
      set,
      pidVariables: [UPGRADE_PID_VARIABLE, ...(set.WATCHDOG_USEC !== undefined ? ['WATCHDOG_PID'] : [])],
      orphan: { control: theirs, waitForGo: wait },
      cwd: options.cwd,
      stdin: 'ignore',
      output: 'inherit',
    });
  } catch (error) {
    native.close(ours);
    throw error;
  } finally {
    native.close(theirs);
  }
  const { Socket } = process.getBuiltinModule('node:net');
  const control = new Socket({ fd: ours, readable: true, writable: true });
  control.on('error', () => undefined);
  const socket = launcher.stdio[3 + fds.length] as Socket;
  socket.on('error', () => undefined);
  launcher.on('error', () => control.destroy());
  const controlReader = new ChannelReader(control);
  const pid = controlReader.next().then((message) => {
    const text = message instanceof Map ? message.get('PID') : undefined;
    return text !== undefined && /^[1-9]\d*$/.test(text) ? Number(text) : undefined;
  });
  const ended = pid.then(async () => {
    const message = await controlReader.next();
    const status = message instanceof Map ? message.get('EXIT') : undefined;
    return status === undefined || !/^\d+$/.test(status) ? undefined : describeStatus(Number(status));
  });
  return { launcher, control, channel: new ChannelReader(socket), pid, ended, key };
}

/** A shell's $? as words: 128 and above is the signal that killed the process. */
function describeStatus(status: number): string {
  if (status <= 128) return `it exited with status ${status}`;
  const name = Object.entries(process.getBuiltinModule('node:os').constants.signals).find(([, n]) => n === status - 128)?.[0];
  return `it was killed by ${name ?? `signal ${status - 128}`}`;
}

/** Whether a launcher started ahead of time can still be used: waiting, and started with what would be given now. */
export function stillFits(launched: Launched, options: UpgraderOptions, context: LaunchContext, heldFds: Internals['heldFds']): boolean {
  const { launcher } = launched;
  return launcher.exitCode === null && launcher.signalCode === null && launched.key === plan(options, context, heldFds).key;
}

/** Tells a launcher started ahead of time to start the new process. */
export function go(launched: Launched): void {
  launched.launcher.ref();
  launched.control.ref();
  launched.channel.ref();
  launched.control.write('go\n');
}

/** A launcher waiting for ever keeps nothing alive. */
export function unrefLauncher(launched: Launched): void {
  launched.launcher.unref();
  launched.control.unref();
  launched.channel.unref();
}

/** Lets the new process go to the service manager: its shell exits (see the module comment). */
export function release(launched: Launched): Promise<void> {
  return releaseLauncher(launched.launcher);
}

/** Ends a launcher at once, with whatever it started. */
export function killLauncher(launched: Launched): void {
  launched.control.destroy();
  launched.channel.destroy();
  signalGroup(launched.launcher, 'SIGKILL');
}

/** ROLLBACK=1 to the new process, SIGTERM to its group, SIGKILL if it still runs after `graceMs`. */
export async function rollBack(launched: Launched, graceMs: number): Promise<void> {
  const { launcher, channel } = launched;
  await channel.send({ ROLLBACK: 1 });
  signalGroup(launcher, 'SIGTERM');
  const pid = await Promise.race([launched.pid, Promise.resolve(undefined)]);
  const end = Date.now() + graceMs;
  while (Date.now() < end && !channel.ended && (pid === undefined || isAlive(pid))) await new Promise((resolve) => setTimeout(resolve, 20));
  // What the group started may outlive it: SIGKILL them too, whether or not the leader is gone.
  signalGroup(launcher, 'SIGKILL');
  channel.destroy();
  launched.control.destroy();
}
