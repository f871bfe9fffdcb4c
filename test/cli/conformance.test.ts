import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemdManager } from '../support/systemd-manager.js';
import { Cli, CLI, fixture, freePort, runCli } from './helpers.js';

/*
 * The same scenarios under a real systemd 252 user manager and under `sd-activate run`, compared
 * on what the service observes: its fds, its environment, its fd store across a crash, and how a
 * stalled watchdog ends it.
 */

const NODE = process.execPath;

interface Row {
  name: string;
  fd: number;
  kind: string;
  family: string | null;
  type: string | null;
  address: string | null;
  listening: boolean | null;
}

/** A command line as ExecStart= reads it literally: `%` starts a specifier and `$` a variable there. */
const unitEscape = (text: string): string => text.replace(/%/g, '%%').replace(/\$/g, '$$$$');

/** Rows in a stable order: systemd orders the fds of several socket units by a hash, not by name. */
function normalized(rows: Row[]): { fds: number[]; rows: Array<Omit<Row, 'fd'>> } {
  return {
    fds: rows.map((r) => r.fd).sort((a, b) => a - b),
    rows: rows.map(({ fd: _fd, ...rest }) => rest).sort((a, b) => `${a.name} ${a.address}`.localeCompare(`${b.name} ${b.address}`)),
  };
}

async function waitForFile(path: string, done: (text: string) => boolean, manager: SystemdManager, timeoutMs = 15_000): Promise<string> {
  return manager.waitFor(
    () => {
      const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
      return done(text) ? text : '';
    },
    timeoutMs,
    `${path} to be written`,
  );
}

