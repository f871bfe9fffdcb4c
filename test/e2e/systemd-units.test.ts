import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { exchange, freePort, runCli, useClis } from '../cli/helpers.js';
import { freeUdpPort, udpRequest } from '../support/network.js';
import { SystemdManager } from '../support/systemd-manager.js';

/*
 * `sd-activate units`: the units it writes for a run command line, started under a real systemd
 * 252 user manager, give the same answers as `sd-activate run` with the same arguments. The
 * service (test/fixtures/units-probe.ts) answers each connection or datagram with what it was
 * started with: fd names and kinds, -E, working directory, notify socket, watchdog.
 */

const PROBE = fileURLToPath(new URL('../fixtures/units-probe.js', import.meta.url));

describe('sd-activate units: the same service under systemd as under run', function () {
  this.timeout(60_000);
  const clis = useClis();
  let manager: SystemdManager | undefined;
  let cwd: string;

  before(async function () {
    cwd = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    manager = await SystemdManager.start();
  });

  after(async function () {
    await manager?.stop();
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  /** What the service answers, asked the same way under both managers. */
  type Ask = () => Promise<string[]>;

  /** Runs the command line under `sd-activate run`, asks, stops. */
  async function underRun(args: string[], ready: RegExp, ask: Ask): Promise<string[]> {
    const cli = clis.start(['run', ...args], { cwd });
    await cli.waitFor(ready);
    const answers = await ask();
    const { code } = await cli.stop();
    expect(code, cli.stderr).to.equal(0);
    return answers;
  }

  /** Writes the units for the same command line, starts `start` under systemd, asks, stops. */
  async function underSystemd(name: string, args: string[], start: string[], ask: Ask): Promise<{ answers: string[]; files: string[] }> {
    const m = manager!;
    const written = await runCli(['units', '--user', '--name', name, '--write', m.unitDir, ...args], { cwd });
    expect(written.code, written.stderr).to.equal(0);
    const files = readdirSync(m.unitDir).filter((f) => f.startsWith(`${name}.`) || f.startsWith(`${name}-`) || f.startsWith(`${name}@`));
    // Printing gives the same files as writing them.
    const printed = await runCli(['units', '--user', '--name', name, ...args], { cwd });
    expect(printed.stdout.match(/^# \S+\n/gm)).to.have.length(files.length);
    for (const f of files) expect(printed.stdout).to.include(`# ${f}\n${readFileSync(join(m.unitDir, f), 'utf8')}`);
    await m.systemctlOk('daemon-reload');
    await m.systemctlOk('start', ...start);
    const answers = await ask();
    return { answers, files: files.sort() };
  }

  it('named TCP, unix and UDP sockets, -E, Type=notify, Restart=, a watchdog and an fd store', async function () {
    const m = manager!;
    const [web1, web2, dns] = [await freePort(), await freePort(), await freeUdpPort()];
    const name = `sdact-units-${randomBytes(3).toString('hex')}`;
    const args = [
      '-l', `web=tcp:127.0.0.1:${web1}`,
      '-l', `web=tcp:127.0.0.1:${web2}`,
      '-l', 'admin=unix:./admin.sock,mode=0600',
      '-l', `dns=udp:127.0.0.1:${dns}`,
      '--type', 'notify', '--restart', 'on-failure', '--watchdog', '5s', '--fd-store', '2', '--timeout-stop', '7s',
      '-E', 'GREETING=hello "world" 100% $HOME \\o/',
      '--', 'node', relative(cwd, PROBE),
    ];
    const ask: Ask = async () => [
      await exchange({ host: '127.0.0.1', port: web1 }),
      await exchange({ host: '127.0.0.1', port: web2 }),
      await exchange({ path: join(cwd, 'admin.sock') }),
      await udpRequest('127.0.0.1', dns, 'hi'),
    ];
    const run = await underRun(args, /is ready after/, ask);
    const systemd = await underSystemd(name, args, [`${name}.service`], ask);
    expect(systemd.files).to.deep.equal([`${name}-admin.socket`, `${name}-dns.socket`, `${name}-web.socket`, `${name}.service`]);
    expect(systemd.answers).to.deep.equal(run);
    // What the answers say, so that equal answers cannot be equally wrong.
    const first = JSON.parse(run[0]!) as Record<string, unknown>;
    expect(first).to.deep.equal({
      name: 'web',
      names: ['admin', 'dns', 'web', 'web'],
      kinds: ['ipv4 dgram', 'ipv4 stream listening', 'ipv4 stream listening', 'unix stream listening'],
      greeting: 'hello "world" 100% $HOME \\o/',
      cwd,
      notify: true,
      watchdogUsec: '5000000',
      execPidIsOurs: true,
      invocationId: true,
    });
    expect(JSON.parse(run[2]!)).to.deep.include({ name: 'admin' });
    expect(JSON.parse(run[3]!)).to.deep.include({ name: 'dns' });
    const out = await m.systemctlOk('show', '-p', 'ActiveState', '-p', 'Type', '-p', 'Restart', '-p', 'WatchdogUSec', '-p', 'FileDescriptorStoreMax', '-p', 'TimeoutStopUSec', '-p', 'StatusText', `${name}.service`);
    expect(out.trim().split('\n').sort()).to.deep.equal(
      ['ActiveState=active', 'FileDescriptorStoreMax=2', 'Restart=on-failure', 'StatusText=Serving', 'TimeoutStopUSec=7s', 'Type=notify', 'WatchdogUSec=5s'].sort(),
    );
    expect(await m.show(`${name}-admin.socket`, 'SocketMode')).to.equal('0600');
    await m.systemctlOk('stop', `${name}.service`, `${name}-web.socket`, `${name}-admin.socket`, `${name}-dns.socket`);
  });

  it('--accept --max-connections: Accept=yes and a template service, one process per connection', async function () {
    const m = manager!;
    const port = await freePort();
    const name = `sdact-units-${randomBytes(3).toString('hex')}`;
    const args = ['-l', `echo=tcp:127.0.0.1:${port}`, '--accept', '--max-connections', '2', '-E', 'GREETING=each', '--', 'node', PROBE];
    const ask: Ask = async () => [await exchange({ host: '127.0.0.1', port }), await exchange({ host: '127.0.0.1', port })];
    const run = await underRun(args, /waiting for connections/, ask);
    const systemd = await underSystemd(name, args, [`${name}.socket`], ask);
    expect(systemd.files).to.deep.equal([`${name}.socket`, `${name}@.service`]);
    expect(systemd.answers).to.deep.equal(run);
    expect(JSON.parse(run[0]!)).to.deep.include({ name: 'connection', names: ['connection'], kinds: ['ipv4 stream'], greeting: 'each', notify: false });
    expect(await m.show(`${name}.socket`, 'MaxConnections')).to.equal('2');
    expect(Number(await m.show(`${name}.socket`, 'NAccepted'))).to.equal(2);
    await m.systemctlOk('stop', `${name}.socket`);
  });

  it('--lazy: only the socket is started, and the first connection starts the service', async function () {
    const m = manager!;
    const port = await freePort();
    const name = `sdact-units-${randomBytes(3).toString('hex')}`;
    const args = ['--lazy', '-l', `web=tcp:127.0.0.1:${port}`, '--', 'node', PROBE];
    const ask: Ask = async () => [await exchange({ host: '127.0.0.1', port })];
    const run = await underRun(args, /waiting for a connection/, ask);
    const systemd = await underSystemd(name, args, [`${name}.socket`], async () => {
      expect(await m.show(`${name}.service`, 'ActiveState')).to.equal('inactive');
      return ask();
    });
    expect(systemd.answers).to.deep.equal(run);
    expect(JSON.parse(run[0]!)).to.deep.include({ name: 'web', notify: false, greeting: null });
    await m.waitFor(async () => (await m.show(`${name}.service`, 'ActiveState')) === 'active', 10_000, 'the service started by the connection');
    expect(await m.show(`${name}.service`, 'NotifyAccess')).to.equal('none');
    await m.systemctlOk('stop', `${name}.service`, `${name}.socket`);
  });

  it('refuses what systemd cannot do as run does: port 0, --watch, npm, sh -c without exec', async function () {
    const cases: Array<[string[], RegExp]> = [
      [['-l', 'web=tcp:127.0.0.1:0', '--', 'node', PROBE], /port 0: systemd binds the port/],
      [['--watch', '.', '--', 'node', PROBE], /--watch has no systemd equivalent/],
      [['--', 'npm', 'start'], /ExecStart= would run npm, and node as its child/],
      [['--', 'sh', '-c', `node ${PROBE}`], /ExecStart= would run a shell/],
      [['--name', 'a/b', '--', 'node', PROBE], /cannot name a unit/],
    ];
    for (const [args, re] of cases) {
      const result = await runCli(['units', ...args], { cwd });
      expect(result.code, args.join(' ')).to.equal(2);
      expect(result.stderr, args.join(' ')).to.match(re);
      expect(result.stdout).to.equal('');
    }
    const exec = await runCli(['units', '--', 'sh', '-c', `exec node ${PROBE}`], { cwd });
    expect(exec.code, exec.stderr).to.equal(0);
    expect(exec.stdout).to.match(/^ExecStart=\/(usr\/)?bin\/sh -c "exec node /m);
  });
});
