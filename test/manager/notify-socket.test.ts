import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, lstatSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { Supervisor } from '../../src/manager/supervisor.js';
import { fixture, useClis } from '../cli/helpers.js';

/*
 * Who can steer a service through its manager's notify socket: the service's own user and its
 * own processes, nobody else. Another local user can neither reach the socket nor, when it does
 * (a socket connected before setuid()), be heard; MAINPID= never names a process outside the
 * service, so a stop never signals one.
 */

const NOBODY = 65534;
const PYTHON = '/usr/bin/python3';

/**
 * Sends `message` to the notify socket at `address` as user nobody, with python3: `mode`
 * 'as-nobody' drops to nobody first and then connects (what another user can do), 'connect-first'
 * connects as root and then drops to nobody before sending (a socket another user got hold of).
 * Prints "sent" or the errno's name.
 */
function sendAsNobody(address: string, message: string, mode: 'as-nobody' | 'connect-first'): string {
  const script = [
    'import errno, os, socket, sys',
    'path, message, mode = sys.argv[1], sys.argv[2], sys.argv[3]',
    "path = '\\0' + path[1:] if path.startswith('@') else path",
    'def drop():',
    '    os.setgroups([]); os.setgid(65534); os.setuid(65534)',
    'if mode == "as-nobody": drop()',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    'try:',
    '    s.connect(path)',
    '    if mode == "connect-first": drop()',
    '    s.send(message.encode())',
    '    print("sent")',
    'except OSError as e:',
    '    print(errno.errorcode.get(e.errno, str(e.errno)))',
  ].join('\n');
  const result = spawnSync(PYTHON, ['-c', script, address, message, mode], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`python3 failed: ${result.stderr}`);
  return result.stdout.trim();
}

/** True while `pid` runs (not a zombie). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return !/^State:\s+Z/m.test(spawnSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }).stdout);
}

describe('the notify socket of a supervised service', function () {
  this.timeout(30_000);
  const clis = useClis();
  const victims: ChildProcess[] = [];
  afterEach(() => {
    for (const victim of victims.splice(0)) victim.kill('SIGKILL');
  });

  /** A process of this test's, nothing to do with any service: what a forged MAINPID= would name. */
  async function unrelatedProcess(): Promise<number> {
    const victim = spawn('sleep', ['60'], { stdio: 'ignore' });
    victims.push(victim);
    await once(victim, 'spawn');
    return victim.pid!;
  }

  it("is a path in a directory of the manager's own (0700), both removed when it ends", async () => {
    const s = new Supervisor({ command: process.execPath, args: [fixture('notify-service'), 'ready', 'hang'], type: 'notify', stdio: 'ignore' });
    await s.start();
    try {
      await once(s, 'ready');
      const address = s.notifySocket!;
      expect(address.startsWith('/'), address).to.equal(true);
      expect(lstatSync(address).isSocket()).to.equal(true);
      const dir = statSync(dirname(address));
      expect({ mode: dir.mode & 0o7777, uid: dir.uid }).to.deep.equal({ mode: 0o700, uid: process.getuid!() });
    } finally {
      await s.stop();
    }
    expect(existsSync(dirname(s.notifySocket!))).to.equal(false);
  });

  it('another user cannot reach it', async () => {
    const s = new Supervisor({ command: process.execPath, args: [fixture('notify-service'), 'ready', 'hang'], type: 'notify', stdio: 'ignore' });
    const heard: string[] = [];
    s.on('notify', ({ message }) => heard.push(message.text));
    await s.start();
    try {
      await once(s, 'ready');
      expect(sendAsNobody(s.notifySocket!, 'STATUS=from nobody', 'as-nobody')).to.equal('EACCES');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(heard).to.deep.equal(['READY=1']);
    } finally {
      await s.stop();
    }
  });

  it('a message of another user that reaches it all the same is ignored: its MAINPID= signals nothing (--notify-access all, as root)', async () => {
    const victim = await unrelatedProcess();
    const cli = clis.start(['run', '-v', '--notify-access', 'all', '--', 'sleep', '60']);
    const address = (await cli.waitFor(/NOTIFY_SOCKET=(\S+)/))[1]!;
    await cli.waitFor(/started sleep/);
    expect(sendAsNobody(address, `MAINPID=${victim}`, 'connect-first')).to.equal('sent');
    await cli.waitFor(new RegExp(`warning: ignored a notify message from pid \\d+ of uid ${NOBODY}: only the service's own user`));
    const { code } = await cli.stop();
    expect(cli.stderr).to.not.match(/main pid is now/);
    expect(alive(victim), `pid ${victim} was signalled on stop`).to.equal(true);
    expect(code, cli.stderr).to.equal(0);
  });

  it('MAINPID= naming a process outside the service is refused, and a stop leaves that process alone', async () => {
    const victim = await unrelatedProcess();
    // systemd-notify runs as a child of the service: a process of the service, heard with NotifyAccess=all.
    const cli = clis.start(['run', '--notify-access', 'all', '--', 'sh', '-c', 'systemd-notify MAINPID=$0; exec sleep 60', String(victim)]);
    await cli.waitFor(new RegExp(`warning: ignored MAINPID=${victim}: not a process of the service`));
    const { code } = await cli.stop();
    expect(cli.stderr).to.not.match(/main pid is now/);
    expect(alive(victim), `pid ${victim} was signalled on stop`).to.equal(true);
    expect(code, cli.stderr).to.equal(0);
  });

  it('MAINPID= of a process the service started is taken, as before', async () => {
    const cli = clis.start(['run', '--notify-access', 'all', '--', 'sh', '-c', 'sleep 60 & systemd-notify MAINPID=$!; wait']);
    const moved = await cli.waitFor(/main pid is now (\d+) \(was \d+\)/);
    const main = Number(moved[1]);
    expect(alive(main)).to.equal(true);
    await cli.stop();
    expect(alive(main)).to.equal(false);
  });
});
