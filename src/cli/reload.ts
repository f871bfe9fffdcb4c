/*
 * `sd-activate reload PID`: asks the main process PID of an upgrader() service for an upgrade, and
 * waits for its outcome, for `ExecReload=`: `systemctl reload` then fails when the new version
 * did not take over, as it does with Type=notify-reload on systemd 253+.
 */
import { connect } from 'node:net';
import { reloadSocketName } from '../service/upgrade-control.js';
import { quote } from '../core/quote.js';
import { parseOptions } from './args.js';
import { parseTimespan } from '../core/timespan.js';
import { UsageError } from './usage-error.js';

export const RELOAD_HELP = `usage: sd-activate reload [--timeout SEC] PID

Upgrade the service whose main process is PID (a program that calls upgrader())
and wait for the outcome: exit 0 once the new version is the main process, 1
with the reason when it was rolled back (it crashed, it was not ready in time).
For ExecReload=, where systemctl reload then reports the outcome on systemd
252 (ExecReload=kill -HUP $MAINPID returns at once).

Only root, or a process of the same service (same user, same cgroup), may ask.

Options:
      --timeout SEC   give up waiting after SEC (default: no limit)
  -h, --help          show this help

Examples:
  ExecReload=/usr/bin/sd-activate reload $MAINPID      (in a .service unit)
  sd-activate reload "$(systemctl show -P MainPID app.service)"

Exit status: 0 when the new version took over; 1 when the upgrade failed or was
refused, or nothing answers at PID; 2 for a bad command line.
`;

/** Runs `sd-activate reload ARGS`; resolves with the exit status. */
export async function reload(args: readonly string[], stderr: (line: string) => void): Promise<number> {
  const { values, positionals } = parseOptions([...args], { timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, 'reload');
  if (values.help) {
    process.stdout.write(RELOAD_HELP);
    return 0;
  }
  const [pidText, extra] = positionals;
  if (pidText === undefined || extra !== undefined || !/^[1-9]\d{0,9}$/.test(pidText)) {
    throw new UsageError(`reload takes one PID (the service's MainPID), got ${positionals.length ? quote(positionals.join(' ')) : 'none'}`);
  }
  const timeoutMs = values.timeout === undefined ? Infinity : parseTimespan(values.timeout as string);
  if (timeoutMs === undefined) throw new UsageError(`--timeout takes a time span like 30 or 2min, got ${quote(String(values.timeout))}`);
  const pid = Number(pidText);
  const reply = await new Promise<string>((resolve) => {
    const socket = connect(reloadSocketName(pid));
    let text = '';
    const timer = Number.isFinite(timeoutMs) ? setTimeout(() => {
      socket.destroy();
      resolve(`TIMEOUT no outcome within ${values.timeout}`);
    }, timeoutMs) : undefined;
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('UPGRADE\n'));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code === 'ECONNREFUSED' ? `NONE pid ${pid} answers no reload: is it the main process of a service that calls upgrader()?` : `NONE ${error.message}`);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text.trim() || `NONE pid ${pid} closed the connection without an outcome`);
    });
  });
  const [status, ...rest] = reply.split(' ');
  if (status === 'OK') {
    stderr(`upgraded: the main process is now pid ${rest[0]} (was ${pid})`);
    return 0;
  }
  stderr(status === 'FAILED' ? `upgrade failed (${rest[0]}): ${rest.slice(1).join(' ')}` : status === 'DENIED' ? `refused: ${rest.join(' ')}` : rest.join(' '));
  return 1;
}
