// npm run bench: listenFds() on 1, 64 and 1000 inherited fds (first call, addon load included),
// next to libsystemd's sd_listen_fds_with_names() + sd_is_socket() + getsockname() on the same fds.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeFd, openSocket } from '../src/shared/open-socket.js';
import { outputOf, spawnActivated } from '../test/support/activated-child.js';
import { fmt, summary } from './support/stats.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const source = (path: string): string => fileURLToPath(new URL(`../../bench/${path}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sd-activate-bench-'));
const anchor = join(dir, 'listen-fds-anchor');
execFileSync('cc', ['-O2', '-o', anchor, source('support/listen-fds-anchor.c'), '-lsystemd']);

/** What the program printed: milliseconds, one or more figures. */
async function time(command: string, args: string[], fds: number[]): Promise<number[]> {
  const child = spawnActivated({ fds, names: fds.map((_, i) => `s${i}`), command, args });
  const { code, stdout, stderr } = await outputOf(child);
  if (code !== 0) throw new Error(`${command} exited ${code}: ${stderr}`);
  return stdout.trim().split(/\s+/).map(Number);
}

try {
  console.log(`listenFds() on inherited TCP listening sockets (${ROUNDS} rounds each, medians)`);
  for (const count of [1, 64, 1000]) {
    const fds = Array.from({ length: count }, () =>
      openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 }, backlog: 1 }),
    );
    try {
      const node: number[] = [];
      const withInfo: number[] = [];
      const c: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const [call, all] = await time(process.execPath, [source('fixtures/time-listen-fds.js'), String(count)], fds);
        node.push(call!);
        withInfo.push(all!);
        c.push((await time(anchor, [String(count)], fds))[0]!);
      }
      const n = summary(node);
      const w = summary(withInfo);
      const a = summary(c);
      console.log(
        `  ${String(count).padStart(4)} fds: listenFds() ${fmt(n.median, 3)} (reading every info too: ${fmt(w.median, 3)})   libsystemd in C ${fmt(a.median, 3)}` +
          (count === 1000 ? `   (budget 20 ms: ${n.median < 20 ? 'within' : 'OVER'}${w.median < 20 ? ', with every info read too' : ''})` : ''),
      );
    } finally {
      for (const fd of fds) closeFd(fd);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
