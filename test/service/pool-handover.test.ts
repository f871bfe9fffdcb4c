import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { accounting, CurlClient, KeepAliveClient, LineClient, type LongLivedClient } from '../support/long-lived.js';
import { alive } from '../support/upgrade-harness.js';
import { get, LocalServices, responses, streamClient, waitFor, type StreamClient } from '../support/upgrade-local.js';
import { answeredByPool, poolOf } from '../support/pools.js';

/*
 * The connection hand-over of a worker pool's upgrade between real processes
 * (test/fixtures/upgrade-service.ts as a primary with its workers, a NotifyReceiver for the
 * manager): each old worker's connections go to a worker of the new pool, raw TCP ones with
 * their state (the 'handover' event in the workers, as in a service alone), HTTP/1.1 keep-alive
 * ones by themselves. Under real managers and with faults: test/e2e/pool-handover*.test.ts.
 */

describe('workerPool() upgrades: each worker\'s connections pass to a worker of the new pool', function () {
  this.timeout(120_000);
  const local = new LocalServices();
  const clients: LongLivedClient[] = [];

  beforeEach(() => local.setUp());
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
    local.tearDown();
  });

  it('raw TCP clients, keep-alive clients of Node and curl stay on their one connection across 5 upgrades of a pool of 2, each message answered once, by a worker of the new pool after each', async () => {
    const started = await local.start({ mode: 'store', workers: 2, lines: true, stopTimeoutMs: 5000 });
    const { service } = started;
    clients.push(
      ...[1, 2, 3].map((i) => new LineClient(`raw ${i}`, service.linesPort, 100)),
      ...[1, 2].map((i) => new KeepAliveClient(`http ${i}`, service.webPort, 100)),
      new CurlClient('curl', service.webPort, 10, 100_000),
    );
    const explain = (): string => `${clients.map((c) => `\n${c.name}: ${c.answers.length} answers, failure: ${c.failure}`).join('')}\n${service.events().join('\n')}`;
    await waitFor(() => clients.every((c) => c.answers.some((a) => a.version === 'v1')), `first answers${explain()}`);
    let primary = started.pid;
    const primaries = [primary];
    for (let i = 2; i <= 6; i++) {
      primary = await local.upgrade(started, primary, `v${i}`);
      primaries.push(primary);
      // Every client, on its connection, is answered by a worker of the new pool.
      await waitFor(() => answeredByPool(clients, service, `v${i}`) || clients.some((c) => c.failure !== undefined), `answers from the workers of v${i}${explain()}`, 20_000);
      expect(clients.map((c) => c.failure), explain()).to.deep.equal(clients.map(() => undefined));
    }
    await Promise.all(clients.map((c) => c.stop()));
    for (const client of clients) {
      expect(client.failure, `${client.name}${explain()}`).to.equal(undefined);
      if (!(client instanceof CurlClient)) expect(accounting(client), `${client.name}: each message answered once, in order${explain()}`).to.deep.equal({ twice: [], missing: [], outOfOrder: false });
      expect([...new Set(client.answers.map((a) => a.version))], client.name).to.deep.equal(['v1', 'v2', 'v3', 'v4', 'v5', 'v6']);
      // Never by a primary: the workers serve.
      expect(client.answers.filter((a) => primaries.includes(a.pid))).to.deep.equal([]);
    }
    // The line protocol's state moved with each connection.
    for (const client of clients.filter((c) => c instanceof LineClient)) expect(client.answers.filter((a) => a.n !== a.seq).length, client.name).to.equal(0);
    // Each upgrade: the old workers passed the raw connections, the new ones adopted them.
    const events = service.events();
    expect(events.filter((e) => e.startsWith('passed-raw-') && e.endsWith(' worker'))).to.have.length(15);
    expect(events.filter((e) => e.startsWith('adopted-') && e.endsWith(' worker'))).to.have.length(15);
    // The old generations are gone: primaries and workers.
    await waitFor(() => primaries.slice(0, -1).every((pid) => !alive(pid)), 'the old primaries to exit');
    for (let v = 1; v <= 5; v++) for (const pid of poolOf(service, `v${v}`)) expect(alive(pid), `worker ${pid} of v${v}`).to.equal(false);
  });

  it('an old pool of 3 into a new pool of 1: every connection goes to the one new worker, whose connections() ends once the three are done', async () => {
    const started = await local.start({ mode: 'store', workers: 3, lines: true, iterate: true, stopTimeoutMs: 3000 });
    const { service } = started;
    // Connections until more than one of the three workers has some (the kernel picks the worker).
    const raw: StreamClient[] = [];
    const servedBy = (): Set<string | undefined> => new Set(raw.map((c) => c.text.split(' ')[1]));
    while (raw.length < 12 || (servedBy().size < 2 && raw.length < 60)) {
      const batch = Array.from({ length: 6 }, () => streamClient({ host: '127.0.0.1', port: service.linesPort }));
      batch.forEach((c, i) => c.write(`${raw.length + i}\n`));
      raw.push(...batch);
      await waitFor(() => raw.every((c) => c.text.split('\n').length === 2), 'the first answers');
    }
    expect(servedBy().size, 'connections on more than one old worker').to.be.at.least(2);
    const config = join(service.dir, 'config.json');
    writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')), workers: 1 }));
    await local.upgrade(started, started.pid, 'v2');
    await waitFor(() => poolOf(service, 'v2').length === 1, 'the new worker');
    const [worker] = poolOf(service, 'v2');
    await waitFor(() => service.events().filter((e) => e.startsWith('adopted-')).length === raw.length, `${raw.length} adoptions\n${service.events().join('\n')}`);
    raw.forEach((c, i) => c.write(`${i + 100}\n`));
    await waitFor(() => raw.every((c) => c.text.split('\n').length === 3), 'the answers of the new worker');
    expect(raw.map((c) => c.text.split('\n')[1]!.split(' ').slice(1))).to.deep.equal(raw.map(() => [String(worker), 'v2', '2']));
    expect(raw.map((c) => [c.ended, c.error])).to.deep.equal(raw.map(() => [false, undefined]));
    // The old primary and its workers gone, the hand-over is over: the iteration ends.
    await waitFor(() => service.events().includes(`iterated-end ${worker} v2 worker`), `the end of the iteration\n${service.events().join('\n')}`);
    expect(await started.exit).to.equal(0);
    raw.forEach((c) => c.socket.destroy());
  });

  it('a new pool whose workers take no connections (they do not call upgrader()): the upgrade goes on, and the old workers\' connections drain as before', async () => {
    const started = await local.start({ mode: 'store', workers: 2, lines: true, stopTimeoutMs: 1500 });
    const { service, pid } = started;
    const http = streamClient({ host: '127.0.0.1', port: service.webPort });
    const raw = streamClient({ host: '127.0.0.1', port: service.linesPort });
    http.write(get('/'));
    raw.write('a\n');
    await waitFor(() => responses(http.text).length === 1 && raw.text.split('\n').length === 2, 'the first answers');
    const oldWorkers = poolOf(service, 'v1').map(String);
    // Not rolled back: the new primary becomes the main process.
    const next = await local.upgrade(started, pid, 'v2', 'no-worker-handover');
    await waitFor(() => service.events().includes(`upgraded-to-${next} ${pid} v1`), `the switch\n${service.events().join('\n')}`);
    http.write(get('/'));
    raw.write('b\n');
    await waitFor(() => http.ended && raw.ended, 'both connections ended by their old workers');
    // Answered by the old workers, then ended by them: the drain of today. (Whether the second
    // response says Connection: close depends on whether the old pool's stop has reached the worker.)
    expect(responses(http.text).map((r) => oldWorkers.includes(r.body.split(' ')[0]!))).to.deep.equal([true, true]);
    expect(raw.text.split('\n').filter((l) => l !== '').map((l) => [l.split(' ')[0], oldWorkers.includes(l.split(' ')[1]!)])).to.deep.equal([
      ['a', true],
      ['b', true],
    ]);
    expect(service.events().filter((e) => /^(passed|adopted|failed)-/.test(e))).to.deep.equal([]);
    expect(await started.exit).to.equal(0);
    // The new pool serves.
    const fresh = streamClient({ host: '127.0.0.1', port: service.webPort });
    fresh.write(get('/'));
    await waitFor(() => responses(fresh.text).length === 1, 'an answer of the new pool');
    expect(poolOf(service, 'v2').map(String)).to.include(responses(fresh.text)[0]!.body.split(' ')[0]);
    fresh.socket.destroy();
  });
});