describe('conformance: the same service under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  let manager: SystemdManager;
  let dir: string;
  let n = 0;
  const unit = (suffix: string): string => `sdact-conf-${process.pid}-${++n}-${suffix}`;

  before(async function () {
    this.timeout(60_000);
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    manager = await SystemdManager.start();
  });
  after(async function () {
    this.timeout(30_000);
    await manager?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('inherited fds: names, kinds, families, types, addresses, listening state, socket file mode', async () => {
    const [tcp, udp] = [await freePort(), await freePort()];
    const sockets: Record<string, string[]> = {
      web: [`ListenStream=127.0.0.1:${tcp}`, `ListenStream=[::1]:${tcp}`, 'BindIPv6Only=ipv6-only'],
      dns: [`ListenDatagram=127.0.0.1:${udp}`],
      admin: [`ListenStream=${dir}/admin.sock`, 'SocketMode=0600'],
      ctl: [`ListenSequentialPacket=${dir}/ctl.sock`],
      log: [`ListenDatagram=${dir}/log.sock`],
      in: [`ListenFIFO=${dir}/in.fifo`],
    };
    const service = unit('fds.service');
    const units: Record<string, string> = {};
    for (const [name, lines] of Object.entries(sockets)) {
      units[unit(`${name}.socket`)] = ['[Socket]', ...lines, `FileDescriptorName=${name}`, `Service=${service}`].join('\n');
    }
    const socketUnits = Object.keys(units);
    const script = `stat -c %a ${dir}/admin.sock > ${dir}/systemd.mode; exec ${NODE} ${CLI} ls --json`;
    units[service] = [
      '[Service]',
      `ExecStart=/bin/sh -c '${unitEscape(script)}'`,
      `Sockets=${socketUnits.join(' ')}`,
      `StandardOutput=file:${dir}/systemd.json`,
    ].join('\n');
    await manager.installUnits(units);
    await manager.systemctlOk('start', ...socketUnits);
    await manager.systemctlOk('start', service);
    const underSystemd = JSON.parse(await waitForFile(`${dir}/systemd.json`, (t) => t.trimEnd().endsWith(']'), manager)) as Row[];
    await manager.systemctlOk('stop', service, ...socketUnits);

    const run = await runCli([
      'run',
      '-l', `web=tcp:127.0.0.1:${tcp}`, '-l', `web=tcp:[::1]:${tcp}`, '--ipv6-only',
      '-l', `dns=udp:127.0.0.1:${udp}`,
      '-l', `admin=unix:${dir}/admin.sock,mode=0600`,
      '-l', `ctl=seqpacket:${dir}/ctl.sock`,
      '-l', `log=unix-dgram:${dir}/log.sock`,
      '-l', `in=fifo:${dir}/in.fifo`,
      '--', '/bin/sh', '-c', script.replace('systemd.mode', 'run.mode'),
    ]);
    expect(run.code, run.stderr).to.equal(0);
    const underRun = JSON.parse(run.stdout) as Row[];

    expect(underSystemd).to.have.length(7);
    expect(normalized(underRun)).to.deep.equal(normalized(underSystemd));
    expect(readFileSync(`${dir}/run.mode`, 'utf8')).to.equal(readFileSync(`${dir}/systemd.mode`, 'utf8')).and.equal('600\n');
  });

  it('the environment of a Type=notify service with a watchdog, and its READY/STATUS', async () => {
    const service = unit('env.service');
    const script =
      'echo "pid=$([ "$LISTEN_PID" = $$ ] && echo self) watchdog_pid=$([ "$WATCHDOG_PID" = $$ ] && echo self) usec=$WATCHDOG_USEC notify=${NOTIFY_SOCKET:+set}' +
      ' exec_pid=$([ "$SYSTEMD_EXEC_PID" = $$ ] && echo self) invocation=$(echo "$INVOCATION_ID" | grep -Eqx "[0-9a-f]{32}" && echo id128)"';
    const steps = ['ready', 'status:all good', 'sleep:300', 'exit:0'];
    const socket = unit('env.socket');
    const port = await freePort();
    await manager.installUnits({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${port}`, 'FileDescriptorName=web', `Service=${service}`].join('\n'),
      [service]: [
        '[Service]',
        'Type=notify',
        'WatchdogSec=2',
        `ExecStart=/bin/sh -c '${unitEscape(`${script} > ${dir}/env.systemd; exec ${NODE} ${fixture('notify-service')} ${steps.map((s) => `"${s}"`).join(' ')}`)}'`,
        `Sockets=${socket}`,
      ].join('\n'),
    });
    await manager.systemctlOk('start', socket);
    // `start` of a Type=notify service returns once READY=1 came.
    await manager.systemctlOk('start', service);
    expect(await manager.show(service, 'StatusText')).to.equal('all good');
    const systemdEnv = await waitForFile(`${dir}/env.systemd`, (t) => t.endsWith('\n'), manager);
    await manager.systemctlOk('stop', service, socket);

    const run = await runCli([
      'run', '--type', 'notify', '--watchdog', '2', '-l', `web=tcp:127.0.0.1:${port}`,
      '--', '/bin/sh', '-c', `${script}; exec ${NODE} ${fixture('notify-service')} ${steps.map((s) => `"${s}"`).join(' ')}`,
    ]);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.equal(systemdEnv);
    expect(systemdEnv).to.equal('pid=self watchdog_pid=self usec=2000000 notify=set exec_pid=self invocation=id128\n');
    expect(run.stderr).to.match(/READY=1[^]*is ready after[^]*STATUS="all good"/);
  });

  it('the fd store across a crash (Restart=on-failure): what is kept, what hangs up, what FDPOLL=0 keeps', async () => {
    const service = unit('store.service');
    const steps = ['print-fds', 'exit-if:cache', 'store:cache', 'store-pipe:hungup', 'store-pipe-nopoll:pipe', 'exit:3'];
    await manager.installUnits({
      [service]: [
        '[Service]',
        'NotifyAccess=main',
        'FileDescriptorStoreMax=4',
        'Restart=on-failure',
        'RestartSec=300ms',
        `ExecStart=${NODE} ${fixture('notify-service')} ${steps.join(' ')}`,
        `StandardOutput=append:${dir}/store.systemd`,
      ].join('\n'),
    });
    await manager.systemctlOk('start', service);
    const systemdOut = await waitForFile(`${dir}/store.systemd`, (t) => t.split('\n').filter(Boolean).length >= 2, manager);
    await manager.waitFor(async () => (await manager.show(service, 'ActiveState')) === 'inactive', 15_000, `${service} to end`);

    const run = await runCli(['run', '--fd-store', '4', '--restart', 'on-failure', '--restart-sec', '300ms', '--', NODE, fixture('notify-service'), ...steps]);
    expect(run.code, run.stderr).to.equal(0);
    const fdsOf = (text: string): unknown[] => [...text.matchAll(/^FDS (.*)$/gm)].map((m) => (JSON.parse(m[1]!) as Array<{ name: string; kind: string }>).map((f) => `${f.name} ${f.kind}`).sort());
    expect(fdsOf(run.stdout)).to.deep.equal(fdsOf(systemdOut));
    expect(fdsOf(systemdOut)).to.deep.equal([[], ['cache socket', 'pipe fifo']]);
  });

  it('a watchdog that stops being fed: SIGABRT, Result=watchdog', async () => {
    const service = unit('wd.service');
    const steps = ['ready', 'watchdog:4', 'hang'];
    await manager.installUnits({
      [service]: ['[Service]', 'Type=notify', 'WatchdogSec=500ms', `ExecStart=${NODE} ${fixture('notify-service')} ${steps.join(' ')}`].join('\n'),
    });
    await manager.systemctlOk('start', service);
    await manager.waitFor(async () => (await manager.show(service, 'Result')) === 'watchdog', 15_000, `${service} Result=watchdog`);
    expect(await manager.show(service, 'ExecMainStatus')).to.equal('6'); // SIGABRT

    const run = await runCli(['run', '--type', 'notify', '--watchdog', '500ms', '--', NODE, fixture('notify-service'), ...steps]);
    expect(run.stderr).to.match(/watchdog: node \(pid \d+\) sent no WATCHDOG=1 for 500ms; sending SIGABRT\n.*was killed by SIGABRT/);
    expect(run.code).to.equal(128 + 6);
  });

  it('EXTEND_TIMEOUT_USEC= after SIGTERM: a stop that takes longer than TimeoutStopSec= but says so is not killed', async () => {
    const service = unit('slowstop.service');
    const steps = ['term-extend:800', 'ready', 'hang'];
    await manager.installUnits({
      [service]: ['[Service]', 'Type=notify', 'TimeoutStopSec=300ms', `ExecStart=${NODE} ${fixture('notify-service')} ${steps.join(' ')}`].join('\n'),
    });
    await manager.systemctlOk('start', service);
    const began = Date.now();
    await manager.systemctlOk('stop', service);
    const systemdMs = Date.now() - began;
    expect(await manager.show(service, 'Result')).to.equal('success');
    expect(await manager.show(service, 'ExecMainStatus')).to.equal('0');
    expect(systemdMs).to.be.above(700);

    const cli = new Cli(['run', '--type', 'notify', '--timeout-stop', '300ms', '--', NODE, fixture('notify-service'), ...steps]);
    let code: number | null;
    try {
      await cli.waitFor(/is ready after/);
    } finally {
      ({ code } = await cli.stop());
    }
    expect(cli.stderr).to.not.match(/SIGKILL/);
    expect(cli.stderr).to.match(/exited with status 0/);
    expect(code).to.equal(0);
  });

  it('what the main process leaves running: SIGTERM, SIGKILL after TimeoutStopSec=, and Result=timeout', async () => {
    const service = unit('left.service');
    const out = `${dir}/left.systemd`;
    // A background child that ignores SIGTERM (exec keeps SIG_IGN); the main process exits soon after.
    // Not at once: with a main process that exits at once, this user manager sometimes (about one run
    // in three) did not follow up at all (no restart, no stop-sigterm, no Result change).
    const script = `(trap "" TERM; exec sleep 30) & echo "LEFT $!"; sleep 0.2; exit 0`;
    await manager.installUnits({
      [service]: ['[Service]', 'TimeoutStopSec=300ms', `ExecStart=/bin/sh -c ${unitEscape(`'${script}'`)}`, `StandardOutput=append:${out}`].join('\n'),
    });
    await manager.systemctlOk('start', service);
    await manager.waitFor(async () => (await manager.show(service, 'Result')) === 'timeout', 15_000, `${service} Result=timeout`);
    const systemdLeft = Number(/LEFT (\d+)/.exec(readFileSync(out, 'utf8'))?.[1]);
    expect(existsSync(`/proc/${systemdLeft}`), 'systemd killed it').to.equal(false);

    const run = await runCli(['run', '--timeout-stop', '300ms', '--', 'sh', '-c', script]);
    const runLeft = Number(/LEFT (\d+)/.exec(run.stdout)?.[1]);
    expect(run.stderr).to.match(/sending SIGTERM[^]*sending SIGKILL/);
    expect(existsSync(`/proc/${runLeft}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${runLeft}/status`, 'utf8')), 'run killed it').to.equal(false);
    expect(run.code, run.stderr).to.equal(1);
  });

  it('a crash loop with Restart=always: 5 starts within 10 s, then no more (StartLimitBurst=)', async () => {
    const service = unit('loop.service');
    const log = `${dir}/loop.systemd`;
    await manager.installUnits({
      // Each run lasts a moment (see above: an instant exit is sometimes not followed up here).
      [service]: ['[Service]', 'Restart=always', 'RestartSec=100ms', `ExecStart=/bin/sh -c ${unitEscape(`'echo started >> ${log}; sleep 0.1; exit 1'`)}`].join('\n'),
    });
    await manager.systemctlOk('start', service);
    // systemd 252 leaves Result=exit-code (the last run's) and logs "Start request repeated too quickly".
    await manager.waitFor(async () => (await manager.show(service, 'ActiveState')) === 'failed' && (await manager.show(service, 'NRestarts')) === '5', 15_000, `${service} to fail after its restarts`);
    await manager.waitFor(() => manager.logExcerpt(400).includes(`${service}: Start request repeated too quickly`), 5_000, 'the start limit in the log');
    const systemdStarts = readFileSync(log, 'utf8').match(/started/g)?.length;

    const run = await runCli(['run', '--restart', 'always', '--restart-sec', '100ms', '--', 'sh', '-c', 'echo started; sleep 0.1; exit 1']);
    expect(run.stdout.match(/started/g)?.length, run.stderr).to.equal(systemdStarts);
    expect(systemdStarts).to.equal(5);
    expect(run.stderr).to.match(/not started again \(StartLimitBurst=/);
    expect(run.code).to.equal(1);
  });
});
