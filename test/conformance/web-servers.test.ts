import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { bothManagers, execStart, PYTHON } from './harness.js';
import { environOf, programOf } from './proc.js';
import { freePort, httpGet, request } from './clients.js';

/*
 * Servers that take their listening socket from LISTEN_FDS: gunicorn (python3-gunicorn), lighttpd
 * (server.systemd-socket-activation) and systemd's own systemd-socket-proxyd. Compared: what a
 * client gets through the passed socket, readiness, and how a stop ends them.
 */

const LIGHTTPD = '/usr/sbin/lighttpd';
const PROXYD = '/lib/systemd/systemd-socket-proxyd';

/**
 * lighttpd serving `root`, configured with the passed socket's address as in real use: it takes
 * the passed socket for it (the manager holds the port, so binding it itself would fail).
 */
function lighttpdConfig(dir: string, root: string, port: number): string {
  writeFileSync(
    `${dir}/lighttpd.conf`,
    [
      `server.document-root = "${root}"`,
      `server.port = ${port}`,
      'server.bind = "127.0.0.1"',
      'server.systemd-socket-activation = "enable"',
      `server.errorlog = "${dir}/error.log"`,
      'mimetype.assign = (".txt" => "text/plain")',
      '',
    ].join('\n'),
  );
  return `${dir}/lighttpd.conf`;
}

