import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { outputOf, spawnActivated } from '../support/activated-child.js';
import { SocketSet } from '../support/sockets.js';
import { serviceCommand } from '../support/runtime.js';

const PROBE = fileURLToPath(new URL('../fixtures/activation-probe.js', import.meta.url));
const INDEX = fileURLToPath(new URL('../../src/index.js', import.meta.url));

interface Probe {
  fds: number[];
  names?: string[];
  env?: Record<string, string | undefined>;
  listenPid?: 'self' | 'none' | string;
  args: string[];
}

async function probe(p: Probe): Promise<any> {
  const child = spawnActivated({ fds: p.fds, names: p.names, env: p.env, listenPid: p.listenPid, ...serviceCommand(PROBE, p.args) });
  const { code, stdout, stderr } = await outputOf(child);
  expect(code, stderr).to.equal(0);
  return JSON.parse(stdout.trim());
}

describe('activation: listenFds(), systemdFd(), systemdFds()', () => {
  const sockets = new SocketSet();
  afterEach(() => sockets.closeAll());

  it('returns every fd with its name and what it is, and unsets the LISTEN_ variables', async () => {
    const tcp = sockets.tcp('127.0.0.1');
    const udp = sockets.udp('::1');
    const unix = sockets.unix('seqpacket');
    const out = await probe({ fds: [tcp.fd, udp.fd, unix.fd], names: ['http', 'dns', 'admin'], args: ['list'] });
    expect(out.activated).to.equal(true);
    expect(out.same).to.equal(true);
    expect(out.env).to.deep.equal({ LISTEN_PID: null, LISTEN_PIDFDID: null, LISTEN_FDS: null, LISTEN_FDNAMES: null });
    expect(out.fds.map((f: any) => [f.fd, f.name])).to.deep.equal([[3, 'http'], [4, 'dns'], [5, 'admin']]);
    expect(out.fds[0].info).to.deep.include({ kind: 'socket', family: 'ipv4', type: 'stream', protocol: 'tcp', listening: true });
    expect(out.fds[0].info.local).to.deep.include({ address: '127.0.0.1', port: tcp.port });
    expect(out.fds[1].info).to.deep.include({ family: 'ipv6', type: 'dgram', protocol: 'udp', listening: false });
    expect(out.fds[1].info.local).to.deep.include({ address: '::1', port: udp.port });
    expect(out.fds[2].info).to.deep.include({ family: 'unix', type: 'seqpacket', listening: true });
    expect(out.fds[2].info.local).to.deep.equal({ family: 'unix', kind: 'path', path: unix.path });
    expect(out.fds[0].description).to.equal(`tcp 127.0.0.1:${tcp.port} (ipv4 stream, listening)`);
  });

  it("leaves the program's Error.prepareStackTrace and stackTraceLimit as they were, even a frozen Error", async () => {
    const tcp = sockets.tcp('127.0.0.1');
    const hooked = await probe({ fds: [tcp.fd], names: ['http'], args: ['stack-hooks'] });
    expect(hooked.fds.map((f: any) => [f.name, f.info.local.port])).to.deep.equal([['http', tcp.port]]);
    expect(hooked.prepareRestored).to.equal(true);
    expect(hooked.limit).to.equal(0);
    const untouched = await probe({ fds: [tcp.fd], names: ['http'], args: ['untouched-error'] });
    expect(untouched.fds.map((f: any) => f.name)).to.deep.equal(['http']);
    expect(untouched.prepareRestored).to.equal(true);
    expect(untouched.limit).to.equal(10);
    const frozen = await probe({ fds: [tcp.fd], names: ['http'], args: ['frozen-error'] });
    expect(frozen.fds.map((f: any) => [f.name, f.info.local.port])).to.deep.equal([['http', tcp.port]]);
    expect(frozen.prepareRestored).to.equal(true);
    expect(frozen.limit).to.equal(10);
  });

  it('names every fd "unknown" without LISTEN_FDNAMES', async () => {
    const a = sockets.tcp();
    const b = sockets.tcp();
    const out = await probe({ fds: [a.fd, b.fd], args: ['list'] });
    expect(out.fds.map((f: any) => f.name)).to.deep.equal(['unknown', 'unknown']);
  });

  it('keeps the environment when asked to', async () => {
    const a = sockets.tcp();
    const out = await probe({ fds: [a.fd], names: ['x'], args: ['keep'] });
    expect(out.fds).to.have.length(1);
    expect(out.env.LISTEN_FDS).to.equal('1');
    expect(out.env.LISTEN_FDNAMES).to.equal('x');
    expect(Number(out.env.LISTEN_PID)).to.be.greaterThan(0);
  });

  it('is not activated, without error, when LISTEN_PID names another process', async () => {
    const a = sockets.tcp();
    const out = await probe({ fds: [a.fd], names: ['http'], listenPid: '1', args: ['list'] });
    expect(out.activated).to.equal(false);
    expect(out.fds).to.deep.equal([]);
    // Unset on this path too, as sd_listen_fds(1) does.
    expect(out.env.LISTEN_FDS).to.equal(null);
  });

  it('throws the same typed error on every call for a malformed environment, and still unsets it', async () => {
    const a = sockets.tcp();
    const out = await probe({ fds: [a.fd], env: { LISTEN_FDS: 'three' }, args: ['twice'] });
    expect(out.first.error.code).to.equal('ERR_SD_LISTEN_FDS_INVALID');
    expect(out.first.error.message).to.include('LISTEN_FDS="three"');
    expect(out.sameError).to.equal(true);
    expect(out.env.LISTEN_FDS).to.equal(null);
  });

  it('fails with ERR_SD_FD_INVALID, naming the fd, when a promised fd is closed', async () => {
    const a = sockets.tcp();
    const b = sockets.tcp();
    // fd 4 is passed, then closed before the environment is read.
    const out = await probe({ fds: [a.fd, b.fd], names: ['web', 'n'.repeat(10240)], args: ['close', '4'] });
    expect(out.error.code).to.equal('ERR_SD_FD_INVALID');
    expect(out.error.message).to.match(/^LISTEN_FDS=2 promises fd 4 \("n+"\.\.\. \(10240 bytes\)\), but it cannot be used: EBADF: bad file descriptor, fcntl/);
    expect(out.error.message.length).to.be.below(600);
  });

  describe("the process's own event loop is never taken, never closed", () => {
    it('a stray LISTEN_PID and LISTEN_FDS=1 with nothing passed: ERR_SD_FD_INVALID, and fdStoreRemoveUnused() leaves the runtime its epoll fd', async () => {
      const child = spawnActivated({ fds: [], env: { LISTEN_FDS: '1' }, ...serviceCommand(PROBE, ['stray']) });
      const { code, signal, stdout, stderr } = await outputOf(child);
      expect({ code, signal }, stderr).to.deep.equal({ code: 0, signal: null });
      const out = JSON.parse(stdout.trim());
      expect(out.read.error.code).to.equal('ERR_SD_FD_INVALID');
      expect(out.read.error.message).to.match(/^LISTEN_FDS=1 promises fd 3 \("unknown"\), but fd 3 is anon_inode:\[eventpoll\], this process's own event loop: no service manager passed it\. .*inherited by mistake/);
      expect(out.removed.error.code, 'the same error again: nothing was taken').to.equal('ERR_SD_FD_INVALID');
      expect(out.alive).to.equal(true);
    });

    it('more fds promised than passed: the first of the runtime\'s own fds above them is refused', async () => {
      const a = sockets.tcp();
      const out = await probe({ fds: [a.fd], env: { LISTEN_FDS: '500' }, args: ['twice'] });
      expect(out.first.error.code).to.equal('ERR_SD_FD_INVALID');
      expect(out.first.error.message).to.match(/^LISTEN_FDS=500 promises fd 4 \("unknown"\), but fd 4 is anon_inode:\[eventpoll\], this process's own event loop/);
      expect(out.sameError).to.equal(true);
    });

    it('a second copy of the library in the process takes what the first took', async () => {
      const a = sockets.tcp();
      const b = sockets.udp();
      const out = await probe({ fds: [a.fd, b.fd], names: ['web', 'dns'], args: ['two-copies'] });
      expect(out).to.deep.equal({ mine: [3, 4], bundled: { ok: [3, 4] } });
    });

    it('the upgrade channels: taken when passed, ignored when the fd named is the process\'s own or not of the right type', async () => {
      const channel = async (fds: number[]): Promise<unknown> => {
        const { command, args } = serviceCommand(PROBE, ['upgrade-channel']);
        const child = spawn('sh', ['-c', 'SD_ACTIVATE_UPGRADE_PID=$$ SD_ACTIVATE_UPGRADE_FD=3 SD_ACTIVATE_HANDOVER_FD=4 exec "$0" "$@"', command, ...args], {
          stdio: ['ignore', 'pipe', 'pipe', ...fds],
        });
        const { code, stdout, stderr } = await outputOf(child);
        expect(code, stderr).to.equal(0);
        return JSON.parse(stdout.trim());
      };
      expect(await channel([sockets.unix('stream').fd, sockets.unix('seqpacket').fd])).to.deep.equal({ channel: 3, handover: 4 });
      expect(await channel([sockets.unix('stream', 'a.sock').fd, sockets.unix('stream', 'b.sock').fd]), 'the hand-over socket is no seqpacket one').to.deep.equal({ channel: 3, handover: null });
      expect(await channel([sockets.tcp().fd]), 'not a unix stream socket').to.deep.equal({ channel: null, handover: null });
      expect(await channel([]), "Node's epoll").to.deep.equal({ channel: null, handover: null });
    });
  });

  it('describes a FIFO and a character device passed as fds', async () => {
    const fifoDir = sockets.tempDir();
    const { native } = await import('../../src/native/addon.js');
    native().mkfifo(`${fifoDir}/in.fifo`, 0o600);
    const fifo = sockets.adopt(openSync(`${fifoDir}/in.fifo`, 'r+'));
    const devNull = openSync('/dev/null', 'r');
    try {
      const out = await probe({ fds: [fifo, devNull], names: ['fifo', 'null'], args: ['list'] });
      expect(out.fds[0].info).to.deep.equal({ kind: 'fifo', path: `${fifoDir}/in.fifo` });
      expect(out.fds[1].info).to.deep.equal({ kind: 'character-device', path: '/dev/null', major: 1, minor: 3 });
    } finally {
      closeSync(devNull);
    }
  });

  describe('systemdFd(name, fallback)', () => {
    it('returns the one handle of the name, with fd, name and info', async () => {
      const a = sockets.tcp();
      const b = sockets.udp();
      const out = await probe({ fds: [a.fd, b.fd], names: ['http', 'dns'], args: ['fd', 'dns'] });
      expect(out.ok).to.deep.include({ fd: 4, name: 'dns' });
      expect(out.ok.info.type).to.equal('dgram');
    });

    it('refuses a name held by several fds, pointing at systemdFds()', async () => {
      const a = sockets.tcp('127.0.0.1');
      const b = sockets.tcp('::1');
      const out = await probe({ fds: [a.fd, b.fd], names: ['http', 'http'], args: ['fd', 'http'] });
      expect(out.error.code).to.equal('ERR_SD_FD_AMBIGUOUS');
      expect(out.error.message).to.include('systemdFds("http")');
    });

    it('lists the names there are when the name is missing, even with a fallback', async () => {
      const a = sockets.tcp();
      const out = await probe({ fds: [a.fd], names: ['web'], args: ['fd', 'http', '8080'] });
      expect(out.error.code).to.equal('ERR_SD_FD_NOT_FOUND');
      expect(out.error.message).to.include('"web" (fd 3');
    });

    for (const [fallback, expected] of [
      [8080, { port: 8080 }],
      ['/run/app.sock', { path: '/run/app.sock' }],
      [{ host: '::1', port: 81 }, { host: '::1', address: '::1', port: 81 }],
      [{ path: '/x.sock' }, { path: '/x.sock' }],
    ] as const) {
      it(`returns listen options for the fallback ${JSON.stringify(fallback)} when not activated`, async () => {
        const out = await probe({ fds: [], listenPid: 'none', env: { LISTEN_FDS: undefined }, args: ['fd', 'http', JSON.stringify(fallback)] });
        expect(out.ok).to.deep.equal(expected);
      });
    }

    it('a { host, port } fallback binds a datagram socket to that host too, not to every address', () => {
      const script =
        `import dgram from 'node:dgram'; import { systemdFd } from ${JSON.stringify(INDEX)};` +
        `const s = dgram.createSocket('udp4'); s.bind(systemdFd('dns', { host: '127.0.0.1', port: 0 }), () => { console.log(s.address().address); s.close(); });`;
      const env = { ...process.env };
      for (const name of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']) delete env[name];
      const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
      expect(out.stderr).to.equal('');
      expect(out.stdout).to.equal('127.0.0.1\n');
    });

    it('without a fallback, says how to run it activated, and why it was not', async () => {
      const out = await probe({ fds: [], listenPid: '1', env: { LISTEN_FDS: '1' }, args: ['fd', 'http'] });
      expect(out.error.code).to.equal('ERR_SD_NOT_ACTIVATED');
      expect(out.error.message).to.include('LISTEN_PID=1 names another process').and.include('npm start');
    });

    it('refuses a fallback of the wrong shape with a TypeError', async () => {
      const out = await probe({ fds: [], listenPid: 'none', env: { LISTEN_FDS: undefined }, args: ['fd', 'http', '{"port":"80"}'] });
      expect(out.error.name).to.equal('TypeError');
    });
  });

  describe('messages show a long name or many fds in a few lines', () => {
    const long = 'n'.repeat(10240);
    const short = (message: string): void => {
      expect(message.length, message.slice(0, 300)).to.be.below(1200);
    };

    it('a long name asked for, not activated or not found', async () => {
      const alone = await probe({ fds: [], listenPid: 'none', env: { LISTEN_FDS: undefined }, args: ['fd', long] });
      expect(alone.error.code).to.equal('ERR_SD_NOT_ACTIVATED');
      short(alone.error.message);
      expect(alone.error.message).to.include('... (10240 bytes)').and.include('give a fallback');
      const a = sockets.tcp();
      const missing = await probe({ fds: [a.fd], names: ['web'], args: ['fd', long] });
      expect(missing.error.code).to.equal('ERR_SD_FD_NOT_FOUND');
      short(missing.error.message);
      expect(missing.error.message).to.include('"web" (fd 3');
    });

    it('long names passed, and a name many fds share', async () => {
      const a = sockets.tcp();
      const b = sockets.tcp();
      const listed = await probe({ fds: [a.fd], names: [long], args: ['fd', 'web'] });
      expect(listed.error.code).to.equal('ERR_SD_FD_NOT_FOUND');
      short(listed.error.message);
      const ambiguous = await probe({ fds: [a.fd, b.fd], names: [long, long], args: ['fd', long] });
      expect(ambiguous.error.code).to.equal('ERR_SD_FD_AMBIGUOUS');
      short(ambiguous.error.message);
      const many = Array.from({ length: 30 }, () => sockets.tcp().fd);
      const crowd = await probe({ fds: many, names: many.map(() => 'same'), args: ['fd', 'same'] });
      expect(crowd.error.code).to.equal('ERR_SD_FD_AMBIGUOUS');
      expect(crowd.error.message).to.include('and 20 more');
      const none = await probe({ fds: many, names: many.map((_, i) => `n${i}`), args: ['fd', 'web'] });
      expect(none.error.message).to.include('and 20 more');
    });
  });

  it('systemdFds(name) returns every fd of the name, in order', async () => {
    const a = sockets.tcp('127.0.0.1');
    const b = sockets.udp();
    const c = sockets.tcp('::1');
    const out = await probe({ fds: [a.fd, b.fd, c.fd], names: ['http', 'dns', 'http'], args: ['fds', 'http'] });
    expect(out.ok.map((f: any) => f.fd)).to.deep.equal([3, 5]);
  });
});
