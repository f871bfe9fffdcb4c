import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { freeTcpPort, freeUdpPort, httpGet, udpRequest } from '../support/network.js';
import { describeSummary, failures, LoadRun, summarize, type LoadSummary } from '../support/load.js';
import { SystemdManager } from '../support/systemd-manager.js';
import {
  alive,
  loadPlan,
  prepareService,
  serviceOutput,
  serviceUnit,
  sleep,
  upgradeOnce,
  type ServiceConfig,
  type ServiceDir,
  type UpgradeStep,
} from '../support/upgrade-harness.js';

/*
 * Zero-downtime upgrades under a real systemd 252 user manager, under a constant load: HTTP with
 * a new connection per request and over keep-alive connections, and UDP with sequence numbers
 * (test/support/load.ts, in a process of its own). The service is test/fixtures/upgrade-service.ts:
 * it opens its own sockets and keeps them in the fd store, and upgrades on `systemctl reload`.
 *
 * Latencies are printed, not asserted (a shared machine's timing is no test): `npm run
 * bench:upgrade` compares the switches with the steady state.
 */

const EXAMPLE = fileURLToPath(new URL('../../../examples/zero-downtime/', import.meta.url));

const ZERO = { refused: 0, reset: 0, timeout: 0, other: 0, lostDatagrams: 0 };
const RATES = { close: 150, keepAlive: 60, udp: 150 };

