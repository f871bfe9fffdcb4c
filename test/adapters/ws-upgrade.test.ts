import { randomBytes } from 'node:crypto';
import { connect as connectTcp } from 'node:net';
import { expect } from 'chai';
import { WebSocket } from 'ws';
import { RUNTIME } from '../support/runtime.js';
import { sleep } from '../support/upgrade-harness.js';
import { LocalServices, waitFor, type Started } from '../support/upgrade-local.js';

/*
 * sd-activate/ws between real processes (test/fixtures/upgrade-service.ts, with `ws`: a
 * WebSocketServer on its web socket, handed over by handOverWebSockets()), with clients of the
 * `ws` package on one connection each: what passes at which frame boundary, what gets 1012, what
 * goes with a WebSocket. Across ten upgrades under real managers: test/e2e/handover.test.ts.
 */

/** A ws client that keeps every message and how its connection ended. */
class Client {
  readonly ws: WebSocket;
  readonly messages: string[] = [];
  closed: { code: number; reason: string } | undefined;
  error: string | undefined;

  constructor(port: number, options: { protocol?: string; deflate?: boolean } = {}) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/`, options.protocol ? [options.protocol] : [], { perMessageDeflate: options.deflate ?? false });
    this.ws.on('message', (data: Buffer) => this.messages.push(data.toString('utf8')));
    this.ws.on('close', (code: number, reason: Buffer) => (this.closed = { code, reason: reason.toString() }));
    this.ws.on('error', (error) => (this.error = error.message));
  }

  async open(): Promise<this> {
    await waitFor(() => this.ws.readyState === WebSocket.OPEN || this.closed !== undefined, 'the WebSocket to open');
    return this;
  }

  /** The answers so far, each as [text, pid, version, count, protocol]. */
  get answers(): string[][] {
    return this.messages.map((m) => m.split(' ').slice(0, 5));
  }

  async exchange(text: string): Promise<string[]> {
    const before = this.messages.length;
    this.ws.send(text);
    await waitFor(() => this.messages.length > before || this.closed !== undefined, `the answer to ${text}`);
    return this.answers[before]!;
  }

  get localPort(): number {
    return (this.ws as unknown as { _socket: { localPort: number } })._socket.localPort;
  }
}

describe('sd-activate/ws: WebSockets across an upgrade', function () {
  this.timeout(30_000);
  const local = new LocalServices();
  const clients: Client[] = [];

  beforeEach(() => local.setUp());
  afterEach(() => {
    for (const c of clients.splice(0)) c.ws.terminate();
    local.tearDown();
  });

  const connect = async (started: Started, options?: { protocol?: string; deflate?: boolean }): Promise<Client> => {
    const client = new Client(started.service.webPort, options);
    clients.push(client);
    return client.open();
  };
  const events = (started: Started, prefix: string): string[] => started.service.events().filter((e) => e.startsWith(prefix));

  it('an idle WebSocket passes with its state and subprotocol: the next message is answered by the new process, the count going on', async () => {
    const started = await local.start({ mode: 'store', ws: 'plain' });
    const client = await connect(started, { protocol: 'chat' });
    expect(await client.exchange('a')).to.deep.equal(['a', String(started.pid), 'v1', '1', 'chat']);
    expect(await client.exchange('b')).to.deep.equal(['b', String(started.pid), 'v1', '2', 'chat']);
    const next = await local.upgrade(started, started.pid, 'v2');
    await waitFor(() => events(started, `wsadopted-${client.localPort} ${next}`).length === 1, 'the adoption');
    expect(await client.exchange('c')).to.deep.equal(['c', String(next), 'v2', '3', 'chat']);
    expect(await started.exit).to.equal(0);
    expect(await client.exchange('d')).to.deep.equal(['d', String(next), 'v2', '4', 'chat']);
    expect([client.closed, client.error]).to.deep.equal([undefined, undefined]);
    expect(events(started, 'wspassed-').map((e) => e.split(' ').slice(0, 2))).to.deep.equal([[`wspassed-${client.localPort}`, String(started.pid)]]);
    expect(events(started, 'passed-ws-')).to.have.length(1);
  });

  it('an idle WebSocket on a runtime whose connections cannot pass (Deno): closed with 1012 (Service Restart) at the switch, not cut at the stop; on Node it passes', async () => {
    const started = await local.start({ mode: 'store', ws: 'plain' });
    const client = await connect(started, { protocol: 'chat' });
    expect(await client.exchange('a')).to.deep.equal(['a', String(started.pid), 'v1', '1', 'chat']);
    const next = await local.upgrade(started, started.pid, 'v2');
    if (RUNTIME === 'node') {
      expect(await client.exchange('b')).to.deep.equal(['b', String(next), 'v2', '2', 'chat']);
      expect(client.closed).to.equal(undefined);
    } else {
      // The hand-over reads fds through Node's net.Socket and libuv: the upgrade warns
      // ERR_SD_UNSUPPORTED_RUNTIME, and the WebSocket gets the code that tells its client to reconnect.
      await waitFor(() => client.closed !== undefined, 'the close');
      expect(client.closed).to.deep.equal({ code: 1012, reason: 'Service Restart' });
      const again = await connect(started, { protocol: 'chat' });
      expect(await again.exchange('b')).to.deep.equal(['b', String(next), 'v2', '1', 'chat']);
    }
    expect(await started.exit).to.equal(0);
  });

  it('messages sent back to back during the upgrade: each answered once, in order, and by the new process once it has the WebSocket', async () => {
    const started = await local.start({ mode: 'store', ws: 'plain' });
    const client = await connect(started);
    let sent = 0;
    const timer = setInterval(() => client.ws.send(String(++sent)), 5);
    await sleep(100);
    const next = await local.upgrade(started, started.pid, 'v2');
    await waitFor(() => client.answers.some((a) => a[1] === String(next)), 'an answer of the new process');
    await sleep(100);
    clearInterval(timer);
    await waitFor(() => client.messages.length === sent, `every answer (${client.messages.length} of ${sent})`);
    const answers = client.answers;
    expect(answers.map((a) => Number(a[0])), 'each once, in order').to.deep.equal(Array.from({ length: sent }, (_, i) => i + 1));
    expect(answers.map((a) => Number(a[3])), 'the count moved with the WebSocket').to.deep.equal(Array.from({ length: sent }, (_, i) => i + 1));
    const firstNew = answers.findIndex((a) => a[1] === String(next));
    expect(answers.slice(0, firstNew).every((a) => a[1] === String(started.pid))).to.equal(true);
    expect(answers.slice(firstNew).every((a) => a[1] === String(next)), 'once passed, only the new process answers').to.equal(true);
    expect([client.closed, client.error]).to.deep.equal([undefined, undefined]);
  });

  it('a fragmented message in progress at the upgrade: it ends in the old process, is answered there, then the WebSocket passes', async () => {
    const started = await local.start({ mode: 'store', ws: 'plain', boundaryTimeoutMs: 5000 });
    const client = await connect(started);
    expect((await client.exchange('a'))[1]).to.equal(String(started.pid));
    client.ws.send('fir', { fin: false });
    await sleep(50);
    const next = await local.upgrade(started, started.pid, 'v2');
    // The switch is over, and the WebSocket still waits for its message to end.
    await sleep(200);
    expect(events(started, 'wspassed-')).to.deep.equal([]);
    client.ws.send('st', { fin: true });
    await waitFor(() => client.messages.length === 2, 'the answer to the whole message');
    expect(client.answers[1]).to.deep.equal(['first', String(started.pid), 'v1', '2', '-']);
    await waitFor(() => events(started, 'wspassed-').length === 1, 'the hand-over after the message');
    expect(await client.exchange('b')).to.deep.equal(['b', String(next), 'v2', '3', '-']);
    expect([client.closed, client.error]).to.deep.equal([undefined, undefined]);
  });

  it('a fragmented message that does not end within boundaryTimeoutMs: closed with 1012 (Service Restart), and the old process exits', async () => {
    const started = await local.start({ mode: 'store', ws: 'plain', boundaryTimeoutMs: 500, stopTimeoutMs: 5000 });
    const client = await connect(started);
    await client.exchange('a');
    client.ws.send('never', { fin: false });
    await sleep(50);
    const t0 = Date.now();
    await local.upgrade(started, started.pid, 'v2');
    await waitFor(() => client.closed !== undefined, 'the close');
    expect(client.closed).to.deep.equal({ code: 1012, reason: 'Service Restart' });
    expect(Date.now() - t0, 'at the deadline, not at stopTimeoutMs').to.be.below(4000);
    expect(events(started, 'wsrestart-')).to.have.length(1);
    expect(await started.exit).to.equal(0);
  });

  it('permessage-deflate negotiated: closed with 1012 at the switch; the same server without it passes', async () => {
    const started = await local.start({ mode: 'store', ws: 'deflate' });
    const deflating = await connect(started, { deflate: true });
    const plain = await connect(started, { deflate: false });
    expect(deflating.ws.extensions).to.match(/permessage-deflate/);
    await deflating.exchange('a');
    await plain.exchange('a');
    const next = await local.upgrade(started, started.pid, 'v2');
    await waitFor(() => deflating.closed !== undefined, 'the close');
    expect(deflating.closed).to.deep.equal({ code: 1012, reason: 'Service Restart' });
    expect(await plain.exchange('b')).to.deep.equal(['b', String(next), 'v2', '2', '-']);
    expect(plain.closed).to.equal(undefined);
  });

  it('what the old process is still sending at the upgrade reaches the client first, whole; then the new process answers', async () => {
    const started = await local.start({ mode: 'store', ws: 'plain' });
    const client = await connect(started);
    // The client reads nothing for a while: 8 MB stay in the old process, above what the kernel takes.
    client.ws.pause();
    client.ws.send('big:8000000');
    await sleep(300);
    const next = await local.upgrade(started, started.pid, 'v2');
    await sleep(200);
    expect(events(started, 'wspassed-'), 'not while its writes wait').to.deep.equal([]);
    client.ws.resume();
    await waitFor(() => client.messages.length === 1, 'the big answer');
    expect(client.messages[0]!.length).to.equal('big:8000000'.length + ` ${started.pid} v1 1 - `.length + 8_000_000);
    await waitFor(() => events(started, 'wspassed-').length === 1, 'the hand-over');
    expect(await client.exchange('b')).to.deep.equal(['b', String(next), 'v2', '2', '-']);
  });

  it('a WebSocket handed over once passes again at the next upgrade, and gets 1012 there too when its message does not end', async () => {
    const started = await local.start({ mode: 'store', ws: 'plain', boundaryTimeoutMs: 500 });
    const passing = await connect(started);
    const stuck = await connect(started);
    await passing.exchange('a');
    await stuck.exchange('a');
    const second = await local.upgrade(started, started.pid, 'v2');
    expect((await passing.exchange('b'))[1]).to.equal(String(second));
    expect((await stuck.exchange('b'))[1]).to.equal(String(second));
    stuck.ws.send('never', { fin: false });
    await sleep(50);
    const third = await local.upgrade(started, second, 'v3');
    // The new process's stop waits for the WebSockets it was handed: the close handshake is made.
    await waitFor(() => stuck.closed !== undefined, 'the close');
    expect(stuck.closed).to.deep.equal({ code: 1012, reason: 'Service Restart' });
    expect(await passing.exchange('c')).to.deep.equal(['c', String(third), 'v3', '3', '-']);
  });

  it('a WebSocket whose handshake ends after the switch (its connection accepted before): it passes too', async () => {
    const started = await local.start({ mode: 'store', ws: 'plain', stopTimeoutMs: 5000 });
    // The handshake by hand, all but its last line before the upgrade: the old process holds the
    // connection (a request in progress is not passed), and ends the handshake after the switch.
    const socket = connectTcp({ host: '127.0.0.1', port: started.service.webPort });
    clients.push({ ws: { terminate: () => socket.destroy() } } as unknown as Client);
    let got = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (got = Buffer.concat([got, chunk])));
    socket.on('error', () => undefined);
    const key = randomBytes(16).toString('base64');
    socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`);
    await sleep(100);
    const next = await local.upgrade(started, started.pid, 'v2');
    await waitFor(() => started.service.events().some((e) => e.startsWith(`upgraded-to-${next} ${started.pid}`)), 'the switch');
    socket.write('\r\n');
    await waitFor(() => got.includes('\r\n\r\n'), 'the 101');
    expect(got.toString('latin1')).to.match(/^HTTP\/1\.1 101 /);
    got = got.subarray(got.indexOf('\r\n\r\n') + 4);
    // One masked text frame, then the answer: one unmasked text frame.
    const mask = randomBytes(4);
    const payload = Buffer.from('late');
    socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload.map((b, i) => b ^ mask[i % 4]!)]));
    await waitFor(() => got.length >= 2 && got.length >= 2 + got[1]!, 'the answer', 10_000);
    expect(got[0]).to.equal(0x81);
    expect(got.subarray(2, 2 + got[1]!).toString().split(' ')).to.deep.equal(['late', String(next), 'v2', '1', '-']);
    expect(events(started, 'wspassed-')).to.have.length(1);
  });

  it('a ws whose privates moved: one warning ERR_SD_WS_UNSUPPORTED, and its WebSockets closed with 1012 at the switch instead of passed', async () => {
    const started = await local.start({ mode: 'store', ws: 'moved' });
    const sockets = [await connect(started), await connect(started)];
    for (const c of sockets) expect((await c.exchange('a'))[1]).to.equal(String(started.pid));
    await local.upgrade(started, started.pid, 'v2');
    await waitFor(() => sockets.every((c) => c.closed !== undefined), 'the closes');
    expect(sockets.map((c) => c.closed)).to.deep.equal([1, 2].map(() => ({ code: 1012, reason: 'Service Restart' })));
    expect(events(started, 'warning-').map((e) => e.split(' ')[0])).to.deep.equal(['warning-ERR_SD_WS_UNSUPPORTED']);
    expect(events(started, 'wsrestart-')).to.have.length(2);
    expect(events(started, 'wspassed-')).to.deep.equal([]);
    expect(await started.exit).to.equal(0);
  });

  it('an upgrade that fails: every WebSocket stays with the old process, served as before (no 1012)', async () => {
    const started = await local.start({ mode: 'store', ws: 'deflate', readyTimeoutMs: 3000 });
    const deflating = await connect(started, { deflate: true });
    const plain = await connect(started);
    started.service.deploy('v2', 'crash');
    process.kill(started.pid, 'SIGHUP');
    await waitFor(() => started.service.events().some((e) => e.startsWith(`failed-`)), 'the rollback', 15_000);
    expect((await deflating.exchange('a'))[1]).to.equal(String(started.pid));
    expect((await plain.exchange('a'))[1]).to.equal(String(started.pid));
    expect([deflating.closed, plain.closed]).to.deep.equal([undefined, undefined]);
  });
});
