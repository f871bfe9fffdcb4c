import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { underRun } from '../support/managed-service.js';
import { describeSummary, failures, LoadRun, summarize } from '../support/load.js';
import { alive, loadPlan, prepareService, sleep, upgradeOnce, type UpgradeStep } from '../support/upgrade-harness.js';

/*
 * The same upgrades under `sd-activate run` instead of systemd: the tool opens the sockets and
 * passes them at fd 3+, receives the notify messages, and follows MAINPID= to the new process.
 * The upgrade is triggered by a signal to the main process, as ExecReload=kill -HUP $MAINPID does.
 */

describe('zero-downtime upgrade under `sd-activate run`, under load', function () {
  this.timeout(90_000);
  let dir: string;
  let cli: ChildProcess | undefined;
  let load: LoadRun | undefined;
  const pids = new Set<number>();

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
  });

  after(async function () {
    load?.kill();
    if (cli && cli.exitCode === null && cli.signalCode === null) {
      cli.kill('SIGINT');
      await Promise.race([new Promise((resolve) => cli!.once('close', resolve)), sleep(10_000)]);
      if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
    }
    // The upgraded processes are not the tool's children: leave none behind.
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('five upgrades in a row (SIGHUP to the main process): no failed request, no lost datagram, a new main pid each time', async function () {
    const service = await prepareService(dir, { mode: 'store' });
    const managed = await underRun(service, { name: 'five', listen: [`web=tcp:127.0.0.1:${service.webPort}`, `udp=udp:127.0.0.1:${service.udpPort}`] });
    cli = managed.cli;
    const explain = (): string => managed.explain();
    const mainPid = async (): Promise<number> => {
      const pid = await managed.mainPid();
      if (pid) pids.add(pid);
      return pid;
    };
    const first = await mainPid();
    load = await LoadRun.start(loadPlan(service, { close: 150, keepAlive: 60, udp: 150 }, 60_000));
    await sleep(1500);
    const steps: UpgradeStep[] = [];
    for (let i = 2; i <= 6; i++) {
      service.deploy(`v${i}`);
      steps.push(
        await upgradeOnce(
          async () => {
            process.kill(await mainPid(), 'SIGHUP');
          },
          mainPid,
          20_000,
          explain,
        ),
      );
      await sleep(1200);
    }
    const summary = summarize(await load.stop(), steps.map((s) => s.window));
    load = undefined;
    console.log(`      ${describeSummary(summary).split('\n').join('\n      ')}`);
    expect(failures(summary), explain()).to.deep.equal({ refused: 0, reset: 0, timeout: 0, other: 0, lostDatagrams: 0 });
    const all = [first, ...steps.map((s) => s.to)];
    expect(new Set(all).size).to.equal(6);
    for (const pid of all) expect(summary.pids.get(pid), `answers from pid ${pid}`).to.be.above(0);
    for (const pid of all.slice(0, -1)) expect(alive(pid)).to.equal(false);
    // The tool followed each MAINPID= and kept running: still serving, nothing restarted.
    expect(managed.output().match(/main pid is now/g)).to.have.length(5);
    expect(managed.output()).to.not.match(/restarting|exited with status [1-9]/);
    cli.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => cli!.once('close', resolve));
    expect(code, explain()).to.equal(0);
    expect(alive(all[5]!), 'the last main process was stopped with the tool').to.equal(false);
  });
});
