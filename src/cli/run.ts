/*
 * `sd-activate run`: the Supervisor behind a command line, printing what it does on stderr.
 */
import { clip, quote, QUOTE_MAX } from '../core/quote.js';
import { basename } from 'node:path';
import { closeInheritedOnExec } from '../manager/inherited-fds.js';
import type { ParseArgsConfig } from 'node:util';
import { describeListener } from '../manager/listeners.js';
import { Supervisor } from '../manager/supervisor.js';
import { validate, type SupervisorOptions } from '../manager/supervisor-options.js';
import { countOption, parseOptions, splitCommand, type ParsedOptions } from './args.js';
import { parseListenSpec, parseMode, type ListenDefaults } from '../manager/listen-spec.js';
import { formatDuration, parseTimespan } from '../core/timespan.js';
import { UsageError } from './usage-error.js';

export const RUN_HELP = `usage: sd-activate run [options] [--] COMMAND [ARGS...]

Open sockets the way .socket units do and run COMMAND with them at fd 3, 4, ...
(LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID), with a NOTIFY_SOCKET (for --type
notify, --watchdog, --fd-store or --notify-access) whose messages are printed
as they arrive. The sockets stay open across restarts: clients wait in the
backlog instead of being refused.

Sockets:
  -l, --listen [NAME=]SPEC    a socket to pass (repeat; fd 3, 4, ... in order)
      --backlog N             listen(2) backlog (Backlog=, default 4096)
      --ipv6-only             IPv6 sockets take no IPv4 (BindIPv6Only=ipv6-only)
      --reuse-port            set SO_REUSEPORT (ReusePort=)
      --socket-mode MODE      mode of socket files and FIFOs (SocketMode=, 0666)
      --accept                one COMMAND per connection, at fd 3 (Accept=yes),
                              with REMOTE_ADDR and REMOTE_PORT set
      --max-connections N     with --accept, at most N at once; one more is
                              closed at once (MaxConnections=, default 64)
      --standard-input null|socket
                              socket: the connection (or the one socket) at
                              fds 0 and 1, no LISTEN_FDS, as inetd does
                              (StandardInput=; default null: /dev/null)
      --remove-on-stop yes|no
                              remove socket files, FIFOs and queues on exit
                              (RemoveOnStop=; default: those it created)
      --lazy                  start COMMAND on the first connection, not at once

Service:
      --type simple|notify    notify: wait for READY=1, print the start-up time
      --timeout-start SEC     wait that long for READY=1 (default 90)
      --timeout-stop SEC      SIGTERM, then SIGKILL after SEC (default 90)
      --restart POLICY        no, on-failure, always, ... (Restart=, default no)
      --restart-sec SEC       pause before restarting (RestartSec=, 100ms)
      --start-limit-burst N   at most N starts within the interval below, then
                              fail (StartLimitBurst=, default 5)
      --start-limit-interval SEC  that interval (StartLimitIntervalSec=, 10s;
                              0 for no limit)
      --watchdog SEC          set WATCHDOG_USEC; SIGABRT when pings stop
      --fd-store N            keep N fds sent with FDSTORE=1 across restarts
      --notify-access WHO     main|exec|all|none (NotifyAccess=; default main
                              with --type notify, --watchdog or --fd-store,
                              else none: no NOTIFY_SOCKET)
      --sd-booted             (root) run COMMAND where sd_booted() is true: a
                              private mount namespace with /run/systemd/system
      --watch PATH            restart when PATH changes (repeat for more)
  -E, --setenv NAME=VALUE     set an environment variable for COMMAND
  -q, --quiet                 print only warnings and errors
  -v, --verbose               also print WATCHDOG=1 pings, and stack traces

SPEC (a .socket unit's Listen*= in one word):
  8080, tcp:8080              TCP on [::]:8080, IPv4 too (ListenStream=8080)
  tcp:127.0.0.1:8080          TCP on one address; 'tcp:[::1]:8080' for IPv6
  udp:127.0.0.1:5353          UDP (ListenDatagram=)
  unix:/run/app.sock          unix stream socket; also /run/app.sock, @abstract
  unix-dgram:PATH             unix datagram socket (ListenDatagram=PATH)
  seqpacket:PATH              unix seqpacket socket (ListenSequentialPacket=)
  fifo:PATH                   FIFO (ListenFIFO=)
  mqueue:/NAME                POSIX message queue (ListenMessageQueue=)
  special:PATH                file or character device (ListenSpecial=)
  Per socket, after commas: backlog=N, ipv6-only, reuse-port, mode=0600.
  Port 0 lets the kernel choose; the addresses are printed at start.

Examples:
  sd-activate run -l web=tcp:127.0.0.1:3000 -- node server.js
  sd-activate run -l web=8080 --type notify --restart always -- node server.js
  sd-activate run -l admin=unix:./admin.sock,mode=0600 --lazy -- node admin.js
  sd-activate run -l tcp:127.0.0.1:7000 --accept --standard-input socket -- cat
  sd-activate run -l web=8080 --watch src -- node src/server.js

Exit status: COMMAND's when it ends and is not restarted (1 for a failure
that exited 0: a timeout, the watchdog, a --type notify service that ends
before READY=1); 0 when stopped with Ctrl-C (a second one kills), 1 when that
stop needed SIGKILL; 1 when sd-activate fails; 2 for a bad command line; 127
when COMMAND is not found.
`;

