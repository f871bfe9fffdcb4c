/*
 * Drain, what a stop and an upgrade's old process do with the connections they have: here, the
 * HTTP/2 sessions, whose state cannot move to another process (nghttp2's, in this one). They get
 * GOAWAY: the streams in flight finish, the client opens its next ones elsewhere, and the server
 * closes as soon as they are done, not at the deadline.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import * as http2 from 'node:http2';
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
});
