import { expect } from 'chai';
import { alive, sleep } from '../support/upgrade-harness.js';
import { get, LocalServices, responses, streamClient, waitFor, type StreamClient } from '../support/upgrade-local.js';

/*
 * The connection hand-over of upgrader() between real processes (test/fixtures/upgrade-service.ts,
 * a NotifyReceiver for the manager), with raw clients on one connection each: what passes when,
 * what goes with it, and what a client sees. Across many upgrades and under real managers:
 * test/e2e/handover.test.ts; faults at each phase: test/e2e/handover-faults.test.ts.
 */

/** The line service's answers in `text`: `LINE PID VERSION N`. */
function lines(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' '));
}

describe('upgrader(): established connections pass to the new process', function () {
  this.timeout(30_000);
  const local = new LocalServices();

  beforeEach(() => local.setUp());
  afterEach(() => local.tearDown());

  it('pipelined requests in flight at the upgrade: each answered once, in order, by the old process; then the connection is the new one\'s', async () => {
    const started = await local.start({ mode: 'store' });
    const client = streamClient({ host: '127.0.0.1', port: started.service.webPort });
    client.write(get('/'));
    await waitFor(() => responses(client.text).length === 1, 'the first answer');
    // Three requests in one packet, the first slow: the connection is busy at the upgrade.
    client.write(get('/slow') + get('/') + get('/'));
    await sleep(50);
    const next = await local.upgrade(started, started.pid, 'v2');
    await waitFor(() => responses(client.text).length === 4, 'the pipelined answers');
    expect(await started.exit).to.equal(0);
    client.write(get('/'));
    await waitFor(() => responses(client.text).length === 5, 'the answer of the new process');
    expect(responses(client.text).map((r) => [r.status, r.connection, r.body])).to.deep.equal([
      ...Array.from({ length: 4 }, () => [200, 'keep-alive', `${started.pid} v1\n`]),
      [200, 'keep-alive', `${next} v2\n`],
    ]);
    expect([client.ended, client.error]).to.deep.equal([false, undefined]);
    client.socket.destroy();
  });

  it('a client that sends each request as soon as the last is answered: its connection passes between two of them', async () => {
    const started = await local.start({ mode: 'store' });
    const client = streamClient({ host: '127.0.0.1', port: started.service.webPort });
    const answers: Array<{ connection: string | undefined; body: string }> = [];
    let rest = '';
    let stop = false;
    client.socket.on('data', (chunk: string) => {
      rest += chunk;
      // Each whole answer as it comes, and the next request right away, on the same connection.
      for (let parsed = responses(rest)[0]; parsed; parsed = responses(rest)[0]) {
        answers.push(parsed);
        rest = rest.slice(rest.indexOf('\r\n\r\n') + 4 + Buffer.byteLength(parsed.body));
        if (!stop) client.write(get('/'));
      }
    });
    client.write(get('/'));
    await waitFor(() => answers.length > 50, 'requests back to back');
    const next = await local.upgrade(started, started.pid, 'v2');
    await waitFor(() => answers.some((a) => a.body === `${next} v2\n`) || client.ended, 'an answer of the new process');
    stop = true;
    expect([client.ended, client.error]).to.deep.equal([false, undefined]);
    expect(answers.filter((a) => a.connection !== 'keep-alive')).to.deep.equal([]);
    const firstNew = answers.findIndex((a) => a.body === `${next} v2\n`);
    expect(answers.slice(firstNew).every((a) => a.body === `${next} v2\n`), 'once passed, only the new process answers').to.equal(true);
    expect(await started.exit).to.equal(0);
    client.socket.destroy();
  });

  it('a connection never idle (always a request pipelined behind the one answered): told Connection: close halfway to the deadline, not cut at it', async () => {
    const started = await local.start({ mode: 'store', stopTimeoutMs: 3000 });
    const client = streamClient({ host: '127.0.0.1', port: started.service.webPort });
    let sent = 0;
    let seen = 0;
    client.socket.on('data', () => {
      const now = responses(client.text);
      for (; seen < now.length; seen++) {
        if (now[seen]!.connection === 'close') return;
        sent++;
        client.write(get('/slow?ms=30'));
      }
    });
    sent = 2;
    // Slow requests, two at a time: when one is answered the next is in Node already.
    client.write(get('/slow?ms=30') + get('/slow?ms=30'));
    await waitFor(() => seen > 5, 'requests pipelined');
    await local.upgrade(started, started.pid, 'v2');
    await waitFor(() => client.ended || client.error !== undefined, `the end of the connection (${responses(client.text).length} answers, last ${JSON.stringify(responses(client.text).at(-1))}, sent ${sent}, events ${started.service.events().join(', ')})`, 10_000);
    const all = responses(client.text);
    expect(client.error).to.equal(undefined);
    // Each request answered, by the old process, the last one saying Connection: close.
    expect(all.slice(0, -1).every((r) => r.connection === 'keep-alive' && r.body === `${started.pid} v1\n`)).to.equal(true);
    expect(all.at(-1)!.connection).to.equal('close');
    expect(all.length, 'requests answered (the ones sent after the close are not read)').to.be.at.least(sent - 1);
    expect(started.service.events().filter((e) => e.startsWith('passed-'))).to.deep.equal([]);
  });

  for (const kind of ['TCP', 'unix'] as const) {
    it(`a raw ${kind} connection passes with its state, a line cut in two included, to the new process's 'connection' listener`, async () => {
      const started = await local.start({ mode: 'store', lines: kind === 'TCP' ? true : 'unix' });
      const { service, pid } = started;
      const client: StreamClient = streamClient(kind === 'TCP' ? { host: '127.0.0.1', port: service.linesPort } : { path: service.linesPath! });
      client.write('a\nb\nc');
      await waitFor(() => lines(client.text).length === 2, 'two answers');
      const next = await local.upgrade(started, pid, 'v2');
      await waitFor(() => started.service.events().some((e) => e.startsWith(`adopted-`) && e.includes(` ${next} `)), 'the adoption');
      // The rest of the cut line, and one more: answered by the new process, the count going on.
      client.write('\nd\n');
      await waitFor(() => lines(client.text).length === 4, 'the answers of the new process');
      expect(lines(client.text)).to.deep.equal([
        ['a', String(pid), 'v1', '1'],
        ['b', String(pid), 'v1', '2'],
        ['c', String(next), 'v2', '3'],
        ['d', String(next), 'v2', '4'],
      ]);
      expect([client.ended, client.error]).to.deep.equal([false, undefined]);
      const events = started.service.events();
      expect(events.filter((e) => e.startsWith('passed-raw-')).map((e) => e.split(' ')[1])).to.deep.equal([String(pid)]);
      client.socket.destroy();
    });
  }

  it("connections(): the new process iterates over the connections passed to it, and the iteration ends with the hand-over", async () => {
    const started = await local.start({ mode: 'store', lines: true, iterate: true });
    const { service, pid } = started;
    const clients = [1, 2, 3].map(() => streamClient({ host: '127.0.0.1', port: service.linesPort }));
    clients.forEach((c, i) => c.write(`${i}\n`));
    await waitFor(() => clients.every((c) => lines(c.text).length === 1), 'the first answers');
    const next = await local.upgrade(started, pid, 'v2');
    await waitFor(() => service.events().filter((e) => e.startsWith('adopted-')).length === 3, 'three adoptions');
    clients.forEach((c, i) => c.write(`${i + 10}\n`));
    await waitFor(() => clients.every((c) => lines(c.text).length === 2), 'the answers of the new process');
    expect(clients.map((c) => lines(c.text)[1]!.slice(1))).to.deep.equal(clients.map(() => [String(next), 'v2', '2']));
    // The old process is gone: no more can come, and the loop ends.
    expect(await started.exit).to.equal(0);
    await waitFor(() => service.events().includes(`iterated-end ${next} v2`), 'the end of the iteration');
    clients.forEach((c) => c.socket.destroy());
  });

  it('an adopted idle connection keeps the keep-alive time it had left; a request on it gives it Node\'s own timers back', async () => {
    const started = await local.start({ mode: 'store', keepAliveTimeoutMs: 1000 });
    const { service, pid } = started;
    const idle = streamClient({ host: '127.0.0.1', port: service.webPort });
    const busy = streamClient({ host: '127.0.0.1', port: service.webPort });
    idle.write(get('/'));
    busy.write(get('/'));
    await waitFor(() => responses(idle.text).length === 1 && responses(busy.text).length === 1, 'the first answers');
    const t0 = Date.now();
    const endedAt = new Map<StreamClient, number>();
    for (const c of [idle, busy]) c.socket.once('end', () => endedAt.set(c, Date.now()));
    await local.upgrade(started, pid, 'v2');
    expect(await started.exit).to.equal(0);
    // Node would close both 1000 + 1000 ms (its margin) after their answers. A request of 3 s on
    // one of them before that: it must be answered (Node gives a request its own timers, and an
    // idle timeout armed for the keep-alive must not cut it).
    await sleep(Math.max(0, t0 + 1000 - Date.now()));
    busy.write(get('/slow?ms=3000'));
    await waitFor(() => responses(busy.text).length === 2 || busy.ended, 'the answer to the long request', 10_000);
    const t1 = Date.now();
    expect(responses(busy.text).map((r) => r.status), 'the long request was answered').to.deep.equal([200, 200]);
    await waitFor(() => endedAt.size === 2, 'both connections closed by the server', 15_000);
    // The idle one counts from its answer in the old process, the other from its answer in the new
    // one. Timers never fire early; late, on a loaded machine, they may.
    expect(endedAt.get(idle)! - t0, 'the idle connection: its time left, counted from the old process').to.be.within(1500, 8000);
    expect(endedAt.get(busy)! - t1, "the used one: Node's own timer from its last response").to.be.within(1500, 8000);
    expect([idle.error, busy.error]).to.deep.equal([undefined, undefined]);
  });

  it('a new version that takes no connections (no HANDOVER=1): nothing passes; they drain as before', async () => {
    const started = await local.start({ mode: 'store', lines: true, stopTimeoutMs: 1500 });
    const { service, pid } = started;
    const http = streamClient({ host: '127.0.0.1', port: service.webPort });
    const raw = streamClient({ host: '127.0.0.1', port: service.linesPort });
    http.write(get('/'));
    raw.write('a\n');
    await waitFor(() => responses(http.text).length === 1 && lines(raw.text).length === 1, 'the first answers');
    const next = await local.upgrade(started, pid, 'v2', 'no-handover');
    // Once the old process drains (after the switch): its responses say Connection: close.
    await waitFor(() => service.events().includes(`upgraded-to-${next} ${pid} v1`), 'the switch');
    http.write(get('/'));
    raw.write('b\n');
    await waitFor(() => http.ended && raw.ended, 'both connections ended by the old process');
    expect(responses(http.text).map((r) => [r.connection, r.body])).to.deep.equal([
      ['keep-alive', `${pid} v1\n`],
      ['close', `${pid} v1\n`],
    ]);
    expect(lines(raw.text).map((l) => l.slice(0, 2))).to.deep.equal([
      ['a', String(pid)],
      ['b', String(pid)],
    ]);
    expect(await started.exit).to.equal(0);
    expect(service.events().filter((e) => /^(passed|adopted)-/.test(e))).to.deep.equal([]);
    expect(alive(pid)).to.equal(false);
  });
});
