import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { freePort, runCli } from '../cli/helpers.js';
import { bodyAt, PROBE, useSystemdManager } from '../support/manager-suite.js';
import { unitArg } from '../support/upgrade-harness.js';

/*
 * The misconfiguration warnings, each shown by a unit that has the fault, started under a real
 * systemd 252 user manager; and a unit that uses everything rightly (sockets, fd store,
 * watchdog, an upgrade, a worker pool) gets none. The service is test/fixtures/warnings-probe.ts.
 */

const CODES = ['SD_ACTIVATE_NOT_MAIN_PROCESS', 'SD_ACTIVATE_FDSTORE_DROPPED', 'SD_ACTIVATE_WATCHDOG_NOT_STARTED', 'SD_ACTIVATE_UPGRADE_UNAVAILABLE'];

/** How many times each warning code appears in `text`. */
function warningsIn(text: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(/\[(SD_ACTIVATE_[A-Z_]+)\]/g)) counts[match[1]!] = (counts[match[1]!] ?? 0) + 1;
  return counts;
}

describe('misconfiguration warnings under systemd (user manager)', function () {
  this.timeout(60_000);
  const id = randomBytes(4).toString('hex');
  const suite = useSystemdManager();

  /** A service running the probe with `features`; its output goes to DIR/NAME.log. */
  async function install(name: string, service: string[], options: { args?: string; execStart?: string; socket?: string[] } = {}): Promise<string> {
    const unit = `sdact-warn-${id}-${name}`;
    const units: Record<string, string> = {
      [`${unit}.service`]: [
        '[Service]',
        `ExecStart=${options.execStart ?? `${unitArg(process.execPath)} ${unitArg(PROBE)} ${options.args ?? ''}`}`,
        `StandardOutput=append:${join(suite.dir, `${name}.log`)}`,
        'StandardError=inherit',
        'TimeoutStopSec=10',
        ...service,
      ].join('\n'),
    };
    if (options.socket) units[`${unit}.socket`] = ['[Socket]', ...options.socket].join('\n');
    await suite.manager.installUnits(units);
    return unit;
  }

  function output(name: string): string {
    const file = join(suite.dir, `${name}.log`);
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  async function props(unit: string, ...names: string[]): Promise<Record<string, string>> {
    const out = await suite.manager.systemctlOk('show', ...names.map((n) => `-p${n}`), unit);
    return Object.fromEntries(out.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
  }

  it('ExecStart=/bin/sh -c "node ...": SD_ACTIVATE_NOT_MAIN_PROCESS, once, and systemd indeed drops the notifications', async function () {
    const m = suite.manager;
    const unit = await install('wrapper', ['Type=notify', 'TimeoutStartSec=4'], {
      execStart: `/bin/sh -c ${unitArg(`${process.execPath} ${PROBE} notify-loop`)}`,
    });
    // It never becomes ready: READY=1 comes from node, not from the sh that systemd started.
    const start = await m.systemctl('start', `${unit}.service`);
    expect(start.code, output('wrapper')).to.not.equal(0);
    expect(await props(`${unit}.service`, 'Result')).to.deep.equal({ Result: 'timeout' });
    const text = output('wrapper');
    expect(text).to.match(/ready \d+/);
    expect(warningsIn(text), text).to.deep.equal({ SD_ACTIVATE_NOT_MAIN_PROCESS: 1 });
    expect(text).to.match(/systemd started pid \d+ \(SYSTEMD_EXEC_PID\)/);
    expect(text).to.include('ExecStart=/usr/bin/node');
    expect(m.log()).to.match(/reception only permitted for main PID/);
  });

  it('Type=simple with no fd store: openStoredSocket() gives SD_ACTIVATE_FDSTORE_DROPPED', async function () {
    const m = suite.manager;
    const unit = await install('store', ['Type=simple'], { args: 'store' });
    await m.systemctlOk('start', `${unit}.service`);
    await m.waitFor(() => /ready \d+/.test(output('store')), 15_000, `the probe to start${output('store')}`);
    await m.waitFor(() => /SD_ACTIVATE_FDSTORE_DROPPED/.test(output('store')), 5_000, `the warning${output('store')}`);
    const text = output('store');
    expect(warningsIn(text), text).to.deep.equal({ SD_ACTIVATE_FDSTORE_DROPPED: 1 });
    expect(text).to.include('FileDescriptorStoreMax=');
    expect(await props(`${unit}.service`, 'NFileDescriptorStore')).to.deep.equal({ NFileDescriptorStore: '0' });
    await m.systemctlOk('stop', `${unit}.service`);
  });

  it('WatchdogSec= and no watchdog started: SD_ACTIVATE_WATCHDOG_NOT_STARTED before systemd kills it', async function () {
    const m = suite.manager;
    const unit = await install('watchdog', ['Type=notify', 'WatchdogSec=2', 'LimitCORE=0']);
    await m.systemctlOk('start', `${unit}.service`);
    await m.waitFor(async () => (await m.show(`${unit}.service`, 'Result')) === 'watchdog', 15_000, `Result=watchdog${output('watchdog')}`);
    const text = output('watchdog');
    expect(warningsIn(text), text).to.deep.equal({ SD_ACTIVATE_WATCHDOG_NOT_STARTED: 1 });
    expect(text).to.match(/at least every 2 s .* in the first 1 s/);
  });

  it('upgrader() under Type=simple: SD_ACTIVATE_UPGRADE_UNAVAILABLE', async function () {
    const m = suite.manager;
    const unit = await install('simple-upgrader', ['Type=simple'], { args: 'upgrader' });
    await m.systemctlOk('start', `${unit}.service`);
    await m.waitFor(() => /SD_ACTIVATE_UPGRADE_UNAVAILABLE/.test(output('simple-upgrader')), 15_000, `the warning${output('simple-upgrader')}`);
    await m.waitFor(() => /ready \d+/.test(output('simple-upgrader')), 5_000, 'the probe to start');
    const text = output('simple-upgrader');
    expect(warningsIn(text), text).to.deep.equal({ SD_ACTIVATE_UPGRADE_UNAVAILABLE: 1 });
    expect(text).to.include('no NOTIFY_SOCKET');
    await m.systemctlOk('stop', `${unit}.service`);
  });

  it('upgrader() in ExecReload=: SD_ACTIVATE_UPGRADE_UNAVAILABLE names the control process', async function () {
    const m = suite.manager;
    const unit = await install('control', ['Type=notify', `ExecReload=${unitArg(process.execPath)} ${unitArg(PROBE)} upgrader exit`]);
    await m.systemctlOk('start', `${unit}.service`);
    const mainPid = await m.show(`${unit}.service`, 'MainPID');
    expect(warningsIn(output('control')), output('control')).to.deep.equal({});
    await m.systemctlOk('reload', `${unit}.service`);
    const text = output('control');
    expect(warningsIn(text), text).to.deep.equal({ SD_ACTIVATE_UPGRADE_UNAVAILABLE: 1 });
    expect(text).to.include(`MAINPID=${mainPid} is the main process`);
    await m.systemctlOk('stop', `${unit}.service`);
  });

  it('a unit that gives the program all it uses gets no warning, through an upgrade and a worker pool', async function () {
    const m = suite.manager;
    const port = await freePort();
    const unit = await install('correct', ['Type=notify', 'FileDescriptorStoreMax=4', 'WatchdogSec=2', 'ExecReload=/bin/kill -HUP $MAINPID'], {
      args: 'store watchdog upgrader pool',
      socket: [`ListenStream=127.0.0.1:${port}`, 'FileDescriptorName=web'],
    });
    await m.systemctlOk('start', `${unit}.socket`, `${unit}.service`);
    const first = Number(await m.show(`${unit}.service`, 'MainPID'));
    const served = await bodyAt(port);
    expect(served).to.match(/^\d+\n$/);
    expect(Number(served)).to.not.equal(first); // a worker answered
    await m.systemctlOk('reload', `${unit}.service`);
    await m.waitFor(async () => Number(await m.show(`${unit}.service`, 'MainPID')) !== first, 15_000, `the upgrade${output('correct')}`);
    // Longer than the first interval of the watchdog check of the new process, and of its workers.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const p = await props(`${unit}.service`, 'ActiveState', 'Result', 'NRestarts', 'NFileDescriptorStore');
    expect(p, output('correct')).to.deep.equal({ ActiveState: 'active', Result: 'success', NRestarts: '0', NFileDescriptorStore: '1' });
    expect(await bodyAt(port)).to.match(/^\d+\n$/);
    await m.systemctlOk('stop', `${unit}.service`, `${unit}.socket`);
    const text = output('correct');
    expect(text.match(/ready \d+/g)?.length, text).to.equal(6); // 2 primaries and 4 workers
    expect(warningsIn(text), text).to.deep.equal({});
    expect(text).to.not.match(/Warning/);
  });
});

describe('misconfiguration warnings under sd-activate run', function () {
  this.timeout(30_000);

  async function probeUnderRun(runArgs: string[], features: string[]): Promise<string> {
    const result = await runCli(['run', ...runArgs, '--', process.execPath, PROBE, ...features, 'exit'], { timeoutMs: 20_000 });
    expect(result.stdout, result.stderr).to.match(/ready \d+/);
    return result.stderr;
  }

  it('FDSTORE=1 (as systemd 254+ sets it) and two sockets stored: SD_ACTIVATE_FDSTORE_DROPPED', async function () {
    const stderr = await probeUnderRun(['--type', 'notify', '--fd-store', '1'], ['store-two']);
    expect(warningsIn(stderr), stderr).to.deep.equal({ SD_ACTIVATE_FDSTORE_DROPPED: 1 });
    expect(stderr).to.include('FDSTORE=1 says it keeps at most 1');
    // The supervisor did drop one, as the warning said.
    expect(stderr).to.match(/the fd store is full \(1\)/);
  });

  it('an fd store large enough: no warning', async function () {
    const stderr = await probeUnderRun(['--type', 'notify', '--fd-store', '2'], ['store-two']);
    expect(warningsIn(stderr), stderr).to.deep.equal({});
  });

  it('the codes are the ones the README lists', function () {
    const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
    for (const code of CODES) expect(readme, code).to.include(`\`${code}\``);
  });
});
