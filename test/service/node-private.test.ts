/*
 * connectionFd(): the one read of Node's private net.Socket `_handle`. Run on every Node version
 * the package supports (scripts/test-node-versions.mjs runs it on 22 and 24): a Node that keeps
 * the fd elsewhere must fail here, with ERR_SD_NODE_UNSUPPORTED, not pass a wrong fd on.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { connectionFd, httpConnectionsList } from '../../src/service/node-private.js';
import { native } from '../../src/native/addon.js';
import { decodeSockaddr, InetAddress } from '../../src/core/sockaddr.js';
import { useResources } from '../support/resources.js';

const n = native();
const MODULE = fileURLToPath(new URL('../../src/service/node-private.js', import.meta.url));

function codeOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return (error as { code?: unknown }).code ?? (error as Error).name;
  }
  return 'no error';
}

describe(`connectionFd() on Node ${process.version}`, () => {
  const r = useResources();

  async function connected(listen: (server: net.Server) => void, connect: (server: net.Server) => net.Socket): Promise<{ client: net.Socket; accepted: net.Socket }> {
    const server = r.node(net.createServer());
    listen(server);
    await once(server, 'listening');
    const accepted = once(server, 'connection');
    const client = r.node(connect(server));
    await once(client, 'connect');
    const [socket] = (await accepted) as [net.Socket];
    return { client, accepted: r.node(socket) };
  }

  for (const [family, host] of [
    ['IPv4', '127.0.0.1'],
    ['IPv6', '::1'],
  ] as const) {
    it(`a ${family} connection, both ends: the kernel's socket with the ports Node reports`, async () => {
      const { client, accepted } = await connected(
        (s) => s.listen(0, host),
        (s) => net.connect((s.address() as net.AddressInfo).port, host),
      );
      for (const [socket, peerPort] of [
        [accepted, client.localPort],
        [client, accepted.localPort],
      ] as const) {
        const fd = connectionFd(socket);
        const facts = n.inspect(fd);
        expect([facts.mode, facts.type, facts.domain]).to.deep.equal([n.constants.S_IFSOCK, n.constants.SOCK_STREAM, family === 'IPv4' ? n.constants.AF_INET : n.constants.AF_INET6]);
        const peer = decodeSockaddr(facts.peer!);
        expect(peer).to.be.instanceOf(InetAddress);
        expect((peer as InetAddress).port).to.equal(peerPort);
      }
    });
  }

  it('a unix stream connection: a connected AF_UNIX stream socket', async () => {
    const path = `${r.dir()}/s.sock`;
    const { accepted } = await connected(
      (s) => s.listen(path),
      () => net.connect(path),
    );
    const facts = n.inspect(connectionFd(accepted));
    expect([facts.domain, facts.type, facts.peer !== undefined]).to.deep.equal([n.constants.AF_UNIX, n.constants.SOCK_STREAM, true]);
  });

  it('a socket made from an fd (what the receiving side does) gives that fd back', async () => {
    const { accepted } = await connected(
      (s) => s.listen(0, '127.0.0.1'),
      (s) => net.connect((s.address() as net.AddressInfo).port, '127.0.0.1'),
    );
    const [copy] = await passThroughPair(connectionFd(accepted));
    const wrapped = r.node(new net.Socket({ fd: copy, readable: true, writable: true }));
    expect(connectionFd(wrapped)).to.equal(copy);
  });

  it('a destroyed socket, or one still connecting: ERR_SD_FD_INVALID', async () => {
    const { accepted } = await connected(
      (s) => s.listen(0, '127.0.0.1'),
      (s) => net.connect((s.address() as net.AddressInfo).port, '127.0.0.1'),
    );
    accepted.destroy();
    expect(codeOf(() => connectionFd(accepted))).to.equal('ERR_SD_FD_INVALID');
    const server = r.node(net.createServer());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const connecting = r.node(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'));
    expect(codeOf(() => connectionFd(connecting))).to.equal('ERR_SD_FD_INVALID');
    await once(connecting, 'connect');
  });

  it('a TLS socket: ERR_SD_FD_UNSUITABLE (its state is in OpenSSL)', async () => {
    const { accepted } = await connected(
      (s) => s.listen(0, '127.0.0.1'),
      (s) => net.connect((s.address() as net.AddressInfo).port, '127.0.0.1'),
    );
    const secure = new tls.TLSSocket(accepted, { isServer: false });
    secure.on('error', () => undefined);
    expect(codeOf(() => connectionFd(secure))).to.equal('ERR_SD_FD_UNSUITABLE');
    secure.destroy();
  });

  it('not a net.Socket: TypeError', () => {
    expect(codeOf(() => connectionFd({} as net.Socket))).to.equal('TypeError');
    expect(codeOf(() => connectionFd(null as unknown as net.Socket))).to.equal('TypeError');
  });

  it('a Node that keeps no fd on _handle: ERR_SD_NODE_UNSUPPORTED, whatever is missing', async () => {
    const { accepted } = await connected(
      (s) => s.listen(0, '127.0.0.1'),
      (s) => net.connect((s.address() as net.AddressInfo).port, '127.0.0.1'),
    );
    const own = accepted as unknown as { _handle: unknown };
    const handle = own._handle;
    try {
      for (const stand of [null, undefined, {}, { fd: -1 }, { fd: '5' }, { fd: 2.5 }]) {
        own._handle = stand;
        expect(codeOf(() => connectionFd(accepted)), JSON.stringify(stand) ?? 'undefined').to.equal('ERR_SD_NODE_UNSUPPORTED');
      }
    } finally {
      own._handle = handle;
    }
    expect(connectionFd(accepted)).to.be.a('number');
  });

  it('a Node whose _handle.fd is not the connection: ERR_SD_NODE_UNSUPPORTED on the first read, before any fd is passed', () => {
    // Fresh processes, where no family has been checked yet. The fd is another connection's, or
    // not a socket at all (stdin is /dev/null).
    const run = (body: string): string => {
      const script = `
        const { connectionFd } = await import(${JSON.stringify(MODULE)});
        const net = await import('node:net');
        const { once } = await import('node:events');
        const server = net.createServer().listen(0, '127.0.0.1');
        await once(server, 'listening');
        const accept = async () => { const a = once(server, 'connection'); const c = net.connect(server.address().port, '127.0.0.1'); await once(c, 'connect'); return (await a)[0]; };
        const first = await accept();
        const second = await accept();
        try { ${body}; console.log('no error'); } catch (e) { console.log(e.code + ' ' + e.message); }
        process.exit(0);`;
      return spawnSync(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' }).stdout;
    };
    // Node caches the addresses once read: the socket still says who it is without its handle.
    expect(run('void first.remoteFamily, first.localPort; first._handle = { fd: second._handle.fd }; connectionFd(first)')).to.match(/^ERR_SD_NODE_UNSUPPORTED .*is connected from port \d+ to \d+, the socket says/);
    expect(run('first._handle = { fd: 0 }; connectionFd(first)')).to.match(/^ERR_SD_NODE_UNSUPPORTED .*fd 0 is not a connected stream socket/);
    expect(run('connectionFd(first)')).to.equal('no error\n');
  });
});

describe(`httpConnectionsList() on Node ${process.version}`, () => {
  const r = useResources();

  it("finds an http.Server's connections list once it listens; idle() has the parser of an idle connection, with its socket, and not of a busy one", async () => {
    let release: (() => void) | undefined;
    const server = r.node(http.createServer((req, res) => (req.url === '/wait' ? (release = () => res.end('done')) : res.end('x'))));
    expect(httpConnectionsList(server), 'not before it listens').to.equal(undefined);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const list = httpConnectionsList(server);
    expect(list, `Node ${process.version} keeps no http.server.connections list where sd-activate reads it: HTTP connections would not be handed over`).to.not.equal(undefined);
    const sockets: net.Socket[] = [];
    server.on('connection', (socket: net.Socket) => sockets.push(socket));
    const port = (server.address() as net.AddressInfo).port;
    const idle = r.node(net.connect(port, '127.0.0.1'));
    const busy = r.node(net.connect(port, '127.0.0.1'));
    idle.on('data', () => undefined);
    busy.on('data', () => undefined);
    idle.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    busy.write('GET /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const byPort = new Map(sockets.map((s) => [s.remotePort, s]));
    const idleSockets = list!.idle().map((parser) => parser.socket);
    expect(idleSockets).to.include(byPort.get(idle.localPort));
    expect(idleSockets).to.not.include(byPort.get(busy.localPort));
    busy.write('123456');
    await new Promise((resolve) => setTimeout(resolve, 50));
    release?.();
  });
});

/** The fd passed through a seqpacket pair, as the hand-over passes it: a second reference in this process. */
async function passThroughPair(fd: number): Promise<number[]> {
  const [a, b] = n.seqpacketPair();
  try {
    n.sendFds(a!, Buffer.from('x'), [fd]);
    return n.receiveFds(b!)!.fds;
  } finally {
    n.close(a!);
    n.close(b!);
  }
}
