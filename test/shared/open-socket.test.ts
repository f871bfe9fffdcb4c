import { expect } from 'chai';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { native } from '../../src/native/addon.js';
import { closeFd, openSocket, type SocketDescription } from '../../src/shared/open-socket.js';
import { decodeSockaddr, encodeSockaddr, InetAddress } from '../../src/core/sockaddr.js';
import { openFds, uniqueName, useResources } from '../support/resources.js';

const n = native();
const c = n.constants;

function portOf(fd: number): number {
  const local = decodeSockaddr(n.inspect(fd).local!);
  expect(local).to.be.instanceOf(InetAddress);
  return (local as InetAddress).port;
}

describe('openSocket', () => {
  const r = useResources();

  /** A Node echo server on the fd: from then on the server owns it and closes it. */
  async function serveOn(fd: number): Promise<{ server: net.Server; peers: Array<string | undefined> }> {
    const peers: Array<string | undefined> = [];
    const server = r.node(
      net.createServer((socket) => {
        r.node(socket);
        peers.push(socket.remoteAddress);
        socket.pipe(socket);
      }),
    );
    server.listen({ fd });
    await once(server, 'listening');
    return { server, peers };
  }

  async function echo(options: net.NetConnectOpts | net.Socket): Promise<string> {
    const client = r.node(options instanceof net.Socket ? options : net.connect(options));
    if (client.connecting) await once(client, 'connect');
    client.end('ping');
    let data = '';
    client.setEncoding('utf8').on('data', (d: string) => (data += d));
    await once(client, 'end');
    return data;
  }

  describe('TCP', () => {
    for (const [family, address] of [
      ['ipv4', '127.0.0.1'],
      ['ipv6', '::1'],
    ] as const) {
      it(`${family}: listening, close-on-exec, and a Node server serves on it`, async () => {
        const fd = openSocket({ type: 'stream', address: { family, address, port: 0 } });
        const facts = n.inspect(fd);
        expect([facts.domain, facts.type, facts.protocol, facts.acceptConn]).to.deep.equal([
          family === 'ipv4' ? c.AF_INET : c.AF_INET6,
          c.SOCK_STREAM,
          c.IPPROTO_TCP,
          true,
        ]);
        expect(n.getCloexec(fd)).to.equal(true);
        const port = portOf(fd);
        const { server } = await serveOn(fd);
        expect((server.address() as net.AddressInfo).port).to.equal(port);
        expect(await echo({ host: address, port })).to.equal('ping');
      });
    }

    it('v6Only false: an IPv4 client reaches a [::] socket, as ::ffff:127.0.0.1', async () => {
      const fd = openSocket({ type: 'stream', address: { family: 'ipv6', address: '::', port: 0 }, v6Only: false });
      const port = portOf(fd);
      const { peers } = await serveOn(fd);
      expect(await echo({ host: '127.0.0.1', port })).to.equal('ping');
      expect(peers).to.deep.equal(['::ffff:127.0.0.1']);
    });

    it('v6Only true: an IPv4 client is refused, an IPv6 one served', async () => {
      const fd = openSocket({ type: 'stream', address: { family: 'ipv6', address: '::', port: 0 }, v6Only: true });
      const port = portOf(fd);
      await serveOn(fd);
      const refused = r.node(net.connect(port, '127.0.0.1'));
      const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
      expect(error.code).to.equal('ECONNREFUSED');
      expect(await echo({ host: '::1', port })).to.equal('ping');
    });

    it('reusePort: two sockets on one port; without it the second is EADDRINUSE', () => {
      const desc: SocketDescription = { type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 }, reusePort: true };
      const first = r.fd(openSocket(desc));
      const port = portOf(first);
      const second = r.fd(openSocket({ ...desc, address: { family: 'ipv4', address: '127.0.0.1', port } }));
      expect(portOf(second)).to.equal(port);
      expect(second).not.to.equal(first);
      expect(() => openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port } })).to.throw(Error, /EADDRINUSE/);
    });

    it('EADDRINUSE: a Node-style error naming bind and the fd, which is closed again', () => {
      const first = r.fd(openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 } }));
      const port = portOf(first);
      const before = openFds();
      let error: (Error & Record<string, unknown>) | undefined;
      try {
        openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port } });
      } catch (e) {
        error = e as Error & Record<string, unknown>;
      }
      expect(error).to.be.instanceOf(Error);
      expect(error).to.include({ code: 'EADDRINUSE', errno: -98, syscall: 'bind' });
      expect(error!.fd).to.be.a('number');
      expect(error!.message).to.equal(`EADDRINUSE: address already in use, bind (fd ${error!.fd})`);
      expect([...openFds()].filter((fd) => !before.has(fd)), 'the failed socket is closed').to.deep.equal([]);
      expect(() => n.inspect(error!.fd as number)).to.throw(Error, /EBADF/);
    });
  });

  describe('UDP', () => {
    for (const [type, family, address] of [
      ['udp4', 'ipv4', '127.0.0.1'],
      ['udp6', 'ipv6', '::1'],
    ] as const) {
      it(`${family}: a dgram ${type} socket binds the fd and receives`, async () => {
        const fd = openSocket({ type: 'dgram', address: { family, address, port: 0 } });
        const facts = n.inspect(fd);
        expect([facts.type, facts.protocol, facts.acceptConn]).to.deep.equal([c.SOCK_DGRAM, c.IPPROTO_UDP, false]);
        const port = portOf(fd);
        const server = r.node(dgram.createSocket(type));
        // bind({ fd }) emits 'listening' before it returns: listen first.
        const listening = once(server, 'listening');
        server.bind({ fd });
        await listening;
        expect(server.address().port).to.equal(port);
        const received = once(server, 'message') as Promise<[Buffer, dgram.RemoteInfo]>;
        const client = r.node(dgram.createSocket(type));
        client.send('hello', port, address);
        const [message, from] = await received;
        expect([message.toString(), from.address]).to.deep.equal(['hello', address]);
      });
    }

    it('reusePort works for datagrams too', () => {
      const first = r.fd(openSocket({ type: 'dgram', address: { family: 'ipv6', address: '::1', port: 0 }, reusePort: true }));
      const port = portOf(first);
      const second = r.fd(openSocket({ type: 'dgram', address: { family: 'ipv6', address: '::1', port }, reusePort: true }));
      expect(portOf(second)).to.equal(port);
    });
  });

  describe('unix', () => {
    it('a path with a mode: the socket file has exactly it, whatever the umask', async () => {
      const path = join(r.dir(), 'app.sock');
      const fd = openSocket({ type: 'stream', address: { family: 'unix', path }, mode: 0o600 });
      const stat = fs.statSync(path);
      expect(stat.isSocket()).to.equal(true);
      expect(stat.mode & 0o7777).to.equal(0o600);
      await serveOn(fd);
      expect(await echo({ path })).to.equal('ping');
    });

    it('a path without a mode: 0666, as SocketMode= defaults', () => {
      const path = join(r.dir(), 'default.sock');
      r.fd(openSocket({ type: 'dgram', address: { family: 'unix', path } }));
      expect(fs.statSync(path).mode & 0o7777).to.equal(0o666);
    });

    it('a path in use: EADDRINUSE, and the socket file that is there stays', () => {
      const path = join(r.dir(), 'taken.sock');
      r.fd(openSocket({ type: 'stream', address: { family: 'unix', path } }));
      expect(() => openSocket({ type: 'stream', address: { family: 'unix', path } }))
        .to.throw(Error, /^EADDRINUSE: address already in use, bind \(fd \d+\)$/)
        .with.property('syscall', 'bind');
      expect(fs.statSync(path).isSocket()).to.equal(true);
    });

    it('an abstract name: a Node server serves it to a client that connects by the exact name', async () => {
      const name = uniqueName();
      const fd = openSocket({ type: 'stream', address: { family: 'unix', abstract: name } });
      expect(decodeSockaddr(n.inspect(fd).local!)).to.deep.equal({ family: 'unix', kind: 'abstract', name });
      await serveOn(fd);
      // Not net.connect('\0name'): Node 20 pads an abstract name with NULs to the full 108 bytes,
      // which the kernel takes for another name; systemd (and this) use the exact length.
      const client = n.socket(c.AF_UNIX, c.SOCK_STREAM | c.SOCK_CLOEXEC, 0);
      try {
        n.connect(client, encodeSockaddr({ family: 'unix', abstract: name }));
      } catch (error) {
        n.close(client);
        throw error;
      }
      expect(await echo(new net.Socket({ fd: client, readable: true, writable: true }))).to.equal('ping');
    });

    it('seqpacket, on a path and abstract: listening, and a client connects', () => {
      const path = join(r.dir(), 'seq.sock');
      for (const address of [
        { family: 'unix', path },
        { family: 'unix', abstract: uniqueName() },
      ] as const) {
        const fd = r.fd(openSocket({ type: 'seqpacket', address }));
        const facts = n.inspect(fd);
        expect([facts.domain, facts.type, facts.acceptConn]).to.deep.equal([c.AF_UNIX, c.SOCK_SEQPACKET, true]);
        const client = r.fd(n.socket(c.AF_UNIX, c.SOCK_SEQPACKET | c.SOCK_CLOEXEC, 0));
        n.connect(client, encodeSockaddr(address));
        expect(decodeSockaddr(n.inspect(client).peer!)).to.deep.equal(decodeSockaddr(facts.local!));
        // One record, one write: the listening end holds it until someone accepts.
        expect(fs.writeSync(client, 'record')).to.equal(6);
      }
    });

    it('the backlog is honoured: a client beyond it is not queued', () => {
      const path = join(r.dir(), 'small.sock');
      r.fd(openSocket({ type: 'stream', address: { family: 'unix', path }, backlog: 1 }));
      const connect = (): number => {
        const fd = r.fd(n.socket(c.AF_UNIX, c.SOCK_STREAM | c.SOCK_CLOEXEC | c.SOCK_NONBLOCK, 0));
        n.connect(fd, encodeSockaddr({ family: 'unix', path }));
        return fd;
      };
      // unix stream sockets queue backlog + 1 connections; the next one would block.
      connect();
      connect();
      expect(connect).to.throw(Error, /EAGAIN/);
    });
  });

  describe('descriptions that are not', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['no description', undefined, /takes a socket description object/],
      ['an unknown type', { type: 'raw', address: { family: 'ipv4', address: '127.0.0.1', port: 0 } }, /type must be 'stream', 'dgram' or 'seqpacket', got "raw"/],
      ['an unknown family', { type: 'stream', address: { family: 'ipx', address: '1', port: 0 } }, /address must be \{ family: 'ipv4' \| 'ipv6' \| 'unix'/],
      ['no address', { type: 'stream' }, /address must be/],
      ['a bad IPv4 address', { type: 'stream', address: { family: 'ipv4', address: '127.0.0.256', port: 0 } }, /not an IPv4 address/],
      ['an IPv4 address as IPv6', { type: 'stream', address: { family: 'ipv6', address: '127.0.0.1', port: 0 } }, /not an IPv6 address/],
      ['a host name', { type: 'stream', address: { family: 'ipv4', address: 'localhost', port: 0 } }, /not an IPv4 address/],
      ['a path too long', { type: 'stream', address: { family: 'unix', path: `/${'x'.repeat(200)}` } }, /path must be 1 to 107 bytes/],
      ['a path with a NUL', { type: 'stream', address: { family: 'unix', path: '/tmp/a\0b' } }, /must not contain NUL/],
      ['a string for reusePort', { type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 }, reusePort: 'yes' }, /reusePort must be a boolean/],
      ['a negative backlog', { type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 }, backlog: -1 }, /backlog must be a non-negative integer/],
      ['a mode as a string', { type: 'stream', address: { family: 'unix', path: '/x' }, mode: '0600' }, /mode must be an integer 0 to 0o7777/],
    ];
    for (const [what, desc, message] of cases) {
      it(`${what}: a TypeError, no socket made`, () => {
        const before = openFds();
        expect(() => openSocket(desc as SocketDescription)).to.throw(TypeError, message);
        expect([...openFds()].filter((fd) => !before.has(fd))).to.deep.equal([]);
      });
    }

    it('a bad port: a RangeError', () => {
      expect(() => openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 70000 } })).to.throw(RangeError, /port must be 0..65535/);
    });
  });

  it('closeFd closes it', () => {
    const fd = openSocket({ type: 'dgram', address: { family: 'unix', abstract: uniqueName() } });
    closeFd(fd);
    expect(() => n.inspect(fd)).to.throw(Error, /^EBADF/);
  });
});
