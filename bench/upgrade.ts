// npm run bench:upgrade: zero-downtime upgrades under a real systemd user manager and under
// `sd-activate run`, under a constant load (HTTP with a new connection per request and over
// keep-alive connections, UDP with sequence numbers), next to the negative control in the same
// harness: a service that binds its own socket, stopped and started.
//
// Established connections: long-lived clients (raw TCP lines, HTTP keep-alive) on the service
// across the upgrades, their connections handed over, beside the anchor of the same run: the same
// clients when the new version takes no connection (the drain). Then the hand-over of N idle
// connections beside accepting them, and the memory and fds of the new process over many upgrades.
//
// Prints, for each phase, every failure by kind and lost datagrams, the MainPID before and after
// each upgrade, and the latency of each switch next to the steady state of the same run (p99 and
// max). Ends with a verdict on each criterion, and exits 1 when one is not met: no failed request,
// no lost datagram, no long-lived connection closed, no message lost or answered twice. Times
// are printed beside their anchors, not judged (but the existing p99 rule of the HTTP load).
//
//   BENCH_UPGRADES (10)              upgrades in a row, under systemd
//   BENCH_RATE (300)                 requests per second with a new connection each; keep-alive gets a third, UDP the same
//   BENCH_INTERVAL (2500)            ms between two upgrades
//   BENCH_LINES (200)                long-lived raw TCP clients
//   BENCH_KEEPALIVE (50)             long-lived HTTP keep-alive clients
//   BENCH_WS (200)                   long-lived WebSocket clients (ws), handed over by sd-activate/ws
//   BENCH_MESSAGE_INTERVAL (100)     ms between two messages of a long-lived client
//   BENCH_ANCHOR_UPGRADES (5)        upgrades of the anchor (the drain)
//   BENCH_HANDOVER_SIZES (1000,10000) idle connections handed over
//   BENCH_HANDOVER_ROUNDS (3)        rounds of each size
//   BENCH_GENERATIONS (50)           upgrades under sd-activate run for the memory and fd count
//   BENCH_ONLY (all)                 phases to run, e.g. 1,1a,6,7
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../test/support/cli-bin.js';
import { describeSummary, failures, LoadRun, summarize, type LoadSummary } from '../test/support/load.js';
import { SystemdManager } from '../test/support/systemd-manager.js';
import {
  alive,
  loadPlan,
  prepareService,
  serviceOutput,
  serviceUnit,
  sleep,
  UPGRADE_SERVICE,
  upgradeOnce,
  type Rates,
  type ServiceConfig,
  type ServiceDir,
  type UpgradeStep,
} from '../test/support/upgrade-harness.js';
import { latencyReport, ms, type Finished } from './support/latency.js';
import { generations, generationsReport } from './support/generations.js';
import { handoverReport, round, type Round } from './support/handover-round.js';
import { longLivedReport, LongLivedRun, type LongLivedFigures } from './support/long-lived-run.js';

const UPGRADES = Number(process.env.BENCH_UPGRADES ?? 10);
const RATE = Number(process.env.BENCH_RATE ?? 300);
const INTERVAL = Number(process.env.BENCH_INTERVAL ?? 2500);
const RATES: Rates = { close: RATE, keepAlive: Math.round(RATE / 3), udp: RATE };
const ANCHOR_UPGRADES = Number(process.env.BENCH_ANCHOR_UPGRADES ?? 5);
const LONG_LIVED = {
  lines: Number(process.env.BENCH_LINES ?? 200),
  keepAlive: Number(process.env.BENCH_KEEPALIVE ?? 50),
  ws: Number(process.env.BENCH_WS ?? 200),
  intervalMs: Number(process.env.BENCH_MESSAGE_INTERVAL ?? 100),
};
const GENERATIONS = Number(process.env.BENCH_GENERATIONS ?? 50);
const HANDOVER_SIZES = (process.env.BENCH_HANDOVER_SIZES ?? '1000,10000').split(',').filter(Boolean).map(Number);
const HANDOVER_ROUNDS = Number(process.env.BENCH_HANDOVER_ROUNDS ?? 3);
const ONLY = process.env.BENCH_ONLY?.split(',');
/** Whether a phase runs (all, without BENCH_ONLY). */
const phase = (name: string): boolean => !ONLY || ONLY.includes(name);

