import { expect } from 'chai';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ListenFd } from '../../src/service/activation.js';
import { native, type RawFdFacts } from '../../src/native/addon.js';
import { openSocket } from '../../src/shared/open-socket.js';
import { encodeSockaddr, InetAddress } from '../../src/core/sockaddr.js';
import { describeFdInfo, formatAddress, toFdInfo, type FdInfo } from '../../src/core/socket-info.js';
import { handleFd, uniqueName, useResources } from '../support/resources.js';

const n = native();
const c = n.constants;

function infoOf(fd: number): FdInfo {
  return toFdInfo(fd, n.inspect(fd), c);
}

function v4(address: string, port: number): InetAddress {
  return new InetAddress({ family: 'ipv4', address, port });
}

function v6(address: string, port: number, v4Mapped = false): InetAddress {
  return new InetAddress({ family: 'ipv6', address, port, v4Mapped });
}

function portOf(info: FdInfo): number {
  if (info.kind !== 'socket' || !(info.local instanceof InetAddress)) throw new Error(`not an inet socket: ${describeFdInfo(info)}`);
  return info.local.port;
}

describe('socket-info: toFdInfo and describeFdInfo on real fds', () => {
  const r = useResources();

  describe('inet', () => {
    it('a TCP IPv4 listening socket', () => {
      const fd = r.fd(openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 } }));
      const info = infoOf(fd);
      const port = portOf(info);
      expect(info).to.deep.equal({ kind: 'socket', type: 'stream', listening: true, family: 'ipv4', protocol: 'tcp', local: v4('127.0.0.1', port), peer: null });
      expect(describeFdInfo(info)).to.equal(`tcp 127.0.0.1:${port} (ipv4 stream, listening)`);
    });

    it('a TCP IPv6 net.Server on [::]', async () => {
      const server = r.node(net.createServer());
      server.listen({ port: 0, host: '::', ipv6Only: true });
      await once(server, 'listening');
      const info = infoOf(handleFd(server));
      const { port } = server.address() as net.AddressInfo;
      expect(info).to.deep.equal({ kind: 'socket', type: 'stream', listening: true, family: 'ipv6', protocol: 'tcp', local: v6('::', port), peer: null });
      expect(describeFdInfo(info)).to.equal(`tcp [::]:${port} (ipv6 stream, listening)`);
      expect(formatAddress((info as { local: InetAddress }).local)).to.equal(`[::]:${port}`);
    });

    it('an accepted IPv4 connection on a dual-stack socket: the peer is IPv4-mapped', async () => {
      const server = r.node(net.createServer());
      server.listen({ port: 0, host: '::' });
      await once(server, 'listening');
      const { port } = server.address() as net.AddressInfo;
      const accepted = once(server, 'connection') as Promise<[net.Socket]>;
      const client = r.node(net.connect(port, '127.0.0.1'));
      await once(client, 'connect');
      const [conn] = await accepted;
      r.node(conn);

      const theirs = infoOf(handleFd(conn));
      expect(theirs).to.deep.equal({
        kind: 'socket',
        type: 'stream',
        listening: false,
        family: 'ipv6',
        protocol: 'tcp',
        local: v6('::ffff:127.0.0.1', port, true),
        peer: v6('::ffff:127.0.0.1', client.localPort!, true),
      });
      expect(describeFdInfo(theirs)).to.equal(`tcp [::ffff:127.0.0.1]:${port} (ipv6 stream, connected to [::ffff:127.0.0.1]:${client.localPort})`);

      const mine = infoOf(handleFd(client));
      expect(mine).to.deep.equal({
        kind: 'socket',
        type: 'stream',
        listening: false,
        family: 'ipv4',
        protocol: 'tcp',
        local: v4('127.0.0.1', client.localPort!),
        peer: v4('127.0.0.1', port),
      });
      expect(describeFdInfo(mine)).to.equal(`tcp 127.0.0.1:${client.localPort} (ipv4 stream, connected to 127.0.0.1:${port})`);
    });

    for (const type of ['udp4', 'udp6'] as const) {
      it(`a Node dgram ${type} socket`, async () => {
        const socket = r.node(dgram.createSocket(type));
        socket.bind(0, type === 'udp4' ? '127.0.0.1' : '::1');
        await once(socket, 'listening');
        const { port } = socket.address();
        const info = infoOf(handleFd(socket));
        const local = type === 'udp4' ? v4('127.0.0.1', port) : v6('::1', port);
        expect(info).to.deep.equal({ kind: 'socket', type: 'dgram', listening: false, family: local.family, protocol: 'udp', local, peer: null });
        expect(describeFdInfo(info)).to.equal(`udp ${local.toString()} (${local.family} dgram)`);
      });
    }

    it('a UDP IPv6 socket from openSocket', () => {
      const fd = r.fd(openSocket({ type: 'dgram', address: { family: 'ipv6', address: '::1', port: 0 } }));
      const info = infoOf(fd);
      expect(info).to.deep.equal({ kind: 'socket', type: 'dgram', listening: false, family: 'ipv6', protocol: 'udp', local: v6('::1', portOf(info)), peer: null });
    });
  });

  describe('unix', () => {
    for (const type of ['stream', 'dgram', 'seqpacket'] as const) {
      it(`a ${type} socket on a path`, () => {
        const path = join(r.dir(), 'app.sock');
        const fd = r.fd(openSocket({ type, address: { family: 'unix', path } }));
        const info = infoOf(fd);
        const listening = type !== 'dgram';
        expect(info).to.deep.equal({ kind: 'socket', type, listening, family: 'unix', local: { family: 'unix', kind: 'path', path }, peer: null });
        expect(describeFdInfo(info)).to.equal(`unix ${path} (${type}${listening ? ', listening' : ''})`);
      });
    }

    it('an abstract name', () => {
      const name = uniqueName();
      const fd = r.fd(openSocket({ type: 'stream', address: { family: 'unix', abstract: name } }));
      const info = infoOf(fd);
      expect(info).to.deep.equal({ kind: 'socket', type: 'stream', listening: true, family: 'unix', local: { family: 'unix', kind: 'abstract', name }, peer: null });
      expect(describeFdInfo(info)).to.equal(`unix @${name} (stream, listening)`);
    });

    it('an abstract name with a NUL and a newline: kept whole, printed escaped as systemd does', () => {
      const base = uniqueName();
      const name = `${base}\0x\n`;
      const fd = r.fd(openSocket({ type: 'dgram', address: { family: 'unix', abstract: name } }));
      const info = infoOf(fd);
      expect(info).to.deep.include({ family: 'unix', local: { family: 'unix', kind: 'abstract', name } });
      expect(describeFdInfo(info)).to.equal(`unix @${base}\\000x\\n (dgram)`);
      expect(describeFdInfo(info)).not.to.match(/[\0\n]/);
    });

    it('an unnamed socket, and one connected to a seqpacket path', () => {
      const path = join(r.dir(), 'seq.sock');
      r.fd(openSocket({ type: 'seqpacket', address: { family: 'unix', path } }));
      const unnamed = r.fd(n.socket(c.AF_UNIX, c.SOCK_SEQPACKET | c.SOCK_CLOEXEC, 0));
      expect(infoOf(unnamed)).to.deep.equal({ kind: 'socket', type: 'seqpacket', listening: false, family: 'unix', local: { family: 'unix', kind: 'unnamed' }, peer: null });
      expect(describeFdInfo(infoOf(unnamed))).to.equal('unix (unnamed) (seqpacket)');
      n.connect(unnamed, encodeSockaddr({ family: 'unix', path }));
      const connected = infoOf(unnamed);
      expect(connected).to.deep.include({ listening: false, peer: { family: 'unix', kind: 'path', path } });
      expect(describeFdInfo(connected)).to.equal(`unix (unnamed) (seqpacket, connected to ${path})`);
    });
  });

  describe('netlink', () => {
    it('a bound NETLINK_ROUTE socket: its port id, no peer (the kernel default is none)', () => {
      const fd = r.fd(n.socket(c.AF_NETLINK, c.SOCK_RAW | c.SOCK_CLOEXEC, 0));
      const nl = Buffer.alloc(12);
      if (endianness() === 'LE') nl.writeUInt16LE(c.AF_NETLINK, 0);
      else nl.writeUInt16BE(c.AF_NETLINK, 0);
      n.bind(fd, nl);
      const info = infoOf(fd);
      expect(info.kind === 'socket' && info.family === 'netlink').to.equal(true);
      const portId = (info as { local: { portId: number } }).local.portId;
      expect(portId).to.be.above(0);
      expect(info).to.deep.equal({ kind: 'socket', type: 'raw', listening: false, family: 'netlink', protocol: 0, local: { family: 'netlink', portId, groups: 0 }, peer: null });
      expect(describeFdInfo(info)).to.equal(`netlink ${portId} (raw)`);
    });
  });

  describe('not sockets', () => {
    it('a FIFO', () => {
      const path = join(fs.realpathSync(r.dir()), 'fifo');
      n.mkfifo(path, 0o600);
      const fd = r.fd(fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
      expect(infoOf(fd)).to.deep.equal({ kind: 'fifo', path });
      expect(describeFdInfo(infoOf(fd))).to.equal(`fifo ${path}`);
    });

    it('a pipe is a FIFO without a path in the filesystem', () => {
      const [rd, wr] = n.pipe();
      r.fd(rd);
      r.fd(wr);
      const info = infoOf(rd);
      expect(info.kind).to.equal('fifo');
      expect((info as { path: string }).path).to.match(/^pipe:\[\d+\]$/);
    });

    it('a regular file, with its size', () => {
      const path = join(fs.realpathSync(r.dir()), 'data.bin');
      fs.writeFileSync(path, Buffer.alloc(1234));
      const fd = r.fd(fs.openSync(path, 'r'));
      expect(infoOf(fd)).to.deep.equal({ kind: 'file', path, size: 1234 });
      expect(describeFdInfo(infoOf(fd))).to.equal(`file ${path}`);
    });

    it('/dev/null', () => {
      const fd = r.fd(fs.openSync('/dev/null', 'w'));
      expect(infoOf(fd)).to.deep.equal({ kind: 'character-device', path: '/dev/null', major: 1, minor: 3 });
      expect(describeFdInfo(infoOf(fd))).to.equal('character device /dev/null (1:3)');
    });

    it('a POSIX message queue', () => {
      const name = `/${uniqueName()}`;
      const fd = r.fd(n.mqOpen(name, c.O_RDWR | c.O_CREAT | c.O_CLOEXEC, 0o600, 3, 64));
      r.defer(() => n.mqUnlink(name));
      expect(infoOf(fd)).to.deep.equal({ kind: 'mqueue', path: name, maxmsg: 3, msgsize: 64, curmsgs: 0 });
      expect(describeFdInfo(infoOf(fd))).to.equal(`mqueue ${name}`);
    });

    it('a directory is "other", with its mode', () => {
      const dir = fs.realpathSync(r.dir());
      const fd = r.fd(fs.openSync(dir, 'r'));
      expect(infoOf(fd)).to.deep.equal({ kind: 'other', path: dir, mode: c.S_IFDIR });
      expect(describeFdInfo(infoOf(fd))).to.equal(`other ${dir}`);
    });
  });
});

