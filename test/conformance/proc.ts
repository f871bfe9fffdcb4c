import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/*
 * What a running process observably has, read from /proc: the same reading for a process under
 * systemd and one under `sd-activate run`.
 */

/** One open fd: its number and what /proc says it is ("socket", "pipe", "anon_inode:[eventpoll]", a path). */
export interface OpenFd {
  fd: number;
  target: string;
}

/** socket:[123] and pipe:[456] name an inode that differs from run to run: the kind is what compares. */
function kindOf(link: string): string {
  const inode = /^(socket|pipe):\[\d+\]$/.exec(link);
  return inode ? inode[1]! : link;
}

/** The fds of `pid`, in order. */
export function openFdsOf(pid: number): OpenFd[] {
  const fds: OpenFd[] = [];
  for (const entry of readdirSync(`/proc/${pid}/fd`)) {
    try {
      fds.push({ fd: Number(entry), target: kindOf(readlinkSync(`/proc/${pid}/fd/${entry}`)) });
    } catch {
      // closed meanwhile
    }
  }
  return fds.sort((a, b) => a.fd - b.fd);
}

/** The environment `pid` was started with (/proc/PID/environ). */
export function environOf(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** The process state letter of `pid` (R, S, T for stopped, Z, ...), or undefined when it is gone. */
export function stateOf(pid: number): string | undefined {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** True while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  const state = stateOf(pid);
  return state !== undefined && state !== 'Z';
}

/** True when `pid` ignores signal number `signal` (SigIgn in /proc/PID/status). */
export function ignoresSignal(pid: number, signal: number): boolean {
  try {
    const mask = /^SigIgn:\s+([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return mask !== undefined && ((BigInt(`0x${mask}`) >> BigInt(signal - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** The program `pid` runs now (/proc/PID/exe), or undefined when it is gone: a manager's shell or fork has exec'd once it is the service's. */
export function programOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}
