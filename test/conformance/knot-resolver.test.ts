import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { alive, stateOf } from './proc.js';
import { bothManagers, execStart, unitPath } from './harness.js';
import { freeTcpUdpPort, resolveA } from './clients.js';

/*
 * Knot Resolver's kresd (Debian's knot-resolver package): Type=notify, and it feeds the watchdog
 * (WATCHDOG_USEC) from its event loop. A kresd that is stopped (SIGSTOP) stops feeding it: the
 * manager sends SIGABRT, and SIGCONT after it, so that the signal is delivered at once.
 */

const KRESD = '/usr/sbin/kresd';
const NAME = 'probe.example.net';
const ADDRESS = '192.0.2.8';

/** kresd on 127.0.0.1:port answering NAME from its hints; no trust anchor updates, no time-skew check, no priming. */
function config(dir: string, port: number): string {
  const path = `${dir}/kresd.conf`;
  writeFileSync(
    path,
    [
      `net.listen('127.0.0.1', ${port}, { kind = 'dns' })`,
      'cache.size = 10 * MB',
      "modules.unload('ta_update')",
      "modules.unload('detect_time_skew')",
      "modules.unload('priming')",
      "modules.load('hints > iterate')",
      `hints.set('${NAME} ${ADDRESS}')`,
      '',
    ].join('\n'),
  );
  return path;
}

describe('conformance: knot-resolver under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  const bench = bothManagers('kresd');

  it('Type=notify with a watchdog: READY=1, kept alive, the same answers', async () => {
    const [systemdPort, toolPort] = [await freeTcpUdpPort(), await freeTcpUdpPort()];
    const [dir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
    const service = bench.unit('kresd.service');
    await bench.install({
      [service]: ['[Service]', 'Type=notify', 'WatchdogSec=2s', `WorkingDirectory=${unitPath(dir)}`, execStart([KRESD, '-n', '-c', config(dir, systemdPort), dir])].join('\n'),
    });
    await bench.manager.systemctlOk('start', service);
    const underSystemd = await resolveA(systemdPort, NAME);

    const tool = bench.tool(['run', '--type', 'notify', '--watchdog', '2s', '--', KRESD, '-n', '-c', config(toolDir, toolPort), toolDir], { cwd: toolDir });
    await tool.waitFor(/is ready after/);
    const underTool = await resolveA(toolPort, NAME);

    expect(underSystemd).to.deep.equal([ADDRESS]);
    expect(underTool).to.deep.equal(underSystemd);
    // Two watchdog periods later, both still run: kresd feeds the watchdog.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    expect(await bench.props(service, 'ActiveState', 'NRestarts')).to.deep.equal({ ActiveState: 'active', NRestarts: '0' });
    expect(tool.stderr).to.not.match(/watchdog/);
    expect(tool.running).to.equal(true);
  });

  it('a stopped (SIGSTOP) kresd: the watchdog SIGABRT is delivered at once (SIGCONT), Result=watchdog', async () => {
    const [systemdPort, toolPort] = [await freeTcpUdpPort(), await freeTcpUdpPort()];
    const [dir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
    const service = bench.unit('kresd-stopped.service');
    await bench.install({
      [service]: [
        '[Service]',
        'Type=notify',
        'WatchdogSec=1s',
        'TimeoutStopSec=10s',
        // A core dump of kresd is of no use here.
        'LimitCORE=0',
        `WorkingDirectory=${unitPath(dir)}`,
        execStart([KRESD, '-n', '-c', config(dir, systemdPort), dir]),
      ].join('\n'),
    });
    await bench.manager.systemctlOk('start', service);
    const systemdPid = await bench.mainPid(service);
    process.kill(systemdPid, 'SIGSTOP');
    const underSystemd = await bench.waitProps(service, ['ActiveState', 'Result', 'ExecMainStatus'], (p) => p.ActiveState === 'failed', 'the watchdog to end it');
    expect(underSystemd).to.deep.equal({ ActiveState: 'failed', Result: 'watchdog', ExecMainStatus: '6' });
    expect(bench.manager.log()).to.not.match(/State 'stop-watchdog' timed out/);

    // The core, if any, goes to its working directory (kernel.core_pattern "core"): the temp dir.
    const tool = bench.tool(['run', '--type', 'notify', '--watchdog', '1s', '--timeout-stop', '10s', '--', KRESD, '-n', '-c', config(toolDir, toolPort), toolDir], { cwd: toolDir });
    await tool.waitFor(/is ready after/);
    const toolPid = await tool.startedPid();
    process.kill(toolPid, 'SIGSTOP');
    await bench.manager.waitFor(() => stateOf(toolPid) === 'T', 5_000, 'kresd to be stopped');
    const { code } = await tool.exited;
    expect(alive(toolPid)).to.equal(false);
    expect(tool.stderr.match(/^.*SIGKILL.*$/gm) ?? [], 'what sd-activate said of SIGKILL').to.deep.equal([]);
    expect(tool.stderr).to.match(/sending SIGABRT\n[^]*was killed by SIGABRT/);
    expect(code, tool.transcript()).to.equal(128 + 6);
  });
});
