import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { accounting, CurlClient, KeepAliveClient, LineClient, WsClient, type LongLivedClient } from '../support/long-lived.js';
import { managedSuite, serving, until } from '../support/managed-service.js';
import { answeredByPool, poolOf } from '../support/pools.js';
import { alive, prepareService, upgradeOnce, type UpgradeStep } from '../support/upgrade-harness.js';

/*
 * Established connections across upgrades, under a real systemd 252 user manager (`systemctl
 * reload`, ExecReload=kill -HUP $MAINPID) and under `sd-activate run`: a raw TCP client of the
 * service's line protocol (its connections passed with their state by the application), a
 * WebSocket client of the `ws` package (passed between frames by sd-activate/ws), a
 * keep-alive client of Node's http module and curl's keep-alive transfers (HTTP/1.1 connections,
 * passed by themselves), each sending a message every 100 ms, stay on their one TCP connection
 * across ten upgrades in a row: every message answered once, in order, and from the new version
 * as soon as the old process is gone. The same with a worker pool of two (the service's primary
 * passes its pool to upgrader()): each worker's connections go to a worker of the new pool.
 */

const UPGRADES = 10;
const INTERVAL_MS = 100;

for (const manager of ['systemd', 'run'] as const) {
  describe(`connection hand-over under ${manager === 'systemd' ? 'systemd (user manager)' : '`sd-activate run`'}`, function () {
    this.timeout(180_000);
    const id = randomBytes(4).toString('hex');
    const suite = managedSuite(manager, 'sd-activate-handover');

    for (const workers of [0, 2]) {
      const what = workers ? `a pool of ${workers} workers` : 'the service alone';
      it(`${what}: a raw TCP client, a WebSocket client and two HTTP keep-alive clients stay on their one connection across ${UPGRADES} upgrades, each message answered once, by ${workers ? 'a worker of the new pool' : 'the new version'} after each`, async function () {
        const service = await prepareService(suite.dir, { mode: 'store', lines: true, ws: 'plain', stopTimeoutMs: 5000, ...(workers ? { workers } : {}) });
        const options = {
          name: `sdact-handover-${id}-${workers}`,
          listen: [`web=tcp:127.0.0.1:${service.webPort}`, `udp=udp:127.0.0.1:${service.udpPort}`, `lines=tcp:127.0.0.1:${service.linesPort}`],
        };
        const m = await suite.start(service, options);
        const first = await m.mainPid();
        expect(first, m.explain()).to.be.above(0);
        const lines = new LineClient('raw TCP', service.linesPort, INTERVAL_MS);
        const ws = new WsClient('WebSocket', service.webPort, INTERVAL_MS);
        const http = new KeepAliveClient('http keep-alive', service.webPort, INTERVAL_MS);
        const curl = new CurlClient('curl', service.webPort, 1000 / INTERVAL_MS, 100_000);
        const clients: LongLivedClient[] = [lines, ws, http, curl];
        for (const client of clients) suite.afterTest(() => client.close());
        const explain = (): string => `${clients.map((c) => `\n${c.name}: ${c.answers.length} answers, failure: ${c.failure}`).join('')}${m.explain()}`;
        // Who serves a version: its process alone, or the workers of its pool (never the primary).
        const servers = (pid: number, version: string): number[] => (workers ? poolOf(service, version) : [pid]);
        const answeredBy = (pid: number, version: string): boolean =>
          workers ? answeredByPool(clients, service, version) : clients.every((c) => c.answers.some((a) => a.pid === pid));
        await until(() => answeredBy(first, 'v1'), 10_000, () => `first answers${explain()}`);

        const steps: UpgradeStep[] = [];
        for (let i = 2; i <= UPGRADES + 1; i++) {
          service.deploy(`v${i}`);
          const step = await upgradeOnce(() => m.reload(), () => m.mainPid(), 30_000, explain);
          steps.push(step);
          // Each client is answered by the new version on its connection.
          await until(() => answeredBy(step.to, `v${i}`) || clients.some((c) => c.failure), 10_000, () => `answers from v${i} (pid ${step.to})${explain()}`);
          expect(clients.map((c) => c.failure), explain()).to.deep.equal([undefined, undefined, undefined, undefined]);
        }
        await Promise.all(clients.map((c) => c.stop()));

        for (const client of clients) {
          expect(client.failure, `${client.name}${explain()}`).to.equal(undefined);
          if (client !== curl) expect(accounting(client), `${client.name}: each message answered once, in order${explain()}`).to.deep.equal({ twice: [], missing: [], outOfOrder: false });
          // Served by every version in turn, and after each upgrade only by the new one.
          const versions = [...new Set(client.answers.map((a) => a.version))];
          expect(versions, client.name).to.deep.equal(Array.from({ length: UPGRADES + 1 }, (_, i) => `v${i + 1}`));
          steps.forEach((step, k) => {
            const next = steps[k + 1]?.window.start ?? Infinity;
            const now = servers(step.to, `v${k + 2}`);
            const late = client.answers.filter((a) => a.at > step.window.end && a.at < next && !now.includes(a.pid));
            expect(late, `${client.name}: answers after upgrade ${k + 1} not from ${now.join(', ')}`).to.deep.equal([]);
          });
        }
        // The line protocol's state moved with the connection: its count of lines, and a line cut
        // in two by a hand-over (every fifth line is sent in two parts) was read whole.
        expect(lines.answers.filter((a) => a.n !== a.seq).map((a) => `${a.seq}: ${a.n}`)).to.deep.equal([]);
        // The WebSocket's count of messages moved with it too (sd-activate/ws's state).
        expect(ws.answers.filter((a) => a.n !== a.seq).map((a) => `${a.seq}: ${a.n}`)).to.deep.equal([]);
        // One process serves at the end (with its workers), the manager's main process; the old ones are gone.
        const main = await m.mainPid();
        const last = [main, ...(workers ? poolOf(service, `v${UPGRADES + 1}`) : [])].sort();
        await until(async () => serving(service).sort().join() === last.join(), 10_000, () => `one process serving${explain()}`);
        for (const step of steps) expect(alive(step.from), `pid ${step.from}`).to.equal(false);
        const passed = service.events().filter((e) => e.startsWith('passed-'));
        expect(passed.filter((e) => e.startsWith('passed-raw-'))).to.have.length(UPGRADES);
        expect(passed.filter((e) => e.startsWith('passed-ws-'))).to.have.length(UPGRADES);
        expect(service.events().filter((e) => e.startsWith('wsrestart-'))).to.deep.equal([]);
        expect(passed.filter((e) => e.startsWith('passed-http-')).length).to.be.at.least(UPGRADES * 2);
        // With a pool, the workers passed them, never a primary.
        if (workers) expect(passed.filter((e) => !e.endsWith(' worker'))).to.deep.equal([]);
      });
    }
  });
}
