import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native, packageRoot, type RawFdFacts } from '../../src/native/addon.js';
import { openSocket } from '../../src/shared/open-socket.js';
import { decodeSockaddr, encodeSockaddr, InetAddress } from '../../src/core/sockaddr.js';
import { handleFd, uniqueName, useResources } from '../support/resources.js';

const n = native();
const c = n.constants;

/** What a thrown value looks like as a Node-style error: the fields tests compare. */
function shape(fn: () => unknown): { name: string; code: unknown; errno: unknown; syscall: unknown; fd: unknown; path: unknown; message: string } {
  try {
    fn();
  } catch (error) {
    const e = error as Error & Record<string, unknown>;
    return { name: e.name, code: e.code, errno: e.errno, syscall: e.syscall, fd: e.fd, path: e.path, message: e.message };
  }
  throw new Error('expected a throw');
}

function inet(buf: Buffer | undefined): InetAddress {
  expect(buf, 'an address').to.be.instanceOf(Buffer);
  const address = decodeSockaddr(buf!);
  expect(address).to.be.instanceOf(InetAddress);
  return address as InetAddress;
}

/** An fd that was open a moment ago and is closed now. */
function closedFd(): number {
  const fd = n.socket(c.AF_UNIX, c.SOCK_DGRAM | c.SOCK_CLOEXEC, 0);
  n.close(fd);
  return fd;
}

function socketFacts(facts: RawFdFacts): Omit<RawFdFacts, 'local' | 'peer' | 'size' | 'rdevMajor' | 'rdevMinor'> {
  const { mode, domain, type, protocol, acceptConn, mq } = facts;
  return { mode, domain, type, protocol, acceptConn, mq };
}

