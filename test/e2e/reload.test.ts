import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { readableCopy } from '../cli/helpers.js';
import { CLI } from '../support/cli-bin.js';
import { outputOf } from '../support/activated-child.js';
import { SystemdManager } from '../support/systemd-manager.js';
import { alive, prepareService, serviceOutput, serviceUnit, unitArg } from '../support/upgrade-harness.js';

/*
 * `ExecReload=sd-activate reload $MAINPID` under a real systemd 252: `systemctl reload` waits for
 * the upgrade and fails when the new version did not take over, which `kill -HUP $MAINPID` cannot
 * tell (it returns once the signal is sent).
 */
describe('sd-activate reload: a reload that reports its outcome (systemd user manager)', function () {
  this.timeout(90_000);
  const id = randomBytes(4).toString('hex');
  let manager: SystemdManager | undefined;
  let dir: string;

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-reload-'));
    manager = await SystemdManager.start();
  });

  after(async function () {
    await manager?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('systemctl reload exits 0 once the new version is the main process, and fails when it crashes (MainPID unchanged)', async function () {
    const m = manager!;
    const service = await prepareService(dir, { mode: 'store', readyTimeoutMs: 5000 });
    const unit = `sdact-reload-${id}.service`;
    const text = serviceUnit(service).replace(/^ExecReload=.*$/m, `ExecReload=${unitArg(process.execPath)} ${unitArg(CLI)} reload $MAINPID`);
    await m.installUnit(unit, text);
    await m.systemctlOk('start', unit);
    const first = Number(await m.show(unit, 'MainPID'));

    service.deploy('v2');
    const good = await m.systemctl('reload', unit);
    expect(good.code, `${good.stderr}${serviceOutput(service)}${m.logExcerpt(30)}`).to.equal(0);
    const second = Number(await m.show(unit, 'MainPID'));
    expect(second).to.not.equal(first);
    expect(service.events()).to.include(`ready ${second} v2`);
    expect(await m.show(unit, 'ActiveState')).to.equal('active');

    service.deploy('v3', 'crash');
    const bad = await m.systemctl('reload', unit);
    expect(bad.code, 'systemctl reload fails: the new version crashed').to.not.equal(0);
    expect(Number(await m.show(unit, 'MainPID'))).to.equal(second);
    expect(await m.show(unit, 'ActiveState')).to.equal('active');
    expect(serviceOutput(service)).to.match(/upgrade failed \(ERR_SD_SERVICE_EXITED\): the new process \(pid \d+\) ended before it was ready: it exited with status 3/);
    expect(alive(second)).to.equal(true);

    // Asked from outside the service: root may, another user may not.
    service.deploy('v4');
    const copy = readableCopy(mkdtempSync(join(tmpdir(), 'sd-activate-reload-cli-')));
    const nobody = await outputOf(spawn(process.execPath, [copy, 'reload', String(second)], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(nobody.code).to.equal(1);
    expect(nobody.stderr).to.match(/refused: pid \d+ runs as uid 65534, not as this service \(uid 0\) or root/);
    expect(Number(await m.show(unit, 'MainPID'))).to.equal(second);
    const root = await outputOf(spawn(process.execPath, [CLI, 'reload', String(second)], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(root.code, root.stderr).to.equal(0);
    const third = Number(await m.show(unit, 'MainPID'));
    expect(root.stderr).to.include(`upgraded: the main process is now pid ${third} (was ${second})`);
    await m.systemctlOk('stop', unit);
  });

  it('answers nothing for a pid that runs no upgrader, and says so', async function () {
    const result = await outputOf(spawn(process.execPath, [CLI, 'reload', String(process.pid)], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(result.code).to.equal(1);
    expect(result.stderr).to.include(`pid ${process.pid} answers no reload: is it the main process of a service that calls upgrader()?`);
  });
});
