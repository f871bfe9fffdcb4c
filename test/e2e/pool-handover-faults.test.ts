import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { accounting, KeepAliveClient, LineClient, type LongLivedClient } from '../support/long-lived.js';
import { passedBy, serving, underRun, underSystemd, until, type Managed } from '../support/managed-service.js';
import { httpGet } from '../support/network.js';
import { poolOf } from '../support/pools.js';
import { SystemdManager } from '../support/systemd-manager.js';
import { alive, prepareService, sleep, type ServiceDir } from '../support/upgrade-harness.js';

/*
 * Faults during a worker pool's connection hand-over (src/service/pool-handover.ts), under a real
 * systemd 252 user manager and under `sd-activate run`, with long-lived clients on the pool's
 * workers: raw TCP clients of the line protocol and HTTP keep-alive clients, a message every
 * 100 ms, and one keep-alive client whose requests take 500 ms (busy at the hand-over).
 *
 * Killed (SIGKILL, SD_ACTIVATE_FAULT): a new worker while it holds, has held or adopts the
 * connections of an old worker, or the new primary while it gives an old worker's hand-over socket
 * to one of its workers. The old primary rolls back and serves on, with its workers; no connection
 * an old worker had not passed yet is lost (each client whose connection no old worker reported
 * passed stays on it, every message answered once, by an old worker again); no message is answered
 * twice; and one pool serves at the end: the old primary, the manager's main process, and its
 * workers, every process of the new version gone.
 */

const PHASES = ['new:holding', 'new:held', 'new:adopted', 'new:forwarding', 'new:forwarded'] as const;

/** The processes of `version` that were killed: they logged their start, never their exit, and are gone. */
function killed(service: ServiceDir, version: string): string[] {
  const events = service.events();
  return events
    .filter((e) => e.startsWith('start ') && e.split(' ')[2] === version)
    .filter((e) => !alive(Number(e.split(' ')[1])) && !events.includes(e.replace(/^start /, 'exit ')))
    .map((e) => e.slice('start '.length));
}

for (const manager of ['systemd', 'run'] as const) {
  describe(`worker pool hand-over faults under ${manager === 'systemd' ? 'systemd (user manager)' : '`sd-activate run`'}, long-lived clients`, function () {
    this.timeout(90_000);
    const id = randomBytes(4).toString('hex');
    let systemd: SystemdManager | undefined;
    let dir: string;
    let current: { managed?: Managed; clients: LongLivedClient[] } = { clients: [] };

    before(async function () {
      this.timeout(60_000);
      dir = mkdtempSync(join(tmpdir(), 'sd-activate-pool-faults-'));
      if (manager === 'systemd') systemd = await SystemdManager.start();
    });

    afterEach(async function () {
      this.timeout(30_000);
      for (const client of current.clients) client.close();
      await current.managed?.stop();
      current = { clients: [] };
    });

    after(async function () {
      await systemd?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    for (const phase of PHASES) {
      const victim = phase.startsWith('new:forward') ? 'the new primary' : 'a new worker';
      it(`SIGKILL of ${victim} at ${phase}: the old pool serves on with every connection its workers had not passed; one pool serves, no message answered twice`, async function () {
        const service = await prepareService(dir, { mode: 'store', lines: true, workers: 2, readyTimeoutMs: 10_000, stopTimeoutMs: 3000 });
        const options = {
          name: `sdact-pfault-${id}-${phase.replace(':', '-')}`,
          restart: 'always',
          env: { SD_ACTIVATE_FAULT: phase },
          listen: [`web=tcp:127.0.0.1:${service.webPort}`, `udp=udp:127.0.0.1:${service.udpPort}`, `lines=tcp:127.0.0.1:${service.linesPort}`],
        };
        const managed = manager === 'systemd' ? await underSystemd(systemd!, service, options) : await underRun(service, options);
        current.managed = managed;
        const first = await managed.mainPid();
        // Enough connections for both old workers to hold some.
        const clients: LongLivedClient[] = [
          ...[1, 2, 3, 4].map((i) => new LineClient(`raw ${i}`, service.linesPort, 100)),
          ...[1, 2, 3, 4].map((i) => new KeepAliveClient(`http ${i}`, service.webPort, 100)),
          new KeepAliveClient('http /slow', service.webPort, 600, '/slow'),
        ];
        current.clients = clients;
        const explain = (): string => `${clients.map((c) => `\n${c.name} (port ${c.localPort}): ${c.answers.length} answers, failure: ${c.failure}`).join('')}${managed.explain()}`;
        await until(() => clients.every((c) => c.answers.length > 0), 10_000, () => `first answers${explain()}`);
        const oldWorkers = poolOf(service, 'v1');
        expect(oldWorkers).to.have.length(2);

        service.deploy('v2');
        await managed.reload();
        // The fault: the new primary or a new worker died at the phase, and the upgrade was rolled back.
        await until(() => service.events().some((e) => e.startsWith('failed-') && e.endsWith(` ${first} v1`)), 20_000, () => `the rollback${explain()}`);
        const dead = killed(service, 'v2');
        expect(dead.length, `a process of v2 killed at ${phase}${explain()}`).to.be.at.least(1);
        expect(dead.every((d) => (phase.startsWith('new:forward') ? !d.endsWith(' worker') : d.endsWith(' worker'))), dead.join(', ')).to.equal(true);
        // Settled: one pool serves, the old one, and the manager has its primary as the main process.
        const oldPool = [first, ...oldWorkers].sort();
        await until(
          async () => {
            if (serving(service).sort().join() !== oldPool.join() || !(await managed.active()) || (await managed.mainPid()) !== first) return false;
            try {
              return oldWorkers.includes(Number((await httpGet({ host: '127.0.0.1', port: service.webPort }, '/')).body.split(' ')[0]));
            } catch {
              return false;
            }
          },
          20_000,
          () => `the old pool alone serving (alive: ${serving(service).join(', ')})${explain()}`,
        );
        await sleep(1500);
        await Promise.all(clients.map((c) => c.stop()));

        for (const client of clients) expect(accounting(client).twice, `${client.name}: answered twice${explain()}`).to.deep.equal([]);
        const passed = passedBy(service, oldWorkers);
        const kept = clients.filter((c) => !passed.has(c.localPort!));
        for (const client of kept) {
          expect(client.failure, `${client.name} was not passed, and must survive${explain()}`).to.equal(undefined);
          expect(accounting(client), `${client.name}${explain()}`).to.deep.equal({ twice: [], missing: [], outOfOrder: false });
          expect(oldWorkers, `${client.name} is served by an old worker again`).to.include(client.answers.at(-1)!.pid);
        }
        console.log(`      ${passed.size} connection(s) passed before the fault, ${kept.length} kept and served on`);
        expect(serving(service).sort()).to.deep.equal(oldPool);
      });
    }
  });
}