describe('native: inspect() on real fds', () => {
  const r = useResources();

  describe('TCP', () => {
    it('an IPv4 listening socket made by openSocket', () => {
      const fd = r.fd(openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 } }));
      const facts = n.inspect(fd);
      expect(socketFacts(facts)).to.deep.equal({ mode: c.S_IFSOCK, domain: c.AF_INET, type: c.SOCK_STREAM, protocol: c.IPPROTO_TCP, acceptConn: true, mq: undefined });
      expect(facts.local).to.have.length(16);
      const local = inet(facts.local);
      expect(local.family).to.equal('ipv4');
      expect(local.address).to.equal('127.0.0.1');
      expect(local.port).to.be.within(1, 65535);
      expect(facts).not.to.have.property('peer');
    });

    it('an IPv6 listening socket made by openSocket', () => {
      const fd = r.fd(openSocket({ type: 'stream', address: { family: 'ipv6', address: '::1', port: 0 } }));
      const facts = n.inspect(fd);
      expect(socketFacts(facts)).to.deep.equal({ mode: c.S_IFSOCK, domain: c.AF_INET6, type: c.SOCK_STREAM, protocol: c.IPPROTO_TCP, acceptConn: true, mq: undefined });
      expect(facts.local).to.have.length(28);
      const local = inet(facts.local);
      expect([local.family, local.address, local.flowinfo, local.scopeId, local.v4Mapped]).to.deep.equal(['ipv6', '::1', 0, 0, false]);
      expect(facts).not.to.have.property('peer');
    });

    for (const [family, host] of [
      ['ipv4', '127.0.0.1'],
      ['ipv6', '::1'],
    ] as const) {
      it(`an ${family} net.Server: the port Node reports`, async () => {
        const server = r.node(net.createServer());
        server.listen(0, host);
        await once(server, 'listening');
        const facts = n.inspect(handleFd(server));
        expect(facts.domain).to.equal(family === 'ipv4' ? c.AF_INET : c.AF_INET6);
        expect([facts.type, facts.protocol, facts.acceptConn]).to.deep.equal([c.SOCK_STREAM, c.IPPROTO_TCP, true]);
        const local = inet(facts.local);
        const { address, port } = server.address() as net.AddressInfo;
        expect([local.address, local.port]).to.deep.equal([address, port]);
        expect(facts).not.to.have.property('peer');
      });
    }

    it('both ends of a connected socket: local and peer mirror each other', async () => {
      const server = r.node(net.createServer());
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const accepted = once(server, 'connection') as Promise<[net.Socket]>;
      const client = r.node(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'));
      await once(client, 'connect');
      const [serverSide] = await accepted;
      r.node(serverSide);

      const mine = n.inspect(handleFd(client));
      const theirs = n.inspect(handleFd(serverSide));
      for (const facts of [mine, theirs]) {
        expect([facts.domain, facts.type, facts.protocol, facts.acceptConn]).to.deep.equal([c.AF_INET, c.SOCK_STREAM, c.IPPROTO_TCP, false]);
      }
      expect(inet(mine.local).port).to.equal(client.localPort);
      expect(inet(mine.peer).port).to.equal((server.address() as net.AddressInfo).port);
      expect(inet(theirs.peer)).to.deep.equal(inet(mine.local));
      expect(inet(theirs.local)).to.deep.equal(inet(mine.peer));
    });
  });

  describe('UDP', () => {
    for (const type of ['udp4', 'udp6'] as const) {
      const host = type === 'udp4' ? '127.0.0.1' : '::1';
      it(`a Node dgram ${type} socket`, async () => {
        const socket = r.node(dgram.createSocket(type));
        socket.bind(0, host);
        await once(socket, 'listening');
        const facts = n.inspect(handleFd(socket));
        expect(socketFacts(facts)).to.deep.equal({
          mode: c.S_IFSOCK,
          domain: type === 'udp4' ? c.AF_INET : c.AF_INET6,
          type: c.SOCK_DGRAM,
          protocol: c.IPPROTO_UDP,
          acceptConn: false,
          mq: undefined,
        });
        expect([inet(facts.local).address, inet(facts.local).port]).to.deep.equal([host, socket.address().port]);
        expect(facts).not.to.have.property('peer');
      });

      it(`a ${type} socket made by openSocket, then connected: the peer appears`, () => {
        const family = type === 'udp4' ? 'ipv4' : 'ipv6';
        const fd = r.fd(openSocket({ type: 'dgram', address: { family, address: host, port: 0 } }));
        const before = n.inspect(fd);
        expect([before.domain, before.type, before.protocol, before.acceptConn]).to.deep.equal([
          family === 'ipv4' ? c.AF_INET : c.AF_INET6,
          c.SOCK_DGRAM,
          c.IPPROTO_UDP,
          false,
        ]);
        expect(before).not.to.have.property('peer');
        n.connect(fd, encodeSockaddr({ family, address: host, port: 9 }));
        const peer = inet(n.inspect(fd).peer);
        expect([peer.family, peer.address, peer.port]).to.deep.equal([family, host, 9]);
      });
    }
  });

  describe('unix', () => {
    for (const type of ['stream', 'dgram', 'seqpacket'] as const) {
      it(`a ${type} socket on a path: exact sockaddr length, path decoded`, () => {
        const path = join(r.dir(), `${type}.sock`);
        const fd = r.fd(openSocket({ type, address: { family: 'unix', path } }));
        const facts = n.inspect(fd);
        const sockType = type === 'stream' ? c.SOCK_STREAM : type === 'dgram' ? c.SOCK_DGRAM : c.SOCK_SEQPACKET;
        expect(socketFacts(facts)).to.deep.equal({ mode: c.S_IFSOCK, domain: c.AF_UNIX, type: sockType, protocol: 0, acceptConn: type !== 'dgram', mq: undefined });
        // sun_family, the path, its NUL: what the kernel keeps for a path it was given.
        expect(facts.local!.length).to.equal(2 + Buffer.byteLength(path) + 1);
        expect(decodeSockaddr(facts.local!)).to.deep.equal({ family: 'unix', kind: 'path', path });
        expect(facts).not.to.have.property('peer');
      });
    }

    it('an abstract name: exactly as long as the name, no trailing NUL', () => {
      const name = uniqueName();
      const fd = r.fd(openSocket({ type: 'stream', address: { family: 'unix', abstract: name } }));
      const local = n.inspect(fd).local!;
      expect(local.length).to.equal(2 + 1 + Buffer.byteLength(name));
      expect(local.subarray(2)).to.deep.equal(Buffer.concat([Buffer.from([0]), Buffer.from(name)]));
      expect(decodeSockaddr(local)).to.deep.equal({ family: 'unix', kind: 'abstract', name });
    });

    it('an abstract name with a NUL inside and at its end: every byte kept', () => {
      const name = `${uniqueName()}\0inner\0`;
      const fd = r.fd(openSocket({ type: 'dgram', address: { family: 'unix', abstract: name } }));
      const local = n.inspect(fd).local!;
      expect(local.length).to.equal(2 + 1 + Buffer.byteLength(name));
      expect(decodeSockaddr(local)).to.deep.equal({ family: 'unix', kind: 'abstract', name });
      // A name one byte shorter is another socket: the trailing NUL is part of the name.
      const shorter = r.fd(openSocket({ type: 'dgram', address: { family: 'unix', abstract: name.slice(0, -1) } }));
      expect(decodeSockaddr(n.inspect(shorter).local!)).to.deep.equal({ family: 'unix', kind: 'abstract', name: name.slice(0, -1) });
    });

    it('an unnamed socket (socket() without bind): only sun_family', () => {
      const fd = r.fd(n.socket(c.AF_UNIX, c.SOCK_STREAM | c.SOCK_CLOEXEC, 0));
      const facts = n.inspect(fd);
      expect([facts.domain, facts.type, facts.acceptConn]).to.deep.equal([c.AF_UNIX, c.SOCK_STREAM, false]);
      expect(facts.local!.length).to.equal(2);
      expect(decodeSockaddr(facts.local!)).to.deep.equal({ family: 'unix', kind: 'unnamed' });
      expect(facts).not.to.have.property('peer');
    });

    it('a connected seqpacket pair: the client is unnamed, its peer is the path', () => {
      const path = join(r.dir(), 'seq.sock');
      r.fd(openSocket({ type: 'seqpacket', address: { family: 'unix', path } }));
      const client = r.fd(n.socket(c.AF_UNIX, c.SOCK_SEQPACKET | c.SOCK_CLOEXEC, 0));
      n.connect(client, encodeSockaddr({ family: 'unix', path }));
      const facts = n.inspect(client);
      expect(decodeSockaddr(facts.local!)).to.deep.equal({ family: 'unix', kind: 'unnamed' });
      expect(decodeSockaddr(facts.peer!)).to.deep.equal({ family: 'unix', kind: 'path', path });
    });
  });

  describe('not sockets', () => {
    it('a FIFO made by mkfifo', () => {
      const path = join(r.dir(), 'fifo');
      n.mkfifo(path, 0o600);
      expect(fs.statSync(path).isFIFO()).to.equal(true);
      expect(fs.statSync(path).mode & 0o777).to.equal(0o600);
      // O_RDWR: a FIFO opened so does not wait for the other end (Linux).
      const fd = r.fd(fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
      expect(n.inspect(fd)).to.deep.equal({ mode: c.S_IFIFO, rdevMajor: 0, rdevMinor: 0, size: 0 });
    });

    it('a pipe: both ends FIFOs, both close-on-exec', () => {
      const [rd, wr] = n.pipe();
      r.fd(rd);
      r.fd(wr);
      expect(rd).to.not.equal(wr);
      for (const fd of [rd, wr]) {
        expect(n.inspect(fd)).to.deep.equal({ mode: c.S_IFIFO, rdevMajor: 0, rdevMinor: 0, size: 0 });
        expect(n.getCloexec(fd)).to.equal(true);
      }
      fs.writeSync(wr, 'ping');
      const buf = Buffer.alloc(8);
      expect(buf.subarray(0, fs.readSync(rd, buf)).toString()).to.equal('ping');
    });

    it('a regular file: its size, no mq', () => {
      const path = join(r.dir(), 'file');
      fs.writeFileSync(path, 'hello');
      const fd = r.fd(fs.openSync(path, 'r'));
      expect(n.inspect(fd)).to.deep.equal({ mode: c.S_IFREG, rdevMajor: 0, rdevMinor: 0, size: 5 });
    });

    it('/dev/null: character device 1:3', () => {
      const fd = r.fd(fs.openSync('/dev/null', 'r'));
      expect(n.inspect(fd)).to.deep.equal({ mode: c.S_IFCHR, rdevMajor: 1, rdevMinor: 3, size: 0 });
    });

    it('a POSIX message queue: a regular file with mq_getattr facts', () => {
      const name = `/${uniqueName()}`;
      const fd = n.mqOpen(name, c.O_RDWR | c.O_CREAT | c.O_CLOEXEC, 0o600, 4, 128);
      r.defer(() => n.mqUnlink(name));
      r.fd(fd);
      expect(n.inspect(fd)).to.deep.equal({
        mode: c.S_IFREG,
        rdevMajor: 0,
        rdevMinor: 0,
        size: fs.fstatSync(fd).size,
        mq: { flags: 0, maxmsg: 4, msgsize: 128, curmsgs: 0 },
      });
      expect(n.getCloexec(fd)).to.equal(true);
    });

    it('a message queue opened without attributes takes the system defaults', () => {
      const name = `/${uniqueName()}`;
      const fd = r.fd(n.mqOpen(name, c.O_RDONLY | c.O_CREAT | c.O_CLOEXEC, 0o600, 0, 0));
      r.defer(() => n.mqUnlink(name));
      const mq = n.inspect(fd).mq!;
      // mq_overview(7): without attributes, the lesser of the *_default and *_max limits.
      const limit = (name: string): number => Number(fs.readFileSync(`/proc/sys/fs/mqueue/${name}`, 'utf8'));
      expect(mq.maxmsg).to.equal(Math.min(limit('msg_default'), limit('msg_max')));
      expect(mq.msgsize).to.equal(Math.min(limit('msgsize_default'), limit('msgsize_max')));
    });
  });

  describe('netlink', () => {
    const nlSockaddr = (): Buffer => {
      const buf = Buffer.alloc(12);
      if (endianness() === 'LE') buf.writeUInt16LE(c.AF_NETLINK, 0);
      else buf.writeUInt16BE(c.AF_NETLINK, 0);
      return buf;
    };

    it('a NETLINK_ROUTE raw socket: port 0 until bound, the kernel picks one at bind', () => {
      const fd = r.fd(n.socket(c.AF_NETLINK, c.SOCK_RAW | c.SOCK_CLOEXEC, 0));
      const facts = n.inspect(fd);
      expect(socketFacts(facts)).to.deep.equal({ mode: c.S_IFSOCK, domain: c.AF_NETLINK, type: c.SOCK_RAW, protocol: 0, acceptConn: false, mq: undefined });
      expect(decodeSockaddr(facts.local!)).to.deep.equal({ family: 'netlink', portId: 0, groups: 0 });
      // getpeername(2) on netlink never fails: it reports the default destination, the kernel.
      expect(decodeSockaddr(facts.peer!)).to.deep.equal({ family: 'netlink', portId: 0, groups: 0 });

      n.bind(fd, nlSockaddr());
      const bound = decodeSockaddr(n.inspect(fd).local!);
      expect(bound).to.include({ family: 'netlink', groups: 0 });
      expect((bound as { portId: number }).portId).to.be.above(0);
    });
  });
});

