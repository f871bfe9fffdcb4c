import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { bothManagers, execStart } from './harness.js';
import { freePort, HeldConnection } from './clients.js';

/*
 * OpenSSH's sshd (Debian's openssh-server) in inetd mode, `sshd -i`, one instance per connection:
 * the way ssh.socket runs it with Accept=yes and StandardInput=socket. It speaks on stdin and
 * stdout, so the first thing a client sees is its version banner.
 */

const SSHD = '/usr/sbin/sshd';
/** Compiled into sshd: it refuses to start without it. Its own units make it (RuntimeDirectory=sshd). */
const PRIVSEP_DIR = '/run/sshd';

describe('conformance: sshd -i under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  const bench = bothManagers('sshd');
  let config: string;
  let madePrivsepDir = false;

  before(function () {
    const keys = bench.subdir('keys');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', `${keys}/host_ed25519`]);
    config = `${keys}/sshd_config`;
    writeFileSync(config, [`HostKey ${keys}/host_ed25519`, 'PidFile none', 'UsePAM no', 'LogLevel ERROR', ''].join('\n'));
    if (!existsSync(PRIVSEP_DIR)) {
      mkdirSync(PRIVSEP_DIR, { mode: 0o755 });
      madePrivsepDir = true;
    }
    execFileSync(SSHD, ['-t', '-f', config]);
  });

  // Left as found.
  after(() => {
    if (madePrivsepDir) rmdirSync(PRIVSEP_DIR);
  });

  /** The first line a client gets, or how the connection ended without one. */
  async function banner(port: number): Promise<string> {
    const client = new HeldConnection(port);
    try {
      await client.connected;
      await client.until((d) => d.includes('\n'), 10_000);
      return client.data.split('\n')[0]!.trimEnd() || `(nothing; closed: ${client.closed?.how ?? 'no'})`;
    } finally {
      client.close();
    }
  }

  it('Accept=yes with StandardInput=socket: sshd -i greets each client on the connection', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const socket = bench.unit('ssh.socket');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, 'Accept=yes'].join('\n'),
      [`${socket.replace(/\.socket$/, '')}@.service`]: ['[Service]', 'StandardInput=socket', execStart([SSHD, '-i', '-f', config])].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    const underSystemd = await banner(systemdPort);
    expect(underSystemd).to.match(/^SSH-2\.0-OpenSSH_\S+/);
    expect(await banner(systemdPort), 'a second connection, a second sshd').to.equal(underSystemd);

    // --standard-input socket: the flag proposed for StandardInput=socket (systemd-socket-activate calls it --inetd).
    const tool = bench.tool(['run', '-l', `tcp:127.0.0.1:${toolPort}`, '--accept', '--standard-input', 'socket', '--', SSHD, '-i', '-f', config]);
    await tool.waitFor(/waiting for connections/);
    expect(await banner(toolPort)).to.equal(underSystemd);
    expect(await banner(toolPort), 'a second connection, a second sshd').to.equal(underSystemd);
  });

  it('Accept=yes alone: sshd -i reads /dev/null, and the client gets nothing', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const socket = bench.unit('ssh-fd3.socket');
    await bench.install({
      [socket]: ['[Socket]', `ListenStream=127.0.0.1:${systemdPort}`, 'Accept=yes'].join('\n'),
      [`${socket.replace(/\.socket$/, '')}@.service`]: ['[Service]', execStart([SSHD, '-i', '-f', config])].join('\n'),
    });
    await bench.manager.systemctlOk('start', socket);
    const underSystemd = await banner(systemdPort);
    expect(underSystemd).to.equal('(nothing; closed: end)');

    const tool = bench.tool(['run', '-l', `tcp:127.0.0.1:${toolPort}`, '--accept', '--', SSHD, '-i', '-f', config]);
    await tool.waitFor(/waiting for connections/);
    expect(await banner(toolPort)).to.equal(underSystemd);
  });
});