/** The variables a manager sets, as `pid` was started with them; pids and ids by what they are. */
function managerVariables(pid: number): Record<string, string> {
  const env = environOf(pid);
  const out: Record<string, string> = {};
  for (const name of ['LISTEN_FDS', 'LISTEN_FDNAMES', 'LISTEN_PID', 'NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'SYSTEMD_EXEC_PID', 'INVOCATION_ID', 'REMOTE_ADDR', 'REMOTE_PORT']) {
    const value = env[name];
    if (value === undefined) continue;
    if (value === String(pid)) out[name] = 'its pid';
    else if (name === 'INVOCATION_ID' && /^[0-9a-f]{32}$/.test(value)) out[name] = '128-bit id';
    else if (name === 'NOTIFY_SOCKET') out[name] = 'set';
    else out[name] = value;
  }
  return out;
}

describe('conformance: socket-activated web servers under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  const bench = bothManagers('web');

  it('gunicorn: Type=notify (READY=1, STATUS=), serving a WSGI app on the passed socket', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const app = bench.subdir('app');
    writeFileSync(
      `${app}/app.py`,
      [
        'import os',
        'def app(environ, start_response):',
        '    body = ("hello from gunicorn, LISTEN_FDS=%s\\n" % os.environ.get("LISTEN_FDS")).encode()',
        '    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])',
        '    return [body]',
        '',
      ].join('\n'),
    );
    const argv = [PYTHON, '-m', 'gunicorn', '--chdir', app, '--workers', '1', 'app:app'];
    const socket = bench.unit('gunicorn.socket');
    const service = bench.unit('gunicorn.service');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, `Service=${service}`].join('\n'),
      [service]: ['[Service]', 'Type=notify', execStart(argv)].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    await bench.manager.systemctlOk('start', service);
    expect(await bench.props(service, 'ActiveState', 'StatusText')).to.deep.equal({ ActiveState: 'active', StatusText: 'Gunicorn arbiter booted' });
    const underSystemd = await httpGet(systemdPort);

    const tool = bench.tool(['run', '--type', 'notify', '-l', `tcp:127.0.0.1:${toolPort}`, '--', ...argv]);
    await tool.waitFor(/is ready after/);
    expect(tool.stderr).to.match(/READY=1 STATUS="Gunicorn arbiter booted"/);
    const underTool = await httpGet(toolPort);

    // gunicorn unsets LISTEN_FDS once it took the sockets, before its workers start.
    expect(underSystemd).to.deep.equal({ status: 200, body: 'hello from gunicorn, LISTEN_FDS=None\n' });
    expect(underTool).to.deep.equal(underSystemd);
    await bench.manager.systemctlOk('stop', service);
    expect(await bench.props(service, 'Result', 'ExecMainStatus')).to.deep.equal({ Result: 'success', ExecMainStatus: '0' });
    expect(await tool.stop()).to.deep.equal({ code: 0, signal: null });
  });

  it('lighttpd: server.systemd-socket-activation, serving a file on the passed socket', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const root = bench.subdir('www');
    writeFileSync(`${root}/index.txt`, 'hello from lighttpd\n');
    const socket = bench.unit('lighttpd.socket');
    const service = bench.unit('lighttpd.service');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, `Service=${service}`].join('\n'),
      [service]: ['[Service]', execStart([LIGHTTPD, '-D', '-f', lighttpdConfig(bench.subdir('systemd'), root, systemdPort)])].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    await bench.manager.systemctlOk('start', service);
    const underSystemd = await httpGet(systemdPort, '/index.txt');

    const tool = bench.tool(['run', '-l', `tcp:127.0.0.1:${toolPort}`, '--', LIGHTTPD, '-D', '-f', lighttpdConfig(bench.subdir('tool'), root, toolPort)]);
    await tool.startedPid();
    const underTool = await httpGet(toolPort, '/index.txt');

    expect(underSystemd).to.deep.equal({ status: 200, body: 'hello from lighttpd\n' });
    expect(underTool).to.deep.equal(underSystemd);
    await bench.manager.systemctlOk('stop', service);
    expect(await bench.props(service, 'Result', 'ExecMainStatus')).to.deep.equal({ Result: 'success', ExecMainStatus: '0' });
    expect(await tool.stop()).to.deep.equal({ code: 0, signal: null });
  });

  it('lighttpd (Type=simple): the variables its manager set, from /proc/PID/environ', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const root = bench.subdir('www');
    const socket = bench.unit('lighttpd-env.socket');
    const service = bench.unit('lighttpd-env.service');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, 'FileDescriptorName=web', `Service=${service}`].join('\n'),
      [service]: ['[Service]', 'Type=simple', execStart([LIGHTTPD, '-D', '-f', lighttpdConfig(bench.subdir('systemd'), root, systemdPort)])].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    await bench.manager.systemctlOk('start', service);
    const systemdPid = await bench.mainPid(service);
    // Type=simple is started once forked: the variables are those of lighttpd once it has been exec'd.
    await bench.manager.waitFor(() => programOf(systemdPid) === LIGHTTPD, 10_000, 'lighttpd to be exec\'d');
    const underSystemd = managerVariables(systemdPid);

    const tool = bench.tool(['run', '--type', 'simple', '-l', `web=tcp:127.0.0.1:${toolPort}`, '--', LIGHTTPD, '-D', '-f', lighttpdConfig(bench.subdir('tool'), root, toolPort)]);
    const toolPid = await tool.startedPid();
    await bench.manager.waitFor(() => programOf(toolPid) === LIGHTTPD, 10_000, `lighttpd to be exec'd${tool.transcript()}`);
    const underTool = managerVariables(toolPid);

    expect(underSystemd).to.deep.equal({ LISTEN_FDS: '1', LISTEN_FDNAMES: 'web', LISTEN_PID: 'its pid', SYSTEMD_EXEC_PID: 'its pid', INVOCATION_ID: '128-bit id' });
    expect(underTool).to.deep.equal(underSystemd);
  });

  it('systemd-socket-proxyd: forwarding the passed socket to a backend', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    // The backend: answers the first line it was sent, upper-cased, then closes.
    const backend = net.createServer((connection) => {
      let data = '';
      connection.setEncoding('utf8');
      connection.on('data', (d: string) => {
        data += d;
        if (data.includes('\n')) connection.end(`backend got ${data.toUpperCase()}`);
      });
      connection.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const backendAddress = `127.0.0.1:${(backend.address() as net.AddressInfo).port}`;
    try {
      const socket = bench.unit('proxy.socket');
      const service = bench.unit('proxy.service');
      await bench.install({
        [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, `Service=${service}`].join('\n'),
        [service]: ['[Service]', execStart([PROXYD, backendAddress])].join('\n'),
      });
      await bench.manager.systemctlOk('start', socket);
      await bench.manager.systemctlOk('start', service);
      const underSystemd = await request(systemdPort, 'through the proxy\n');

      const tool = bench.tool(['run', '-l', `tcp:127.0.0.1:${toolPort}`, '--', PROXYD, backendAddress]);
      await tool.startedPid();
      const underTool = await request(toolPort, 'through the proxy\n');

      expect(underSystemd).to.equal('backend got THROUGH THE PROXY\n');
      expect(underTool).to.equal(underSystemd);
      // It ends on SIGTERM without a handler of its own: for systemd a clean end (SuccessExitStatus= has SIGTERM).
      await bench.manager.systemctlOk('stop', service);
      expect(await bench.props(service, 'Result')).to.deep.equal({ Result: 'success' });
      expect(await tool.stop()).to.deep.equal({ code: 0, signal: null });
    } finally {
      await new Promise((resolve) => backend.close(resolve));
    }
  });
});
