import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { accounting, KeepAliveClient, LineClient, WsClient, type LongLivedClient } from '../support/long-lived.js';
import { managedSuite, passedBy, serving, until } from '../support/managed-service.js';
import { httpGet } from '../support/network.js';
import { alive, prepareService, sleep } from '../support/upgrade-harness.js';

/*
 * Faults at each phase of the connection hand-over (src/service/fault.ts), under a real systemd 252
 * user manager and under `sd-activate run`, with long-lived clients on the service: raw TCP clients
 * of its line protocol, WebSocket clients (sd-activate/ws) and HTTP keep-alive clients, a message
 * every 100 ms, and one keep-alive client whose requests take 500 ms (busy at the hand-over: it
 * passes later, or never).
 *
 * The new process killed during the hand-over (before MAINPID=): the old one rolls back and serves
 * on, and no connection it had not passed yet is lost: each client whose connection the old
 * process did not report passed stays on its connection with every message answered once. (A
 * passed connection is the new process's, and dies with it.) The old process killed: it held the
 * connections, which die with it; the manager restarts the service. Either way one process serves
 * at the end, the manager's main process, and no message is ever answered twice.
 */

const PHASES = ['old:handing', 'old:handed', 'new:holding', 'new:held', 'new:adopted'] as const;
type Phase = (typeof PHASES)[number];

for (const manager of ['systemd', 'run'] as const) {
  describe(`connection hand-over faults under ${manager === 'systemd' ? 'systemd (user manager)' : '`sd-activate run`'}, long-lived clients`, function () {
    this.timeout(90_000);
    const id = randomBytes(4).toString('hex');
    const suite = managedSuite(manager, 'sd-activate-handover-faults');

    for (const phase of PHASES) {
      const newDies = phase.startsWith('new:');
      it(`SIGKILL at ${phase}: ${newDies ? 'the old process serves on with every connection it had not passed' : 'the service restarts'}; one process serves, no message answered twice`, async function () {
        const service = await prepareService(suite.dir, { mode: 'store', lines: true, ws: 'plain', readyTimeoutMs: 10_000, stopTimeoutMs: 3000 });
        const options = {
          name: `sdact-hfault-${id}-${phase.replace(':', '-')}`,
          restart: 'always',
          env: { SD_ACTIVATE_FAULT: phase },
          listen: [`web=tcp:127.0.0.1:${service.webPort}`, `udp=udp:127.0.0.1:${service.udpPort}`, `lines=tcp:127.0.0.1:${service.linesPort}`],
        };
        const managed = await suite.start(service, options);
        const first = await managed.mainPid();
        const clients: LongLivedClient[] = [
          ...[1, 2, 3].map((i) => new LineClient(`raw ${i}`, service.linesPort, 100)),
          ...[1, 2].map((i) => new WsClient(`ws ${i}`, service.webPort, 100)),
          ...[1, 2, 3].map((i) => new KeepAliveClient(`http ${i}`, service.webPort, 100)),
          new KeepAliveClient('http /slow', service.webPort, 600, '/slow'),
        ];
        for (const client of clients) suite.afterTest(() => client.close());
        const explain = (): string => `${clients.map((c) => `\n${c.name} (port ${c.localPort}): ${c.answers.length} answers, failure: ${c.failure}`).join('')}${managed.explain()}`;
        await until(() => clients.every((c) => c.answers.some((a) => a.pid === first)), 10_000, () => `first answers${explain()}`);

        service.deploy('v2');
        await managed.reload();
        // The killed process: the old one, or the new one once it has logged its start.
        let victim: number | undefined;
        await until(
          () => {
            victim ??= newDies ? Number(service.events().find((e) => e.startsWith('start ') && e.endsWith(' v2'))?.split(' ')[1] ?? 0) || undefined : first;
            return victim !== undefined && !alive(victim);
          },
          20_000,
          () => `the fault at ${phase} (victim ${victim})${explain()}`,
        );
        // Settled: exactly one process serves, it is the manager's main process, and it answers.
        await until(
          async () => {
            const left = serving(service);
            if (left.length !== 1 || !(await managed.active()) || left[0] !== (await managed.mainPid())) return false;
            try {
              return (await httpGet({ host: '127.0.0.1', port: service.webPort }, '/')).body.startsWith(`${left[0]} `);
            } catch {
              return false;
            }
          },
          20_000,
          () => `one serving process (alive: ${serving(service).join(', ')})${explain()}`,
        );
        const main = await managed.mainPid();
        await sleep(1500);
        await Promise.all(clients.map((c) => c.stop()));

        for (const client of clients) expect(accounting(client).twice, `${client.name}: answered twice${explain()}`).to.deep.equal([]);
        if (newDies) {
          expect(main, `the old process serves on${explain()}`).to.equal(first);
          const passed = passedBy(service, [first]);
          const kept = clients.filter((c) => !passed.has(c.localPort!));
          for (const client of kept) {
            expect(client.failure, `${client.name} was not passed, and must survive${explain()}`).to.equal(undefined);
            expect(accounting(client), `${client.name}${explain()}`).to.deep.equal({ twice: [], missing: [], outOfOrder: false });
            expect(client.answers.at(-1)!.pid, `${client.name} is served by the old process again`).to.equal(first);
          }
          console.log(`      ${passed.size} connection(s) passed before the new process died, ${kept.length} kept and served on`);
        } else {
          expect(main, 'the manager started the service again').to.not.equal(first);
        }
        expect(serving(service)).to.deep.equal([main]);
      });
    }
  });
}
