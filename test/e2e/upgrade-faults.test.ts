import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { httpGet } from '../support/network.js';
import { LoadRun, summarize, type LoadResult } from '../support/load.js';
import { managedSuite, serving, until, type Managed } from '../support/managed-service.js';
import { alive, loadPlan, prepareService, sleep, type ServiceDir } from '../support/upgrade-harness.js';

/*
 * Faults injected at every phase of an upgrade, under load, under a real systemd 252 user manager
 * and under `sd-activate run`, with Restart=always and Restart=on-failure. SD_ACTIVATE_FAULT=<phase>
 * makes the old or the new process SIGKILL itself at that phase (src/service/fault.ts). Whatever
 * the phase, the service must keep serving: no connection refused (the sockets outlive every
 * process: the fd store, or the tool), no request failed and no datagram lost but those the killed
 * process held when it died, exactly one process serving at the end, the one the manager has as
 * its main process.
 */


const PHASES = ['old:launched', 'old:ready', 'old:mainpid', 'old:barrier', 'old:confirmed', 'old:acked', 'new:started', 'new:ready', 'new:confirmed', 'new:acked'] as const;
type Phase = (typeof PHASES)[number];

/** The load of the faults: new connections, keep-alive requests and datagrams, per second. */
const RATES = { close: 60, keepAlive: 30, udp: 60 };
/** Failures may come from what the killed process held: requests due this long before its death, and a little after. */
const HELD_BEFORE_MS = 3500;
const HELD_AFTER_MS = 300;

/** The pid that dies at `phase`: the old main process, or the new one once it has started. */
function victimOf(phase: Phase, service: ServiceDir, first: number): number | undefined {
  if (phase.startsWith('old:')) return first;
  const started = service.events().filter((e) => e.startsWith('start ') && e.endsWith(' v2'));
  return started.length ? Number(started[0]!.split(' ')[1]) : undefined;
}

/** Failures of the run outside the window of the killed process's death: there must be none. */
function failuresOutside(result: LoadResult, deathAt: number): { http: string[]; datagrams: number[] } {
  const inWindow = (due: number): boolean => due >= deathAt - HELD_BEFORE_MS && due <= deathAt + HELD_AFTER_MS;
  const http = result.http.filter(([, due, , kind]) => kind !== 'ok' && !inWindow(due)).map(([, due, , kind]) => `${kind} at ${due - deathAt} ms`);
  const answered = new Set(result.udp.received.map(([seq]) => seq));
  const datagrams = result.udp.sent.filter(([seq, sent]) => !answered.has(seq) && !inWindow(sent)).map(([seq]) => seq);
  return { http, datagrams };
}

for (const manager of ['systemd', 'run'] as const) {
  describe(`upgrade faults under ${manager === 'systemd' ? 'systemd (user manager)' : '`sd-activate run`'}, under load`, function () {
    this.timeout(60_000);
    const id = randomBytes(4).toString('hex');
    const suite = managedSuite(manager, 'sd-activate-faults');

    function managedService(service: ServiceDir, name: string, restart: string, phase: Phase): Promise<Managed> {
      const options = {
        name: `sdact-fault-${id}-${name}`,
        restart,
        env: { SD_ACTIVATE_FAULT: phase },
        listen: [`web=tcp:127.0.0.1:${service.webPort}`, `udp=udp:127.0.0.1:${service.udpPort}`],
      };
      return suite.start(service, options);
    }

    for (const restart of ['always', 'on-failure']) {
      for (const phase of PHASES) {
        it(`SIGKILL at ${phase}, Restart=${restart}: serves on, one main process, nothing lost but what the killed process held`, async function () {
          const service = await prepareService(suite.dir, { mode: 'store', readyTimeoutMs: 10_000, stopTimeoutMs: 2000 });
          const managed = await managedService(service, `${restart}-${phase.replace(':', '-')}`, restart, phase);
          const first = await managed.mainPid();
          expect(first, managed.explain()).to.be.above(0);
          const load = await LoadRun.start(loadPlan(service, RATES, 45_000));
          suite.afterTest(() => load.kill());
          await sleep(1000);

          service.deploy('v2');
          await managed.reload();
          // The killed process: the old one, or the new one once it has logged its start.
          let victim: number | undefined;
          await until(
            () => {
              victim ??= victimOf(phase, service, first);
              return victim !== undefined && !alive(victim);
            },
            20_000,
            () => `the fault at ${phase} (victim ${victim})${managed.explain()}`,
          );
          const deathAt = Date.now();
          // Settled: exactly one process serves, it is the manager's main process, and it answers.
          await until(
            async () => {
              const left = serving(service);
              if (left.length !== 1 || !(await managed.active())) return false;
              const main = await managed.mainPid();
              if (left[0] !== main) return false;
              try {
                return (await httpGet({ host: '127.0.0.1', port: service.webPort }, '/')).body.startsWith(`${main} `);
              } catch {
                return false;
              }
            },
            20_000,
            () => `one serving process (alive: ${serving(service).join(', ')})${managed.explain()}`,
          );
          await sleep(1500);
          const result = await load.stop();
          const summary = summarize(result);
          expect(summary.refused, `refused connections${managed.explain()}`).to.equal(0);
          expect(failuresOutside(result, deathAt), `failures not held by the killed process${managed.explain()}`).to.deep.equal({ http: [], datagrams: [] });
          expect(serving(service), 'exactly one process serves').to.have.length(1);
          expect(serving(service)[0]).to.equal(await managed.mainPid());
          expect(summary.ok, 'the load was served').to.be.above(0);
        });
      }
    }

    it('an upgrade asked for while a rollback waits for a new version that ignores SIGTERM runs next, with the version on disk then', async function () {
      const service = await prepareService(suite.dir, { mode: 'store', readyTimeoutMs: 700, stopTimeoutMs: 1500 });
      const managed = await managedService(service, 'queued', 'always', 'new:none' as Phase);
      const first = await managed.mainPid();
      service.deploy('v2', 'stubborn');
      await managed.reload();
      // v2 is not ready in time, is sent SIGTERM, ignores it: the rollback now waits for its SIGKILL.
      await until(() => service.events().some((e) => e.startsWith('ignored-sigterm ')), 10_000, () => `v2 to be rolled back${managed.explain()}`);
      service.deploy('v3');
      await managed.reload();
      await until(
        async () => {
          const main = await managed.mainPid();
          return main !== first && service.events().includes(`ready ${main} v3`);
        },
        20_000,
        () => `v3 to take over${managed.explain()}`,
      );
      const v2 = service.events().find((e) => e.startsWith('start ') && e.endsWith(' v2'))!;
      expect(alive(Number(v2.split(' ')[1])), 'v2 was killed').to.equal(false);
      await until(() => !alive(first), 10_000, () => `v1 to exit${managed.explain()}`);
      expect(serving(service)).to.deep.equal([await managed.mainPid()]);
    });
  });
}