describe('socket-info: families there is no fd for here', () => {
  const base = { rdevMajor: 0, rdevMinor: 0, size: 0 };
  const le16 = (v: number) => {
    const b = Buffer.alloc(2);
    if (endianness() === 'LE') b.writeUInt16LE(v, 0);
    else b.writeUInt16BE(v, 0);
    return b;
  };
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    if (endianness() === 'LE') b.writeUInt32LE(v, 0);
    else b.writeUInt32BE(v, 0);
    return b;
  };

  it('vsock: cid and port', () => {
    const local = Buffer.concat([le16(c.AF_VSOCK), Buffer.alloc(2), u32(1024), u32(3), Buffer.alloc(4)]);
    const facts: RawFdFacts = { ...base, mode: c.S_IFSOCK, domain: c.AF_VSOCK, type: c.SOCK_STREAM, protocol: 0, acceptConn: true, local };
    const info = toFdInfo(-1, facts, c);
    expect(info).to.deep.equal({ kind: 'socket', type: 'stream', listening: true, family: 'vsock', local: { family: 'vsock', cid: 3, port: 1024 }, peer: null });
    expect(describeFdInfo(info)).to.equal('vsock:3:1024 (stream, listening)');
  });

  it('AF_PACKET: by number, bytes kept', () => {
    const local = Buffer.concat([le16(c.AF_PACKET), Buffer.from([0, 3, 1, 0, 0, 0])]);
    const facts: RawFdFacts = { ...base, mode: c.S_IFSOCK, domain: c.AF_PACKET, type: c.SOCK_RAW, protocol: 768, acceptConn: false, local };
    const info = toFdInfo(-1, facts, c);
    expect(info).to.deep.equal({ kind: 'socket', type: 'raw', listening: false, family: 'other', domain: c.AF_PACKET, protocol: 768, local: { family: 'other', domain: c.AF_PACKET, bytes: local.toString('hex') } });
    expect(describeFdInfo(info)).to.equal(`family ${c.AF_PACKET} (raw)`);
  });

  it('an unknown SO_TYPE and IP protocol are named, not dropped', () => {
    const local = Buffer.concat([le16(c.AF_INET), Buffer.from([0, 80, 10, 0, 0, 1]), Buffer.alloc(8)]);
    const info = toFdInfo(-1, { ...base, mode: c.S_IFSOCK, domain: c.AF_INET, type: 99, protocol: 253, acceptConn: false, local }, c);
    expect(info).to.deep.include({ type: 'unknown', protocol: 'ipproto-253' });
    expect(describeFdInfo(info)).to.equal('ipproto-253 10.0.0.1:80 (ipv4 unknown)');
  });

  it('a non-socket whose path cannot be read', () => {
    expect(describeFdInfo({ kind: 'fifo', path: null })).to.equal('fifo (no path)');
  });
});

