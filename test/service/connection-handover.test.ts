/*
 * The connection hand-over with real processes and real clients: an old process passes its
 * established connections (TCP, unix stream, HTTP/1.1 keep-alive) to a new one over a seqpacket
 * channel (test/fixtures/handover-peer.ts), and the client, which stays on its one connection,
 * must see no FIN and no RST, and get each answer once, from the process that owns it.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { native } from '../../src/native/addon.js';
import { useResources } from '../support/resources.js';

const PEER = fileURLToPath(new URL('../fixtures/handover-peer.js', import.meta.url));
const n = native();

type Event = Record<string, unknown>;

/** One side, as a child process: JSON events on stdout, commands on stdin. */
class Peer {
  readonly child: ChildProcess;
  readonly #events: Event[] = [];
  #wake: (() => void) | undefined;
  readonly exited: Promise<number | null>;

  constructor(side: 'old' | 'new', kind: string, channelFd: number, options: string[]) {
    this.child = spawn(process.execPath, [PEER, side, kind, ...options], { stdio: ['pipe', 'pipe', 'inherit', channelFd] });
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.#events.push(JSON.parse(line) as Event);
      this.#wake?.();
    });
  }

  /** Runs one hand-over of every connection of the old side: what was passed and kept. */
  async handover(): Promise<Event> {
    this.command('handover');
    return this.next('passed');
  }

  command(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** The next event that has `key`, in order. */
  async next(key: string, timeoutMs = 10_000): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.#events.findIndex((e) => key in e);
      if (at !== -1) return this.#events.splice(at, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`no ${key} event within ${timeoutMs} ms (events: ${JSON.stringify(this.#events)})`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    this.child.stdin!.destroy();
    this.child.stdout!.destroy();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A client on one connection that records everything it gets, and any end or error. */
class Client {
  readonly socket: net.Socket;
  text = '';
  ended = false;
  error: Error | undefined;
  closed = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => (this.text += chunk.toString()));
    socket.on('end', () => (this.ended = true));
    socket.on('error', (error) => (this.error = error));
    socket.on('close', () => (this.closed = true));
  }

  /** Waits until `test` holds of what was received, or the connection ends. */
  async until(test: (text: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!test(this.text)) {
      if (this.ended || this.error || this.closed) throw new Error(`the connection ended (FIN: ${this.ended}, error: ${this.error?.message}) after: ${JSON.stringify(this.text)}`);
      if (Date.now() > deadline) throw new Error(`timed out; received: ${JSON.stringify(this.text)}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return this.text;
  }

  /** Still open, nothing ended or reset. */
  intact(): void {
    expect({ ended: this.ended, error: this.error?.message, closed: this.closed }).to.deep.equal({ ended: false, error: undefined, closed: false });
  }
}

/** HTTP/1.1 responses in `text`: their bodies, in order (the fixture always sets Content-Length). */
function bodies(text: string): string[] {
  const out: string[] = [];
  let rest = text;
  for (;;) {
    const head = rest.indexOf('\r\n\r\n');
    if (head === -1) return out;
    const length = Number(/content-length: *(\d+)/i.exec(rest.slice(0, head))?.[1] ?? NaN);
    if (Number.isNaN(length) || rest.length < head + 4 + length) return out;
    out.push(`${rest.slice(0, rest.indexOf('\r\n'))} ${rest.slice(head + 4, head + 4 + length)}`);
    rest = rest.slice(head + 4 + length);
  }
}

/** A client on a new connection whose first line the old process has answered. */
async function served(connect: () => Promise<Client>): Promise<Client> {
  const client = await connect();
  client.socket.write('one\n');
  await client.until((t) => t === 'A:1:one\n');
  return client;
}

/** A client on a new connection whose first request (GET /1) the old process has answered. */
async function servedHttp(connect: () => Promise<Client>): Promise<Client> {
  const client = await connect();
  client.socket.write(get('/1'));
  await client.until((t) => bodies(t).length === 1);
  return client;
}

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`;

/** Recv-Q of the server's end of a TCP connection, as `ss` reports it. */
function recvQ(serverPort: number, clientPort: number): number {
  const out = spawnSync('ss', ['-tnH', 'state', 'established', `( sport = :${serverPort} and dport = :${clientPort} )`], { encoding: 'utf8' }).stdout.trim();
  const fields = out.split(/\s+/);
  if (fields.length < 2) throw new Error(`ss found no such connection: ${JSON.stringify(out)}`);
  return Number(fields[0]);
}

describe('connection hand-over between processes', function () {
  this.timeout(30_000);
  const r = useResources();

  async function start(kind: 'tcp' | 'unix' | 'http', oldOptions: string[] = [], newOptions: string[] = []): Promise<{ old: Peer; next: Peer; connect: () => Promise<Client>; port: number }> {
    const [a, b] = n.seqpacketPair();
    const path = kind === 'unix' ? `${r.dir()}/old.sock` : undefined;
    const old = new Peer('old', kind, a!, [...oldOptions, ...(path ? [path] : [])]);
    const next = new Peer('new', kind, b!, newOptions);
    n.close(a!);
    n.close(b!);
    r.defer(() => Promise.all([old.stop(), next.stop()]));
    const listening = (await old.next('listening')).listening as number | string;
    await next.next('receiving');
    const connect = async (): Promise<Client> => {
      const socket = r.node(typeof listening === 'string' ? net.connect(listening) : net.connect(listening, '127.0.0.1'));
      await once(socket, 'connect');
      return new Client(socket);
    };
    return { old, next, connect, port: typeof listening === 'number' ? listening : 0 };
  }

  for (const kind of ['tcp', 'unix'] as const) {
    describe(kind === 'tcp' ? 'raw TCP' : 'unix stream', () => {
      it('an idle connection passes with its state: no FIN, no RST, the next line answered by the new process, once', async () => {
        const { old, next, connect } = await start(kind);
        const client = await served(connect);
        expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
        expect(await next.next('adopted')).to.deep.equal({ adopted: 1 });
        client.socket.write('two\n');
        await client.until((t) => t.endsWith('B:2:two\n'));
        // The old process holds nothing of it any more: its end changes nothing for the client.
        await old.stop();
        client.socket.write('three\n');
        expect(await client.until((t) => t.endsWith('B:3:three\n'))).to.equal('A:1:one\nB:2:two\nB:3:three\n');
        client.intact();
      });

      it('bytes that arrive while the connection is between the processes wait in the kernel for the new reader', async () => {
        const { old, next, connect, port } = await start(kind, [], ['--wait']);
        const client = await served(connect);
        expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
        client.socket.write('late\n');
        if (kind === 'tcp') {
          const deadline = Date.now() + 5000;
          while (recvQ(port, client.socket.localPort!) < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
          expect(recvQ(port, client.socket.localPort!), 'bytes queued in the kernel').to.equal(5);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(client.text, 'nobody answered meanwhile').to.equal('A:1:one\n');
        next.command('adopt');
        expect(await client.until((t) => t.endsWith('B:2:late\n'))).to.equal('A:1:one\nB:2:late\n');
        client.intact();
      });

      it('bytes Node read after the pause go with the connection, in order, answered once', async () => {
        const { old, connect } = await start(kind);
        const client = await served(connect);
        old.command('pause');
        await old.next('paused');
        client.socket.write('buffered\nand more\n');
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
        expect(await client.until((t) => t.endsWith('B:3:and more\n'))).to.equal('A:1:one\nB:2:buffered\nB:3:and more\n');
        client.intact();
      });

      it('the check can fail: a FIN from the old process (end() where the hand-over destroys) is seen by the client', async () => {
        const { old, connect } = await start(kind, ['--end-before']);
        const client = await served(connect);
        await old.handover();
        const deadline = Date.now() + 5000;
        while (!client.ended && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(client.ended, 'FIN seen').to.equal(true);
      });

      it('the new process dies before it holds the batch: the old one keeps the connection and serves on', async () => {
        const { old, next, connect } = await start(kind, [], ['--die-before-held']);
        const client = await served(connect);
        expect(await old.handover()).to.deep.equal({ passed: 0, kept: 1 });
        expect(await next.exited).to.equal(7);
        client.socket.write('two\n');
        expect(await client.until((t) => t.endsWith('A:2:two\n'))).to.equal('A:1:one\nA:2:two\n');
        client.intact();
      });

      it('the new process never answers: after the timeout the old one keeps the connection and serves on', async () => {
        const { old, next, connect } = await start(kind, ['--held-timeout=300'], ['--mute']);
        const client = await served(connect);
        expect(await old.handover()).to.deep.equal({ passed: 0, kept: 1 });
        expect(await next.next('ignored')).to.deep.equal({ ignored: 'batch' });
        expect(await next.next('ignored'), 'a release keeping it all').to.deep.equal({ ignored: 'release' });
        client.socket.write('two\n');
        expect(await client.until((t) => t.endsWith('A:2:two\n'))).to.equal('A:1:one\nA:2:two\n');
        client.intact();
      });

      it('the new process dies after it holds the batch: the connection was its, and ends with it', async () => {
        const { old, next, connect } = await start(kind, [], ['--die-after-held']);
        const client = await served(connect);
        expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
        expect(await next.exited).to.equal(7);
        const deadline = Date.now() + 5000;
        while (!client.ended && !client.error && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(client.ended || client.error !== undefined, 'the client sees the end').to.equal(true);
      });
    });
  }

  describe('HTTP/1.1 keep-alive', () => {
    it('an idle connection passes: the next request on it is answered by the new process', async () => {
      const { old, next, connect } = await start('http');
      const client = await servedHttp(connect);
      expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
      await next.next('adopted');
      client.socket.write(get('/2'));
      await client.until((t) => bodies(t).length === 2);
      expect(bodies(client.text)).to.deep.equal(['HTTP/1.1 200 OK A /1', 'HTTP/1.1 200 OK B /2']);
      client.intact();
    });

    it('a connection that has not sent a request yet passes (Node has read nothing of it)', async () => {
      const { old, next, connect } = await start('http');
      const client = await connect();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
      await next.next('adopted');
      client.socket.write(get('/first'));
      await client.until((t) => bodies(t).length === 1);
      expect(bodies(client.text)).to.deep.equal(['HTTP/1.1 200 OK B /first']);
      client.intact();
    });

    it('a request split across the hand-over, its first part still in the kernel: answered once, by the new process', async () => {
      const { old, next, connect } = await start('http');
      const client = await servedHttp(connect);
      old.command('pause');
      await old.next('paused');
      client.socket.write('GET /split HTTP/1.1\r\nHo');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
      await next.next('adopted');
      client.socket.write('st: test\r\n\r\n');
      await client.until((t) => bodies(t).length === 2);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(bodies(client.text)).to.deep.equal(['HTTP/1.1 200 OK A /1', 'HTTP/1.1 200 OK B /split']);
      client.intact();
    });

    it('a request split across the hand-over, its first part parsed already: kept until answered (once, by the old process), then passed', async () => {
      const { old, next, connect } = await start('http');
      const client = await servedHttp(connect);
      client.socket.write('GET /split HTTP/1.1\r\nHo');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await old.handover()).to.deep.equal({ passed: 0, kept: 1 });
      client.socket.write('st: test\r\n\r\n');
      await client.until((t) => bodies(t).length === 2);
      expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
      await next.next('adopted');
      client.socket.write(get('/after'));
      await client.until((t) => bodies(t).length === 3);
      expect(bodies(client.text)).to.deep.equal(['HTTP/1.1 200 OK A /1', 'HTTP/1.1 200 OK A /split', 'HTTP/1.1 200 OK B /after']);
      client.intact();
    });

    it('the check can fail: without the idle check, the parsed first part is lost with the old process', async () => {
      const { old, next, connect } = await start('http', ['--naive']);
      const client = await servedHttp(connect);
      client.socket.write('GET /split HTTP/1.1\r\nHo');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
      await next.next('adopted');
      client.socket.write('st: test\r\n\r\n');
      const deadline = Date.now() + 1000;
      while (!client.ended && !client.closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(bodies(client.text), 'no answer to /split').to.deep.equal(['HTTP/1.1 200 OK A /1']);
      expect(client.text, 'the new process saw half a request').to.match(/400 Bad Request/);
    });

    it('pipelined requests still in the kernel: answered once each, in order, by the new process', async () => {
      const { old, next, connect } = await start('http');
      const client = await connect();
      client.socket.write(get('/0'));
      await client.until((t) => bodies(t).length === 1);
      old.command('pause');
      await old.next('paused');
      client.socket.write(get('/1') + get('/2') + get('/3'));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
      await next.next('adopted');
      await client.until((t) => bodies(t).length === 4);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(bodies(client.text)).to.deep.equal(['HTTP/1.1 200 OK A /0', 'HTTP/1.1 200 OK B /1', 'HTTP/1.1 200 OK B /2', 'HTTP/1.1 200 OK B /3']);
      client.intact();
    });

    it('pipelined requests parsed already, a partial one behind them: answered once each, in order, the rest by the new process', async () => {
      const { old, next, connect } = await start('http');
      const client = await connect();
      client.socket.write(get('/1') + get('/2') + get('/3') + 'GET /4 HTTP/1.1\r\nHo');
      await client.until((t) => bodies(t).length === 3);
      expect(await old.handover()).to.deep.equal({ passed: 0, kept: 1 });
      client.socket.write('st: test\r\n\r\n');
      await client.until((t) => bodies(t).length === 4);
      expect(await old.handover()).to.deep.equal({ passed: 1, kept: 0 });
      await next.next('adopted');
      client.socket.write(get('/5') + get('/6'));
      await client.until((t) => bodies(t).length === 6);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(bodies(client.text)).to.deep.equal([
        'HTTP/1.1 200 OK A /1',
        'HTTP/1.1 200 OK A /2',
        'HTTP/1.1 200 OK A /3',
        'HTTP/1.1 200 OK A /4',
        'HTTP/1.1 200 OK B /5',
        'HTTP/1.1 200 OK B /6',
      ]);
      client.intact();
    });
  });
});
