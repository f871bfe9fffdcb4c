/*
 * httpIdleCheck() against a real http.Server and a raw client: when a keep-alive connection has
 * nothing of a request inside Node. Run on Node 20, 22 and 24 (scripts/test-node-versions.mjs):
 * it reads a list Node keeps privately, and must notice when a Node changes it.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import { httpIdleCheck, httpIdleSupported } from '../../src/service/http-idle.js';
import { useResources } from '../support/resources.js';

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 100));

describe(`httpIdleCheck() on Node ${process.version}`, () => {
  const r = useResources();

  async function setUp(handler: http.RequestListener = (_req, res) => res.end('x')): Promise<{ server: http.Server; client: net.Socket; socket: () => net.Socket; idle: (s: net.Socket) => boolean }> {
    const server = r.node(http.createServer(handler) as unknown as net.Server) as unknown as http.Server;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const idle = httpIdleCheck(server);
    expect(idle, 'this Node keeps the list').to.be.a('function');
    let accepted: net.Socket | undefined;
    server.on('connection', (s: net.Socket) => (accepted = r.node(s)));
    const client = r.node(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'));
    client.on('data', () => undefined);
    await once(client, 'connect');
    await settle();
    return { server, client, socket: () => accepted!, idle: idle! };
  }

  const get = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';

  it('Node keeps the list of idle parsers where the check reads it, once the server listens', async () => {
    const { server } = await setUp();
    expect(httpIdleSupported(server)).to.equal(true);
    expect(httpIdleSupported(http.createServer())).to.equal(false);
  });

  it('a connection that has sent nothing: idle (Node read nothing of it)', async () => {
    const { socket, idle } = await setUp();
    expect(socket().bytesRead).to.equal(0);
    expect(idle(socket())).to.equal(true);
  });

  it('after a request and its response: idle, also with a CRLF after the request', async () => {
    const { client, socket, idle } = await setUp();
    client.write(get);
    await settle();
    expect(idle(socket())).to.equal(true);
    client.write(`${get}\r\n`);
    await settle();
    expect(idle(socket())).to.equal(true);
  });

  it('part of a request read: not idle, until it is complete and answered', async () => {
    const { client, socket, idle } = await setUp();
    client.write(get);
    await settle();
    client.write('GET /two HTTP/1.1\r\nHo');
    await settle();
    expect(idle(socket())).to.equal(false);
    client.write('st: x\r\n\r\n');
    await settle();
    expect(idle(socket())).to.equal(true);
  });

  it('a complete request whose response is not finished: not idle', async () => {
    let respond: (() => void) | undefined;
    const { client, socket, idle } = await setUp((_req, res) => (respond = () => res.end('late')));
    client.write(get);
    await settle();
    expect(idle(socket())).to.equal(false);
    respond!();
    await settle();
    expect(idle(socket())).to.equal(true);
  });

  it('a request with a body not all received: not idle', async () => {
    const { client, socket, idle } = await setUp((req, res) => {
      req.resume();
      req.on('end', () => res.end('done'));
    });
    client.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345');
    await settle();
    expect(idle(socket())).to.equal(false);
    client.write('67890');
    await settle();
    expect(idle(socket())).to.equal(true);
  });
});
