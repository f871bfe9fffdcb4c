/*
 * `sd-activate ls`: the fds this process inherited, as listenFds() sees them.
 */
import { listenFds, type ListenFd } from '../service/activation.js';
import { parseListenEnvironment } from '../core/env.js';
import { formatAddress, type FdInfo } from '../core/socket-info.js';
import { quote } from '../core/quote.js';
import { parseOptions } from './args.js';
import { UsageError } from './usage-error.js';

export const LS_HELP = `usage: sd-activate ls [--json]

List the fds this process inherited from a service manager (LISTEN_FDS,
LISTEN_FDNAMES, LISTEN_PID), as the library sees them: one line each with its
name, number, kind, family, type, address or path, and whether it listens.

Options:
      --json      print a JSON array instead of a table
  -h, --help      show this help

Examples:
  sd-activate run -l web=tcp:127.0.0.1:0 -l udp:5353 -- sd-activate ls
  systemd-socket-activate -l 8080 --fdname=web sd-activate ls --json
  ExecStartPre=/usr/bin/sd-activate ls       (in a .service unit)

Exit status: 0, also when nothing was inherited; 1 when LISTEN_* are malformed.
`;

/** One row of the listing: the facts of one fd, flat. */
export interface FdRow {
  name: string;
  fd: number;
  kind: FdInfo['kind'];
  family: string | null;
  type: string | null;
  /** The socket address, or the path of a FIFO, file, device or queue. */
  address: string | null;
  listening: boolean | null;
}

/** The row for one inherited fd. */
export function fdRow(handle: ListenFd): FdRow {
  const info = handle.info;
  if (info.kind === 'socket') {
    const family = info.family === 'ipv4' || info.family === 'ipv6' ? `${info.family}/${info.protocol}` : info.family;
    return { name: handle.name, fd: handle.fd, kind: info.kind, family, type: info.type, address: formatAddress(info.local), listening: info.listening };
  }
  return { name: handle.name, fd: handle.fd, kind: info.kind, family: null, type: null, address: info.path, listening: null };
}

/** Rows as an aligned table with a header, as `ss` and `systemctl list-sockets` print. */
export function formatTable(rows: readonly FdRow[]): string {
  const header = ['NAME', 'FD', 'KIND', 'FAMILY', 'TYPE', 'ADDRESS', 'LISTENING'];
  const cells = rows.map((r) => [
    r.name,
    String(r.fd),
    r.kind,
    r.family ?? '-',
    r.type ?? '-',
    r.address ?? '-',
    r.listening === null ? '-' : r.listening ? 'yes' : 'no',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [header, ...cells].map((line) => line.map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** Runs `sd-activate ls ARGS`; resolves with the exit status. */
export async function ls(args: readonly string[], stderr: (line: string) => void): Promise<number> {
  const { values, positionals } = parseOptions([...args], { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, 'ls');
  if (values.help) {
    process.stdout.write(LS_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${quote(positionals[0]!)}; see 'sd-activate ls --help'`);
  // Read before listenFds() unsets the variables, to say why nothing was inherited.
  const why = parseListenEnvironment({ ...process.env }, { pid: process.pid, pidfdId: () => null });
  const rows = listenFds().map(fdRow);
  if (values.json) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  } else if (rows.length === 0) {
    stderr(`no inherited fds: ${why.activated ? 'none passed' : why.reason}`);
  } else {
    process.stdout.write(formatTable(rows));
  }
  return 0;
}
