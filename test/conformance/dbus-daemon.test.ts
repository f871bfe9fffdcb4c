import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { bothManagers, execStart, unitPath } from './harness.js';
import { dbusNameOwner } from './clients.js';

/*
 * dbus-daemon (Debian's dbus-daemon package) with `--address=systemd:`: it takes its listening
 * unix socket from LISTEN_FDS and says READY=1 (Type=notify), as dbus.socket/dbus.service run it.
 * Debian's dbus-send is the client. Compared: the bus's answer, and what is left of the socket
 * file after a stop (RemoveOnStop=).
 */

const DBUS_DAEMON = '/usr/bin/dbus-daemon';
const ARGV = [DBUS_DAEMON, '--session', '--address=systemd:', '--nofork', '--nopidfile'];

describe('conformance: dbus-daemon under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  const bench = bothManagers('dbus');

  it('Type=notify on a passed unix socket: the bus answers', async () => {
    const [dir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
    const socket = bench.unit('bus.socket');
    const service = bench.unit('bus.service');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=${unitPath(dir)}/bus`, `Service=${service}`].join('\n'),
      [service]: ['[Service]', 'Type=notify', execStart(ARGV)].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    await bench.manager.systemctlOk('start', service);
    expect(await bench.props(service, 'ActiveState')).to.deep.equal({ ActiveState: 'active' });
    const underSystemd = await dbusNameOwner(`${dir}/bus`);

    const tool = bench.tool(['run', '--type', 'notify', '-l', `unix:${toolDir}/bus`, '--', ...ARGV]);
    await tool.waitFor(/is ready after/);
    const underTool = await dbusNameOwner(`${toolDir}/bus`);

    expect(underSystemd).to.equal('org.freedesktop.DBus');
    expect(underTool).to.equal(underSystemd);
    await bench.manager.systemctlOk('stop', service);
    expect(await bench.props(service, 'Result', 'ExecMainStatus')).to.deep.equal({ Result: 'success', ExecMainStatus: '0' });
    expect(await tool.stop()).to.deep.equal({ code: 0, signal: null });
  });

  it('RemoveOnStop=: the bus socket file after a stop', async () => {
    const outcome: Record<string, boolean> = {};
    for (const removeOnStop of ['no', 'yes']) {
      const dir = bench.subdir('systemd');
      const socket = bench.unit('bus-remove.socket');
      const service = bench.unit('bus-remove.service');
      await bench.install({
        [socket]: ['[Socket]', `ListenStream=${unitPath(dir)}/bus`, `RemoveOnStop=${removeOnStop}`, `Service=${service}`].join('\n'),
        [service]: ['[Service]', 'Type=notify', execStart(ARGV)].join('\n'),
      });
      await bench.manager.systemctlOk('start', socket);
      await bench.manager.systemctlOk('start', service);
      expect(await dbusNameOwner(`${dir}/bus`)).to.equal('org.freedesktop.DBus');
      await bench.manager.systemctlOk('stop', service, socket);
      outcome[`systemd RemoveOnStop=${removeOnStop}`] = existsSync(`${dir}/bus`);
    }
    for (const removeOnStop of ['no', 'yes']) {
      const dir = bench.subdir('tool');
      // --remove-on-stop yes|no: the flag proposed for RemoveOnStop= (whatever the tool's default).
      const tool = bench.tool(['run', '--remove-on-stop', removeOnStop, '--type', 'notify', '-l', `unix:${dir}/bus`, '--', ...ARGV]);
      await tool.waitFor(/is ready after/);
      expect(await dbusNameOwner(`${dir}/bus`)).to.equal('org.freedesktop.DBus');
      expect(await tool.stop()).to.deep.equal({ code: 0, signal: null });
      outcome[`sd-activate run --remove-on-stop ${removeOnStop}`] = existsSync(`${dir}/bus`);
    }
    expect(outcome).to.deep.equal({
      'systemd RemoveOnStop=no': true,
      'systemd RemoveOnStop=yes': false,
      'sd-activate run --remove-on-stop no': true,
      'sd-activate run --remove-on-stop yes': false,
    });
  });
});