describe('socket-info: formatAddress', () => {
  it('prints what systemd prints after Listen:', () => {
    expect(formatAddress(v4('0.0.0.0', 80))).to.equal('0.0.0.0:80');
    expect(formatAddress(v6('::', 443))).to.equal('[::]:443');
    expect(formatAddress(new InetAddress({ family: 'ipv6', address: 'fe80::1', port: 53, scopeId: 2 }))).to.equal('[fe80::1%2]:53');
    expect(formatAddress({ family: 'unix', kind: 'path', path: '/run/app.sock' })).to.equal('/run/app.sock');
    expect(formatAddress({ family: 'unix', kind: 'abstract', name: 'app' })).to.equal('@app');
    expect(formatAddress({ family: 'unix', kind: 'unnamed' })).to.equal('(unnamed)');
    expect(formatAddress({ family: 'netlink', portId: 0, groups: 1 })).to.equal('netlink 0');
  });

  it('C-escapes control characters and backslashes in unix names, keeps the rest', () => {
    expect(formatAddress({ family: 'unix', kind: 'abstract', name: 'a\0b\x01\x7f\t\\é' })).to.equal('@a\\000b\\001\\177\\t\\\\é');
    expect(formatAddress({ family: 'unix', kind: 'path', path: '/run/a\nb' })).to.equal('/run/a\\nb');
  });
});

