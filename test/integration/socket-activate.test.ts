import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { formatAddress, type InetSocketInfo, type UnixSocketInfo } from 'sd-activate';
import { freeTcpPort, freeUdpPort, readUntilEnd, readUntilEndAbstract, udpRequest } from '../support/network.js';
import { parseFds, PRINT_FDS, type FdReport } from '../support/print-fds.js';

/*
 * The fixture under the real systemd-socket-activate (systemd 252). It has no --now: it binds,
 * waits for the first connection (or datagram), then execs the program with the fds (or, with -a,
 * accepts and forks one program per connection). Its environment for the program is minimal, so
 * node is given by absolute path.
 */
const SOCKET_ACTIVATE = '/usr/bin/systemd-socket-activate';

interface Activated {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<void>;
  running: () => boolean;
}

const started: Activated[] = [];

function activate(args: string[]): Activated {
  // Its own process group, so that the programs it forks in accept mode go with it in afterEach.
  const child = spawn(SOCKET_ACTIVATE, [...args, process.execPath, PRINT_FDS], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let running = true;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => {
    child.on('exit', () => {
      running = false;
      resolve();
    });
    child.on('error', (error) => {
      running = false;
      stderr += `\nspawn failed: ${error.message}`;
      resolve();
    });
  });
  const activated = { child, stdout: () => stdout, stderr: () => stderr, exited, running: () => running };
  started.push(activated);
  return activated;
}

/** Polls until `match` finds something in the text `source` returns; fails with both outputs. */
async function waitForText(a: Activated, source: 'stdout' | 'stderr', match: (text: string) => boolean, what: string, timeoutMs = 10000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = a[source]();
    if (match(text)) return text;
    if (!a.running() && !match(a[source]())) {
      throw new Error(`systemd-socket-activate exited before ${what}; stdout: ${a.stdout()}; stderr: ${a.stderr()}`);
    }
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; stdout: ${a.stdout()}; stderr: ${a.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Runs `work`; a failure gets what systemd-socket-activate and the program wrote added to its message. */
async function withOutput<T>(a: Activated, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof Error) error.message += `\n--- stdout: ${a.stdout()}\n--- stderr: ${a.stderr()}`;
    throw error;
  }
}

/** Resolves once systemd-socket-activate has bound `count` sockets ("Listening on ... as N."). */
function listening(a: Activated, count: number): Promise<string> {
  return waitForText(a, 'stderr', (text) => (text.match(/^Listening on .* as \d+\.$/gm) ?? []).length >= count, `${count} "Listening on" line(s)`);
}

/** The fixture's `FDS <json>` line on stdout. */
async function fdsLine(a: Activated): Promise<string> {
  const text = await waitForText(a, 'stdout', (t) => /^FDS .*\n/m.test(t), 'the FDS line');
  return /^FDS (.*)$/m.exec(text)![1]!;
}

function inet(report: FdReport | undefined): InetSocketInfo {
  expect(report, 'fd report').to.not.equal(undefined);
  const info = report!.info;
  expect(info.kind).to.equal('socket');
  if (info.kind !== 'socket' || (info.family !== 'ipv4' && info.family !== 'ipv6')) throw new Error(`not an inet socket: ${report!.description}`);
  return info;
}

function unix(report: FdReport | undefined): UnixSocketInfo {
  expect(report, 'fd report').to.not.equal(undefined);
  const info = report!.info;
  if (info.kind !== 'socket' || info.family !== 'unix') throw new Error(`not a unix socket: ${report!.description}`);
  return info;
}

