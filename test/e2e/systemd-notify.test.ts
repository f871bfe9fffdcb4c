import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { SystemdManager } from '../support/systemd-manager.js';

/*
 * sd_notify end to end, under a real systemd 252 user manager (test/support/systemd-manager.ts):
 * Type=notify start-up, STATUS=, the watchdog with a healthy and a stuck event loop, the fd store
 * across a crash and Restart=, and MAINPID=. The services are test/fixtures/notify-service.ts.
 */

const SERVICE = fileURLToPath(new URL('../fixtures/notify-service.js', import.meta.url));

function unitArg(text: string): string {
  return `"${text.replace(/%/g, '%%').replace(/(["\\])/g, '\\$1')}"`;
}

describe('sd_notify under systemd (user manager)', function () {
  this.timeout(60_000);
  const id = randomBytes(4).toString('hex');
  let manager: SystemdManager | undefined;
  let dir: string;

  /** A Type=notify service running the fixture in `mode`, with extra [Service] lines. */
  async function install(name: string, mode: string, arg: string, extra: string[] = []): Promise<string> {
    const unit = `sdact-notify-${id}-${name}.service`;
    await manager!.installUnit(
      unit,
      [
        '[Service]',
        'Type=notify',
        `ExecStart=${unitArg(process.execPath)} ${unitArg(SERVICE)} ${mode} ${unitArg(arg)}`,
        `StandardOutput=append:${join(dir, `${name}.log`).replace(/%/g, '%%')}`,
        'StandardError=inherit',
        'TimeoutStartSec=20',
        'TimeoutStopSec=5',
        ...extra,
      ].join('\n'),
    );
    return unit;
  }

  /** `systemctl show` of several properties at once. */
  async function props(unit: string, ...names: string[]): Promise<Record<string, string>> {
    const out = await manager!.systemctlOk('show', ...names.map((n) => `-p${n}`), unit);
    return Object.fromEntries(out.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
  }

  function serviceLog(name: string): string {
    const file = join(dir, `${name}.log`);
    return existsSync(file) ? `\n--- service output:\n${readFileSync(file, 'utf8')}` : '';
  }

  before(async function () {
    expect(existsSync(SERVICE), `${SERVICE} must be built`).to.equal(true);
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    manager = await SystemdManager.start();
  });

  after(async function () {
    await manager?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('Type=notify: activating until READY=1, active after; STATUS= is the StatusText', async function () {
    const m = manager!;
    const trigger = join(dir, 'trigger');
    const unit = await install('ready', 'ready-on-trigger', trigger);
    await m.systemctlOk('start', '--no-block', unit);
    await m.waitFor(async () => (await m.show(unit, 'StatusText')) === 'Starting', 15_000, 'STATUS=Starting');
    // Running and talking, but not ready: still starting, for as long as it takes.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await props(unit, 'ActiveState', 'SubState', 'StatusText')).to.deep.equal({ ActiveState: 'activating', SubState: 'start', StatusText: 'Starting' });
    writeFileSync(trigger, '');
    await m.waitFor(async () => (await m.show(unit, 'ActiveState')) === 'active', 15_000, `${unit} active${serviceLog('ready')}`);
    expect(await props(unit, 'ActiveState', 'SubState', 'StatusText')).to.deep.equal({ ActiveState: 'active', SubState: 'running', StatusText: 'Serving' });
    await m.systemctlOk('stop', unit);
  });

  it('WatchdogSec=: a service whose loop runs keeps pinging and stays up', async function () {
    const m = manager!;
    const unit = await install('healthy', 'watchdog', '-', ['WatchdogSec=1', 'Restart=on-failure', 'RestartSec=100ms']);
    await m.systemctlOk('start', unit);
    const first = await props(unit, 'MainPID', 'WatchdogTimestampMonotonic', 'WatchdogUSec');
    expect(first.WatchdogUSec).to.equal('1s');
    await new Promise((resolve) => setTimeout(resolve, 3500));
    const later = await props(unit, 'ActiveState', 'Result', 'NRestarts', 'MainPID', 'WatchdogTimestampMonotonic');
    expect(later, serviceLog('healthy')).to.deep.include({ ActiveState: 'active', Result: 'success', NRestarts: '0', MainPID: first.MainPID });
    // systemd stamps each WATCHDOG=1 it receives
    expect(Number(later.WatchdogTimestampMonotonic)).to.be.greaterThan(Number(first.WatchdogTimestampMonotonic));
    await m.systemctlOk('stop', unit);
  });

  it('WatchdogSec=: a service whose event loop is blocked is killed with Result=watchdog and restarted', async function () {
    const m = manager!;
    const marker = join(dir, 'blocked-once');
    const unit = await install('stuck', 'watchdog-block', marker, ['WatchdogSec=1', 'Restart=on-failure', 'RestartSec=2', 'LimitCORE=0']);
    await m.systemctlOk('start', unit);
    await m.waitFor(() => existsSync(marker), 10_000, 'the first run to start blocking');
    const stuckPid = Number(readFileSync(marker, 'utf8'));
    // Killed about 1 s after its last ping; in the 2 s before the restart the unit shows why.
    await m.waitFor(async () => (await m.show(unit, 'Result')) === 'watchdog', 15_000, `Result=watchdog${serviceLog('stuck')}`);
    await m.waitFor(
      async () => {
        const p = await props(unit, 'ActiveState', 'NRestarts', 'StatusText');
        return p.ActiveState === 'active' && p.NRestarts === '1' && p.StatusText === 'healthy';
      },
      20_000,
      `the restarted service to be healthy${serviceLog('stuck')}`,
    );
    const mainPid = Number(await m.show(unit, 'MainPID'));
    expect(mainPid).to.not.equal(stuckPid);
    expect(existsSync(`/proc/${stuckPid}`), 'the stuck process is gone').to.equal(false);
    expect(m.log()).to.match(/Watchdog timeout/);
    await m.systemctlOk('stop', unit);
  });

  it('FDSTORE=1: stored fds come back in LISTEN_FDS/LISTEN_FDNAMES after a crash and Restart=', async function () {
    const m = manager!;
    const state = mkdtempSync(join(dir, 'fdstore-'));
    const unit = await install('fdstore', 'fdstore', state, ['FileDescriptorStoreMax=4', 'Restart=on-failure', 'RestartSec=100ms']);
    await m.systemctlOk('start', unit);
    expect(await props(unit, 'StatusText', 'NFileDescriptorStore')).to.deep.equal({ StatusText: 'stored', NFileDescriptorStore: '2' });
    const firstPid = await m.show(unit, 'MainPID');
    await m.systemctlOk('kill', '--signal=SIGKILL', '--kill-who=main', unit);
    const reportFile = join(state, 'report.json');
    await m.waitFor(() => existsSync(reportFile), 20_000, `the restarted service's report${serviceLog('fdstore')}`);
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as {
      pid: number;
      listenPid: string;
      listenFds: number;
      fds: Array<{ name: string; fd: number; kind: string; content?: string }>;
    };
    expect(String(report.pid)).to.not.equal(firstPid);
    expect(report.listenPid).to.equal(String(report.pid));
    expect(report.listenFds).to.equal(2);
    const byName = Object.fromEntries(report.fds.map((f) => [f.name, f]));
    expect(Object.keys(byName).sort()).to.deep.equal(['listener', 'state']);
    expect(byName.state).to.deep.include({ kind: 'file', content: 'kept across restarts' });
    expect(byName.listener!.kind).to.equal('socket');
    await m.waitFor(async () => (await m.show(unit, 'StatusText')) === 'restored', 10_000, 'STATUS=restored');
    await m.systemctlOk('stop', unit);
  });

  it('MAINPID=: the manager takes the named child as the main process', async function () {
    const m = manager!;
    const unit = await install('mainpid', 'mainpid', '-', ['NotifyAccess=all']);
    await m.systemctlOk('start', unit);
    // The fixture has exited; the unit lives on in its child.
    const mainPid = await m.waitFor(
      async () => {
        const pid = Number(await m.show(unit, 'MainPID'));
        return pid > 0 && existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8') === ['sleep', '600', ''].join('\0') ? pid : 0;
      },
      10_000,
      `MainPID to be the sleep child${serviceLog('mainpid')}`,
    );
    expect(await m.show(unit, 'ActiveState')).to.equal('active');
    await m.systemctlOk('stop', unit);
    expect(existsSync(`/proc/${mainPid}`) && !readFileSync(`/proc/${mainPid}/stat`, 'utf8').includes(') Z '), 'stopped with the unit').to.equal(false);
  });
});
