import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { workerPool } from '../../src/index.js';
import type { NotifyMessage } from '../../src/shared/notify-receiver.js';
import { outputOf } from '../support/activated-child.js';
import { httpGet, udpRequest } from '../support/network.js';
import { openReceiver } from '../support/notify.js';
import { alive, prepareService, sleep, UPGRADE_SERVICE, type ServiceDir } from '../support/upgrade-harness.js';
import { RUNTIME, spawnService } from '../support/runtime.js';

const POOL_PROBE = fileURLToPath(new URL('../fixtures/pool-probe.js', import.meta.url));

describe('workerPool(): workers serving the primary\'s sockets', function () {
  this.timeout(30_000);
  let dir: string;
  let receiver: ReturnType<typeof openReceiver> | undefined;
  const messages: NotifyMessage[] = [];
  const children: ChildProcess[] = [];
  /** Every worker seen, killed after each test whatever happened. */
  const started = new Set<number>();

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
  });

  afterEach(function () {
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const pid of started) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    started.clear();
    receiver?.close();
    receiver = undefined;
    messages.length = 0;
    rmSync(dir, { recursive: true, force: true });
  });

  async function waitFor<T>(value: () => T, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = value();
      if (v) return v as NonNullable<T>;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  }

  /** Worker pids by `ready` events, in order. */
  const workers = (service: ServiceDir): number[] => {
    const pids = service.events().filter((l) => l.startsWith('ready ') && l.endsWith(' worker')).map((l) => Number(l.split(' ')[1]));
    for (const pid of pids) started.add(pid);
    return pids;
  };

  /**
   * The first `count` workers, once each has written its `ready` event: a worker's READY=1 can
   * reach the primary (and so the primary's READY=1 reach us) before its event line is written.
   */
  const readyWorkers = (service: ServiceDir, count: number): Promise<number[]> =>
    waitFor(() => {
      const pids = workers(service);
      return pids.length >= count ? pids.slice(0, count) : undefined;
    }, `${count} workers to be ready`);

  async function startPool(size: number): Promise<{ service: ServiceDir; primary: number; exit: Promise<number | null> }> {
    const service = await prepareService(dir, { mode: 'store', workers: size, stopTimeoutMs: 2000 });
    receiver = openReceiver();
    receiver.receiver.on('message', (m) => {
      messages.push(m);
      for (const fd of m.fds) closeSync(fd);
    });
    const env: NodeJS.ProcessEnv = { ...process.env, NOTIFY_SOCKET: receiver.receiver.address };
    delete env.INVOCATION_ID;
    const child = spawnService(UPGRADE_SERVICE, [service.dir], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(child);
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(() => messages.some((m) => m.fields.get('READY') === '1'), 'READY=1 of the primary');
    return { service, primary: child.pid!, exit };
  }

  it('every worker is started as an activated service with the sockets; they serve, the primary never does', async function () {
    const { service, primary } = await startPool(3);
    const pids = await readyWorkers(service, 3);
    expect(workers(service)).to.have.length(3);
    // Only the primary speaks to the service manager: the workers' READY=1 went to the pool.
    expect(new Set(messages.map((m) => m.pid))).to.deep.equal(new Set([primary]));
    const served = new Map<number, number>();
    for (let i = 0; i < 60; i++) {
      const pid = Number((await httpGet({ host: '127.0.0.1', port: service.webPort }, '/')).body.split(' ')[0]);
      served.set(pid, (served.get(pid) ?? 0) + 1);
    }
    expect([...served.keys()].every((pid) => pids.includes(pid)), `served by ${[...served.keys()].join(' ')}`).to.equal(true);
    expect(served.size, 'more than one worker took connections').to.be.at.least(2);
    expect(pids).to.include(Number((await udpRequest('127.0.0.1', service.udpPort, '1')).split(' ')[1]));
    for (const pid of pids) {
      const report = JSON.parse(readFileSync(join(service.dir, `env-${pid}.json`), 'utf8')) as {
        started: Record<string, string | null>;
        ppid: number;
        inherited: unknown;
        left: string[];
      };
      expect(report.ppid).to.equal(primary);
      expect(report.started.LISTEN_PID).to.equal(String(pid));
      expect(report.started).to.deep.include({ LISTEN_FDS: '2', LISTEN_FDNAMES: 'web:udp', SD_ACTIVATE_UPGRADE_FD: null, SD_ACTIVATE_UPGRADE_PID: null });
      expect(report.inherited, 'the lifeline is not one of LISTEN_FDS').to.deep.equal([
        { fd: 3, name: 'web' },
        { fd: 4, name: 'udp' },
      ]);
      expect(report.left).to.deep.equal([]);
      expect(report.started.NOTIFY_SOCKET).to.match(/^@sd-activate\/pool\//);
      expect(['0', '1', '2']).to.include(report.started.SD_ACTIVATE_WORKER);
    }
  });

  it('a worker that dies is replaced; a worker told to upgrade alone refuses and serves on', async function () {
    const { service } = await startPool(2);
    const [first, second] = (await readyWorkers(service, 2)) as [number, number];
    process.kill(first, 'SIGKILL');
    const replacement = await waitFor(() => workers(service)[2], 'a replacement worker');
    expect([first, second]).to.not.include(replacement);
    expect(alive(second)).to.equal(true);
    process.kill(second, 'SIGHUP');
    await waitFor(() => service.events().includes(`failed-ERR_SD_UPGRADE_FAILED ${second} v1 worker`), 'the refusal');
    expect(alive(second), 'still running after SIGHUP').to.equal(true);
    expect(service.events().filter((l) => l.startsWith('start '))).to.have.length(4);
    const served = new Set<number>();
    for (let i = 0; i < 30; i++) served.add(Number((await httpGet({ host: '127.0.0.1', port: service.webPort }, '/')).body.split(' ')[0]));
    expect([...served].every((pid) => pid === second || pid === replacement)).to.equal(true);
  });

  it('workers stop by themselves when the primary is killed', async function () {
    const { service, primary, exit } = await startPool(2);
    const pids = await readyWorkers(service, 2);
    process.kill(primary, 'SIGKILL');
    await exit;
    await waitFor(() => pids.every((pid) => !alive(pid)), 'the workers to exit');
    expect(service.events()).to.include.members(pids.map((pid) => `exit ${pid} v1 worker`));
  });

  it('a stop of the primary stops every worker gracefully, then the primary', async function () {
    const { service, primary, exit } = await startPool(2);
    const pids = await readyWorkers(service, 2);
    process.kill(primary, 'SIGTERM');
    expect(await exit).to.equal(0);
    for (const pid of pids) expect(alive(pid)).to.equal(false);
    expect(service.events()).to.include.members(pids.map((pid) => `exit ${pid} v1 worker`));
    expect(messages.some((m) => m.fields.get('STOPPING') === '1' && m.pid === primary)).to.equal(true);
  });

  for (const [what, command, code] of [
    ['exits before READY=1', 'exit 4', 'ERR_SD_SERVICE_EXITED'],
    ['does not send READY=1 in time', 'exec sleep 30', 'ERR_SD_START_TIMEOUT'],
  ] as const) {
    it(`rejects when a worker ${what} (${code}), and leaves no worker behind`, async function () {
      const child = spawnService(POOL_PROBE, [command], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      const { stdout, stderr } = await outputOf(child);
      const report = JSON.parse(stdout.trim()) as { error?: { code: string; message: string } };
      expect(report.error?.code, stderr).to.equal(code);
      const pids = [...report.error!.message.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
      expect(pids.length).to.be.above(0);
      for (const pid of pids) expect(alive(pid)).to.equal(false);
    });
  }

  it('rejects when the process holds no sockets to share (ERR_SD_FD_NOT_FOUND; on Bun and Deno, ERR_SD_UNSUPPORTED_RUNTIME at once), and checks its options', async function () {
    const child = spawnService(POOL_PROBE, ['--no-sockets'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const { stdout } = await outputOf(child);
    const { error: refused } = JSON.parse(stdout.trim()) as { error: { code: string; message: string } };
    if (RUNTIME === 'node') expect(refused.code).to.equal('ERR_SD_FD_NOT_FOUND');
    else {
      expect(refused.code).to.equal('ERR_SD_UNSUPPORTED_RUNTIME');
      expect(refused.message).to.match(/^a worker pool does not work on (Bun|Deno)/);
    }
    for (const bad of [{ size: 0 }, { size: 1.5 }, { size: 2, readyTimeoutMs: -1 }, { size: 2, args: 'x' }, { size: 2, names: [1] }]) {
      let error: unknown;
      try {
        await workerPool(bad as never);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(bad)).to.be.instanceOf(TypeError);
    }
  });
});
