import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { alive, openFdsOf, stateOf, type OpenFd } from './proc.js';
import { bothManagers, execStart, readIfExists } from './harness.js';
import { exchange, freePort } from './clients.js';

/*
 * redis-server (Debian's redis-server package) with `--supervised systemd`: it binds its own port
 * and speaks sd_notify (STATUS=, READY=1). Compared: its answers, its readiness and status, what it
 * makes of NOTIFY_SOCKET, the fds it has, and how a stopped (SIGSTOP) redis is stopped.
 */

const REDIS = '/usr/bin/redis-server';

/** redis-server in the foreground on 127.0.0.1:port, logging to `log`, nothing saved. */
function redisArgv(port: number, dir: string, log: string): string[] {
  return [REDIS, '--port', String(port), '--bind', '127.0.0.1', '--supervised', 'systemd', '--daemonize', 'no', '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', log];
}

/** What redis made of its manager, from its own log. */
function supervision(log: string): string {
  if (/Supervised by systemd/.test(log)) return 'supervised by systemd';
  if (/systemd supervision error: NOTIFY_SOCKET not found/.test(log)) return 'NOTIFY_SOCKET not found';
  return `neither (log: ${log.slice(0, 400)})`;
}

/** redis's fds beyond stdout/stderr (StandardOutput=/StandardError= matters): same program, same config, same fds. */
function ownFds(fds: OpenFd[]): OpenFd[] {
  return fds.filter((f) => f.fd !== 1 && f.fd !== 2);
}

describe('conformance: redis-server under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  const bench = bothManagers('redis');

  it('Type=notify: READY=1, STATUS=, and the same answers', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const service = bench.unit('notify.service');
    const dir = bench.subdir('systemd');
    await bench.install({ [service]: ['[Service]', 'Type=notify', execStart(redisArgv(systemdPort, dir, `${dir}/redis.log`))].join('\n') });
    // `start` of a Type=notify unit returns once READY=1 came.
    await bench.manager.systemctlOk('start', service);
    expect(await bench.props(service, 'ActiveState', 'StatusText')).to.deep.equal({ ActiveState: 'active', StatusText: 'Ready to accept connections' });
    const underSystemd = await exchange({ host: '127.0.0.1', port: systemdPort }, 'PING\r\nECHO conformance\r\n');

    const toolDir = bench.subdir('tool');
    const tool = bench.tool(['run', '--type', 'notify', '--', ...redisArgv(toolPort, toolDir, `${toolDir}/redis.log`)]);
    await tool.waitFor(/is ready after/);
    expect(tool.stderr).to.match(/STATUS="Ready to accept connections"/);
    const underTool = await exchange({ host: '127.0.0.1', port: toolPort }, 'PING\r\nECHO conformance\r\n');

    expect(underSystemd).to.equal('+PONG\r\n$11\r\nconformance\r\n');
    expect(underTool).to.equal(underSystemd);
    await bench.manager.systemctlOk('stop', service);
    expect(await bench.props(service, 'Result', 'ExecMainStatus')).to.deep.equal({ Result: 'success', ExecMainStatus: '0' });
    expect(await tool.stop()).to.deep.equal({ code: 0, signal: null });
  });

  it('Type=simple: no NOTIFY_SOCKET, so redis reports that nothing supervises it', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const service = bench.unit('simple.service');
    const [dir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
    await bench.install({ [service]: ['[Service]', 'Type=simple', execStart(redisArgv(systemdPort, dir, `${dir}/redis.log`))].join('\n') });
    await bench.manager.systemctlOk('start', service);
    const underSystemd = await bench.manager.waitFor(() => /Ready to accept connections/.test(readIfExists(`${dir}/redis.log`)) && readIfExists(`${dir}/redis.log`), 15_000, 'redis to start');

    const tool = bench.tool(['run', '--', ...redisArgv(toolPort, toolDir, `${toolDir}/redis.log`)]);
    const underTool = await bench.manager.waitFor(() => /Ready to accept connections/.test(readIfExists(`${toolDir}/redis.log`)) && readIfExists(`${toolDir}/redis.log`), 15_000, `redis to start${tool.transcript()}`);

    expect(supervision(underSystemd)).to.equal('NOTIFY_SOCKET not found');
    expect(supervision(underTool)).to.equal(supervision(underSystemd));
  });

  it('the fds redis has: none of what its manager had open', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const service = bench.unit('fds.service');
    const [dir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
    await bench.install({ [service]: ['[Service]', 'Type=notify', execStart(redisArgv(systemdPort, dir, `${dir}/redis.log`))].join('\n') });
    await bench.manager.systemctlOk('start', service);
    const underSystemd = ownFds(openFdsOf(await bench.mainPid(service)));

    const marker = bench.path('open-in-the-manager');
    writeFileSync(marker, 'an fd the manager has open\n');
    const tool = bench.tool(['run', '--type', 'notify', '--', ...redisArgv(toolPort, toolDir, `${toolDir}/redis.log`)], { leakFd: marker });
    await tool.waitFor(/is ready after/);
    const underTool = ownFds(openFdsOf(await tool.startedPid()));

    // stdin, its own pipe pair and epoll, and its listening socket.
    expect(underSystemd.map((f) => f.target)).to.deep.equal(['/dev/null', 'pipe', 'pipe', 'anon_inode:[eventpoll]', 'socket']);
    expect(underTool).to.deep.equal(underSystemd);
  });

  it('a stopped (SIGSTOP) redis: SIGTERM and SIGCONT, so it shuts down at once and cleanly', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const service = bench.unit('sigstop.service');
    const [dir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
    await bench.install({ [service]: ['[Service]', 'Type=notify', 'TimeoutStopSec=10s', execStart(redisArgv(systemdPort, dir, `${dir}/redis.log`))].join('\n') });
    await bench.manager.systemctlOk('start', service);
    const systemdPid = await bench.mainPid(service);
    process.kill(systemdPid, 'SIGSTOP');
    await bench.manager.waitFor(() => stateOf(systemdPid) === 'T', 5_000, 'redis to be stopped');
    await bench.manager.systemctlOk('stop', service);
    expect(await bench.props(service, 'ActiveState', 'Result', 'ExecMainStatus')).to.deep.equal({ ActiveState: 'inactive', Result: 'success', ExecMainStatus: '0' });
    expect(readIfExists(`${dir}/redis.log`)).to.match(/Received SIGTERM scheduling shutdown[^]*ready to exit, bye bye/);

    const tool = bench.tool(['run', '--type', 'notify', '--timeout-stop', '10s', '--', ...redisArgv(toolPort, toolDir, `${toolDir}/redis.log`)]);
    await tool.waitFor(/is ready after/);
    const toolPid = await tool.startedPid();
    process.kill(toolPid, 'SIGSTOP');
    await bench.manager.waitFor(() => stateOf(toolPid) === 'T', 5_000, 'redis to be stopped');
    const { code } = await tool.stop(30_000);
    expect(alive(toolPid)).to.equal(false);
    expect(tool.stderr.match(/^.*SIGKILL.*$/gm) ?? [], 'what sd-activate said of SIGKILL').to.deep.equal([]);
    expect(readIfExists(`${toolDir}/redis.log`)).to.match(/Received SIGTERM scheduling shutdown[^]*ready to exit, bye bye/);
    expect(code, tool.transcript()).to.equal(0);
  });
});
