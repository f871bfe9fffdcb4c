import { expect } from 'chai';
import { existsSync, writeFileSync } from 'node:fs';
import { bothManagers, execStart, readIfExists, unitPath } from './harness.js';
import { freeTcpUdpPort, resolveA } from './clients.js';

/*
 * unbound (Debian's unbound package) with `use-systemd: yes`: Type=notify, and it takes its UDP
 * and TCP sockets from LISTEN_FDS, but only when sd_booted() says systemd runs the machine
 * (/run/systemd/system exists in its mount namespace). Otherwise it logs "systemd is not running"
 * and binds the port itself, which the manager holds already.
 */

const UNBOUND = '/usr/sbin/unbound';
const NAME = 'probe.conformance.test';
const ADDRESS = '192.0.2.7';

/** A resolver answering NAME from local data on 127.0.0.1:port; no recursion, no trust anchor, no control socket. */
function config(dir: string, port: number): string {
  const path = `${dir}/unbound.conf`;
  writeFileSync(
    path,
    [
      'server:',
      `  interface: 127.0.0.1@${port}`,
      `  port: ${port}`,
      '  do-daemonize: no',
      '  use-systemd: yes',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      '  pidfile: ""',
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 1',
      '  num-threads: 1',
      '  so-reuseport: no',
      '  do-ip6: no',
      '  access-control: 127.0.0.0/8 allow',
      '  local-zone: "conformance.test." static',
      `  local-data: "${NAME}. 60 IN A ${ADDRESS}"`,
      '  module-config: "iterator"',
      '  auto-trust-anchor-file: ""',
      'remote-control:',
      '  control-enable: no',
      '',
    ].join('\n'),
  );
  return path;
}

describe('conformance: unbound under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  const bench = bothManagers('unbound');

  it('--sd-booted: unbound serves on the passed sockets, as under the systemd manager', async () => {
    const [systemdPort, toolPort] = [await freeTcpUdpPort(), await freeTcpUdpPort()];
    const [dir, toolDir] = [bench.subdir('systemd'), bench.subdir('tool')];
    const socket = bench.unit('dns.socket');
    const service = bench.unit('dns.service');
    await bench.install({
      [socket]: ['[Socket]', `ListenDatagram=127.0.0.1:${systemdPort}`, `ListenStream=127.0.0.1:${systemdPort}`, `Service=${service}`].join('\n'),
      [service]: ['[Service]', 'Type=notify', execStart([UNBOUND, '-d', '-c', config(dir, systemdPort)]), `StandardError=file:${unitPath(dir)}/unbound.log`].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    // The manager holds the port: had unbound bound it itself, it would have failed (EADDRINUSE).
    await bench.manager.systemctlOk('start', service);
    expect(await resolveA(systemdPort, NAME)).to.deep.equal([ADDRESS]);
    expect(readIfExists(`${dir}/unbound.log`)).to.not.match(/systemd is not running/);

    // --sd-booted: the flag proposed for a private mount namespace with /run/systemd/system (root only).
    const tool = bench.tool(['run', '--sd-booted', '--type', 'notify', '-l', `udp:127.0.0.1:${toolPort}`, '-l', `tcp:127.0.0.1:${toolPort}`, '--', UNBOUND, '-d', '-c', config(toolDir, toolPort)]);
    await tool.waitFor(/is ready after/);
    expect(await resolveA(toolPort, NAME)).to.deep.equal([ADDRESS]);
    expect(tool.stderr).to.not.match(/systemd is not running/);
  });

  it('without --sd-booted where PID 1 is not systemd: unbound ignores LISTEN_FDS and cannot bind (as documented)', async () => {
    const toolPort = await freeTcpUdpPort();
    const tool = bench.tool(['run', '--type', 'notify', '-l', `udp:127.0.0.1:${toolPort}`, '-l', `tcp:127.0.0.1:${toolPort}`, '--', UNBOUND, '-d', '-c', config(bench.subdir('tool'), toolPort)]);
    await tool.waitFor(/is ready after|exited with status/);
    if (existsSync('/run/systemd/system')) {
      // A host run by systemd: sd_booted() is true everywhere, and unbound takes the sockets.
      expect(await resolveA(toolPort, NAME)).to.deep.equal([ADDRESS]);
    } else {
      expect(tool.stderr).to.match(/systemd is not running[^]*can't bind socket: Address already in use/);
      expect((await tool.exited).code).to.equal(1);
    }
  });
});
