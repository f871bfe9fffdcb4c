import { readdirSync, readFileSync } from 'node:fs';
import { underRun } from '../../test/support/managed-service.js';
import { prepareService, sleep, upgradeOnce, type UpgradeStep } from '../../test/support/upgrade-harness.js';
import { summary } from './stats.js';
import { LongLivedRun, type LongLivedResult } from './long-lived-run.js';

/*
 * Many upgrades in a row under `sd-activate run`, with long-lived clients whose connections pass
 * at each one: the resident memory and the open fds of each new process, some time after it took
 * over, so that one that inherits more than its predecessor had (a leaked fd, a growing
 * environment or state) shows as growth from the first generation to the last.
 */

/** One generation: its pid, its resident set (KiB) and its open fds, sampled `settleMs` after it took over. */
export interface Generation {
  pid: number;
  rssKiB: number;
  fds: number;
}

function sample(pid: number): Generation {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { pid, rssKiB: Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN), fds: readdirSync(`/proc/${pid}/fd`).length };
}

/**
 * Runs `upgrades` upgrades of the upgrade service under `sd-activate run` with `clients` on it
 * (line, HTTP keep-alive and WebSocket clients), and samples each new process `settleMs` after it
 * took over. Resolves with the samples (the first process's included) and what the clients saw.
 */
export async function generations(dir: string, upgrades: number, clients: { lines: number; keepAlive: number; ws: number }, settleMs: number): Promise<{ samples: Generation[]; steps: UpgradeStep[]; clients: LongLivedResult }> {
  const service = await prepareService(dir, { mode: 'store', lines: true, ws: 'plain' });
  const managed = await underRun(service, {
    name: 'generations',
    listen: [`web=tcp:127.0.0.1:${service.webPort}`, `udp=udp:127.0.0.1:${service.udpPort}`, `lines=tcp:127.0.0.1:${service.linesPort}`],
  });
  let load: LongLivedRun | undefined;
  try {
    load = await LongLivedRun.start({ linesPort: service.linesPort, webPort: service.webPort, ...clients, intervalMs: 100, reconnect: false });
    await sleep(settleMs);
    const samples = [sample(await managed.mainPid())];
    const steps: UpgradeStep[] = [];
    for (let i = 2; i <= upgrades + 1; i++) {
      service.deploy(`v${i}`);
      steps.push(await upgradeOnce(() => managed.reload(), () => managed.mainPid(), 30_000, () => managed.explain()));
      await sleep(settleMs);
      samples.push(sample(steps[steps.length - 1]!.to));
    }
    return { samples, steps, clients: await load.stop() };
  } finally {
    load?.kill();
    await managed.stop();
  }
}

/** Prints the samples: the first new process against the last ones. */
export function generationsReport(samples: readonly Generation[]): { rssRatio: number; fdGrowth: number } {
  const [, first] = samples;
  const last = samples[samples.length - 1]!;
  const tail = samples.slice(-5);
  const head = samples.slice(1, 6);
  const rss = (g: readonly Generation[]): number => summary(g.map((s) => s.rssKiB)).median;
  const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;
  console.log(
    `  resident memory: first process ${mib(samples[0]!.rssKiB)}; new process after upgrade 1 ${mib(first!.rssKiB)}, after upgrade ${samples.length - 1} ${mib(last.rssKiB)} ` +
      `(median of upgrades 1-5 ${mib(rss(head))}, of the last 5 ${mib(rss(tail))}: ${(rss(tail) / rss(head)).toFixed(2)}x; each, MiB: ${samples.map((s) => (s.rssKiB / 1024).toFixed(1)).join(' ')})`,
  );
  console.log(`  open fds: first process ${samples[0]!.fds}; after upgrade 1 ${first!.fds}, after upgrade ${samples.length - 1} ${last.fds} (each: ${samples.map((s) => s.fds).join(' ')})`);
  return { rssRatio: rss(tail) / rss(head), fdGrowth: last.fds - first!.fds };
}
