/*
 * The two sides of an upgrade's connection hand-over in one process, over a real seqpacket pair
 * and real TCP connections: pass() and what it refuses, the 'passed' and 'connection' events, and
 * which servers' HTTP connections can pass at all. Between processes: upgrade-handover.test.ts.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Drain } from '../../src/service/drain.js';
import { receiveHandover } from '../../src/service/handover-receiver.js';
import { HandoverSender } from '../../src/service/handover-sender.js';
import { handoverHttpServers } from '../../src/service/http-idle.js';
import { IncomingConnections } from '../../src/service/incoming-connections.js';
import type { HandoverEvent, UpgraderEvents } from '../../src/service/upgrade-types.js';
import { native } from '../../src/native/addon.js';
import { useResources } from '../support/resources.js';

describe('connection hand-over: pass(), its events and its refusals', () => {
  const r = useResources();

  async function setUp(): Promise<{
    sender: HandoverSender;
    pass: HandoverEvent['pass'];
    old: EventEmitter<UpgraderEvents>;
    next: EventEmitter<UpgraderEvents>;
    incoming: IncomingConnections;
    warnings: Error[];
    connect: () => Promise<{ client: net.Socket; accepted: net.Socket }>;
  }> {
    const [a, b] = native().seqpacketPair() as [number, number];
    const old = new EventEmitter<UpgraderEvents>();
    const next = new EventEmitter<UpgraderEvents>();
    const warnings: Error[] = [];
    const warn = (error: Error): void => void warnings.push(error);
    const incoming = new IncomingConnections(next, warn, 1000, true);
    receiveHandover(b, [], incoming, warn);
    // The receiving side closes its end when the sending side's is closed: waited for at the end.
    const iterator = incoming.iterate();
    const receiverEnded = iterator.next();
    r.defer(() => receiverEnded);
    let pass: HandoverEvent['pass'] | undefined;
    old.once('handover', (event) => (pass = event.pass));
    const sender = await HandoverSender.start({ fd: a, pid: process.pid, drain: new Drain([], { idleConnections: 'drain' }), events: old, warn, heldTimeoutMs: 2000 });
    expect(sender, 'the receiving side said hello').to.not.equal(undefined);
    expect(pass, "the 'handover' event").to.be.a('function');
    r.defer(() => sender!.close());
    const server = r.node(net.createServer());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const connect = async (): Promise<{ client: net.Socket; accepted: net.Socket }> => {
      const accepted = once(server, 'connection');
      const client = r.node(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'));
      const [socket] = (await accepted) as [net.Socket];
      await once(client, 'connect');
      return { client, accepted: r.node(socket) };
    };
    return { sender: sender!, pass: pass!, old, next, incoming, warnings, connect };
  }

  const codeOf = async (outcome: Promise<unknown>): Promise<string> => {
    try {
      await outcome;
      return 'no error';
    } catch (error) {
      return (error as { code?: string }).code ?? (error as Error).name;
    }
  };

  it("passes a connection with its state: 'passed' on the old side, 'connection' on the new one, and the client talks on", async () => {
    const { pass, old, next, connect } = await setUp();
    const { client, accepted } = await connect();
    const localPort = accepted.localPort;
    accepted.on('data', () => expect.fail('the old side read after the hand-over'));
    const passed: unknown[] = [];
    old.on('passed', (event) => passed.push(event));
    const adopted = once(next, 'connection');
    expect(await pass(accepted, { user: 'ada', seen: [1, 2] })).to.equal('passed');
    const [socket, state] = (await adopted) as [net.Socket, unknown];
    r.node(socket);
    expect(state).to.deep.equal({ user: 'ada', seen: [1, 2] });
    expect(passed).to.deep.equal([{ pid: process.pid, kind: 'raw', remoteAddress: '127.0.0.1', remotePort: client.localPort, localPort }]);
    expect(accepted.destroyed).to.equal(true);
    client.write('hello');
    const [data] = (await once(socket, 'data')) as [Buffer];
    expect(data.toString()).to.equal('hello');
  });

  it("pass(socket, state, { to }): the new side's connections(to) alone gets it, not the 'connection' event; 'passed' says to whom", async () => {
    const { pass, old, next, incoming, connect } = await setUp();
    const { client, accepted } = await connect();
    const unnamed: unknown[] = [];
    next.on('connection', (socket, state) => {
      r.node(socket);
      unnamed.push(state);
    });
    const passed: unknown[] = [];
    old.on('passed', (event) => passed.push(event));
    const taken = incoming.iterate('ws').next();
    expect(await pass(accepted, { n: 1 }, { to: 'ws' })).to.equal('passed');
    const { value } = await taken;
    r.node(value!.socket);
    expect(value!.state).to.deep.equal({ n: 1 });
    expect(passed.map((e) => (e as { to?: string }).to)).to.deep.equal(['ws']);
    // One without `to` still goes to the event, and never to the named iterator.
    const other = await connect();
    const another = incoming.iterate('ws').next();
    expect(await pass(other.accepted, { n: 2 })).to.equal('passed');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(unnamed).to.deep.equal([{ n: 2 }]);
    let settled = false;
    void another.then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled, 'the named iterator got nothing').to.equal(false);
    client.write('hello');
    const [data] = (await once(value!.socket, 'data')) as [Buffer];
    expect(data.toString()).to.equal('hello');
  });

  it('options.ready is asked at the release, with reading stopped: false keeps the socket here, true lets it go', async () => {
    const { pass, next, connect } = await setUp();
    const { client, accepted } = await connect();
    next.on('connection', (socket) => r.node(socket));
    const asked: boolean[] = [];
    let answer = false;
    const ready = (socket: net.Socket): boolean => {
      expect(socket).to.equal(accepted);
      asked.push(socket.isPaused());
      return answer;
    };
    expect(await pass(accepted, 1, { ready })).to.equal('kept');
    expect(accepted.destroyed).to.equal(false);
    accepted.resume();
    const got = once(accepted, 'data');
    client.write('kept');
    expect(String((await got)[0])).to.equal('kept');
    answer = true;
    expect(await pass(accepted, 1, { ready })).to.equal('passed');
    expect(asked, 'asked once per release, each time with reading stopped').to.deep.equal([true, true]);
    expect(accepted.destroyed).to.equal(true);
  });

  it('refuses options that are not PassOptions, with nothing paused: TypeError', async () => {
    const { pass, incoming, connect } = await setUp();
    const { accepted } = await connect();
    for (const options of [null, 'ws', { to: '' }, { to: 'x'.repeat(65) }, { to: 3 }, { ready: true }]) {
      expect(await codeOf(pass(accepted, 1, options as never)), JSON.stringify(options)).to.equal('TypeError');
    }
    expect(accepted.isPaused()).to.equal(false);
    expect(() => incoming.iterate('')).to.throw(TypeError);
  });

  it('refuses what it cannot pass, with nothing paused: TypeError, ERR_SD_FD_UNSUITABLE, ERR_SD_FD_INVALID', async () => {
    const { pass, connect } = await setUp();
    const { client, accepted } = await connect();
    expect(await codeOf(pass({} as net.Socket, 1))).to.equal('TypeError');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(await codeOf(pass(accepted, circular))).to.equal('TypeError');
    expect(await codeOf(pass(accepted, { big: 'x'.repeat(70_000) }))).to.equal('TypeError');
    expect(await codeOf(pass(accepted, 10n))).to.equal('TypeError');
    const secure = new tls.TLSSocket((await connect()).accepted, { isServer: false });
    secure.on('error', () => undefined);
    expect(await codeOf(pass(secure, 1))).to.equal('ERR_SD_FD_UNSUITABLE');
    secure.destroy();
    const gone = (await connect()).accepted;
    gone.destroy();
    expect(await codeOf(pass(gone, 1))).to.equal('ERR_SD_FD_INVALID');
    // The connection that was refused is still this side's, reading as before.
    const got = once(accepted, 'data');
    client.write('still here');
    expect(String((await got)[0])).to.equal('still here');
  });

  it('once the hand-over is over, pass() keeps the connection here: kept, reading as before', async () => {
    const { sender, pass, connect } = await setUp();
    const { client, accepted } = await connect();
    await sender.close();
    expect(await pass(accepted, 1)).to.equal('kept');
    const got = once(accepted, 'data');
    client.write('mine');
    expect(String((await got)[0])).to.equal('mine');
  });

  it('the same socket passed twice at once: one hand-over, the same outcome', async () => {
    const { pass, next, connect } = await setUp();
    const { accepted } = await connect();
    let adopted = 0;
    next.on('connection', (socket) => {
      adopted++;
      r.node(socket);
    });
    const outcomes = await Promise.all([pass(accepted, 1), pass(accepted, 1)]);
    expect(outcomes).to.deep.equal(['passed', 'passed']);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(adopted).to.equal(1);
  });

  it("waits for what the application wrote to reach the kernel before it lets the socket go: the client gets all of it, then the new side's", async () => {
    const { pass, next, connect } = await setUp();
    const { client, accepted } = await connect();
    // The client reads nothing yet: 8 MiB stay in Node's buffer, above what the kernel takes.
    client.pause();
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    accepted.write(big);
    expect(accepted.writableLength).to.be.above(0);
    next.on('connection', (socket: net.Socket) => r.node(socket).end('END'));
    let outcome: string | undefined;
    const passing = pass(accepted, 1).then((o) => (outcome = o));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(outcome, 'not while the writes wait').to.equal(undefined);
    const chunks: Buffer[] = [];
    client.on('data', (chunk: Buffer) => chunks.push(chunk));
    client.resume();
    await once(client, 'end');
    await passing;
    expect(outcome).to.equal('passed');
    const got = Buffer.concat(chunks);
    expect(got.length).to.equal(big.length + 3);
    expect(got.subarray(big.length).toString()).to.equal('END');
    expect(got.subarray(0, big.length).equals(big)).to.equal(true);
  });

  it('a Node without the idle connections list: HTTP connections are not handed over, and a warning says so once', async () => {
    const server = r.node(http.createServer() as unknown as net.Server) as unknown as http.Server;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const key = Object.getOwnPropertySymbols(server).find((symbol) => symbol.description === 'http.server.connections')!;
    const list = (server as unknown as Record<symbol, unknown>)[key];
    // What a Node that keeps it elsewhere looks like to sd-activate (no connection comes meanwhile).
    (server as unknown as Record<symbol, unknown>)[key] = {};
    r.defer(() => ((server as unknown as Record<symbol, unknown>)[key] = list));
    const warnings: Error[] = [];
    for (let i = 0; i < 2; i++) {
      const [a, b] = native().seqpacketPair() as [number, number];
      const next = new EventEmitter<UpgraderEvents>();
      const incoming = new IncomingConnections(next, () => undefined, 1000, true);
      receiveHandover(b, [server], incoming, () => undefined);
      const ended = incoming.iterate().next();
      const sender = await HandoverSender.start({ fd: a, pid: process.pid, drain: new Drain([server], { idleConnections: 'drain' }), events: new EventEmitter(), warn: (e) => warnings.push(e), heldTimeoutMs: 2000 });
      await sender!.close();
      await ended;
    }
    expect(warnings.map((w) => (w as { code?: string }).code)).to.deep.equal(['ERR_SD_NODE_UNSUPPORTED']);
    expect(warnings[0]!.message).to.match(/HTTP connections are not handed over at upgrades, they drain/);
  });

  it('peerGone: true once the new process is gone, even while the end of its socket is not read (a pool worker reports it at once)', async () => {
    // The new process's end of the socket stays open here: only /proc can say it is gone.
    const [a, b] = native().seqpacketPair() as [number, number];
    const incoming = new IncomingConnections(new EventEmitter<UpgraderEvents>(), () => undefined, 1000, true);
    const stopReceiving = receiveHandover(b, [], incoming, () => undefined);
    r.defer(() => stopReceiving());
    const peer = spawn('sleep', ['60'], { stdio: 'ignore' });
    r.defer(() => peer.kill('SIGKILL'));
    const sender = await HandoverSender.start({ fd: a, pid: peer.pid!, drain: new Drain([], { idleConnections: 'drain' }), events: new EventEmitter(), warn: () => undefined, heldTimeoutMs: 2000 });
    r.defer(() => sender?.close());
    expect(sender!.peerGone, 'the new process runs').to.equal(false);
    peer.kill('SIGKILL');
    await once(peer, 'exit');
    expect(sender!.peerGone, 'the new process is gone').to.equal(true);
    expect(sender!.active, 'its end of the socket is still open').to.equal(true);
  });

  it('HTTP connections pass by themselves from plain http servers only: not https (TLS), not http2', () => {
    const plain = http.createServer();
    const servers = [https.createServer(), http2.createServer(), plain, http.createServer(), new net.Server()];
    expect(handoverHttpServers(servers).map(({ server, key }) => [servers.indexOf(server), key])).to.deep.equal([
      [2, 'null#0'],
      [3, 'null#1'],
    ]);
  });
});