describe('native: close-on-exec', () => {
  const r = useResources();

  it('round-trips, and leaves the flag alone when already so', () => {
    const fd = r.fd(n.socket(c.AF_UNIX, c.SOCK_STREAM, 0));
    expect(n.getCloexec(fd)).to.equal(false);
    n.setCloexec(fd, true);
    expect(n.getCloexec(fd)).to.equal(true);
    n.setCloexec(fd, true);
    expect(n.getCloexec(fd)).to.equal(true);
    n.setCloexec(fd, false);
    expect(n.getCloexec(fd)).to.equal(false);
    n.setCloexec(fd, false);
    expect(n.getCloexec(fd)).to.equal(false);
  });

  it('SOCK_CLOEXEC at socket() shows', () => {
    expect(n.getCloexec(r.fd(n.socket(c.AF_UNIX, c.SOCK_DGRAM | c.SOCK_CLOEXEC, 0)))).to.equal(true);
  });
});

describe('native: errors', () => {
  const r = useResources();

  it('inspect of a closed fd: EBADF from fstat, Node-style', () => {
    const fd = closedFd();
    expect(shape(() => n.inspect(fd))).to.deep.equal({
      name: 'Error',
      code: 'EBADF',
      errno: -9,
      syscall: 'fstat',
      fd,
      path: undefined,
      message: `EBADF: bad file descriptor, fstat (fd ${fd})`,
    });
  });

  it('setCloexec and getCloexec of a closed fd: EBADF from fcntl', () => {
    const fd = closedFd();
    expect(shape(() => n.setCloexec(fd, true))).to.include({ code: 'EBADF', errno: -9, syscall: 'fcntl', fd });
    expect(shape(() => n.getCloexec(fd))).to.include({ code: 'EBADF', errno: -9, syscall: 'fcntl', fd });
  });

  it('close of a closed fd: EBADF', () => {
    const fd = closedFd();
    expect(shape(() => n.close(fd))).to.include({ code: 'EBADF', syscall: 'close', fd });
  });

  it('bind to an address in use: EADDRINUSE with the fd', () => {
    const first = r.fd(openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 } }));
    const port = inet(n.inspect(first).local).port;
    const second = r.fd(n.socket(c.AF_INET, c.SOCK_STREAM | c.SOCK_CLOEXEC, 0));
    expect(shape(() => n.bind(second, encodeSockaddr({ family: 'ipv4', address: '127.0.0.1', port })))).to.deep.equal({
      name: 'Error',
      code: 'EADDRINUSE',
      errno: -98,
      syscall: 'bind',
      fd: second,
      path: undefined,
      message: `EADDRINUSE: address already in use, bind (fd ${second})`,
    });
  });

  it('socket() of an unknown family: no fd in the error (its first argument is a domain)', () => {
    const e = shape(() => n.socket(9999, c.SOCK_STREAM, 0));
    expect(e).to.include({ code: 'EAFNOSUPPORT', syscall: 'socket', fd: undefined });
    expect(e.message).to.equal('EAFNOSUPPORT: address family not supported by protocol, socket');
  });

  it('reapChild of a process that is not a child: ECHILD from waitid, no fd in the error', () => {
    expect(shape(() => n.reapChild(1))).to.include({ code: 'ECHILD', syscall: 'waitid', fd: undefined });
  });

  it('mkfifo on an existing path and mq_open of a name without a slash: the path in the error', () => {
    const path = join(r.dir(), 'taken');
    fs.writeFileSync(path, '');
    expect(shape(() => n.mkfifo(path, 0o600))).to.include({ code: 'EEXIST', syscall: 'mkfifo', path, fd: undefined });
    expect(shape(() => n.mqOpen('no-slash', c.O_RDONLY | c.O_CREAT, 0o600, 0, 0))).to.include({
      code: 'EINVAL',
      syscall: 'mq_open',
      path: 'no-slash',
    });
    expect(shape(() => n.mqUnlink(`/${uniqueName()}`))).to.include({ code: 'ENOENT', syscall: 'mq_unlink' });
  });

  describe('wrong arguments: a TypeError, never a crash nor a call on another fd', () => {
    const call = (fn: (...args: unknown[]) => unknown, ...args: unknown[]) => shape(() => fn(...args));
    const cases: Array<[string, () => ReturnType<typeof shape>]> = [
      ['inspect()', () => call(n.inspect as never)],
      ["inspect('3')", () => call(n.inspect as never, '3')],
      ['inspect(null)', () => call(n.inspect as never, null)],
      ['inspect(3n)', () => call(n.inspect as never, 3n)],
      ['inspect(1.5)', () => call(n.inspect as never, 1.5)],
      ['inspect(NaN)', () => call(n.inspect as never, NaN)],
      ['inspect(2 ** 32 + 1): not fd 1', () => call(n.inspect as never, 2 ** 32 + 1)],
      ['getCloexec({})', () => call(n.getCloexec as never, {})],
      ["setCloexec(0, 'yes')", () => call(n.setCloexec as never, 0, 'yes')],
      ['setCloexec(0)', () => call(n.setCloexec as never, 0)],
      ["socket('unix', 1, 0)", () => call(n.socket as never, 'unix', 1, 0)],
      ['setsockopt(0, 1, 2)', () => call(n.setsockopt as never, 0, 1, 2)],
      ["bind(0, 'addr')", () => call(n.bind as never, 0, 'addr')],
      ['connect(0, [1, 2])', () => call(n.connect as never, 0, [1, 2])],
      ["listen(0, '5')", () => call(n.listen as never, 0, '5')],
      ['close(undefined)', () => call(n.close as never, undefined)],
      ['mkfifo(42, 0o600)', () => call(n.mkfifo as never, 42, 0o600)],
      ["mkfifo('…/a\\0b', 0o600): not '…/a'", () => call(n.mkfifo as never, join(r.dir(), 'a\0b'), 0o600)],
      ["mqOpen('/x', 'rw', 0, 0, 0)", () => call(n.mqOpen as never, '/x', 'rw', 0, 0, 0)],
      [
        "mqOpen('/name\\0y', ...): not '/name'",
        () => {
          const name = `/${uniqueName()}`;
          r.defer(() => {
            try {
              n.mqUnlink(name); // only there if the NUL was not refused
            } catch {
              // ENOENT: as it should be
            }
          });
          return call(n.mqOpen as never, `${name}\0y`, c.O_RDONLY | c.O_CREAT, 0o600, 0, 0);
        },
      ],
      ['mqUnlink(1)', () => call(n.mqUnlink as never, 1)],
      ["setChildSubreaper('yes')", () => call(n.setChildSubreaper as never, 'yes')],
      ['reapChild(0): not every child', () => call(n.reapChild as never, 0)],
      ['reapChild(-1): not every child', () => call(n.reapChild as never, -1)],
      ["reapChild('12')", () => call(n.reapChild as never, '12')],
      ['notifySend() with 3 arguments', () => call(n.notifySend as never, Buffer.alloc(3), Buffer.alloc(1), null)],
      ["notifySend(..., 'x', ...)", () => call(n.notifySend as never, 'x', Buffer.alloc(1), null, null)],
      ['notifySend(..., {} as fds, ...)', () => call(n.notifySend as never, Buffer.alloc(3), Buffer.from('A=1'), {}, null)],
      ["notifySend(..., ['3'], ...)", () => call(n.notifySend as never, Buffer.alloc(3), Buffer.from('A=1'), ['3'], null)],
      ['notifySend(..., 7 as cred)', () => call(n.notifySend as never, Buffer.alloc(3), Buffer.from('A=1'), null, 7)],
      ['notifySend(..., { pid: 1 } as cred)', () => call(n.notifySend as never, Buffer.alloc(3), Buffer.from('A=1'), null, { pid: 1 })],
    ];
    for (const [what, run] of cases) {
      it(what, () => {
        const e = run();
        expect(e.name, e.message).to.equal('TypeError');
        expect(e.code).to.equal('ERR_INVALID_ARG_TYPE');
      });
    }

    it('more than SCM_MAX_FD fds: E2BIG before anything is sent', () => {
      const fds = new Array<number>(c.SCM_MAX_FD + 1).fill(0);
      expect(shape(() => n.notifySend(Buffer.alloc(3), Buffer.from('A=1'), fds, null))).to.include({ code: 'E2BIG', syscall: 'sendmsg' });
    });
  });
});

