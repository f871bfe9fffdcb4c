import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import { expect } from 'chai';
import type { WebSocket, WebSocketServer } from 'ws';
import { atFrameBoundary, serverRunning, serverUnsupportedBy, serverWebSocket, socketOf, unsupportedBy } from '../../adapters/ws-private.js';

/*
 * The privates of `ws` that sd-activate/ws reads (adapters/ws-private.ts), against every ws
 * minor whose privates differ within the peer range (8.5: the first with pause(); 8.14: the
 * Receiver's WAIT_MICROTASK; 8.17: DEFER_EVENT; 8.18: the Sender's _state for _deflating) and
 * the newest: each is found where it is read, and says what it should, on real connections. A ws
 * that moves one of them fails here by name, before its WebSockets get 1012 at every upgrade.
 */

const require = createRequire(import.meta.url);
const VERSIONS = ['ws-8.5', 'ws-8.14', 'ws-8.17', 'ws-8.18', 'ws'] as const;

interface WsModule {
  (address: string, protocols?: string[], options?: object): WebSocket;
  new (address: string, protocols?: string[], options?: object): WebSocket;
  WebSocketServer: new (options: object) => WebSocketServer;
}

const until = async (what: string, check: () => boolean, timeoutMs = 5000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

for (const name of VERSIONS) {
  const ws = require(name) as WsModule;
  const version = (JSON.parse(readFileSync(new URL(`../../../node_modules/${name}/package.json`, import.meta.url), 'utf8')) as { version: string }).version;

  describe(`ws privates read by sd-activate/ws: ws ${version}`, function () {
    this.timeout(10_000);
    let http: Server;
    let wss: WebSocketServer;
    let port: number;
    const open: WebSocket[] = [];

    beforeEach(async () => {
      http = createServer();
      wss = new ws.WebSocketServer({ server: http, perMessageDeflate: true });
      http.listen(0, '127.0.0.1');
      await once(http, 'listening');
      port = (http.address() as AddressInfo).port;
    });
    afterEach(async () => {
      for (const w of open.splice(0)) w.terminate();
      for (const w of wss.clients) w.terminate();
      wss.close();
      http.close();
    });

    /** A client of the same ws, and the server's WebSocket of it. */
    const pair = async (deflate = false): Promise<{ client: WebSocket; server: WebSocket }> => {
      const connected = once(wss, 'connection') as Promise<[WebSocket]>;
      const client = new ws(`ws://127.0.0.1:${port}/`, [], { perMessageDeflate: deflate });
      open.push(client);
      const [server] = await connected;
      await until('the client to open', () => client.readyState === 1);
      return { client, server };
    };
    const clientSocket = (client: WebSocket): Socket => (client as unknown as { _socket: Socket })._socket;

    it('an open WebSocket: every field found, its socket the connection, at a frame boundary when idle', async () => {
      const { server } = await pair();
      expect(unsupportedBy(server)).to.equal(undefined);
      expect(serverUnsupportedBy(wss)).to.equal(undefined);
      expect(serverRunning(wss)).to.equal(true);
      expect(socketOf(server).remotePort).to.be.a('number');
      expect(atFrameBoundary(server)).to.equal(true);
    });

    it('a frame in part: not at a boundary (the Receiver holds bytes), then at one once the frame is whole', async () => {
      const { client, server } = await pair();
      // A masked text frame of 2 bytes, "hi", written by hand in two parts.
      const mask = [1, 2, 3, 4];
      const frame = Buffer.from([0x81, 0x82, ...mask, 'h'.charCodeAt(0) ^ mask[0]!, 'i'.charCodeAt(0) ^ mask[1]!]);
      const got: string[] = [];
      server.on('message', (data: Buffer) => got.push(data.toString()));
      clientSocket(client).write(frame.subarray(0, 3));
      await until('the Receiver to hold the first bytes', () => !atFrameBoundary(server));
      clientSocket(client).write(frame.subarray(3));
      await until('the message', () => got.length === 1);
      expect(got).to.deep.equal(['hi']);
      expect(atFrameBoundary(server)).to.equal(true);
    });

    it('a fragmented message in progress: not at a boundary until its last fragment', async () => {
      const { client, server } = await pair();
      const got: string[] = [];
      server.on('message', (data: Buffer) => got.push(data.toString()));
      client.send('fir', { fin: false });
      await until('the first fragment to be read', () => !atFrameBoundary(server), 2000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(atFrameBoundary(server), 'still in the message').to.equal(false);
      client.send('st', { fin: true });
      await until('the message', () => got.length === 1);
      expect(got).to.deep.equal(['first']);
      expect(atFrameBoundary(server)).to.equal(true);
    });

    it('permessage-deflate: the extension is named, and a message being compressed is not at a boundary', async () => {
      const { server } = await pair(true);
      expect(server.extensions).to.match(/permessage-deflate/);
      server.send('x'.repeat(10_000));
      // Compression runs in zlib's thread pool: the Sender is busy right after send().
      expect(atFrameBoundary(server)).to.equal(false);
      await until('the compression to end', () => atFrameBoundary(server));
    });

    it('a closing WebSocket is not at a boundary', async () => {
      const { server } = await pair();
      server.close(1000);
      expect(atFrameBoundary(server)).to.equal(false);
    });

    it('serverWebSocket(): a WebSocket on a connection whose handshake was made elsewhere is one of the clients, talks both ways, and leaves the clients when it closes', async () => {
      const noServer = new ws.WebSocketServer({ noServer: true });
      const raw = createServer();
      const built: WebSocket[] = [];
      // The handshake by hand, as the old process of an upgrade made it: only the socket is left here.
      raw.on('upgrade', (req: IncomingMessage, socket: Socket) => {
        const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: chat\r\n\r\n`);
        built.push(serverWebSocket(noServer, socket, { protocol: 'chat', binaryType: 'arraybuffer' }));
      });
      raw.listen(0, '127.0.0.1');
      await once(raw, 'listening');
      try {
        const client = new ws(`ws://127.0.0.1:${(raw.address() as AddressInfo).port}/`, ['chat']);
        open.push(client);
        await until('the WebSocket', () => built.length === 1 && client.readyState === 1);
        const server = built[0]!;
        expect([...noServer.clients]).to.deep.equal([server]);
        expect([server.protocol, server.binaryType, server.readyState]).to.deep.equal(['chat', 'arraybuffer', 1]);
        expect(unsupportedBy(server)).to.equal(undefined);
        const got: unknown[] = [];
        server.on('message', (data: unknown) => got.push(data));
        // A binary message: binaryType applies to those alone (text is a Buffer in ws 8).
        client.send(Buffer.from('ping'));
        await until('the message', () => got.length === 1);
        expect(got[0]).to.be.instanceOf(ArrayBuffer);
        expect(Buffer.from(got[0] as ArrayBuffer).toString()).to.equal('ping');
        const answers: string[] = [];
        client.on('message', (data: Buffer) => answers.push(data.toString()));
        server.send('pong');
        await until('the answer', () => answers.length === 1);
        // The server's close() ends once its last client, this one, has closed.
        const closed = once(noServer, 'close');
        noServer.close();
        expect(serverRunning(noServer)).to.equal(false);
        client.close(1000);
        await closed;
        expect(noServer.clients.size).to.equal(0);
      } finally {
        raw.close();
      }
    });
  });
}

describe('ws privates read by sd-activate/ws: a ws that moved them', function () {
  it('is named by what is missing, not read', function () {
    const ws = { readyState: 1, setSocket: () => undefined, _socket: { destroy: () => undefined }, _protocol: '' } as unknown as WebSocket;
    expect(unsupportedBy(ws)).to.match(/_receiver/);
    Object.assign(ws, { _receiver: { _state: 0, _bufferedBytes: 0, _fragmented: 0, writableLength: 0 } });
    expect(unsupportedBy(ws)).to.match(/_sender/);
    Object.assign(ws, { _sender: { _queue: [], _bufferedBytes: 0 } });
    expect(unsupportedBy(ws), 'neither _state nor _deflating').to.match(/_sender/);
    Object.assign(ws, { _sender: { _queue: [], _bufferedBytes: 0, _state: 0 } });
    expect(unsupportedBy(ws)).to.equal(undefined);
    expect(serverUnsupportedBy({ options: {} } as unknown as WebSocketServer)).to.match(/options\.WebSocket/);
    expect(() => serverWebSocket({ options: {} } as unknown as WebSocketServer, {} as Socket, { protocol: '', binaryType: 'nodebuffer' })).to.throw(/options\.WebSocket/);
  });
});
