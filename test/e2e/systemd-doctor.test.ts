import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { CLI, freePort, runCli } from '../cli/helpers.js';
import { bodyAt, PROBE, useSystemdManager } from '../support/manager-suite.js';
import { unitArg } from '../support/upgrade-harness.js';

/*
 * `sd-activate doctor` against real units loaded into a real systemd 252 user manager: each
 * finding from a unit that has the fault, and none from a unit that gives the program all it
 * uses (started, to show it is right). Where the fault shows when the unit runs, it is started too.
 */


interface Finding {
  level: string;
  code: string;
  unit: string;
  message: string;
  file: string | null;
  section: string;
  key: string;
  line: string | null;
}

describe('sd-activate doctor (user manager)', function () {
  this.timeout(60_000);
  const id = randomBytes(4).toString('hex');
  const NODE = `${unitArg(process.execPath)} ${unitArg(PROBE)}`;
  /** The reload that reports the upgrade's outcome, with the sd-activate under test. */
  const RELOAD = `ExecReload=${unitArg(process.execPath)} ${unitArg(CLI)} reload $MAINPID`;
  const suite = useSystemdManager();

  /** Installs `units` (names get a unique prefix: `.service` alone is `PREFIX.service`). */
  async function install(name: string, units: Record<string, string[]>): Promise<string> {
    const prefix = `sdact-doc-${id}-${name}`;
    await suite.manager.installUnits(Object.fromEntries(Object.entries(units).map(([suffix, lines]) => [`${prefix}${suffix}`, lines.join('\n')])));
    return prefix;
  }

  async function doctor(unit: string, ...args: string[]): Promise<{ code: number | null; findings: Finding[]; stdout: string; stderr: string }> {
    const env = { ...process.env, XDG_RUNTIME_DIR: suite.manager.dir, DBUS_SESSION_BUS_ADDRESS: undefined };
    const json = await runCli(['doctor', '--user', '--json', ...args, unit], { env, timeoutMs: 30_000 });
    expect(json.stderr).to.equal('');
    const text = await runCli(['doctor', '--user', ...args, unit], { env, timeoutMs: 30_000 });
    expect(text.code, 'the same status with and without --json').to.equal(json.code);
    const findings = (JSON.parse(json.stdout) as { findings: Finding[] }).findings;
    // The text form shows each finding with its line.
    for (const f of findings) {
      expect(text.stdout).to.include(`${f.level} [${f.code}] ${f.unit}: `);
      if (f.line) expect(text.stdout).to.include(`\n    ${f.line}\n`);
    }
    return { code: json.code, findings, stdout: text.stdout, stderr: text.stderr };
  }

  const codes = (findings: Finding[]): string[] => findings.map((f) => `${f.level} ${f.code}`);
  const byCode = (findings: Finding[], code: string): Finding => {
    const f = findings.find((x) => x.code === code);
    expect(f, `${code} in ${JSON.stringify(findings, null, 1)}`).to.not.equal(undefined);
    return f!;
  };

  it('a unit that gives the program what it uses: no finding, before and while it runs', async function () {
    const m = suite.manager;
    const port = await freePort();
    const unit = await install('correct', {
      '.socket': ['[Socket]', `ListenStream=127.0.0.1:${port}`, 'FileDescriptorName=web'],
      '.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} http store watchdog upgrader`, RELOAD, 'FileDescriptorStoreMax=1', 'WatchdogSec=5', 'Restart=on-failure'],
    });
    const args = ['--names', 'web', '--stored', 'stored', '--upgrader', '--watchdog', '--stop-timeout', '2s'];
    const before = await doctor(`${unit}.service`, ...args);
    expect(before.findings).to.deep.equal([]);
    expect(before.code).to.equal(0);
    expect(before.stdout).to.equal(`${unit}.service: no findings\n`);
    await m.systemctlOk('start', `${unit}.socket`, `${unit}.service`);
    expect(await bodyAt(port)).to.equal(`${await m.show(`${unit}.service`, 'MainPID')}\n`);
    const running = await doctor(`${unit}.service`, ...args);
    expect(running.findings).to.deep.equal([]);
    // Its ExecReload= does upgrade: `systemctl reload` returns once the new version serves.
    const first = await m.show(`${unit}.service`, 'MainPID');
    await m.systemctlOk('reload', `${unit}.service`);
    const second = await m.show(`${unit}.service`, 'MainPID');
    expect(second).to.not.equal(first);
    expect(await bodyAt(port)).to.equal(`${second}\n`);
    // The same unit, told the program uses other names: the socket's name is found wrong.
    const other = await doctor(`${unit}.service`, ...args.slice(2), '--names', 'http');
    expect(codes(other.findings)).to.deep.equal(['error socket-name-missing']);
    await m.systemctlOk('stop', `${unit}.service`, `${unit}.socket`);
  });

  it('a unit that does not exist, or does not load', async function () {
    const missing = await doctor(`sdact-doc-${id}-nosuch.service`);
    expect(codes(missing.findings)).to.deep.equal(['error unit-not-found']);
    expect(missing.code).to.equal(1);
    const unit = await install('bad', { '.service': ['[Service]', 'Type=notify', 'ExecStart=relative/node app.js'] });
    const bad = await doctor(unit);
    expect(codes(bad.findings)).to.deep.equal(['error unit-load-error']);
  });

  it('ExecStart=npm start: exec-package-manager, with the node command of the package script', async function () {
    const app = join(suite.dir, 'npm-app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'npm-app', private: true, scripts: { start: `node ${PROBE} notify-loop` } }));
    const npm = execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim();
    const unit = await install('npm', {
      '.service': ['[Service]', 'Type=notify', `ExecStart=${npm} start`, `WorkingDirectory=${app}`, 'TimeoutStartSec=10', `Environment=PATH=${dirname(process.execPath)}:/usr/bin:/bin`],
    });
    const result = await doctor(`${unit}.service`);
    expect(codes(result.findings)).to.deep.equal(['error exec-package-manager']);
    expect(result.findings[0]).to.deep.include({ section: 'Service', key: 'ExecStart', line: `ExecStart=${process.execPath} ${PROBE} notify-loop` });
    expect(result.code).to.equal(1);
    // As the finding says: READY=1 comes from npm's grandchild, and systemd drops it.
    const start = await suite.manager.systemctl('start', `${unit}.service`);
    expect(start.code).to.not.equal(0);
    expect(await suite.manager.show(`${unit}.service`, 'Result')).to.equal('timeout');
    expect(suite.manager.log()).to.match(/reception only permitted for main PID/);
  });

  it('ExecStart=/bin/sh -c "node ...": exec-shell; with exec, or bash with a lone command, no finding', async function () {
    const unit = await install('shell', {
      '.service': ['[Service]', 'Type=notify', `ExecStart=/bin/sh -c ${unitArg(`${process.execPath} ${PROBE}`)}`],
      '-exec.service': ['[Service]', 'Type=notify', `ExecStart=/bin/sh -c ${unitArg(`exec ${process.execPath} ${PROBE}`)}`],
      '-bash.service': ['[Service]', 'Type=notify', `ExecStart=/bin/bash -c ${unitArg(`${process.execPath} ${PROBE}`)}`],
    });
    const result = await doctor(`${unit}.service`);
    expect(codes(result.findings)).to.deep.equal(['error exec-shell']);
    expect(byCode(result.findings, 'exec-shell')).to.deep.include({ section: 'Service', key: 'ExecStart', line: `ExecStart=${process.execPath} /path/to/app.js` });
    expect((await doctor(`${unit}-exec.service`)).findings).to.deep.equal([]);
    expect((await doctor(`${unit}-bash.service`)).findings).to.deep.equal([]);
    // Started, each does what the doctor says: the shell's child is not heard; exec and bash's own exec are.
    await Promise.all([suite.manager.systemctlOk('start', `${unit}-exec.service`), suite.manager.systemctlOk('start', `${unit}-bash.service`)]);
    await suite.manager.systemctlOk('stop', `${unit}-exec.service`, `${unit}-bash.service`);
  });

  it('a wrapper script without exec: exec-wrapper-script; one that ends in exec node: none; a node script with #!: none', async function () {
    const wrapper = join(suite.dir, 'wrapper.sh');
    writeFileSync(wrapper, `#!/bin/sh\ncd "$(dirname "$0")"\n${process.execPath} ${PROBE}\n`);
    const execWrapper = join(suite.dir, 'exec-wrapper.sh');
    writeFileSync(execWrapper, `#!/bin/sh\nexport A=1\nexec ${process.execPath} ${PROBE}\n`);
    const script = join(suite.dir, 'app.js');
    writeFileSync(script, `#!/usr/bin/env node\nimport(${JSON.stringify(PROBE)});\n`);
    for (const file of [wrapper, execWrapper, script]) chmodSync(file, 0o755);
    const unit = await install('script', {
      '.service': ['[Service]', 'Type=notify', `ExecStart=${wrapper}`],
      '-exec.service': ['[Service]', 'Type=notify', `ExecStart=${execWrapper}`],
      '-node.service': ['[Service]', 'Type=notify', `ExecStart=${script}`, `Environment=PATH=${dirname(process.execPath)}:/usr/bin:/bin`],
      '-other.service': ['[Service]', 'Type=notify', 'ExecStart=/usr/bin/python3 -c "pass"'],
    });
    const result = await doctor(`${unit}.service`);
    expect(codes(result.findings)).to.deep.equal(['error exec-wrapper-script']);
    expect(byCode(result.findings, 'exec-wrapper-script').message).to.include(wrapper);
    expect((await doctor(`${unit}-exec.service`)).findings).to.deep.equal([]);
    expect((await doctor(`${unit}-node.service`)).findings).to.deep.equal([]);
    const other = await doctor(`${unit}-other.service`);
    expect(codes(other.findings)).to.deep.equal(['note exec-unknown']);
    expect(other.code).to.equal(0);
    await suite.manager.systemctlOk('start', `${unit}-exec.service`, `${unit}-node.service`);
    await suite.manager.systemctlOk('stop', `${unit}-exec.service`, `${unit}-node.service`);
    const start = await suite.manager.systemctl('start', '--no-block', `${unit}.service`);
    expect(start.code).to.equal(0);
  });

  it('Type=forking: type-forking; Type=simple: type-not-notify (a note)', async function () {
    const unit = await install('type', {
      '.service': ['[Service]', 'Type=forking', `ExecStart=${NODE}`],
      '-simple.service': ['[Service]', 'Type=simple', `ExecStart=${NODE}`],
    });
    const forking = await doctor(`${unit}.service`);
    expect(codes(forking.findings)).to.deep.equal(['error type-forking']);
    expect(byCode(forking.findings, 'type-forking').line).to.equal('Type=notify');
    const simple = await doctor(`${unit}-simple.service`);
    expect(codes(simple.findings)).to.deep.equal(['note type-not-notify']);
    expect(simple.code).to.equal(0);
  });

  it('socket names: missing (from a socket with its default name, or from no socket), unused, and listed without --names', async function () {
    const m = suite.manager;
    const port = await freePort();
    const unit = await install('names', {
      '.socket': ['[Socket]', `ListenStream=127.0.0.1:${port}`],
      '.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} http`, 'TimeoutStartSec=10'],
      '-extra.socket': ['[Socket]', `ListenStream=127.0.0.1:${await freePort()}`, 'FileDescriptorName=metrics', `Service=sdact-doc-${id}-names.service`],
      '-alone.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} http`],
    });
    const named = await doctor(`${unit}.service`, '--names', 'web', '--names', 'metrics,admin');
    expect(codes(named.findings)).to.deep.equal(['error socket-name-missing', 'error socket-name-missing']);
    expect(named.findings[0]).to.deep.include({ unit: `${unit}.socket`, section: 'Socket', key: 'FileDescriptorName', line: 'FileDescriptorName=web', file: join(m.unitDir, `${unit}.socket`) });
    expect(named.findings[1]).to.deep.include({ unit: `${unit}-admin.socket`, line: 'FileDescriptorName=admin', file: join(m.unitDir, `${unit}-admin.socket`) });
    const unused = await doctor(`${unit}.service`, '--names', `${unit}.socket`);
    expect(codes(unused.findings)).to.deep.equal(['warning socket-name-unused']);
    expect(unused.findings[0]).to.deep.include({ unit: `${unit}-extra.socket`, key: 'FileDescriptorName' });
    expect(unused.code).to.equal(0);
    const listed = await doctor(`${unit}.service`);
    expect(codes(listed.findings)).to.deep.equal(['note socket-names', 'note socket-names']);
    const alone = await doctor(`${unit}-alone.service`, '--names', 'web');
    expect(codes(alone.findings)).to.deep.equal(['error socket-name-missing']);
    expect(alone.findings[0]).to.deep.include({ unit: `${unit}-alone.socket` });
    // Started as it is, the program finds no "web" among the names, as the doctor said.
    const start = await m.systemctl('start', `${unit}.socket`, `${unit}.service`);
    expect(start.code).to.not.equal(0);
    expect(await m.show(`${unit}.service`, 'Result')).to.equal('exit-code');
  });

  it('the fd store: fdstore-off, fdstore-too-small, fdstore-no-restart', async function () {
    const unit = await install('store', {
      '.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} store`, 'Restart=on-failure'],
      '-small.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} store-two`, 'FileDescriptorStoreMax=1', 'Restart=on-failure'],
      '-norestart.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} store`, 'FileDescriptorStoreMax=1'],
    });
    const off = await doctor(`${unit}.service`, '--stored', 'stored');
    expect(codes(off.findings)).to.deep.equal(['error fdstore-off']);
    expect(off.findings[0]!.line).to.equal('FileDescriptorStoreMax=1');
    const small = await doctor(`${unit}-small.service`, '--stored', 'stored,stored-2');
    expect(codes(small.findings)).to.deep.equal(['error fdstore-too-small']);
    expect(small.findings[0]!.line).to.equal('FileDescriptorStoreMax=2');
    const norestart = await doctor(`${unit}-norestart.service`, '--stored', 'stored');
    expect(codes(norestart.findings)).to.deep.equal(['warning fdstore-no-restart']);
    // Started: systemd keeps none of the fds of the first, one of the second's two.
    await suite.manager.systemctlOk('start', `${unit}.service`, `${unit}-small.service`);
    expect(await suite.manager.show(`${unit}.service`, 'NFileDescriptorStore')).to.equal('0');
    expect(await suite.manager.show(`${unit}-small.service`, 'NFileDescriptorStore')).to.equal('1');
    await suite.manager.systemctlOk('stop', `${unit}.service`, `${unit}-small.service`);
  });

  it('upgrades: upgrade-no-notify-socket, upgrade-type, upgrade-no-reload, upgrade-reload-signal, upgrade-reload-unreported, upgrade-killmode', async function () {
    const good = [RELOAD];
    const unit = await install('upgrade', {
      '.service': ['[Service]', 'Type=simple', `ExecStart=${NODE} upgrader`, ...good],
      '-notifyaccess.service': ['[Service]', 'Type=simple', 'NotifyAccess=main', `ExecStart=${NODE} upgrader`, ...good],
      '-noreload.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} upgrader`],
      '-signal.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} upgrader`, 'ExecReload=/bin/kill -USR2 $MAINPID'],
      '-killmode.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} upgrader`, ...good, 'KillMode=process'],
      '-spellings.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} upgrader`, 'ExecReload=/usr/bin/kill -s HUP ${MAINPID}'],
    });
    expect(codes((await doctor(`${unit}.service`, '--upgrader')).findings)).to.deep.equal(['error upgrade-no-notify-socket']);
    expect(codes((await doctor(`${unit}-notifyaccess.service`, '--upgrader')).findings)).to.deep.equal(['warning upgrade-type']);
    const noreload = await doctor(`${unit}-noreload.service`, '--upgrader');
    expect(codes(noreload.findings)).to.deep.equal(['error upgrade-no-reload']);
    expect(noreload.findings[0]!.line).to.equal(`ExecReload=${process.execPath} ${realpathSync(CLI)} reload $MAINPID`);
    expect(codes((await doctor(`${unit}-signal.service`, '--upgrader')).findings)).to.deep.equal(['warning upgrade-reload-signal']);
    expect(codes((await doctor(`${unit}-killmode.service`, '--upgrader')).findings)).to.deep.equal(['warning upgrade-killmode']);
    // kill -HUP upgrades, in any spelling; `systemctl reload` then cannot tell a rollback.
    const spellings = await doctor(`${unit}-spellings.service`, '--upgrader');
    expect(codes(spellings.findings)).to.deep.equal(['note upgrade-reload-unreported']);
    expect(spellings.code).to.equal(0);
    // Started, the unit without ExecReload= cannot be reloaded at all.
    await suite.manager.systemctlOk('start', `${unit}-noreload.service`);
    expect((await suite.manager.systemctl('reload', `${unit}-noreload.service`)).code).to.not.equal(0);
    await suite.manager.systemctlOk('stop', `${unit}-noreload.service`);
  });

  it('the watchdog: watchdog-unused (read from the files, and while running), watchdog-off, watchdog-no-restart', async function () {
    const unit = await install('watchdog', {
      '.service': ['[Service]', 'Type=notify', `ExecStart=${NODE}`, 'WatchdogSec=5', 'Restart=on-failure', 'RestartSec=60', 'LimitCORE=0'],
      '-off.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} watchdog`],
      '-norestart.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} watchdog`, 'WatchdogSec=3'],
      '-reset.service': ['[Service]', 'Type=notify', `ExecStart=${NODE}`, 'WatchdogSec=3', 'WatchdogSec=', 'Restart=on-failure'],
    });
    const unused = await doctor(`${unit}.service`);
    expect(codes(unused.findings)).to.deep.equal(['warning watchdog-unused']);
    expect(unused.findings[0]).to.deep.include({ key: 'WatchdogSec', line: null });
    expect(unused.stdout).to.include('remove WatchdogSec=');
    expect(codes((await doctor(`${unit}-off.service`, '--watchdog')).findings)).to.deep.equal(['note watchdog-off']);
    expect(codes((await doctor(`${unit}-norestart.service`, '--watchdog')).findings)).to.deep.equal(['warning watchdog-no-restart']);
    expect((await doctor(`${unit}-reset.service`)).findings).to.deep.equal([]);
    // Running, as `systemctl show` then says it: the same finding, and the kill it warns of.
    await suite.manager.systemctlOk('start', `${unit}.service`);
    expect(await suite.manager.show(`${unit}.service`, 'WatchdogUSec')).to.equal('5s');
    expect(codes((await doctor(`${unit}.service`)).findings)).to.deep.equal(['warning watchdog-unused']);
    await suite.manager.waitFor(async () => (await suite.manager.show(`${unit}.service`, 'Result')) === 'watchdog', 15_000, 'Result=watchdog');
    await suite.manager.systemctlOk('stop', `${unit}.service`);
  });

  it('the stop: stop-timeout-short against the drain, and killmode-none', async function () {
    const unit = await install('stop', {
      '.service': ['[Service]', 'Type=notify', `ExecStart=${NODE}`, 'TimeoutStopSec=5'],
      '-killmode.service': ['[Service]', 'Type=notify', `ExecStart=${NODE}`, 'KillMode=none'],
    });
    const short = await doctor(`${unit}.service`);
    expect(codes(short.findings)).to.deep.equal(['warning stop-timeout-short']);
    expect(short.findings[0]!.line).to.equal('TimeoutStopSec=15s');
    expect((await doctor(`${unit}.service`, '--stop-timeout', '4s')).findings).to.deep.equal([]);
    expect(codes((await doctor(`${unit}.service`, '--stop-timeout', '1min')).findings)).to.deep.equal(['warning stop-timeout-short']);
    expect(codes((await doctor(`${unit}-killmode.service`)).findings)).to.deep.equal(['warning killmode-none']);
  });

  it('exit when idle: idle-no-socket, idle-stored, idle-start-limit, and the start limit systemd then hits', async function () {
    const m = suite.manager;
    const [port, other] = [await freePort(), await freePort()];
    const unit = await install('idle', {
      '.socket': ['[Socket]', `ListenStream=127.0.0.1:${port}`, 'FileDescriptorName=web'],
      '.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} http idle`, 'Environment=IDLE_MS=100'],
      '-burst.socket': ['[Socket]', `ListenStream=127.0.0.1:${other}`, 'FileDescriptorName=web'],
      '-burst.service': ['[Unit]', 'StartLimitBurst=200', '[Service]', 'Type=notify', `ExecStart=${NODE} http idle`, 'Environment=IDLE_MS=100'],
      '-nosocket.service': ['[Service]', 'Type=notify', `ExecStart=${NODE} idle`],
    });
    const limit = await doctor(`${unit}.service`, '--names', 'web', '--idle-exit', '100ms');
    expect(codes(limit.findings)).to.deep.equal(['warning idle-start-limit']);
    expect(limit.findings[0]).to.deep.include({ section: 'Unit', key: 'StartLimitBurst', line: 'StartLimitBurst=102' });
    expect((await doctor(`${unit}-burst.service`, '--names', 'web', '--idle-exit', '100ms')).findings).to.deep.equal([]);
    const stored = await doctor(`${unit}-burst.service`, '--names', 'web', '--stored', 'cache', '--idle-exit', '100ms');
    expect(codes(stored.findings)).to.deep.equal(['error fdstore-off', 'warning fdstore-no-restart', 'error idle-stored']);
    const nosocket = await doctor(`${unit}-nosocket.service`, '--idle-exit', '5s');
    expect(codes(nosocket.findings)).to.deep.equal(['error idle-no-socket']);
    expect(nosocket.findings[0]).to.deep.include({ unit: `${unit}-nosocket.socket`, section: 'Socket', line: 'ListenStream=ADDRESS' });
    // Started: the one without a socket is refused; the other exits when idle, and the next
    // connections start it until systemd's start limit (5 within 10 s) refuses it.
    expect((await m.systemctl('start', `${unit}-nosocket.service`)).code).to.not.equal(0);
    await m.systemctlOk('start', `${unit}.socket`);
    for (let i = 0; i < 6 && (await m.show(`${unit}.service`, 'Result')) !== 'start-limit-hit'; i++) {
      await bodyAt(port).catch(() => '');
      await m.waitFor(async () => (await m.show(`${unit}.service`, 'ActiveState')) !== 'active', 10_000, 'the idle exit');
    }
    await m.waitFor(async () => (await m.show(`${unit}.service`, 'Result')) === 'start-limit-hit', 10_000, 'Result=start-limit-hit');
    await m.systemctl('stop', `${unit}.socket`);
  });

  it('refuses what it cannot check', async function () {
    const env = { ...process.env, XDG_RUNTIME_DIR: suite.manager.dir, DBUS_SESSION_BUS_ADDRESS: undefined };
    const socket = await runCli(['doctor', '--user', 'app.socket'], { env });
    expect(socket.code).to.equal(2);
    expect(socket.stderr).to.match(/not a service/);
    const names = await runCli(['doctor', '--user', '--names', 'a:b', 'app'], { env });
    expect(names.code).to.equal(2);
    const noManager = await runCli(['doctor', '--user', 'app'], { env: { ...env, XDG_RUNTIME_DIR: suite.dir } });
    expect(noManager.code).to.equal(1);
    expect(noManager.stderr).to.match(/^sd-activate: systemctl --user show app.service failed/);
    const help = await runCli(['help', 'doctor']);
    expect(help.stdout).to.match(/^usage: sd-activate doctor/);
    expect(readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8')).to.include('sd-activate doctor');
  });
});
