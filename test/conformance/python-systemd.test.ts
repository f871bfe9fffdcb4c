import { expect } from 'chai';
import { join } from 'node:path';
import { bothManagers, execStart, PROGRAMS, PYTHON } from './harness.js';
import { exchange, freePort, HeldConnection } from './clients.js';

/*
 * A service written with python3-systemd (test/conformance/programs/python-service.py): what it
 * reads from its manager and tells each client, under systemd and under `sd-activate run`.
 */

const SCRIPT = join(PROGRAMS, 'python-service.py');

interface Report {
  names: string[];
  remoteAddr: string | null;
  remotePort: string | null;
  connected?: boolean;
  listening?: boolean;
}

function firstLine(connection: HeldConnection): Report {
  return JSON.parse(connection.data.slice(0, connection.data.indexOf('\n'))) as Report;
}

/** Connects and waits for the service's JSON line. */
async function served(port: number): Promise<HeldConnection> {
  const connection = new HeldConnection(port);
  await connection.connected;
  if (!(await connection.until((d) => d.includes('\n'), 15_000))) {
    connection.close();
    throw new Error(`no line from the service on port ${port} (closed: ${JSON.stringify(connection.closed)}, data: ${JSON.stringify(connection.data)})`);
  }
  return connection;
}

describe('conformance: a python3-systemd service under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  const bench = bothManagers('python');

  it('Type=notify on a named socket: the same answer, READY=1 and STATUS=', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const socket = bench.unit('listen.socket');
    const service = bench.unit('listen.service');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, 'FileDescriptorName=web', `Service=${service}`].join('\n'),
      [service]: ['[Service]', 'Type=notify', execStart([PYTHON, SCRIPT, 'listen'])].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    await bench.manager.systemctlOk('start', service);
    expect(await bench.props(service, 'ActiveState', 'StatusText')).to.deep.equal({ ActiveState: 'active', StatusText: 'Serving' });
    const underSystemd = JSON.parse(await exchange({ host: '127.0.0.1', port: systemdPort }, '')) as Report;

    const tool = bench.tool(['run', '--type', 'notify', '-l', `web=tcp:127.0.0.1:${toolPort}`, '--', PYTHON, SCRIPT, 'listen']);
    await tool.waitFor(/is ready after/);
    expect(tool.stderr).to.match(/READY=1 STATUS=Serving/);
    const underTool = JSON.parse(await exchange({ host: '127.0.0.1', port: toolPort }, '')) as Report;

    expect(underTool).to.deep.equal(underSystemd);
    expect(underSystemd).to.deep.include({ names: ['web'], listening: true });
  });

  it('Accept=yes sets REMOTE_ADDR and REMOTE_PORT to the client of each connection', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const socket = bench.unit('remote.socket');
    const base = socket.replace(/\.socket$/, '');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, 'Accept=yes'].join('\n'),
      [`${base}@.service`]: ['[Service]', execStart([PYTHON, SCRIPT, 'accept'])].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    const systemdClient = await served(systemdPort);
    const systemdClientPort = systemdClient.localPort;
    const underSystemd = firstLine(systemdClient);
    systemdClient.close();

    const tool = bench.tool(['run', '-l', `tcp:127.0.0.1:${toolPort}`, '--accept', '--', PYTHON, SCRIPT, 'accept']);
    await tool.waitFor(/waiting for connections/);
    const toolClient = await served(toolPort);
    const toolClientPort = toolClient.localPort;
    const underTool = firstLine(toolClient);
    toolClient.close();

    // The same program, told what its own client is; only the client's port differs.
    expect(underSystemd).to.deep.include({ names: ['connection'], connected: true, remoteAddr: '127.0.0.1', remotePort: String(systemdClientPort) });
    expect({ ...underTool, remotePort: underTool.remotePort === String(toolClientPort) ? 'the client port' : underTool.remotePort }).to.deep.equal({
      ...underSystemd,
      remotePort: 'the client port',
    });
  });

  it('MaxConnections=1: a connection beyond the limit is accepted and closed at once, not queued', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const socket = bench.unit('limit.socket');
    const base = socket.replace(/\.socket$/, '');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, 'Accept=yes', 'MaxConnections=1'].join('\n'),
      [`${base}@.service`]: ['[Service]', execStart([PYTHON, SCRIPT, 'accept'])].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    // -v: the tool says when a connection's instance has ended, as NConnections= of the socket unit does.
    const tool = bench.tool(['run', '-v', '-l', `tcp:127.0.0.1:${toolPort}`, '--accept', '--max-connections', '1', '--', PYTHON, SCRIPT, 'accept']);
    await tool.waitFor(/waiting for connections/);

    /**
     * One connection held by its instance, a second one beyond the limit, then the first one closed
     * and, once its manager has counted its instance out (`ended`), a third. Both managers drop a
     * connection that comes before that: the count falls when the instance's process has exited.
     */
    async function limit(port: number, ended: () => Promise<unknown>): Promise<{ extra: unknown; afterwards: string[] }> {
      const held = await served(port);
      const extra = new HeldConnection(port);
      try {
        // Generous on a loaded machine: a dropped connection closes within milliseconds, a queued one never.
        const closed = await extra.closedWithin(8_000);
        const result = { closed, data: extra.data };
        extra.close();
        held.close();
        await ended();
        const third = await served(port);
        third.close();
        return { extra: result, afterwards: firstLine(third).names };
      } finally {
        held.close();
        extra.close();
      }
    }
    const underSystemd = await limit(systemdPort, () => bench.waitProps(socket, ['NConnections'], (p) => p.NConnections === '0', 'the held instance to end'));
    expect(underSystemd).to.deep.equal({ extra: { closed: true, data: '' }, afterwards: ['connection'] });
    expect(bench.manager.log()).to.match(/Too many incoming connections \(1\), dropping connection/);
    expect(await limit(toolPort, () => tool.waitFor(/\(pid \d+\) exited with status 0/))).to.deep.equal(underSystemd);
    expect(tool.stderr).to.match(/warning: Too many incoming connections \(1\), dropping connection/);
  });
});
