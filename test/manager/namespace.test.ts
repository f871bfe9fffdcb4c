import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CLI, ROOT, runCli } from '../cli/helpers.js';

/*
 * --sd-booted (sdBooted): sd_booted() true in the service where PID 1 is not systemd, in a mount
 * namespace of its own; the host's /run/systemd left as it was; root only.
 */

describe('--sd-booted', function () {
  this.timeout(30_000);

  it('the service sees /run/systemd/system and keeps its pid (LISTEN_PID is still its own); the host is left as it was', async () => {
    const hostBooted = existsSync('/run/systemd/system');
    const result = await runCli(['run', '-q', '--sd-booted', '-l', 'tcp:127.0.0.1:0', '--', 'sh', '-c', 'echo "$LISTEN_PID $$ $LISTEN_FDS"; test -d /run/systemd/system && echo booted']);
    expect(result.code, result.stderr).to.equal(0);
    const [ids, booted] = result.stdout.trim().split('\n');
    const [listenPid, pid, fds] = ids!.split(' ');
    expect({ same: listenPid === pid, fds, booted }).to.deep.equal({ same: true, fds: '1', booted: 'booted' });
    expect(existsSync('/run/systemd/system')).to.equal(hostBooted);
  });

  it('is refused, in one line and exit 2, for a user other than root (where sd_booted() is false)', () => {
    // The CLI as user nobody: what a person without root gets.
    const result = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'run', '--sd-booted', '--', 'true'], { cwd: ROOT, encoding: 'utf8' });
    if (existsSync('/run/systemd/system')) {
      // A host run by systemd: sd_booted() is true already, and nothing needs root.
      expect(result.status, result.stderr).to.equal(0);
    } else {
      expect(result.stderr).to.equal('sd-activate: --sd-booted needs root: it mounts a tmpfs over /run/systemd in a mount namespace of the service\'s own (this process runs as uid 65534)\n');
      expect(result.status).to.equal(2);
    }
  });
});
