/*
 * A reload that reports its outcome, on systemd 252: `ExecReload=sd-activate reload $MAINPID`.
 * With `ExecReload=kill -HUP $MAINPID`, `systemctl reload` returns once the signal is sent, and a
 * deploy cannot tell an upgrade that took over from one that rolled back (only Type=notify-reload,
 * systemd 253+, waits). So the main process of an upgrader listens on an abstract unix socket
 * named after its pid; `sd-activate reload PID` connects, asks for an upgrade, and waits for its
 * result, which becomes its exit status, and so `systemctl reload`'s.
 *
 * An abstract socket has no file permissions: whoever connects is checked (SO_PEERCRED) and only
 * root or a process of this service (same user, same cgroup) is served.
 */
import type { Server, Socket } from 'node:net';
import { fs } from '../core/builtins.js';
import { connectionFd } from './node-private.js';
import type { Internals } from './internals.js';
import type { UpgradeResult } from './upgrade-types.js';

/** The abstract socket (as Node names it: a leading NUL) that the main process `pid` answers reloads on. */
export function reloadSocketName(pid: number): string {
  return `\0sd-activate/reload/${pid}`;
}

/** What the control socket needs of the upgrader. */
export interface ReloadTarget {
  upgrade(): Promise<UpgradeResult>;
  readonly isMain: boolean;
  once(event: 'upgraded', listener: () => void): unknown;
}

/** The cgroup a process is in, from /proc (its v2 path, or every v1 line): empty when unknown. */
function cgroupOf(pid: number | 'self'): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Why the peer of `socket` may not ask for an upgrade, or undefined when it may. */
function refusal(socket: Socket, core: Internals): string | undefined {
  let peer: { pid: number; uid: number };
  try {
    peer = core.native().peerCredentials(connectionFd(socket));
  } catch (error) {
    return `its credentials cannot be read: ${(error as Error).message}`;
  }
  if (peer.uid === 0) return undefined;
  if (peer.uid !== process.getuid!()) return `pid ${peer.pid} runs as uid ${peer.uid}, not as this service (uid ${process.getuid!()}) or root`;
  const own = cgroupOf('self');
  if (own !== '' && cgroupOf(peer.pid) !== own) return `pid ${peer.pid} is not a process of this service (another cgroup)`;
  return undefined;
}

/**
 * Answers `UPGRADE` on this process's reload socket with the upgrade's result: `OK <pid>` once the
 * new process is the main one, `FAILED <code> <reason>` otherwise, `DENIED <why>` to a peer that
 * may not ask. Stops listening at the hand-over. Never throws: a socket that cannot be opened (a
 * second upgrader in the process, another process with this pid's name) is reported through `warn`.
 */
export function listenForReloads(up: ReloadTarget, core: Internals, warn: (error: Error) => void): void {
  const { createServer } = process.getBuiltinModule('node:net') as typeof import('node:net');
  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.setEncoding('utf8');
    let text = '';
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (!text.includes('\n')) {
        if (text.length > 64) socket.destroy();
        return;
      }
      socket.removeAllListeners('data');
      if (text.slice(0, text.indexOf('\n')) !== 'UPGRADE') {
        socket.end('FAILED ERR_SD_UPGRADE_FAILED the request is UPGRADE\n');
        return;
      }
      const denied = refusal(socket, core);
      if (denied) {
        socket.end(`DENIED ${denied}\n`);
        return;
      }
      if (!up.isMain) {
        socket.end('FAILED ERR_SD_UPGRADE_FAILED this process is not the main process any more\n');
        return;
      }
      void up.upgrade().then((result) => {
        const line = result.upgraded ? `OK ${result.pid}` : `FAILED ${result.error?.code ?? 'ERR_SD_UPGRADE_FAILED'} ${(result.error?.message ?? 'the upgrade failed').split('\n')[0]}`;
        socket.end(`${line}\n`);
      });
    });
  });
  server.on('error', (error) => warn(new Error(`the reload socket of pid ${process.pid} cannot be opened: ${error.message}`, { cause: error })));
  server.listen(reloadSocketName(process.pid));
  server.unref();
  up.once('upgraded', () => server.close());
}