describe('socket-info: ListenFd in JSON and util.inspect', () => {
  const r = useResources();

  it('a TCP socket: JSON has the fd, name, description and address; inspect is one readable line', () => {
    const fd = r.fd(openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 } }));
    const info = infoOf(fd);
    const port = portOf(info);
    const listenFd = new ListenFd(fd, 'http', info);
    expect(JSON.parse(JSON.stringify(listenFd))).to.deep.equal({
      fd,
      name: 'http',
      description: `tcp 127.0.0.1:${port} (ipv4 stream, listening)`,
      info: {
        kind: 'socket',
        type: 'stream',
        listening: true,
        family: 'ipv4',
        protocol: 'tcp',
        local: { address: '127.0.0.1', family: 'ipv4', port, flowinfo: 0, scopeId: 0, v4Mapped: false },
        peer: null,
      },
    });
    const line = `ListenFd { fd: ${fd}, name: "http", tcp 127.0.0.1:${port} (ipv4 stream, listening) }`;
    expect(inspect(listenFd)).to.equal(line);
    // Nested (console.log of an array of them), each still prints as its one line.
    expect(inspect({ fds: [listenFd] })).to.include(line);
    expect(`${listenFd.describe()}`).to.equal(`tcp 127.0.0.1:${port} (ipv4 stream, listening)`);
  });

  it('an abstract socket with a NUL: JSON keeps the name exactly, inspect shows it escaped', () => {
    const base = uniqueName();
    const name = `${base}\0tail`;
    const fd = r.fd(openSocket({ type: 'dgram', address: { family: 'unix', abstract: name } }));
    const listenFd = new ListenFd(fd, 'dns-unix', infoOf(fd));
    const json = JSON.stringify(listenFd);
    expect(json).to.include(`"name":"${base}\\u0000tail"`);
    expect(JSON.parse(json).info.local).to.deep.equal({ family: 'unix', kind: 'abstract', name });
    expect(JSON.parse(json).description).to.equal(`unix @${base}\\000tail (dgram)`);
    expect(inspect(listenFd)).to.equal(`ListenFd { fd: ${fd}, name: "dns-unix", unix @${base}\\000tail (dgram) }`);
  });

  it('a FIFO and a message queue', () => {
    const path = join(fs.realpathSync(r.dir()), 'cmd.fifo');
    n.mkfifo(path, 0o600);
    const fifo = r.fd(fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
    expect(inspect(new ListenFd(fifo, 'control', infoOf(fifo)))).to.equal(`ListenFd { fd: ${fifo}, name: "control", fifo ${path} }`);
    expect(JSON.parse(JSON.stringify(new ListenFd(fifo, 'control', infoOf(fifo))))).to.deep.equal({
      fd: fifo,
      name: 'control',
      description: `fifo ${path}`,
      info: { kind: 'fifo', path },
    });
    const mqName = `/${uniqueName()}`;
    const mq = r.fd(n.mqOpen(mqName, c.O_RDWR | c.O_CREAT | c.O_CLOEXEC, 0o600, 2, 32));
    r.defer(() => n.mqUnlink(mqName));
    expect(JSON.parse(JSON.stringify(new ListenFd(mq, 'queue', infoOf(mq)))).info).to.deep.equal({ kind: 'mqueue', path: mqName, maxmsg: 2, msgsize: 32, curmsgs: 0 });
  });
});
