// npm run bench:upgrade: zero-downtime upgrades under a real systemd user manager and under
// `sd-activate run`, under a constant load (HTTP with a new connection per request and over
// keep-alive connections, UDP with sequence numbers), next to the negative control in the same
// harness: a service that binds its own socket, stopped and started.
//
// Prints, for each phase, every failure by kind and lost datagrams, the MainPID before and after
// each upgrade, and the latency of each switch next to the steady state of the same run (p99 and
// max). Ends with a verdict on each criterion, and exits 1 when one is not met.
//
//   BENCH_UPGRADES (10)   upgrades in a row, under systemd
//   BENCH_RATE (300)      requests per second with a new connection each; keep-alive gets a third, UDP the same
//   BENCH_INTERVAL (2500) ms between two upgrades
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../test/support/cli-bin.js';
import { controlWindows, describeSummary, failures, LoadRun, summarize, type LatencyFigures, type LoadResult, type LoadSummary } from '../test/support/load.js';
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

const UPGRADES = Number(process.env.BENCH_UPGRADES ?? 10);
const RATE = Number(process.env.BENCH_RATE ?? 300);
const INTERVAL = Number(process.env.BENCH_INTERVAL ?? 2500);
const RATES: Rates = { close: RATE, keepAlive: Math.round(RATE / 3), udp: RATE };

const verdicts: Array<[string, boolean]> = [];
const verdict = (what: string, ok: boolean): void => void verdicts.push([what, ok]);
const ms = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)} ms` : '-');
const indent = (text: string): string => text.replace(/^/gm, '    ');
const zero = (s: LoadSummary): boolean => Object.values(failures(s)).every((n) => n === 0);

/**
 * The latency lines of a run of upgrades: each switch against the steady state, all switches
 * together, and the control. Returns the ratio the verdict is on, all switch windows together: a
 * switch window holds about 160 requests, so its own p99 is its second-slowest request, and the
 * control shows steady-state windows of that size over 2x in a few percent of cases. Over ten
 * switches, a switch that changed nothing would fail an every-switch rule a quarter of the time.
 */
function latencyReport(summary: Finished, steps: readonly UpgradeStep[]): { pooled: number; worst: number } {
  const steady = summary.steady;
  console.log(`  steady state: ${steady.count} requests, p50 ${ms(steady.p50)}, p99 ${ms(steady.p99)}, max ${ms(steady.max)}`);
  let worst = 0;
  summary.switches.forEach((s: LatencyFigures, i) => {
    const step = steps[i]!;
    const ratio = s.p99 / steady.p99;
    worst = Math.max(worst, ratio);
    console.log(
      `  switch ${String(i + 1).padStart(2)}: MainPID ${step.from} -> ${step.to} in ${step.window.end - step.window.start} ms; ` +
        `${s.count} requests, p50 ${ms(s.p50)}, p99 ${ms(s.p99)} (${ratio.toFixed(2)}x steady), max ${ms(s.max)}`,
    );
  });
  const pooled = summary.pooled;
  console.log(
    `  all switches together: ${pooled.count} requests, p50 ${ms(pooled.p50)}, p99 ${ms(pooled.p99)} (${(pooled.p99 / steady.p99).toFixed(2)}x steady), max ${ms(pooled.max)}; ` +
      `worst single switch p99 ${worst.toFixed(2)}x`,
  );
  const control = controlWindows(summary.result, steps.map((s) => s.window));
  const over = control.filter((c) => c.p99 > 2 * steady.p99).length;
  const chance = control.length ? 1 - (1 - over / control.length) ** summary.switches.length : NaN;
  console.log(
    `  control: ${control.length} windows of the steady state as long as a switch's, none near one: p99 over 2x steady in ${over} ` +
      `(${control.length ? ((100 * over) / control.length).toFixed(0) : '-'}%); switches over 2x: ${summary.switches.filter((s) => s.p99 > 2 * steady.p99).length} of ${summary.switches.length} ` +
      `(at the control's rate, ${summary.switches.length} windows would have at least one over 2x with probability ${Number.isFinite(chance) ? chance.toFixed(2) : '-'})`,
  );
  return { pooled: pooled.p99 / steady.p99, worst };
}

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

/** A load run's summary, with what the client recorded (for the control windows). */
type Finished = LoadSummary & { result: LoadResult };

async function finish(load: LoadRun, steps: readonly UpgradeStep[] = []): Promise<Finished> {
  const result = await load.stop();
  const summary = summarize(result, steps.map((s) => s.window));
  console.log(indent(describeSummary(summary).split('\n').slice(0, 3).join('\n')));
  return { ...summary, result };
}

console.log(`zero-downtime upgrade (node ${process.version}; load: ${RATES.close} req/s new connections + ${RATES.keepAlive} req/s keep-alive + ${RATES.udp} datagrams/s, constant)`);

await withManager(async (manager, dir) => {
  const mainPid = async (unit: string): Promise<number> => Number(await manager.show(unit, 'MainPID'));

  // 1. Upgrades in a row, under systemd 252: ExecReload=kill -HUP $MAINPID.
  {
    console.log(`\n1. ${UPGRADES} upgrades in a row under systemd (systemctl reload), one every ${INTERVAL} ms`);
    const { unit, service } = await install(manager, dir, { mode: 'store' });
    const load = await LoadRun.start(loadPlan(service, RATES, 600_000));
    await sleep(3000);
    const steps: UpgradeStep[] = [];
    for (let i = 2; i <= UPGRADES + 1; i++) {
      service.deploy(`v${i}`);
      steps.push(await upgradeOnce(async () => void (await manager.systemctlOk('reload', unit)), () => mainPid(unit), 30_000, () => serviceOutput(service)));
      await sleep(INTERVAL);
    }
    const summary = await finish(load, steps);
    const pids = [steps[0]!.from, ...steps.map((s) => s.to)];
    const changed = new Set(pids).size === pids.length && steps.every((s, i) => i === 0 || s.from === steps[i - 1]!.to);
    console.log(`  MainPID: ${pids.join(' -> ')}`);
    const ratios = latencyReport(summary, steps);
    verdict(`systemd: ${UPGRADES} upgrades, no failed request and no lost datagram`, zero(summary));
    verdict('systemd: MainPID changed at each upgrade, and every process served', changed && pids.every((p) => (summary.pids.get(p) ?? 0) > 0));
    p99Verdict('systemd', ratios);
    await manager.systemctlOk('stop', unit);
  }

  // 1b. The same under systemd, triggered by a signal to the main process (what ExecReload= sends),
  // without the systemctl client and the manager's reload job in the window.
  {
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
  {
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
  {
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
  {
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
{
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

console.log('\nverdict');
for (const [what, ok] of verdicts) console.log(`  ${ok ? 'PASS' : 'FAIL'}  ${what}`);
process.exitCode = verdicts.every(([, ok]) => ok) ? 0 : 1;
