import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { upgrader } from '../../src/index.js';
import { httpGet, udpRequest } from '../support/network.js';
import { alive, sleep, type ServiceConfig, type ServiceDir } from '../support/upgrade-harness.js';
import { get, LocalServices, responses, streamClient, waitFor, type Messages, type Started, type StreamClient } from '../support/upgrade-local.js';
import { RUNTIME } from '../support/runtime.js';

/*
 * upgrader() between real processes, with a NotifyReceiver standing in for systemd's notify
 * socket: the service of test/fixtures/upgrade-service.ts, the messages it sends, and who serves.
 * Under a real systemd and under load: test/e2e/upgrade.test.ts.
 */

describe('upgrader(): hand-over to a new process', function () {
  this.timeout(30_000);
  const local = new LocalServices();
  let messages: Messages | undefined;
  const pids = local.pids;

  beforeEach(() => local.setUp());
  afterEach(() => local.tearDown());

  async function start(config: ServiceConfig, env: Record<string, string | undefined> = {}): Promise<Started> {
    const started = await local.start(config, env);
    messages = local.messages;
    return started;
  }

  async function waitForValue<T>(value: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = value();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }

  /** The processes whose parent is `pid`, with their command names. */
  function childrenOf(pid: number): Array<{ pid: number; comm: string }> {
    const out: Array<{ pid: number; comm: string }> = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const close = stat.lastIndexOf(')');
        if (Number(stat.slice(close + 2).split(' ')[1]) === pid) out.push({ pid: Number(entry), comm: stat.slice(stat.indexOf('(') + 1, close) });
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  /** The process group of `pid`, from /proc. */
  function pgidOf(pid: number): number {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  }

  /** A keep-alive HTTP client on one connection, with what it got. */
  function keepAlive(service: ServiceDir): StreamClient & { get(path: string): void; bodies(): string[] } {
    const client = streamClient({ host: '127.0.0.1', port: service.webPort });
    return Object.assign(client, { get: (path: string) => client.write(get(path)), bodies: () => responses(client.text).map((r) => r.body) });
  }

  const servedBy = async (service: ServiceDir): Promise<number> => Number((await httpGet({ host: '127.0.0.1', port: service.webPort }, '/')).body.split(' ')[0]);
  const udpBy = async (service: ServiceDir): Promise<number> => Number((await udpRequest('127.0.0.1', service.udpPort, '7')).split(' ')[1]);
  const envOf = (service: ServiceDir, pid: number): Record<string, unknown> & { started: Record<string, string | null> } =>
    JSON.parse(readFileSync(join(service.dir, `env-${pid}.json`), 'utf8')) as Record<string, unknown> & { started: Record<string, string | null> };

  it('hands over on SIGHUP: the new process gets every socket by name, MAINPID= and READY=1 come from the old one, which then exits', async function () {
    const { service, exit, pid } = await start({ mode: 'store' });
    const m = messages!;
    const ready = await m.wait('READY=1', (x) => x.fields.get('READY') === '1');
    expect(ready.pid).to.equal(pid);
    expect(ready.fields.get('STATUS')).to.equal('Serving v1');
    // The sockets it opened went to the store first, by name.
    const stored = m.all.filter((x) => x.fields.get('FDSTORE') === '1').map((x) => [x.fields.get('FDNAME'), x.fds.length]);
    expect(stored).to.deep.equal([
      ['web', 1],
      ['udp', 1],
    ]);
    expect(await servedBy(service)).to.equal(pid);
    expect(await udpBy(service)).to.equal(pid);
    // The next version's process is started ahead of time: a shell of its own, waiting for "go".
    const launcher = await waitForValue(() => childrenOf(pid).find((c) => c.comm === 'sh'), 'the waiting launcher');
    pids.add(launcher.pid);

    service.deploy('v2');
    process.kill(pid, 'SIGHUP');
    const handover = await m.wait('MAINPID=', (x) => x.fields.has('MAINPID'));
    const next = Number(handover.fields.get('MAINPID'));
    pids.add(next);
    // The waiting launcher started it, and exited: the new process leads no group, it is in the launcher's.
    expect(pgidOf(next), 'started by the launcher waiting ahead of time').to.equal(launcher.pid);
    expect(handover.pid, 'sent by the old main process').to.equal(pid);
    expect(Object.fromEntries(handover.fields)).to.deep.equal({ MAINPID: String(next), READY: '1', STATUS: 'Serving v2' });
    const reloading = m.all.find((x) => x.fields.get('RELOADING') === '1')!;
    expect(reloading.pid).to.equal(pid);
    expect(Number(reloading.fields.get('MONOTONIC_USEC'))).to.be.above(0);
    expect(reloading.fields.get('STATUS')).to.equal('Serving v1 (upgrading)');
    expect(m.all.indexOf(reloading)).to.be.below(m.all.indexOf(handover));

    expect(await exit).to.equal(0);
    expect(await servedBy(service)).to.equal(next);
    expect(await udpBy(service)).to.equal(next);
    await waitFor(() => service.events().includes(`ready ${next} v2`), 'the new process ready');
    // Started as socket activation starts a service; the channel is one more fd, not one of LISTEN_FDS.
    const report = envOf(service, next);
    expect(report.started).to.deep.include({
      LISTEN_PID: String(next),
      LISTEN_FDS: '2',
      LISTEN_FDNAMES: 'web:udp',
      NOTIFY_SOCKET: m.address,
      SD_ACTIVATE_UPGRADE_FD: '5',
      SD_ACTIVATE_UPGRADE_PID: String(next),
      // The connection hand-over's socket, on Node (handover-sender.ts): none from Deno.
      SD_ACTIVATE_HANDOVER_FD: RUNTIME === 'node' ? '6' : null,
    });
    // Not the old process's child: adopted by the nearest subreaper, as the service manager must be
    // the one to see its exit once it is the main process.
    expect(report).to.deep.include({ previousPid: pid, isMain: true, removed: [], left: [] });
    expect(report.ppid).to.not.equal(pid);
    expect(report.inherited).to.deep.equal([
      { fd: 3, name: 'web' },
      { fd: 4, name: 'udp' },
    ]);
    await sleep(200);
    // Nothing more from the old process after the hand-over but the BARRIER=1 that waits for it to
    // be processed, and the inherited sockets were not stored again.
    expect(m.all.slice(m.all.indexOf(handover) + 1).filter((x) => x.pid === pid).map((x) => x.text)).to.deep.equal(['BARRIER=1']);
    expect(m.all.filter((x) => x.pid === next && x.fields.has('FDSTORE'))).to.deep.equal([]);
    expect(service.events()).to.include.members([`upgraded-to-${next} ${pid} v1`, `exit ${pid} v1`, `ready ${next} v2`]);
  });

  it('rolls back a new version that exits before READY=1, and one not ready in time: the old process serves on', async function () {
    const { service, pid } = await start({ mode: 'store', readyTimeoutMs: 700, stopTimeoutMs: 1000 });
    const m = messages!;
    await m.wait('READY=1', (x) => x.fields.get('READY') === '1');

    service.deploy('v2', 'crash');
    process.kill(pid, 'SIGHUP');
    const crashed = await m.wait('the rollback', (x) => /failed/.test(x.fields.get('STATUS') ?? ''));
    expect(crashed.pid).to.equal(pid);
    expect(crashed.fields.get('READY')).to.equal('1');
    const crashedPid = Number(/upgrade to pid (\d+) failed/.exec(crashed.fields.get('STATUS')!)![1]);
    expect(crashed.fields.get('STATUS')).to.equal(`Serving v1 (upgrade to pid ${crashedPid} failed: the new process (pid ${crashedPid}) ended before it was ready: it exited with status 3)`);
    // Told after the status: the event follows.
    await waitFor(() => service.events().includes(`failed-${crashedPid}-ERR_SD_SERVICE_EXITED ${pid} v1`), 'the failed event');
    expect(await servedBy(service)).to.equal(pid);

    service.deploy('v3', 'hang');
    const before = m.all.length;
    process.kill(pid, 'SIGHUP');
    const hung = await m.wait('the second rollback', (x) => m.all.indexOf(x) >= before && /failed/.test(x.fields.get('STATUS') ?? ''));
    const hungPid = Number(/upgrade to pid (\d+) failed/.exec(hung.fields.get('STATUS')!)![1]);
    pids.add(hungPid);
    expect(hung.fields.get('STATUS')).to.equal(`Serving v1 (upgrade to pid ${hungPid} failed: the new process (pid ${hungPid}) was not ready within 700 ms)`);
    expect(alive(hungPid), 'the process that never got ready was killed').to.equal(false);
    expect(m.all.some((x) => x.fields.has('MAINPID'))).to.equal(false);
    expect(await servedBy(service)).to.equal(pid);
    expect(await udpBy(service)).to.equal(pid);
  });

  it('sockets the new version opens itself are stored once it is the main process, not before', async function () {
    const { service, pid } = await start({ mode: 'store' });
    const m = messages!;
    await m.wait('READY=1', (x) => x.fields.get('READY') === '1');
    const config = JSON.parse(readFileSync(join(service.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(service.dir, 'config.json'), JSON.stringify({ ...config, extra: { address: '127.0.0.1', port: 0 } }));
    service.deploy('v2');
    process.kill(pid, 'SIGHUP');
    const stored = await m.wait('FDSTORE=1 FDNAME=extra', (x) => x.fields.get('FDNAME') === 'extra');
    const handover = m.all.find((x) => x.fields.has('MAINPID'))!;
    pids.add(Number(handover.fields.get('MAINPID')));
    expect(stored.pid).to.equal(Number(handover.fields.get('MAINPID')));
    expect(m.all.indexOf(stored), 'after MAINPID=').to.be.above(m.all.indexOf(handover));
    expect(stored.fds).to.have.length(1);
  });

  it('keep-alive connections stay open: idle, and with a request in flight, which the old process answers; then the new one serves them (Node) or they drain (Deno)', async function () {
    const { service, exit, pid } = await start({ mode: 'store' });
    const m = messages!;
    await m.wait('READY=1', (x) => x.fields.get('READY') === '1');
    // Two keep-alive connections to the old process (the only one listening): one idle between two
    // requests, one whose request is in flight at the upgrade.
    const idle = keepAlive(service);
    idle.get('/');
    await waitFor(() => idle.bodies().length === 1, 'the first answer');
    expect(idle.bodies()[0]).to.equal(`${pid} v1\n`);
    const busy = keepAlive(service);
    busy.get('/slow');
    await sleep(50);
    service.deploy('v2');
    process.kill(pid, 'SIGHUP');
    const handover = await m.wait('MAINPID=', (x) => x.fields.has('MAINPID'));
    const next = Number(handover.fields.get('MAINPID'));
    pids.add(next);
    // The request in flight is answered by the process that read it.
    await waitFor(() => busy.bodies().length === 1, 'the answer to /slow');
    expect(busy.bodies()[0]).to.equal(`${pid} v1\n`);
    if (RUNTIME === 'deno') {
      // Deno cannot hand connections over: the upgrade says so, and the connections drain.
      await waitFor(() => service.events().includes(`warning-ERR_SD_UNSUPPORTED_RUNTIME ${pid} v1`), 'the warning');
      await waitFor(() => service.events().includes(`upgraded-to-${next} ${pid} v1`), 'the switch');
      idle.get('/');
      await waitFor(() => idle.ended, 'the end of the idle connection');
      expect(idle.bodies()).to.deep.equal([`${pid} v1\n`, `${pid} v1\n`]);
      expect(responses(idle.text)[1]!.connection).to.equal('close');
      expect(await exit).to.equal(0);
      return;
    }
    expect(await exit).to.equal(0);
    // Both connections are the new process's now: the next request on each is its to answer.
    idle.get('/');
    busy.get('/');
    await waitFor(() => idle.bodies().length === 2 && busy.bodies().length === 2, 'the answers of the new process');
    expect([idle.bodies()[1], busy.bodies()[1]]).to.deep.equal([`${next} v2\n`, `${next} v2\n`]);
    expect([...responses(idle.text), ...responses(busy.text)].map((r) => r.connection)).to.deep.equal(['keep-alive', 'keep-alive', 'keep-alive', 'keep-alive']);
    expect([idle.ended, busy.ended, idle.error, busy.error]).to.deep.equal([false, false, undefined, undefined]);
    expect(service.events().filter((e) => e.startsWith('passed-http-'))).to.have.length(2);
    idle.socket.destroy();
    busy.socket.destroy();
  });

  it('outside a service manager (no NOTIFY_SOCKET) upgrades the same way, telling nobody', async function () {
    const { service, exit, pid } = await start({ mode: 'store' }, { NOTIFY_SOCKET: undefined });
    service.deploy('v2');
    process.kill(pid, 'SIGHUP');
    await waitFor(() => service.events().some((line) => line.startsWith('upgraded-to-')), 'the hand-over');
    const next = Number(/upgraded-to-(\d+)/.exec(service.events().find((line) => line.startsWith('upgraded-to-'))!)![1]);
    pids.add(next);
    expect(await exit).to.equal(0);
    expect(await servedBy(service)).to.equal(next);
    expect(messages!.all).to.deep.equal([]);
  });

  it('run by systemd without a NOTIFY_SOCKET (INVOCATION_ID set), refuses to upgrade and serves on', async function () {
    const { service, pid } = await start({ mode: 'store' }, { NOTIFY_SOCKET: undefined, INVOCATION_ID: '0123456789abcdef0123456789abcdef' });
    process.kill(pid, 'SIGHUP');
    await waitFor(() => service.events().some((line) => line.startsWith('failed-')), 'the refusal');
    expect(service.events()).to.include(`failed-undefined-ERR_SD_UPGRADE_FAILED ${pid} v1`);
    expect(service.events().filter((line) => line.startsWith('start '))).to.have.length(1);
    expect(await servedBy(service)).to.equal(pid);
  });

  it('a stop signal during an upgrade kills the new process, then stops (STOPPING=1 from the main process)', async function () {
    const { service, exit, pid } = await start({ mode: 'store', readyTimeoutMs: 20_000, stopTimeoutMs: 1000 });
    const m = messages!;
    service.deploy('v2', 'hang');
    process.kill(pid, 'SIGHUP');
    await waitFor(() => service.events().filter((line) => line.startsWith('start ')).length === 2, 'the new process');
    const next = Number(service.events().filter((line) => line.startsWith('start '))[1]!.split(' ')[1]);
    pids.add(next);
    process.kill(pid, 'SIGTERM');
    expect(await exit).to.equal(0);
    expect(alive(next)).to.equal(false);
    const stopping = await m.wait('STOPPING=1', (x) => x.fields.get('STOPPING') === '1');
    expect(stopping.pid).to.equal(pid);
    expect(m.all.some((x) => x.fields.has('MAINPID'))).to.equal(false);
  });

  it('checks its options before doing anything', async function () {
    for (const bad of [{ servers: [{}] }, { readyTimeoutMs: 0 }, { stopTimeoutMs: -1 }, { args: 'x' }, { command: '' }, { onStop: 1 }, { status: 2 }]) {
      let error: unknown;
      try {
        await upgrader(bad as never);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(bad)).to.be.instanceOf(TypeError);
    }
  });
});