describe('systemd-socket-activate (real, systemd 252) starting the print-fds fixture', function () {
  this.timeout(30000);
  let dir: string;

  before(function () {
    expect(existsSync(SOCKET_ACTIVATE), `${SOCKET_ACTIVATE} must be installed`).to.equal(true);
    expect(existsSync(PRINT_FDS), `${PRINT_FDS} must be built`).to.equal(true);
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
  });

  afterEach(async function () {
    for (const a of started.splice(0)) {
      if (a.running() && a.child.pid !== undefined) {
        try {
          process.kill(-a.child.pid, 'SIGKILL');
        } catch {
          // the group is gone already
        }
      }
      await Promise.race([a.exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
    }
  });

  after(function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes two named TCP sockets (IPv4 and IPv6) with their names, families and ports', async function () {
    const [p1, p2] = [await freeTcpPort(), await freeTcpPort()];
    const a = activate(['-l', `127.0.0.1:${p1}`, '-l', `[::1]:${p2}`, '--fdname=a:b']);
    await listening(a, 2);

    const reply = await withOutput(a, readUntilEnd({ host: '127.0.0.1', port: p1 }));
    const fds = parseFds(reply.text);
    expect(fds.map((f) => [f.fd, f.name])).to.deep.equal([
      [3, 'a'],
      [4, 'b'],
    ]);

    const first = inet(fds[0]);
    expect(first).to.include({ family: 'ipv4', type: 'stream', protocol: 'tcp', listening: true, peer: null });
    expect(first.local).to.include({ address: '127.0.0.1', port: p1 });
    expect(formatAddress(first.local)).to.equal(`127.0.0.1:${p1}`);

    const second = inet(fds[1]);
    expect(second).to.include({ family: 'ipv6', type: 'stream', protocol: 'tcp', listening: true, peer: null });
    expect(second.local).to.include({ address: '::1', port: p2, v4Mapped: false });
    expect(formatAddress(second.local)).to.equal(`[::1]:${p2}`);

    // What it printed on start is what it serves, and it serves on the other socket too.
    expect(await fdsLine(a)).to.equal(reply.text.trim());
    expect((await readUntilEnd({ host: '::1', port: p2 })).text).to.equal(reply.text);
  });

  it('passes a unix stream socket on a path and an abstract one', async function () {
    const path = join(dir, 'app.sock');
    const abstract = `sd-activate-${randomBytes(6).toString('hex')}`;
    const a = activate(['-l', path, '-l', `@${abstract}`, '--fdname=admin:control']);
    await listening(a, 2);

    const reply = await withOutput(a, readUntilEnd({ path }));
    const fds = parseFds(reply.text);
    expect(fds.map((f) => [f.fd, f.name])).to.deep.equal([
      [3, 'admin'],
      [4, 'control'],
    ]);

    const admin = unix(fds[0]);
    expect(admin).to.include({ type: 'stream', listening: true, peer: null });
    expect(admin.local).to.deep.equal({ family: 'unix', kind: 'path', path });
    expect(formatAddress(admin.local)).to.equal(path);

    const control = unix(fds[1]);
    expect(control).to.include({ type: 'stream', listening: true });
    expect(control.local).to.deep.equal({ family: 'unix', kind: 'abstract', name: abstract });
    expect(formatAddress(control.local)).to.equal(`@${abstract}`);

    expect((await readUntilEndAbstract(abstract)).text).to.equal(reply.text);
  });

  it('passes a UDP socket with -d, and the program answers the datagram that started it', async function () {
    const port = await freeUdpPort();
    const a = activate(['-d', '-l', `127.0.0.1:${port}`, '--fdname=dns-udp']);
    await listening(a, 1);

    const reply = await withOutput(a, udpRequest('127.0.0.1', port, 'ping'));
    const fds = parseFds(reply);
    expect(fds).to.have.length(1);
    expect(fds[0]).to.include({ fd: 3, name: 'dns-udp' });
    const info = inet(fds[0]);
    expect(info).to.include({ family: 'ipv4', type: 'dgram', protocol: 'udp', listening: false, peer: null });
    expect(formatAddress(info.local)).to.equal(`127.0.0.1:${port}`);
    expect(await fdsLine(a)).to.equal(reply);
  });

  it('passes the accepted connection with -a --fdname=connection: fd 3, connected, peer is the client', async function () {
    const port = await freeTcpPort();
    const a = activate(['-a', '-l', `127.0.0.1:${port}`, '--fdname=connection']);
    await listening(a, 1);

    const replies = [await withOutput(a, readUntilEnd({ host: '127.0.0.1', port })), await withOutput(a, readUntilEnd({ host: '127.0.0.1', port }))];
    for (const reply of replies) {
      const fds = parseFds(reply.text);
      expect(fds).to.have.length(1);
      expect(fds[0]).to.include({ fd: 3, name: 'connection' });
      const info = inet(fds[0]);
      expect(info).to.include({ family: 'ipv4', type: 'stream', protocol: 'tcp', listening: false });
      expect(info.local).to.include({ address: '127.0.0.1', port });
      expect(info.peer, 'peer of the accepted connection').to.not.equal(null);
      // The peer the program sees is the very socket this test connected from.
      expect(info.peer).to.include({ address: reply.localAddress, port: reply.localPort });
      expect(fds[0]!.description).to.equal(`tcp 127.0.0.1:${port} (ipv4 stream, connected to 127.0.0.1:${reply.localPort})`);
    }
    // One program per connection, and each exits once it has answered.
    await waitForText(a, 'stderr', (t) => (t.match(/^Child \d+ died with code 0$/gm) ?? []).length >= 2, 'two "Child ... died with code 0" lines');
    expect((a.stdout().match(/^FDS /gm) ?? []).length).to.equal(2);
  });

  it('passes the accepted connection with -a alone under the name "unknown" (252 sets no LISTEN_FDNAMES there)', async function () {
    const port = await freeTcpPort();
    const a = activate(['-a', '-l', `127.0.0.1:${port}`]);
    await listening(a, 1);

    const reply = await withOutput(a, readUntilEnd({ host: '127.0.0.1', port }));
    const fds = parseFds(reply.text);
    expect(fds).to.have.length(1);
    expect(fds[0]).to.include({ fd: 3, name: 'unknown' });
    const info = inet(fds[0]);
    expect(info).to.include({ type: 'stream', listening: false });
    expect(info.peer).to.include({ address: '127.0.0.1', port: reply.localPort });
    await waitForText(a, 'stderr', (t) => /^Child \d+ died with code 0$/m.test(t), 'the "Child ... died with code 0" line');
  });
});
