/*
 * Drain, what a stop and an upgrade's old process do with the connections they have: here, the
 * HTTP/2 sessions, whose state cannot move to another process (nghttp2's, in this one). They get
 * GOAWAY: the streams in flight finish, the client opens its next ones elsewhere, and the server
 * closes as soon as they are done, not at the deadline. And the connections no server accepted
 * (an upgrade's new process got them from the old one): a stop waits for them too.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Drain } from '../../src/service/drain.js';

describe('Drain', function () {
  this.timeout(10_000);

  it('an HTTP/2 session gets GOAWAY: the stream in flight is answered, the server closes long before the deadline', async () => {
    const server = http2.createServer();
    server.on('stream', (stream, headers) => {
      const answer = (): void => {
        stream.respond({ ':status': 200 });
        stream.end(`answered ${headers[':path']}`);
      };
      if (headers[':path'] === '/slow') setTimeout(answer, 300);
      else answer();
    });
    const drain = new Drain([server], { idleConnections: 'drain' });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    client.on('error', () => undefined);
    const goaway = once(client, 'goaway');
    const request = client.request({ ':path': '/slow' });
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    const answered = once(request, 'end');
    await once(request, 'ready');
    await new Promise((resolve) => setTimeout(resolve, 50));
    // A deadline of a minute: the test's own timeout (10 s) is what a drain without GOAWAY hits.
    const closed = drain.close(60_000);
    const [code] = (await goaway) as [number];
    expect(code).to.equal(http2.constants.NGHTTP2_NO_ERROR);
    await answered;
    expect(body).to.equal('answered /slow');
    await closed;
    client.close();
  });

  /** A TCP connection whose server side was accepted by a server the drain does not know (the old process of an upgrade, here). */
  async function connection(): Promise<{ client: net.Socket; socket: net.Socket; done: () => void }> {
    const elsewhere = net.createServer();
    elsewhere.listen(0, '127.0.0.1');
    await once(elsewhere, 'listening');
    const accepted = once(elsewhere, 'connection');
    const client = net.connect((elsewhere.address() as AddressInfo).port, '127.0.0.1');
    client.on('error', () => undefined);
    const [socket] = (await accepted) as [net.Socket];
    return { client, socket, done: () => void elsewhere.close() };
  }

  it('a connection handed to an http.Server (emit connection) holds close() until its response is sent, as an accepted one does', async () => {
    const server = http.createServer((req, res) => setTimeout(() => res.end('late'), 300));
    const drain = new Drain([server], { idleConnections: 'drain' });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { client, socket, done } = await connection();
    server.emit('connection', socket);
    let answer = '';
    client.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    client.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    await drain.close(5000);
    expect(answer, 'the response was sent before close() resolved').to.match(/\r\n\r\nlate$/);
    expect(Date.now() - started).to.be.below(4000);
    done();
  });

  it('track(): a connection no server accepted holds close() until it closes, and is cut at the deadline', async () => {
    const drain = new Drain([], { idleConnections: 'drain' });
    const first = await connection();
    drain.track(first.socket);
    expect(drain.busy).to.equal(true);
    let closed = false;
    const closing = drain.close(5000).then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(closed, 'not while the connection is open').to.equal(false);
    first.socket.end();
    await closing;
    expect(drain.busy).to.equal(false);
    first.done();
    // One that never closes: cut at the deadline.
    const second = await connection();
    const other = new Drain([], { idleConnections: 'drain' });
    other.track(second.socket);
    const ended = once(second.client, 'close');
    const started = Date.now();
    await other.close(300);
    await ended;
    expect(Date.now() - started).to.be.within(250, 3000);
    second.done();
  });
});
