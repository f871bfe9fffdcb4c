import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { accounting, KeepAliveClient, LineClient, WsClient, type LongLivedClient } from '../support/long-lived.js';
import { managedSuite, passedBy, serving, until } from '../support/managed-service.js';
import { httpGet } from '../support/network.js';
import { poolOf } from '../support/pools.js';
import { alive, prepareService, sleep, type ServiceDir } from '../support/upgrade-harness.js';

/*
 * Faults during a worker pool's connection hand-over (src/service/pool-handover.ts), under a real
 * systemd 252 user manager and under `sd-activate run`, with long-lived clients on the pool's
 * workers: raw TCP clients of the line protocol, WebSocket clients (sd-activate/ws) and HTTP
 * keep-alive clients, a message every 100 ms, and one keep-alive client whose requests take 500 ms
 * (busy at the hand-over).
 *
 * Killed (SIGKILL, SD_ACTIVATE_FAULT):
 * - a new worker while it holds, has held or adopts the connections of an old worker, or the new
 *   primary while it gives an old worker's hand-over socket to one of its workers: the old primary
 *   rolls back and serves on, with its workers; no connection an old worker had not passed yet is
 *   lost (each client whose connection no old worker reported passed stays on it, every message
 *   answered once, by an old worker again); one pool serves at the end: the old primary, the
 *   manager's main process, and its workers, every process of the new version gone;
 * - one old worker as it sends its first batch: its own connections end with it (a crash), the
 *   upgrade goes on, and the other old worker's connections pass to the new pool, every message
 *   answered once, by a worker of the new pool at the end; the new pool alone serves;
 * - the old primary once its workers have handed over, before MAINPID=: the main process died,
 *   the manager starts the service again, and one pool serves (the new start's).
 * In every case no message is answered twice.
 */

type Victim = 'a new worker' | 'the new primary' | 'an old worker' | 'the old primary';
const CASES: ReadonlyArray<{ phase: string; victim: Victim }> = [
  { phase: 'new:holding', victim: 'a new worker' },
  { phase: 'new:held', victim: 'a new worker' },
  { phase: 'new:adopted', victim: 'a new worker' },
  { phase: 'new:forwarding', victim: 'the new primary' },
  { phase: 'new:forwarded', victim: 'the new primary' },
  { phase: 'old:handing', victim: 'an old worker' },
  { phase: 'old:handed', victim: 'the old primary' },
];

