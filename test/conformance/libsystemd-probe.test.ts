import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { bothManagers, compileProgram, execStart, unitPath, type Bench } from './harness.js';
import { freePort, HeldConnection } from './clients.js';

/*
 * A C program linked with libsystemd (test/conformance/programs/probe.c) reports what its manager
 * gave it: sd_booted(), sd_listen_fds_with_names(), every open fd and the environment. The same
 * program under systemd and under `sd-activate run`, compared report against report.
 */

interface ProbeFd {
  fd: number;
  what: string;
  peer?: string;
}

interface ProbeReport {
  pid: number;
  booted: number;
  listenFds: number;
  names: string[];
  fds: ProbeFd[];
  env: Record<string, string>;
}

/** The reports the probe wrote into `dir` (one per process), waiting until there are `count`. */
async function reports(bench: Bench, dir: string, count = 1): Promise<ProbeReport[]> {
  const files = await bench.manager.waitFor(
    () => {
      const found = readdirSync(dir).filter((f) => f.endsWith('.json'));
      return found.length >= count ? found : false;
    },
    20_000,
    `${count} probe report(s) in ${dir}`,
  );
  return files.map((f) => JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')) as ProbeReport);
}

/** stdout and stderr are StandardOutput=/StandardError= matters (the journal, a terminal): their number counts, not what they are. */
function fdsBeyondOutput(report: ProbeReport): Array<Partial<ProbeFd>> {
  return report.fds.map(({ fd, what }) => (fd === 1 || fd === 2 ? { fd } : { fd, what }));
}

describe('conformance: a libsystemd program under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  const bench = bothManagers('probe');
  let probe: string;

  before(function () {
    this.timeout(60_000);
    probe = compileProgram('probe', bench.dir);
  });

  it('fds the manager itself has open never reach the service: 0, 1, 2 and its sockets only', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const [systemdDir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
    const marker = bench.path('open-in-the-manager');
    writeFileSync(marker, 'an fd the manager has open\n');
    const socket = bench.unit('fds.socket');
    const service = bench.unit('fds.service');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, `Service=${service}`].join('\n'),
      [service]: ['[Service]', execStart([probe, systemdDir, 'exit'])].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    await bench.manager.systemctlOk('start', service);
    const [underSystemd] = await reports(bench, systemdDir);

    // As a shell leaves it: `exec 200<FILE; sd-activate run ...` (bash and CI runners leave such fds).
    const run = await bench.runTool(['run', '-l', `tcp:127.0.0.1:${toolPort}`, '--', probe, toolDir, 'exit'], { leakFd: marker });
    expect(run.code, run.stderr).to.equal(0);
    const [underTool] = await reports(bench, toolDir);

    expect(fdsBeyondOutput(underSystemd!)).to.deep.equal([{ fd: 0, what: 'chr /dev/null' }, { fd: 1 }, { fd: 2 }, { fd: 3, what: 'socket stream listening' }]);
    expect(fdsBeyondOutput(underTool!)).to.deep.equal(fdsBeyondOutput(underSystemd!));
  });

  it('Type=simple gets NOTIFY_SOCKET only when NotifyAccess= is set', async () => {
    const variants: Array<{ unit: string[]; flags: string[] }> = [
      { unit: [], flags: [] },
      { unit: ['NotifyAccess=main'], flags: ['--notify-access', 'main'] },
      { unit: ['NotifyAccess=all'], flags: ['--notify-access', 'all'] },
    ];
    const underSystemd: boolean[] = [];
    const underTool: boolean[] = [];
    for (const { unit, flags } of variants) {
      const [systemdDir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
      const service = bench.unit('simple.service');
      await bench.install({ [service]: ['[Service]', 'Type=simple', ...unit, execStart([probe, systemdDir, 'exit'])].join('\n') });
      await bench.manager.systemctlOk('start', service);
      underSystemd.push('NOTIFY_SOCKET' in (await reports(bench, systemdDir))[0]!.env);

      const run = await bench.runTool(['run', '--type', 'simple', ...flags, '--', probe, toolDir, 'exit']);
      expect(run.code, run.stderr).to.equal(0);
      underTool.push('NOTIFY_SOCKET' in (await reports(bench, toolDir))[0]!.env);
    }
    expect(underSystemd).to.deep.equal([false, true, true]);
    expect(underTool).to.deep.equal(underSystemd);
  });

  it('Accept=yes with StandardInput=socket (inetd style): the connection at fds 0 and 1, no LISTEN_FDS', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const [systemdDir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
    const socket = bench.unit('inetd.socket');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, 'Accept=yes'].join('\n'),
      [`${socket.replace(/\.socket$/, '')}@.service`]: ['[Service]', 'StandardInput=socket', execStart([probe, systemdDir, 'exit'])].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);

    /** What the instance for one connection saw, its client's port named as such. */
    async function instance(port: number, dir: string): Promise<unknown> {
      const client = new HeldConnection(port);
      await client.connected;
      const clientPort = client.localPort;
      try {
        const [report] = await reports(bench, dir);
        return {
          listenFds: report!.listenFds,
          variables: ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'].filter((name) => name in report!.env),
          // fd 2 is StandardError=: the socket too under systemd's default (inherit), the terminal is as good
          // for a tool. Past fd 3, what else is open is the matter of the test on inherited fds above.
          fds: report!.fds
            .filter((f) => f.fd <= 3 && f.fd !== 2)
            .map((f) => ({ ...f, ...(f.peer === `127.0.0.1:${clientPort}` ? { peer: 'the client' } : {}) })),
        };
      } finally {
        client.close();
      }
    }
    const underSystemd = await instance(systemdPort, systemdDir);
    expect(underSystemd).to.deep.equal({
      listenFds: 0,
      variables: [],
      fds: [
        { fd: 0, what: 'socket stream connected', peer: 'the client' },
        { fd: 1, what: 'socket stream connected', peer: 'the client' },
      ],
    });

    // --standard-input socket: the flag proposed for StandardInput=socket (systemd-socket-activate calls it --inetd).
    const tool = bench.tool(['run', '-l', `tcp:127.0.0.1:${toolPort}`, '--accept', '--standard-input', 'socket', '--', probe, toolDir, 'exit']);
    await tool.waitFor(/waiting for connections/);
    expect(await instance(toolPort, toolDir)).to.deep.equal(underSystemd);
  });

  it('RemoveOnStop=: what is left of socket files, FIFOs and message queues after a stop', async () => {
    const mqueue = (name: string): string => execFileSync(probe, ['--mq', name], { encoding: 'utf8' }).trim();
    const left = (dir: string, queue: string): Record<string, boolean> => ({
      socket: existsSync(`${dir}/s.sock`),
      fifo: existsSync(`${dir}/f.fifo`),
      mqueue: mqueue(queue) === 'exists',
    });
    const outcome: Record<string, Record<string, boolean>> = {};
    const queueName = (): string => {
      const queue = `/sdact-conf-${process.pid}-${randomBytes(4).toString('hex')}`;
      bench.defer(() => execFileSync(probe, ['--mq-unlink', queue]));
      return queue;
    };
    for (const removeOnStop of ['no', 'yes']) {
      const queue = queueName();
      const [dir, reportDir] = [bench.subdir('systemd'), bench.subdir('reports')];
      const socket = bench.unit('remove.socket');
      const service = bench.unit('remove.service');
      await bench.install({
        [socket]: [
          '[Socket]',
          `ListenStream=${unitPath(dir)}/s.sock`,
          `ListenFIFO=${unitPath(dir)}/f.fifo`,
          `ListenMessageQueue=${queue}`,
          `RemoveOnStop=${removeOnStop}`,
          `Service=${service}`,
        ].join('\n'),
        [service]: ['[Service]', execStart([probe, reportDir, 'wait'])].join('\n'),
      });
      await bench.manager.systemctlOk('start', socket);
      await bench.manager.systemctlOk('start', service);
      expect((await reports(bench, reportDir))[0]!.listenFds).to.equal(3);
      await bench.manager.systemctlOk('stop', service, socket);
      outcome[`systemd RemoveOnStop=${removeOnStop}`] = left(dir, queue);
    }
    for (const removeOnStop of ['no', 'yes']) {
      const queue = queueName();
      const [dir, reportDir] = [bench.subdir('tool'), bench.subdir('reports')];
      // --remove-on-stop yes|no: the flag proposed for RemoveOnStop= (whatever the tool's default).
      const tool = bench.tool(['run', '--remove-on-stop', removeOnStop, '-l', `unix:${dir}/s.sock`, '-l', `fifo:${dir}/f.fifo`, '-l', `mqueue:${queue}`, '--', probe, reportDir, 'wait']);
      await tool.waitFor(/started probe/);
      expect((await reports(bench, reportDir))[0]!.listenFds).to.equal(3);
      const { code } = await tool.stop();
      expect(code, tool.transcript()).to.equal(0);
      outcome[`sd-activate run --remove-on-stop ${removeOnStop}`] = left(dir, queue);
    }
    expect(outcome).to.deep.equal({
      'systemd RemoveOnStop=no': { socket: true, fifo: true, mqueue: true },
      'sd-activate run --remove-on-stop no': { socket: true, fifo: true, mqueue: true },
      'systemd RemoveOnStop=yes': { socket: false, fifo: false, mqueue: false },
      'sd-activate run --remove-on-stop yes': { socket: false, fifo: false, mqueue: false },
    });
  });

  it('sd_booted(): true under the systemd manager; under sd-activate run, what the host says', async () => {
    const [systemdDir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
    const service = bench.unit('booted.service');
    await bench.install({ [service]: ['[Service]', execStart([probe, systemdDir, 'exit'])].join('\n') });
    await bench.manager.systemctlOk('start', service);
    expect((await reports(bench, systemdDir))[0]!.booted).to.equal(1);

    const run = await bench.runTool(['run', '--', probe, toolDir, 'exit']);
    expect(run.code, run.stderr).to.equal(0);
    // sd_booted() looks for /run/systemd/system: where PID 1 is not systemd (containers, CI) it is false.
    expect((await reports(bench, toolDir))[0]!.booted).to.equal(existsSync('/run/systemd/system') ? 1 : 0);
  });

  it('--sd-booted: sd_booted() is true in the service, as under the manager, and the host is left as it was', async () => {
    const toolDir = bench.subdir('tool');
    const hostBooted = existsSync('/run/systemd/system');
    // --sd-booted: the flag proposed for a private mount namespace with /run/systemd/system (root only).
    const run = await bench.runTool(['run', '--sd-booted', '--', probe, toolDir, 'exit']);
    expect(run.code, run.stderr).to.equal(0);
    expect((await reports(bench, toolDir))[0]!.booted).to.equal(1);
    expect(existsSync('/run/systemd/system')).to.equal(hostBooted);
  });
});