describe('native: child subreaper', () => {
  // In a process of its own (test/fixtures/subreaper-probe.ts): the setting is process-wide.
  it('adopts the orphans of a child and reaps them with their exit status or signal', async () => {
    const probe = new URL('../fixtures/subreaper-probe.js', import.meta.url);
    const child = spawn(process.execPath, [fileURLToPath(probe)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code, err).to.equal(0);
    const result = JSON.parse(out) as { adopted: number[]; self: number; running: unknown; statuses: unknown[]; again: string };
    expect(result.adopted).to.deep.equal([result.self, result.self]);
    expect(result.running).to.equal(null);
    expect(result.statuses).to.deep.equal([
      { code: 7, signal: null },
      { code: null, signal: 9 },
    ]);
    expect(result.again).to.equal('ECHILD');
  });
});

describe('native: constants', () => {
  it('are the Linux values (x86-64 and arm64 alike)', () => {
    expect(c).to.include({
      AF_UNIX: 1,
      AF_INET: 2,
      AF_INET6: 10,
      AF_NETLINK: 16,
      SOCK_STREAM: 1,
      SOCK_DGRAM: 2,
      SOCK_RAW: 3,
      SOCK_SEQPACKET: 5,
      IPPROTO_TCP: 6,
      IPPROTO_UDP: 17,
      S_IFSOCK: 0o140000,
      S_IFIFO: 0o10000,
      S_IFREG: 0o100000,
      S_IFCHR: 0o20000,
      SCM_MAX_FD: 253,
    });
  });
});

describe('native: packageRoot(), where the addon is looked for', () => {
  it('is the folder above the last dist/, at any depth: every entry point, bundled or not', () => {
    for (const file of ['dist/pkg/index.js', 'dist/pkg/testing.js', 'dist/pkg/upgrade-impl.js', 'dist/pkg/cli/main.js', 'dist/src/native.js', 'dist/src/cli/main.js', 'dist/src/native/addon.js']) {
      expect(packageRoot(`file:///app/node_modules/sd-activate/${file}`), file).to.equal('/app/node_modules/sd-activate');
    }
  });

  it('a dist folder above the package does not count; a path is percent-decoded', () => {
    expect(packageRoot('file:///srv/dist/app/node_modules/sd-activate/dist/pkg/cli/main.js')).to.equal('/srv/dist/app/node_modules/sd-activate');
    expect(packageRoot('file:///home/a%20b/%E2%82%AC/dist/pkg/index.js')).to.equal('/home/a b/€');
  });

  it('a file: URL with a host goes through fileURLToPath; a module outside dist/ is an error that says where it is', () => {
    expect(packageRoot('file://localhost/opt/x/dist/pkg/index.js')).to.equal('/opt/x');
    expect(() => packageRoot('file:///bundled/app.js')).to.throw("/bundled/app.js is not inside the package's dist/ directory");
  });

  it("is this repository for this module's own URL", () => {
    expect(packageRoot(import.meta.url)).to.equal(fileURLToPath(new URL('../../..', import.meta.url)).replace(/\/$/, ''));
  });
});

describe('native: the typed binding', () => {
  it('NativeBinding in src/native/addon.ts names every function the addon exports, and nothing else', async () => {
    const { default: ts } = await import('typescript');
    const file = fileURLToPath(new URL('../../../src/native/addon.ts', import.meta.url));
    const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
    const typed: string[] = [];
    source.forEachChild((node) => {
      if (ts.isInterfaceDeclaration(node) && node.name.text === 'NativeBinding') {
        for (const member of node.members) if (ts.isMethodSignature(member) && ts.isIdentifier(member.name)) typed.push(member.name.text);
      }
    });
    const exported = Object.keys(n).filter((key) => typeof (n as unknown as Record<string, unknown>)[key] === 'function');
    expect(typed.sort()).to.deep.equal(exported.sort());
  });
});