describe('zero-downtime upgrade under systemd (user manager), under load', function () {
  this.timeout(120_000);
  const id = randomBytes(4).toString('hex');
  let manager: SystemdManager | undefined;
  let dir: string;
  const loads = new Set<LoadRun>();

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    manager = await SystemdManager.start();
  });

  afterEach(function () {
    for (const load of loads) load.kill();
    loads.clear();
  });

  after(async function () {
    await manager?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function install(name: string, config: ServiceConfig, extra: string[] = []): Promise<{ unit: string; service: ServiceDir }> {
    const service = await prepareService(dir, config);
    const unit = `sdact-upgrade-${id}-${name}.service`;
    await manager!.installUnit(unit, serviceUnit(service, extra));
    return { unit, service };
  }

  async function mainPid(unit: string): Promise<number> {
    return Number(await manager!.show(unit, 'MainPID'));
  }

  async function props(unit: string, ...names: string[]): Promise<Record<string, string>> {
    const out = await manager!.systemctlOk('show', ...names.map((n) => `-p${n}`), unit);
    return Object.fromEntries(out.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
  }

  async function startLoad(service: ServiceDir): Promise<LoadRun> {
    const load = await LoadRun.start(loadPlan(service, RATES, 90_000));
    loads.add(load);
    return load;
  }

  const spans = new Map<LoadRun, number>();

  /** How many HTTP requests the plan's rates make for as long as the load ran. */
  function expectedRequests(load: LoadRun): number {
    return ((RATES.close + RATES.keepAlive) * spans.get(load)!) / 1000;
  }

  async function finish(load: LoadRun, steps: readonly UpgradeStep[] = []): Promise<LoadSummary> {
    const result = await load.stop();
    spans.set(load, result.stopped - result.started);
    const summary = summarize(result, steps.map((s) => s.window));
    loads.delete(load);
    console.log(`      ${describeSummary(summary).split('\n').join('\n      ')}`);
    return summary;
  }

  /** `systemctl reload` (ExecReload=kill -HUP $MAINPID), then until the old process is gone. */
  function reload(unit: string, service: ServiceDir): Promise<UpgradeStep> {
    return upgradeOnce(
      async () => void (await manager!.systemctlOk('reload', unit)),
      () => mainPid(unit),
      20_000,
      () => serviceOutput(service) + manager!.logExcerpt(20),
    );
  }

  it('five upgrades in a row (systemctl reload): no failed request, no lost datagram, a new MainPID each time', async function () {
    const m = manager!;
    const { unit, service } = await install('five', { mode: 'store' });
    await m.systemctlOk('start', unit);
    expect(await props(unit, 'ActiveState', 'StatusText', 'NFileDescriptorStore')).to.deep.equal({
      ActiveState: 'active',
      StatusText: 'Serving v1',
      NFileDescriptorStore: '2',
    });
    const first = await mainPid(unit);
    const load = await startLoad(service);
    await sleep(1500);
    const steps: UpgradeStep[] = [];
    for (let i = 2; i <= 6; i++) {
      service.deploy(`v${i}`);
      steps.push(await reload(unit, service));
      await sleep(1200);
    }
    const summary = await finish(load, steps);
    expect(failures(summary), serviceOutput(service)).to.deep.equal(ZERO);
    expect(summary.requests, 'the rate held for the whole run').to.be.at.least(0.95 * expectedRequests(load));
    // MainPID moved to a new process each time, and each of them served.
    const pids = [first, ...steps.map((s) => s.to)];
    expect(new Set(pids).size).to.equal(6);
    steps.forEach((step, i) => expect(step.from).to.equal(pids[i]));
    for (const pid of pids) {
      expect(summary.pids.get(pid), `HTTP answers from pid ${pid}`).to.be.above(0);
      expect(summary.udp.pids.get(pid), `UDP answers from pid ${pid}`).to.be.above(0);
    }
    expect(await props(unit, 'ActiveState', 'SubState', 'StatusText', 'NRestarts', 'NFileDescriptorStore')).to.deep.equal({
      ActiveState: 'active',
      SubState: 'running',
      StatusText: 'Serving v6',
      NRestarts: '0',
      NFileDescriptorStore: '2',
    });
    for (const pid of pids.slice(0, -1)) expect(alive(pid), `old process ${pid}`).to.equal(false);
    await m.systemctlOk('stop', unit);
  });

  it('a new version that crashes on start, or never gets ready, is rolled back: nothing fails, MainPID unchanged', async function () {
    const m = manager!;
    const { unit, service } = await install('rollback', { mode: 'store', readyTimeoutMs: 1500 });
    await m.systemctlOk('start', unit);
    const pid = await mainPid(unit);
    const load = await startLoad(service);
    await sleep(1000);

    // --no-block: on systemd 252 `systemctl reload` waits for the READY=1 that ends the upgrade
    // when RELOADING=1 arrives before the kill of ExecReload= has exited, and returns at once otherwise.
    service.deploy('v2', 'crash');
    await m.systemctlOk('reload', '--no-block', unit);
    const crashed = await m.waitFor(
      async () => /upgrade to pid (\d+) failed: .*exited with status 3/.exec(await m.show(unit, 'StatusText')),
      15_000,
      `the crashed upgrade to be rolled back${serviceOutput(service)}`,
    );
    expect(alive(Number(crashed[1]))).to.equal(false);
    expect(await props(unit, 'MainPID', 'ActiveState')).to.deep.equal({ MainPID: String(pid), ActiveState: 'active' });
    await sleep(1000);

    service.deploy('v3', 'hang');
    await m.systemctlOk('reload', '--no-block', unit);
    // Told while the new process starts; told again when it is given up.
    await m.waitFor(async () => (await m.show(unit, 'StatusText')) === 'Serving v1 (upgrading)', 1400, 'STATUS=Serving v1 (upgrading)');
    const hung = await m.waitFor(
      async () => /upgrade to pid (\d+) failed: .*not ready within 1500 ms/.exec(await m.show(unit, 'StatusText')),
      15_000,
      `the hung upgrade to be rolled back${serviceOutput(service)}`,
    );
    expect(alive(Number(hung[1]))).to.equal(false);
    expect(await props(unit, 'MainPID', 'ActiveState')).to.deep.equal({ MainPID: String(pid), ActiveState: 'active' });
    await sleep(1000);

    // And the next good version takes over as usual.
    service.deploy('v4');
    const step = await reload(unit, service);
    await sleep(1000);
    const summary = await finish(load, [step]);
    expect(failures(summary), serviceOutput(service)).to.deep.equal(ZERO);
    expect([...summary.pids.keys()].sort()).to.deep.equal([pid, step.to].sort());
    expect(await m.show(unit, 'StatusText')).to.equal('Serving v4');
    await m.systemctlOk('stop', unit);
  });

  it('Restart=always and the fd store: SIGKILL under load refuses no connection; systemctl restart fails nothing', async function () {
    const m = manager!;
    const { unit, service } = await install('restart', { mode: 'store' }, ['Restart=always', 'RestartSec=200ms']);
    await m.systemctlOk('start', unit);
    const first = await mainPid(unit);

    let load = await startLoad(service);
    await sleep(1000);
    await m.systemctlOk('kill', '--signal=SIGKILL', '--kill-who=main', unit);
    await m.waitFor(async () => (await props(unit, 'NRestarts', 'ActiveState')).NRestarts === '1', 15_000, `the restart${serviceOutput(service)}`);
    const second = await m.waitFor(async () => ((await m.show(unit, 'ActiveState')) === 'active' ? mainPid(unit) : 0), 15_000, 'active again');
    await sleep(1000);
    let summary = await finish(load);
    // Connections made while no process ran waited in the backlog of the stored socket; only
    // what the killed process had accepted was lost with it.
    expect(summary.refused, serviceOutput(service)).to.equal(0);
    expect(summary.timeout).to.equal(0);
    expect(summary.pids.get(second), 'the restarted process served').to.be.above(0);
    expect(second).to.not.equal(first);
    expect(await m.show(unit, 'NFileDescriptorStore')).to.equal('2');

    load = await startLoad(service);
    await sleep(1000);
    await m.systemctlOk('restart', unit);
    const third = await mainPid(unit);
    await sleep(1000);
    summary = await finish(load);
    expect(failures(summary), serviceOutput(service)).to.deep.equal(ZERO);
    expect(third).to.not.equal(second);
    expect(summary.pids.get(third)).to.be.above(0);
    await m.systemctlOk('stop', unit);
  });

  it('negative control: the same harness sees refused connections and lost datagrams when a self-binding service is restarted', async function () {
    const m = manager!;
    const { unit, service } = await install('self-bind', { mode: 'self-bind' });
    await m.systemctlOk('start', unit);
    const load = await startLoad(service);
    await sleep(1000);
    await m.systemctlOk('restart', unit);
    await sleep(1000);
    const summary = await finish(load);
    // The gap between the old process closing its port and the new one binding it.
    expect(summary.refused, 'refused connections').to.be.above(0);
    expect(summary.udp.lost, 'lost datagrams').to.be.above(0);
    expect(summary.ok).to.be.above(0);
    await m.systemctlOk('stop', unit);
  });

  it("a worker pool serves the primary's sockets from every worker, and is upgraded under load without a failure", async function () {
    const m = manager!;
    const { unit, service } = await install('pool', { mode: 'store', workers: 2 });
    await m.systemctlOk('start', unit);
    const primary = await mainPid(unit);
    const load = await startLoad(service);
    await sleep(1500);
    const steps: UpgradeStep[] = [];
    for (let i = 2; i <= 3; i++) {
      service.deploy(`v${i}`);
      steps.push(await reload(unit, service));
      await sleep(1500);
    }
    const summary = await finish(load, steps);
    expect(failures(summary), serviceOutput(service)).to.deep.equal(ZERO);
    const workers = service.events().filter((line) => line.startsWith('ready ') && line.endsWith(' worker'));
    const workerPids = new Set(workers.map((line) => Number(line.split(' ')[1])));
    // Two workers per generation, and they did the serving: never a primary.
    expect(workerPids.size).to.equal(6);
    const servers = [...summary.pids.keys()];
    expect(servers.every((pid) => workerPids.has(pid)), `served by ${servers.join(' ')}; workers ${[...workerPids].join(' ')}`).to.equal(true);
    expect(servers.length).to.be.at.least(5);
    for (const pid of [primary, ...steps.map((s) => s.to)]) expect(summary.pids.has(pid)).to.equal(false);
    expect(new Set([primary, ...steps.map((s) => s.to)]).size).to.equal(3);
    await m.systemctlOk('stop', unit);
  });

  for (const workers of [0, 2]) {
    it(`examples/zero-downtime, its unit as written${workers ? ` with WORKERS=${workers}` : ''}: serves, upgrades on reload, restarts from the fd store`, async function () {
      const m = manager!;
      const example = mkdtempSync(join(dir, 'example-'));
      const versionFile = join(example, 'VERSION');
      writeFileSync(versionFile, 'v1\n');
      const [http, udp] = [await freeTcpPort(), await freeUdpPort()];
      const unitText = readFileSync(join(EXAMPLE, 'zero-downtime.service'), 'utf8')
        .replace('/usr/bin/node', process.execPath)
        .replace('/opt/zero-downtime/server.js', join(EXAMPLE, 'server.js'))
        .replace('Environment=HTTP_PORT=8090 UDP_PORT=8090', `Environment=HTTP_PORT=${http} UDP_PORT=${udp} VERSION_FILE=${versionFile} WORKERS=${workers}`)
        .replace('[Service]', `[Service]\nStandardOutput=append:${join(example, 'output.log')}\nStandardError=inherit`);
      expect(unitText).to.include(join(EXAMPLE, 'server.js'));
      const unit = `sdact-upgrade-${id}-example-${workers}.service`;
      await m.installUnit(unit, unitText);
      await m.systemctlOk('start', unit);
      const get = async (): Promise<string[]> => (await httpGet({ host: '127.0.0.1', port: http }, '/')).body.trim().split(' ');
      const first = await mainPid(unit);
      expect(await m.show(unit, 'StatusText')).to.equal(`Serving v1${workers ? ` with ${workers} workers` : ''}`);
      expect(await m.show(unit, 'NFileDescriptorStore')).to.equal('2');
      expect((await get())[0]).to.equal('v1');
      writeFileSync(versionFile, 'v2\n');
      const output = (): string => `\n--- output:\n${readFileSync(join(example, 'output.log'), 'utf8')}`;
      const step = await upgradeOnce(async () => void (await m.systemctlOk('reload', unit)), () => mainPid(unit), 20_000, output);
      expect(step.from).to.equal(first);
      const [version, pid] = await get();
      expect(version).to.equal('v2');
      if (workers === 0) expect(Number(pid)).to.equal(step.to);
      else expect(Number(pid)).to.not.equal(step.to);
      expect((await udpRequest('127.0.0.1', udp, 'ping')).split(' ').slice(0, 2)).to.deep.equal(['ping', 'v2']);
      await m.systemctlOk('kill', '--signal=SIGKILL', '--kill-who=main', unit);
      await m.waitFor(async () => (await props(unit, 'NRestarts', 'ActiveState')).NRestarts === '1', 15_000, 'the restart');
      await m.waitFor(async () => (await m.show(unit, 'ActiveState')) === 'active', 15_000, 'active again');
      expect((await get())[0]).to.equal('v2');
      expect(await m.show(unit, 'NFileDescriptorStore')).to.equal('2');
      await m.systemctlOk('stop', unit);
    });
  }
});