const verdicts: Array<[string, boolean]> = [];
const verdict = (what: string, ok: boolean): void => void verdicts.push([what, ok]);
const indent = (text: string): string => text.replace(/^/gm, '    ');
const zero = (s: LoadSummary): boolean => Object.values(failures(s)).every((n) => n === 0);

/** The verdict line on the switches' p99. */
const p99Verdict = (label: string, ratios: { pooled: number; worst: number }): void =>
  verdict(`${label}: p99 of the switches (all switch windows together) within 2x the steady-state p99 (${ratios.pooled.toFixed(2)}x; worst single switch ${ratios.worst.toFixed(2)}x)`, ratios.pooled <= 2);

async function withManager<T>(work: (manager: SystemdManager, dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
  const manager = await SystemdManager.start();
  try {
    return await work(manager, dir);
  } finally {
    await manager.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

let unitCount = 0;
async function install(manager: SystemdManager, dir: string, config: ServiceConfig, extra: string[] = []): Promise<{ unit: string; service: ServiceDir }> {
  const service = await prepareService(dir, config);
  const unit = `sdact-bench-upgrade-${process.pid}-${++unitCount}.service`;
  await manager.installUnit(unit, serviceUnit(service, extra));
  await manager.systemctlOk('start', unit);
  return { unit, service };
}

async function finish(load: LoadRun, steps: readonly UpgradeStep[] = []): Promise<Finished> {
  const result = await load.stop();
  const summary = summarize(result, steps.map((s) => s.window));
  console.log(indent(describeSummary(summary).split('\n').slice(0, 3).join('\n')));
  return { ...summary, result };
}

console.log(`zero-downtime upgrade (node ${process.version}, ${new Date().toISOString()}, load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores; load: ${RATES.close} req/s new connections + ${RATES.keepAlive} req/s keep-alive + ${RATES.udp} datagrams/s, constant)`);

await withManager(async (manager, dir) => {
  const mainPid = async (unit: string): Promise<number> => Number(await manager.show(unit, 'MainPID'));

  // 1. Upgrades in a row, under systemd 252: ExecReload=kill -HUP $MAINPID, with long-lived
  // clients whose connections pass to each new process; 1a. the anchor: the same without the
  // hand-over (each new version takes no connection, as one without it would), today's drain.
  const figures: Partial<Record<'handover' | 'drain', { upgrades: number; clients: LongLivedFigures }>> = {};
  for (const handover of [true, false]) {
    const count = handover ? UPGRADES : ANCHOR_UPGRADES;
    if (!phase(handover ? '1' : '1a') || count === 0) continue;
    console.log(
      handover
        ? `\n1. ${count} upgrades in a row under systemd (systemctl reload), one every ${INTERVAL} ms; ${LONG_LIVED.lines} raw TCP, ${LONG_LIVED.ws} WebSocket and ${LONG_LIVED.keepAlive} HTTP keep-alive clients, a message every ${LONG_LIVED.intervalMs} ms each, their connections handed over`
        : `\n1a. anchor: ${count} upgrades the same way, the new version taking no connection (today's drain: stopTimeoutMs 5 s); the same clients, which reconnect`,
    );
    const { unit, service } = await install(manager, dir, { mode: 'store', lines: true, ws: 'plain' });
    const load = await LoadRun.start(loadPlan(service, RATES, 600_000));
    let clients: LongLivedRun | undefined;
    try {
      clients = await LongLivedRun.start({ ...LONG_LIVED, linesPort: service.linesPort, webPort: service.webPort, reconnect: !handover });
      await sleep(3000);
      const steps: UpgradeStep[] = [];
      for (let i = 2; i <= count + 1; i++) {
        service.deploy(`v${i}`, handover ? 'ok' : 'no-handover');
        steps.push(await upgradeOnce(async () => void (await manager.systemctlOk('reload', unit)), () => mainPid(unit), 30_000, () => serviceOutput(service)));
        await sleep(INTERVAL);
      }
      const [summary, result] = await Promise.all([finish(load, steps), clients.stop()]);
      const pids = [steps[0]!.from, ...steps.map((s) => s.to)];
      const changed = new Set(pids).size === pids.length && steps.every((s, i) => i === 0 || s.from === steps[i - 1]!.to);
      console.log(`  MainPID: ${pids.join(' -> ')}`);
      const ratios = latencyReport(summary, steps, 'requests', handover);
      const longLived = longLivedReport(result, steps);
      figures[handover ? 'handover' : 'drain'] = { upgrades: count, clients: longLived };
      const label = handover ? 'systemd' : 'anchor (drain)';
      verdict(`${label}: ${count} upgrades, no failed request and no lost datagram`, zero(summary));
      verdict(`${label}: MainPID changed at each upgrade, and every process served`, changed && pids.every((p) => (summary.pids.get(p) ?? 0) > 0));
      if (handover) {
        // A figure, not a verdict here: the switches now hand over the long-lived clients' connections too (phases 1b and 5 judge the load alone).
        console.log(`  HTTP load, p99 of the switches (all switch windows together): ${ratios.pooled.toFixed(2)}x the steady state (worst single switch ${ratios.worst.toFixed(2)}x), with ${LONG_LIVED.lines + LONG_LIVED.ws + LONG_LIVED.keepAlive} long-lived connections handed over at each`);
        verdict(`systemd: long-lived clients, no connection closed client-side (${longLived.closes})`, longLived.closes === 0);
        verdict(`systemd: long-lived clients, no message lost (${longLived.lost}) or answered twice (${longLived.twice})`, longLived.lost === 0 && longLived.twice === 0);
        verdict('systemd: long-lived clients, every one answered by the new process after each upgrade', longLived.byNew.every((n) => n === longLived.clients));
      } else {
        // The instrument sees a close when there is one.
        verdict(`anchor (drain): the bench sees its connections closed (${longLived.closes})`, longLived.closes > 0);
      }
    } finally {
      load.kill();
      clients?.kill();
    }
    await manager.systemctlOk('stop', unit);
  }
  if (figures.handover && figures.drain) {
    const per = (f: { upgrades: number; clients: LongLivedFigures }): string => (f.clients.closes / f.upgrades).toFixed(1);
    console.log(
      `\n  long-lived clients, per upgrade: connections closed client-side ${per(figures.handover)} with the hand-over, ${per(figures.drain)} draining (anchor); ` +
        `messages lost ${figures.handover.clients.lost} vs ${figures.drain.clients.lost} (over ${figures.handover.upgrades} and ${figures.drain.upgrades} upgrades)`,
    );
  }

  // 1b. The same under systemd, triggered by a signal to the main process (what ExecReload= sends),
  // without the systemctl client and the manager's reload job in the window.
  if (phase('1b')) {
    const count = Math.min(UPGRADES, 5);
    console.log(`\n1b. ${count} upgrades in a row under systemd, triggered by kill -HUP $MAINPID`);
    const { unit, service } = await install(manager, dir, { mode: 'store' });
    const load = await LoadRun.start(loadPlan(service, RATES, 600_000));
    await sleep(3000);
    const steps: UpgradeStep[] = [];
    for (let i = 2; i <= count + 1; i++) {
      service.deploy(`v${i}`);
      steps.push(
        await upgradeOnce(
          async () => {
            process.kill(await mainPid(unit), 'SIGHUP');
          },
          () => mainPid(unit),
          30_000,
          () => serviceOutput(service),
        ),
      );
      await sleep(INTERVAL);
    }
    const summary = await finish(load, steps);
    const pids = [steps[0]!.from, ...steps.map((s) => s.to)];
    console.log(`  MainPID: ${pids.join(' -> ')}`);
    const ratios = latencyReport(summary, steps);
    verdict(`systemd, signal: ${count} upgrades, no failed request and no lost datagram`, zero(summary));
    p99Verdict('systemd, signal', ratios);
    await manager.systemctlOk('stop', unit);
  }

  // 2. Rollback: a new version that crashes on start, then one that never gets ready.
  if (phase('2')) {
    console.log('\n2. rollback under systemd: a version that crashes on start, then one that never gets ready (ready timeout 2 s)');
    const { unit, service } = await install(manager, dir, { mode: 'store', readyTimeoutMs: 2000 });
    const pid = await mainPid(unit);
    const load = await LoadRun.start(loadPlan(service, RATES, 600_000));
    await sleep(1500);
    for (const behavior of ['crash', 'hang'] as const) {
      service.deploy(`v-${behavior}`, behavior);
      await manager.systemctlOk('reload', '--no-block', unit);
      await manager.waitFor(async () => /upgrade to pid \d+ failed/.test(await manager.show(unit, 'StatusText')), 20_000, `the ${behavior} rollback`);
      console.log(`  ${behavior}: ${await manager.show(unit, 'StatusText')}`);
      await sleep(1500);
      // The next attempt starts from a fresh status line.
      service.deploy('v1');
    }
    const summary = await finish(load);
    const unchanged = (await mainPid(unit)) === pid;
    console.log(`  MainPID: ${pid} before, ${await mainPid(unit)} after`);
    verdict('rollback: no failed request, no lost datagram', zero(summary));
    verdict('rollback: MainPID unchanged', unchanged);
    await manager.systemctlOk('stop', unit);
  }

  // 3. SIGKILL with Restart=always and the fd store; then `systemctl restart`.
  if (phase('3')) {
    console.log('\n3. SIGKILL of the main process under load, Restart=always, RestartSec=100ms, sockets in the fd store');
    const { unit, service } = await install(manager, dir, { mode: 'store' }, ['Restart=always', 'RestartSec=100ms']);
    let load = await LoadRun.start(loadPlan(service, RATES, 600_000));
    await sleep(2000);
    const before = await mainPid(unit);
    await manager.systemctlOk('kill', '--signal=SIGKILL', '--kill-who=main', unit);
    await manager.waitFor(async () => (await manager.show(unit, 'ActiveState')) === 'active' && (await mainPid(unit)) !== before, 20_000, 'the restart');
    await sleep(2000);
    let summary = await finish(load);
    console.log(`  gap: p99 ${ms(summary.steady.p99)}, max ${ms(summary.steady.max)} (requests waited in the backlog)`);
    verdict('SIGKILL + Restart=always: no refused connection', summary.refused === 0 && summary.timeout === 0);
    console.log('  systemctl restart under load:');
    load = await LoadRun.start(loadPlan(service, RATES, 600_000));
    await sleep(2000);
    await manager.systemctlOk('restart', unit);
    await sleep(2000);
    summary = await finish(load);
    verdict('systemctl restart with the fd store: no failed request, no lost datagram', zero(summary));
    await manager.systemctlOk('stop', unit);
  }

  // 4. The negative control: a service that binds its own socket, restarted.
  if (phase('4')) {
    console.log('\n4. negative control: a service that binds its own port, systemctl restart under the same load');
    const { unit, service } = await install(manager, dir, { mode: 'self-bind' });
    const load = await LoadRun.start(loadPlan(service, RATES, 600_000));
    await sleep(2000);
    await manager.systemctlOk('restart', unit);
    await sleep(2000);
    const summary = await finish(load);
    verdict(`negative control: failures seen (refused ${summary.refused}, lost datagrams ${summary.udp.lost})`, summary.refused > 0 && summary.udp.lost > 0);
    await manager.systemctlOk('stop', unit);
  }
});

// 5. The same upgrades under `sd-activate run`.
if (phase('5')) {
  const count = Math.min(UPGRADES, 5);
  console.log(`\n5. ${count} upgrades in a row under sd-activate run (SIGHUP to the main process)`);
  const dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
  const service = await prepareService(dir, { mode: 'store' });
  let stderr = '';
  const cli: ChildProcess = spawn(
    process.execPath,
    [CLI, 'run', '-l', `web=tcp:127.0.0.1:${service.webPort}`, '-l', `udp=udp:127.0.0.1:${service.udpPort}`, '--type', 'notify', '--', process.execPath, UPGRADE_SERVICE, service.dir],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  cli.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const pids: number[] = [];
  const mainPid = async (): Promise<number> => Number([...stderr.matchAll(/main pid is now (\d+)/g)].pop()?.[1] ?? /started \S+ \(pid (\d+)\)/.exec(stderr)?.[1] ?? 0);
  try {
    while (!/is ready after/.test(stderr)) {
      if (cli.exitCode !== null) throw new Error(`sd-activate run exited: ${stderr}`);
      await sleep(20);
    }
    const load = await LoadRun.start(loadPlan(service, RATES, 600_000));
    await sleep(3000);
    const steps: UpgradeStep[] = [];
    for (let i = 2; i <= count + 1; i++) {
      service.deploy(`v${i}`);
      steps.push(
        await upgradeOnce(
          async () => {
            process.kill(await mainPid(), 'SIGHUP');
          },
          mainPid,
          30_000,
        ),
      );
      pids.push(steps[steps.length - 1]!.from, steps[steps.length - 1]!.to);
      await sleep(INTERVAL);
    }
    const summary = await finish(load, steps);
    const chain = [steps[0]!.from, ...steps.map((s) => s.to)];
    console.log(`  main pid: ${chain.join(' -> ')}`);
    const ratios = latencyReport(summary, steps);
    verdict(`sd-activate run: ${count} upgrades, no failed request and no lost datagram`, zero(summary));
    verdict('sd-activate run: the main pid changed at each upgrade', new Set(chain).size === chain.length && chain.slice(0, -1).every((p) => !alive(p)));
    p99Verdict('sd-activate run', ratios);
  } finally {
    cli.kill('SIGINT');
    await Promise.race([new Promise((resolve) => cli.once('close', resolve)), sleep(10_000)]);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

// 6. The hand-over of idle connections alone (bench:handover's measure), beside its anchor.
if (phase('6')) {
  console.log(`\n6. hand-over of N idle TCP connections between two processes, ${HANDOVER_ROUNDS} rounds each; medians [p25, p75], beside the anchor: accepting them (load average ${loadavg()[0]!.toFixed(1)})`);
  for (const count of HANDOVER_SIZES) {
    const rounds: Round[] = [];
    for (let i = 0; i < HANDOVER_ROUNDS; i++) rounds.push(await round(count));
    verdict(`idle hand-over of ${count}: every connection answered by the new process, none saw a FIN or reset`, handoverReport(count, rounds).correct);
  }
}

// 7. Many upgrades under `sd-activate run`: memory and fds of the new process, first against last.
if (phase('7') && GENERATIONS > 0) {
  const clients = { lines: Math.min(LONG_LIVED.lines, 50), keepAlive: Math.min(LONG_LIVED.keepAlive, 10), ws: Math.min(LONG_LIVED.ws, 50) };
  console.log(`\n7. ${GENERATIONS} upgrades in a row under sd-activate run, ${clients.lines} raw TCP, ${clients.ws} WebSocket and ${clients.keepAlive} HTTP keep-alive clients handed over at each; each new process sampled 1.5 s after it took over`);
  const dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
  try {
    const run = await generations(dir, GENERATIONS, clients, 1500);
    const { rssRatio, fdGrowth } = generationsReport(run.samples);
    console.log(`  goal, no growth from the first new process to the last: fds ${fdGrowth === 0 ? 'met' : `NOT met (${fdGrowth > 0 ? '+' : ''}${fdGrowth})`}; memory ${rssRatio.toFixed(2)}x`);
    const longLived = longLivedReport(run.clients, run.steps, false);
    verdict(`sd-activate run, ${GENERATIONS} upgrades: no long-lived connection closed (${longLived.closes}), no message lost (${longLived.lost}) or answered twice (${longLived.twice})`, longLived.closes + longLived.lost + longLived.twice === 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')} (1, 5, 15 min) on ${cpus().length} cores`);
console.log('\nverdict');
for (const [what, ok] of verdicts) console.log(`  ${ok ? 'PASS' : 'FAIL'}  ${what}`);
process.exitCode = verdicts.every(([, ok]) => ok) ? 0 : 1;