const OPTIONS = {
  listen: { type: 'string', short: 'l', multiple: true },
  backlog: { type: 'string' },
  'ipv6-only': { type: 'boolean' },
  'reuse-port': { type: 'boolean' },
  'socket-mode': { type: 'string' },
  accept: { type: 'boolean' },
  'max-connections': { type: 'string' },
  'standard-input': { type: 'string' },
  'remove-on-stop': { type: 'string' },
  lazy: { type: 'boolean' },
  type: { type: 'string' },
  'timeout-start': { type: 'string' },
  'timeout-stop': { type: 'string' },
  restart: { type: 'string' },
  'restart-sec': { type: 'string' },
  'start-limit-burst': { type: 'string' },
  'start-limit-interval': { type: 'string' },
  watchdog: { type: 'string' },
  'fd-store': { type: 'string' },
  'notify-access': { type: 'string' },
  'sd-booted': { type: 'boolean' },
  watch: { type: 'string', multiple: true },
  setenv: { type: 'string', short: 'E', multiple: true },
  quiet: { type: 'boolean', short: 'q' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The flag of each Supervisor option, for the messages of validate(). */
const FLAGS: Record<keyof SupervisorOptions, string> = {
  command: 'COMMAND',
  args: 'ARGS',
  listen: '-l',
  cwd: 'the working directory',
  env: '-E',
  stdio: 'the output',
  type: '--type',
  restart: '--restart',
  restartMs: '--restart-sec',
  startLimitIntervalMs: '--start-limit-interval',
  startLimitBurst: '--start-limit-burst',
  timeoutStartMs: '--timeout-start',
  timeoutStopMs: '--timeout-stop',
  watchdogMs: '--watchdog',
  fdStoreMax: '--fd-store',
  notifyAccess: '--notify-access',
  accept: '--accept',
  maxConnections: '--max-connections',
  standardInput: '--standard-input',
  removeOnStop: '--remove-on-stop',
  sdBooted: '--sd-booted',
  lazy: '--lazy',
  watch: '--watch',
  subreaper: 'the subreaper',
};

/** A boolean as systemd's parse_boolean() reads one. */
const BOOLEANS = new Map([...['yes', 'y', 'true', 't', 'on', '1'].map((w) => [w, true] as const), ...['no', 'n', 'false', 'f', 'off', '0'].map((w) => [w, false] as const)]);

function duration(name: string, value: string | undefined, allowInfinity: boolean): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseTimespan(value);
  if (ms === undefined || (!allowInfinity && !Number.isFinite(ms))) {
    throw new UsageError(`--${name} takes a time span like 5, 2.5s, 500ms or 1min${allowInfinity ? ' (or infinity)' : ''}, got ${quote(value)}`);
  }
  return ms;
}

/** What {@link runOptions} found. */
export interface RunCommandLine {
  help: false;
  options: SupervisorOptions;
  quiet: boolean;
  verbose: boolean;
  /** The `-E NAME=VALUE` assignments alone, in order (`options.env` is `process.env` with them). */
  setenv: Array<[name: string, value: string]>;
  /** Every option's value, `extra`'s included, by long name. */
  extra: ParsedOptions['values'];
}

/**
 * The command line as Supervisor options, or a UsageError. Exported for tests; no I/O.
 * `sd-activate units` takes the same command line (`subcommand` names it in messages) with
 * options of its own (`extra`).
 */
export function runOptions(args: readonly string[], subcommand = 'run', extra: NonNullable<ParseArgsConfig['options']> = {}): { help: true } | RunCommandLine {
  const config = { ...OPTIONS, ...extra };
  const { own, command } = splitCommand(args, config);
  const { values: v, positionals } = parseOptions(own, config, subcommand);
  if (v.help) return { help: true };
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${quote(positionals[0]!)}`);
  if (command.length === 0) throw new UsageError(`no command to run; usage: sd-activate ${subcommand} [options] -- COMMAND [ARGS...]`);

  const defaults: ListenDefaults = {};
  const backlog = countOption('backlog', v.backlog as string | undefined);
  if (backlog !== undefined) defaults.backlog = backlog;
  if (v['ipv6-only']) defaults.v6Only = true;
  if (v['reuse-port']) defaults.reusePort = true;
  if (v['socket-mode'] !== undefined) {
    const mode = parseMode(v['socket-mode'] as string);
    if (mode === undefined) throw new UsageError(`--socket-mode takes an octal mode like 0600, got ${quote(String(v['socket-mode']))}`);
    defaults.mode = mode;
  }
  const listen = ((v.listen as string[] | undefined) ?? []).map((text) => parseListenSpec(text, defaults));

  const env: NodeJS.ProcessEnv = { ...process.env };
  const setenv: Array<[string, string]> = [];
  for (const assignment of (v.setenv as string[] | undefined) ?? []) {
    const eq = assignment.indexOf('=');
    if (eq <= 0) throw new UsageError(`--setenv takes NAME=VALUE, got ${quote(assignment)}`);
    env[assignment.slice(0, eq)] = assignment.slice(eq + 1);
    setenv.push([assignment.slice(0, eq), assignment.slice(eq + 1)]);
  }

  const options: SupervisorOptions = { command: command[0]!, args: command.slice(1), listen, env };
  // Values are only parsed here; what they must be, and which go together, the Supervisor's
  // validate() says, in one place, with the flags' names.
  if (v.type !== undefined) options.type = v.type as SupervisorOptions['type'];
  if (v.restart !== undefined) options.restart = v.restart as SupervisorOptions['restart'];
  if (v['notify-access'] !== undefined) options.notifyAccess = v['notify-access'] as SupervisorOptions['notifyAccess'];
  const timeoutStart = duration('timeout-start', v['timeout-start'] as string | undefined, true);
  if (timeoutStart !== undefined) options.timeoutStartMs = Number.isFinite(timeoutStart) ? timeoutStart : 0;
  const timeoutStop = duration('timeout-stop', v['timeout-stop'] as string | undefined, false);
  if (timeoutStop !== undefined) options.timeoutStopMs = timeoutStop;
  const restartMs = duration('restart-sec', v['restart-sec'] as string | undefined, false);
  if (restartMs !== undefined) options.restartMs = restartMs;
  const startLimitInterval = duration('start-limit-interval', v['start-limit-interval'] as string | undefined, false);
  if (startLimitInterval !== undefined) options.startLimitIntervalMs = startLimitInterval;
  const startLimitBurst = countOption('start-limit-burst', v['start-limit-burst'] as string | undefined);
  if (startLimitBurst !== undefined) options.startLimitBurst = startLimitBurst;
  const watchdog = duration('watchdog', v.watchdog as string | undefined, false);
  if (watchdog !== undefined) options.watchdogMs = watchdog;
  const fdStore = countOption('fd-store', v['fd-store'] as string | undefined);
  if (fdStore !== undefined) options.fdStoreMax = fdStore;
  const maxConnections = countOption('max-connections', v['max-connections'] as string | undefined, 1);
  if (maxConnections !== undefined) options.maxConnections = maxConnections;
  if (v.accept) options.accept = true;
  if (v['standard-input'] !== undefined) options.standardInput = v['standard-input'] as SupervisorOptions['standardInput'];
  const removeOnStop = v['remove-on-stop'] as string | undefined;
  if (removeOnStop !== undefined) {
    const value = BOOLEANS.get(removeOnStop.toLowerCase());
    if (value === undefined) throw new UsageError(`--remove-on-stop takes yes or no, got ${quote(String(removeOnStop))}`);
    options.removeOnStop = value;
  }
  if (v['sd-booted']) options.sdBooted = true;
  if (v.lazy) options.lazy = true;
  if (v.watch) options.watch = v.watch as string[];
  try {
    validate(options, listen, { name: (option) => FLAGS[option], duration: 'a time span' });
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(error.message);
    throw error;
  }
  return { help: false, options, quiet: v.quiet === true, verbose: v.verbose === true, setenv, extra: v };
}

/**
 * How a notify message reads on one line: `READY=1 STATUS="Serving 3 clients"`. Each value is
 * quoted when it needs it, and cut (with its length) beyond what a line shows.
 */
export function formatNotifyFields(text: string): string {
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      const eq = line.indexOf('=');
      if (eq === -1) return quote(line);
      const key = clip(line.slice(0, eq), 64);
      const value = line.slice(eq + 1);
      return /^[\x21-\x7e]*$/.test(value) && !value.includes('"') && value.length <= QUOTE_MAX ? `${key}=${value}` : `${key}=${quote(value)}`;
    })
    .join(' ');
}

/**
 * Runs `sd-activate run ARGS`: resolves with the exit status once the service (and so the
 * supervisor) has ended.
 */
export async function run(args: readonly string[], stderr: (line: string) => void): Promise<number> {
  const parsed = runOptions(args);
  if (parsed.help) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  const { options, quiet, verbose } = parsed;
  const name = basename(options.command);
  const info = (line: string): void => {
    if (!quiet) stderr(line);
  };
  // fds this process inherited must not reach the service, as systemd's exec closes them.
  closeInheritedOnExec();
  // A subreaper, as systemd is: an upgraded main process's exit status is known (this process runs nothing else).
  const supervisor = new Supervisor({ ...options, subreaper: true });
  const type = options.type ?? 'simple';

  supervisor.on('listening', (listeners) => {
    listeners.forEach((listener, i) => info(describeListener(listener, 3 + i)));
    if (supervisor.notifySocket && verbose) info(`NOTIFY_SOCKET=${supervisor.notifySocket}`);
  });
  supervisor.on('waiting', () => info(options.accept ? `waiting for connections; one ${name} each` : `waiting for a connection to start ${name}`));
  supervisor.on('trigger', ({ name: fdName, index }) => info(`activity on fd ${3 + index} "${fdName}": starting ${name}`));
  supervisor.on('spawn', ({ pid, stored, connection }) => {
    if (connection && !verbose) return;
    info(`started ${name} (pid ${pid})${stored ? ` with ${stored} stored fd${stored === 1 ? '' : 's'}` : ''}${connection ? ' for a connection' : ''}`);
  });
  supervisor.on('notify', ({ pid, message }) => {
    const fields = message.fields;
    if (!verbose && fields.size === 1 && fields.get('WATCHDOG') === '1') return;
    const fds = message.fds.length ? ` (+${message.fds.length} fd${message.fds.length === 1 ? '' : 's'})` : '';
    info(`[${pid}] ${formatNotifyFields(message.text)}${fds}`);
  });
  supervisor.on('ready', ({ pid, startupMs }) => {
    if (type === 'notify') info(`${name} (pid ${pid}) is ready after ${formatDuration(startupMs)}`);
  });
  supervisor.on('mainpid', ({ from, to }) => info(`main pid is now ${to} (was ${from})`));
  supervisor.on('watchdog', ({ pid, timeoutMs }) =>
    stderr(`watchdog: ${name} (pid ${pid}) sent no WATCHDOG=1 for ${formatDuration(timeoutMs)}; sending SIGABRT`),
  );
  supervisor.on('start-timeout', ({ pid, timeoutMs }) =>
    stderr(`${name} (pid ${pid}) sent no READY=1 within ${formatDuration(timeoutMs)}; stopping it (--timeout-start)`),
  );
  supervisor.on('exit', (exit) => {
    if (exit.connection && exit.result === 'success' && !verbose) return;
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
    const next = exit.restartDelayMs ? `; restarting in ${formatDuration(exit.restartDelayMs)}` : '';
    const line = `${name} (pid ${exit.pid}) ${how} after ${formatDuration(exit.uptimeMs)}${next}`;
    // After a timeout or the watchdog, the line that said so was the error; this one is detail.
    if (exit.result === 'success' || exit.result === 'timeout' || exit.result === 'watchdog') info(line);
    else stderr(line);
  });
  supervisor.on('leftovers', ({ pid, groups, signal }) =>
    info(`${name} (pid ${pid}) is gone but left processes in process group ${groups.join(', ')}: sending ${signal} (KillMode=control-group)`),
  );
  supervisor.on('change', ({ path }) => info(`${path} changed: restarting ${name}`));
  supervisor.on('idle', () => info(`${name} is not running; waiting for a change to start it again`));
  supervisor.on('warning', (error) => stderr(`warning: ${error.message}`));

  let firstSignalAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (firstSignalAt === undefined) {
      firstSignalAt = Date.now();
      info(`${signal}: stopping ${name}`);
      void supervisor.stop();
    } else if (Date.now() - firstSignalAt > 1000) {
      // Only a second signal a person sent: npx and timeout(1) relay a Ctrl-C that also
      // reached us, and that one must not turn a clean stop into SIGKILL.
      stderr(`${signal} again: killing ${name}`);
      supervisor.kill('SIGKILL');
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    await supervisor.start();
    const result = await supervisor.done;
    if (result.error) stderr(result.error.message);
    return result.exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
}
