import { expect } from 'chai';
import { constants } from 'node:os';
import { execFileSync } from 'node:child_process';
import { alive, ignoresSignal } from './proc.js';
import { BIN, bothManagers, execStart, readIfExists } from './harness.js';
import { freePort, HeldConnection } from './clients.js';

/*
 * The smallest programs there are (coreutils' true, sleep and cat, run by dash), for what a
 * manager makes of how a service ends (an exit 0 before READY=1, a stop that needs SIGKILL) and
 * for an inetd-style service on its stdin and stdout.
 */

/** What a client that sends one line gets back before `timeoutMs`. */
async function echoed(port: number, line: string, timeoutMs = 8_000): Promise<string> {
  const client = new HeldConnection(port);
  try {
    await client.connected;
    client.socket.write(line);
    await client.until((d) => d.includes('\n'), timeoutMs);
    return client.data;
  } finally {
    client.close();
  }
}

describe('conformance: coreutils under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  const bench = bothManagers('coreutils');

  it('Type=notify exiting 0 without READY=1: Result=protocol, a failure', async () => {
    const service = bench.unit('protocol.service');
    await bench.install({ [service]: ['[Service]', 'Type=notify', 'ExecStart=/bin/true'].join('\n') });
    await bench.manager.systemctl('start', service);
    const underSystemd = await bench.waitProps(service, ['ActiveState', 'Result', 'ExecMainStatus'], (p) => p.ActiveState === 'failed', 'to fail');
    expect(underSystemd).to.deep.equal({ ActiveState: 'failed', Result: 'protocol', ExecMainStatus: '0' });

    const run = await bench.runTool(['run', '--type', 'notify', '--', '/bin/true']);
    expect(run.stderr).to.match(/exited with status 0/);
    expect(run.code, run.stderr).to.equal(1);
  });

  it('Type=notify exiting 0 without READY=1 is restarted by Restart=on-failure, up to the start limit', async () => {
    const service = bench.unit('protocol-restart.service');
    const log = bench.path('protocol-restart.log');
    await bench.install({
      [service]: [
        '[Unit]',
        'StartLimitBurst=3',
        'StartLimitIntervalSec=60s',
        '[Service]',
        'Type=notify',
        'Restart=on-failure',
        'RestartSec=100ms',
        execStart(['/bin/sh', '-c', `echo started >> ${log}; exec /bin/true`]),
      ].join('\n'),
    });
    await bench.manager.systemctl('start', service);
    const props = await bench.waitProps(service, ['ActiveState', 'Result', 'NRestarts'], (p) => p.ActiveState === 'failed', 'to fail for good');
    const underSystemd = { starts: readIfExists(log).match(/started/g)?.length ?? 0, restarts: Number(props.NRestarts), failed: props.ActiveState === 'failed' };
    expect(props.Result).to.equal('protocol');
    expect(underSystemd).to.deep.equal({ starts: 3, restarts: 3, failed: true });

    const run = await bench.runTool([
      'run', '--type', 'notify', '--restart', 'on-failure', '--restart-sec', '100ms', '--start-limit-burst', '3', '--start-limit-interval', '60s',
      '--', '/bin/sh', '-c', 'echo started; exec /bin/true',
    ]);
    const underTool = { starts: run.stdout.match(/started/g)?.length ?? 0, restarts: run.restarts, failed: run.code !== 0 };
    expect(underTool, run.stderr).to.deep.equal(underSystemd);
    expect(run.code, run.stderr).to.equal(1);
  });

  it('a service that ignores SIGTERM: SIGKILL after TimeoutStopSec=, and the stop fails with Result=timeout', async () => {
    const service = bench.unit('sigkill.service');
    const script = 'trap "" TERM; exec sleep 600';
    await bench.install({ [service]: ['[Service]', 'TimeoutStopSec=1s', execStart(['/bin/sh', '-c', script])].join('\n') });
    await bench.manager.systemctlOk('start', service);
    const systemdPid = await bench.mainPid(service);
    await bench.manager.waitFor(() => ignoresSignal(systemdPid, constants.signals.SIGTERM), 5_000, 'sleep to ignore SIGTERM');
    await bench.manager.systemctl('stop', service);
    expect(await bench.props(service, 'ActiveState', 'Result', 'ExecMainStatus')).to.deep.equal({ ActiveState: 'failed', Result: 'timeout', ExecMainStatus: '9' });
    expect(alive(systemdPid)).to.equal(false);

    const tool = bench.tool(['run', '--timeout-stop', '1s', '--', '/bin/sh', '-c', script]);
    const toolPid = await tool.startedPid();
    await bench.manager.waitFor(() => ignoresSignal(toolPid, constants.signals.SIGTERM), 5_000, 'sleep to ignore SIGTERM');
    const { code } = await tool.stop();
    expect(tool.stderr).to.match(/sending SIGKILL[^]*was killed by SIGKILL/);
    expect(alive(toolPid)).to.equal(false);
    // Stopped on request, but not cleanly: a failure, as Result=timeout is.
    expect(code, tool.transcript()).to.equal(1);
  });

  it("the --accept example of `run --help` echoes, as cat does with Accept=yes and StandardInput=socket", async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const socket = bench.unit('cat.socket');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, 'Accept=yes'].join('\n'),
      [`${socket.replace(/\.socket$/, '')}@.service`]: ['[Service]', 'StandardInput=socket', 'ExecStart=/bin/cat'].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    const underSystemd = await echoed(systemdPort, 'hello, cat\n');
    expect(underSystemd).to.equal('hello, cat\n');

    // The example as the help prints it, on a free port.
    const help = execFileSync(process.execPath, [BIN, 'run', '--help'], { encoding: 'utf8' });
    const example = /^\s*sd-activate (run .*--accept.* -- cat)$/m.exec(help)?.[1];
    expect(example, 'an --accept example with cat in the help').to.be.a('string');
    const args = example!.split(/\s+/).map((arg) => arg.replace(/:7000\b/, `:${toolPort}`));
    expect(args.join(' '), 'the example listens on port 7000').to.include(`:${toolPort}`);
    const tool = bench.tool(args);
    await tool.waitFor(/waiting for connections/);
    expect(await echoed(toolPort, 'hello, cat\n')).to.equal(underSystemd);
  });
});
