/*
 * Starting an upgrade's new process: socket activation, exactly, with every fd this process holds
 * at 3+ (LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID), so that the new version takes its sockets with the
 * same calls as on a cold start and binds nothing; two more fds after those: the channel of the
 * switch, and the seqpacket socket established connections are handed over on (on Node only: the
 * other runtimes cannot hand connections over, see handover-sender.ts).
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
import { HANDOVER_FD_VARIABLE, UPGRADE_FD_VARIABLE, UPGRADE_FROM_VARIABLE, UPGRADE_PID_VARIABLE } from '../core/variables.js';
import { execActivated, inheritedEnvironment, releaseLauncher, signalGroup } from '../shared/exec.js';
import { isAlive } from '../shared/process-state.js';
import { native as addon } from '../native/addon.js';
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
  /** This end of the connection hand-over's seqpacket socket (see handover-sender.ts), until it is taken or closed; none on Deno and Bun. */
  handover: number | undefined;
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

/** Whether connections can be handed over from this runtime: Node's, not Deno's or Bun's. */
export function handoverRuntime(): boolean {
  return process.versions.deno === undefined && process.versions.bun === undefined;
}

/** The fds and the environment of the new process, as they are now. */
function plan(options: UpgraderOptions, context: LaunchContext, heldFds: Internals['heldFds']): { fds: ReturnType<Internals['heldFds']>; set: Record<string, string>; env: NodeJS.ProcessEnv; key: string } {
  const fds = heldFds();
  const set: Record<string, string> = { [UPGRADE_FD_VARIABLE]: String(3 + fds.length), [UPGRADE_FROM_VARIABLE]: String(process.pid) };
  if (handoverRuntime()) set[HANDOVER_FD_VARIABLE] = String(4 + fds.length);
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
  let handover: [number, number] | undefined;
  let launcher: ChildProcess;
  try {
    if (set[HANDOVER_FD_VARIABLE] !== undefined) handover = native.seqpacketPair();
    launcher = execActivated({
      command: options.command ?? process.execPath,
      args: options.args ?? ownArguments('the upgrade'),
      listenFds: fds.map((f) => f.fd),
      listenNames: fds.map((f) => f.name),
      extraFds: handover ? ['pipe', handover[1]] : ['pipe'],
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
    if (handover) native.close(handover[0]);
    throw error;
  } finally {
    native.close(theirs);
    // The new process's end is its own now: its death must be seen here as the end of the channel.
    if (handover) native.close(handover[1]);
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
  return { launcher, control, channel: new ChannelReader(socket), handover: handover?.[0], pid, ended, key };
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

/** The hand-over socket, for the one who uses it (who closes it then); undefined when there is none or it was taken. */
export function takeHandover(launched: Launched): number | undefined {
  const fd = launched.handover;
  launched.handover = undefined;
  return fd;
}

/** Closes this end of the hand-over socket unless it was taken. */
function closeHandover(launched: Launched): void {
  const fd = takeHandover(launched);
  if (fd !== undefined) addon().close(fd);
}

/** Ends a launcher at once, with whatever it started. */
export function killLauncher(launched: Launched): void {
  launched.control.destroy();
  launched.channel.destroy();
  closeHandover(launched);
  signalGroup(launched.launcher, 'SIGKILL');
}

/** ROLLBACK=1 to the new process, SIGTERM to its group, SIGKILL if it still runs after `graceMs`. */
export async function rollBack(launched: Launched, graceMs: number): Promise<void> {
  closeHandover(launched);
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

/**
 * The launcher of the next upgrade, started ahead of time while nothing is going on (see the
 * module comment), or none.
 */
export class NextLauncher {
  readonly #options: UpgraderOptions;
  readonly #context: LaunchContext;
  readonly #core: Pick<Internals, 'heldFds' | 'native'>;
  #launched: Launched | undefined;

  constructor(options: UpgraderOptions, context: LaunchContext, core: Pick<Internals, 'heldFds' | 'native'>) {
    this.#options = options;
    this.#context = context;
    this.#core = core;
  }

  /**
   * The launcher waiting if it still fits (same fds, same environment), told to go; or a process
   * started now.
   *
   * @throws what launch() throws
   */
  take(): Launched {
    const ready = this.#launched;
    this.#launched = undefined;
    if (ready && stillFits(ready, this.#options, this.#context, this.#core.heldFds)) {
      go(ready);
      return ready;
    }
    if (ready) killLauncher(ready);
    return launch(this.#options, this.#context, this.#core, false);
  }

  /** Starts a launcher to wait for the next upgrade, unless one waits already; `warn` gets why it could not. */
  prepare(warn: (error: Error) => void): void {
    if (this.#launched) return;
    let launched: Launched;
    try {
      launched = launch(this.#options, this.#context, this.#core, true);
    } catch (error) {
      warn(error as Error);
      return;
    }
    // It waits for ever, and must keep nothing alive.
    unrefLauncher(launched);
    this.#launched = launched;
    launched.launcher.once('exit', () => {
      if (this.#launched === launched) {
        this.#launched = undefined;
        killLauncher(launched);
      }
    });
  }

  /** Kills the launcher waiting, if any. */
  discard(): void {
    if (this.#launched) killLauncher(this.#launched);
    this.#launched = undefined;
  }
}