const OUTCOME: Record<Victim, string> = {
  'a new worker': 'the old pool serves on with every connection its workers had not passed',
  'the new primary': 'the old pool serves on with every connection its workers had not passed',
  'an old worker': "the upgrade goes on, and the other old worker's connections pass to the new pool",
  'the old primary': 'the manager starts the service again',
};

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
    const suite = managedSuite(manager, 'sd-activate-pool-faults');

    for (const { phase, victim } of CASES) {
      it(`SIGKILL of ${victim} at ${phase}: ${OUTCOME[victim]}; one pool serves, no message answered twice`, async function () {
        const service = await prepareService(suite.dir, { mode: 'store', lines: true, ws: 'plain', workers: 2, readyTimeoutMs: 10_000, stopTimeoutMs: 3000 });
        const options = {
          name: `sdact-pfault-${id}-${phase.replace(':', '-')}`,
          restart: 'always',
          // An old worker: the fault hits worker 0 alone (the fixture's FAULT_WORKER), the other hands over.
          env: { SD_ACTIVATE_FAULT: phase, ...(victim === 'an old worker' ? { FAULT_WORKER: '0' } : {}) },
          listen: [`web=tcp:127.0.0.1:${service.webPort}`, `udp=udp:127.0.0.1:${service.udpPort}`, `lines=tcp:127.0.0.1:${service.linesPort}`],
        };
        const managed = await suite.start(service, options);
        const first = await managed.mainPid();
        // Enough connections for both old workers to hold some.
        const clients: LongLivedClient[] = [
          ...[1, 2, 3, 4].map((i) => new LineClient(`raw ${i}`, service.linesPort, 100)),
          ...[1, 2].map((i) => new WsClient(`ws ${i}`, service.webPort, 100)),
          ...[1, 2, 3, 4].map((i) => new KeepAliveClient(`http ${i}`, service.webPort, 100)),
          new KeepAliveClient('http /slow', service.webPort, 600, '/slow'),
        ];
        for (const client of clients) suite.afterTest(() => client.close());
        const explain = (): string => `${clients.map((c) => `\n${c.name} (port ${c.localPort}): ${c.answers.length} answers, failure: ${c.failure}`).join('')}${managed.explain()}`;
        await until(() => clients.every((c) => c.answers.length > 0), 10_000, () => `first answers${explain()}`);
        const oldWorkers = poolOf(service, 'v1');
        expect(oldWorkers).to.have.length(2);
        // Which old worker serves each connection (a connection stays on the worker that accepted it).
        const servedBy = new Map(clients.map((c) => [c, c.answers[0]!.pid]));

        service.deploy('v2');
        await managed.reload();
        // Settled as the case says; then what the clients saw.
        const check = victim === 'an old worker' ? await upgradedWithoutOne() : victim === 'the old primary' ? await restarted() : await rolledBack();
        await sleep(1500);
        await Promise.all(clients.map((c) => c.stop()));
        for (const client of clients) expect(accounting(client).twice, `${client.name}: answered twice${explain()}`).to.deep.equal([]);
        check();

        /** The process `victim` of `version` was killed at the phase, and it alone. */
        async function victimKilled(version: string, worker: boolean): Promise<string[]> {
          // Its peers see its fds closed a moment before /proc shows it gone: the exit is not over yet.
          await until(() => killed(service, version).length > 0, 10_000, () => `a process of ${version} killed at ${phase}${explain()}`);
          const dead = killed(service, version);
          expect(dead.every((d) => d.endsWith(' worker') === worker), dead.join(', ')).to.equal(true);
          return dead;
        }

        /** One pool serves, `pool` with `main` the manager's main process, answering on a fresh connection from one of `workers`. */
        async function settled(main: () => number | undefined, workers: () => number[], what: string): Promise<void> {
          await until(
            async () => {
              const pid = main();
              if (pid === undefined || serving(service).sort().join() !== [pid, ...workers()].sort().join()) return false;
              if (!(await managed.active()) || (await managed.mainPid()) !== pid) return false;
              try {
                return workers().includes(Number((await httpGet({ host: '127.0.0.1', port: service.webPort }, '/')).body.split(' ')[0]));
              } catch {
                return false;
              }
            },
            20_000,
            () => `${what} alone serving (alive: ${serving(service).join(', ')})${explain()}`,
          );
        }

        async function rolledBack(): Promise<() => void> {
          // The fault: the new primary or a new worker died at the phase, and the upgrade was rolled back.
          await until(() => service.events().some((e) => e.startsWith('failed-') && e.endsWith(` ${first} v1`)), 20_000, () => `the rollback${explain()}`);
          await victimKilled('v2', victim === 'a new worker');
          await settled(() => first, () => oldWorkers, 'the old pool');
          return () => {
            const passed = passedBy(service, oldWorkers);
            const kept = clients.filter((c) => !passed.has(c.localPort!));
            for (const client of kept) {
              expect(client.failure, `${client.name} was not passed, and must survive${explain()}`).to.equal(undefined);
              expect(accounting(client), `${client.name}${explain()}`).to.deep.equal({ twice: [], missing: [], outOfOrder: false });
              expect(oldWorkers, `${client.name} is served by an old worker again`).to.include(client.answers.at(-1)!.pid);
            }
            console.log(`      ${passed.size} connection(s) passed before the fault, ${kept.length} kept and served on`);
          };
        }

        async function upgradedWithoutOne(): Promise<() => void> {
          let main: number | undefined;
          await until(async () => (main = await managed.mainPid()) !== first && main > 0, 20_000, () => `the switch to v2${explain()}`);
          const [dead] = await victimKilled('v1', true);
          const crashed = Number(dead!.split(' ')[0]);
          expect(oldWorkers).to.include(crashed);
          await settled(() => main, () => poolOf(service, 'v2'), 'the new pool');
          return () => {
            const survivors = clients.filter((c) => servedBy.get(c) !== crashed);
            expect(survivors.length, `connections on the other old worker${explain()}`).to.be.at.least(1);
            const newWorkers = poolOf(service, 'v2');
            for (const client of survivors) {
              expect(client.failure, `${client.name} was on the old worker that lived, and must stay${explain()}`).to.equal(undefined);
              expect(accounting(client), `${client.name}${explain()}`).to.deep.equal({ twice: [], missing: [], outOfOrder: false });
              expect(newWorkers, `${client.name} is served by a worker of the new pool`).to.include(client.answers.at(-1)!.pid);
            }
            console.log(`      ${clients.length - survivors.length} connection(s) on the crashed old worker, ${survivors.length} passed to the new pool`);
          };
        }

        async function restarted(): Promise<() => void> {
          await until(() => !alive(first), 20_000, () => `the fault in the old primary${explain()}`);
          await victimKilled('v1', false);
          let main: number | undefined;
          // The manager's new start: a primary of v2 that logged its start, with its own pool.
          const fresh = (): number | undefined =>
            service
              .events()
              .filter((e) => e.startsWith('ready ') && e.endsWith(' v2'))
              .map((e) => Number(e.split(' ')[1]))
              .find((pid) => pid === main);
          await until(async () => (main = await managed.mainPid()) !== first && main > 0 && fresh() !== undefined, 20_000, () => `the service started again${explain()}`);
          const workersOf = (): number[] => {
            // The workers started after the main process: the events are in order.
            const events = service.events();
            const at = events.indexOf(`start ${main} v2`);
            return events.slice(at).filter((e) => e.startsWith('ready ') && e.endsWith(' v2 worker')).map((e) => Number(e.split(' ')[1]));
          };
          await settled(fresh, workersOf, 'the pool of the new start');
          // Every connection was cut with the service: the twice-answered check above is all there is.
          return () => undefined;
        }
      });
    }
  });
}
