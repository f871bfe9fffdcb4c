/*
 * The two sides of an upgrade's connection hand-over in one process, over a real seqpacket pair
 * and real TCP connections: pass() and what it refuses, the 'passed' and 'connection' events, and
 * which servers' HTTP connections can pass at all. Between processes: upgrade-handover.test.ts.
 */
import { expect } from 'chai';
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
import type { UpgraderEvents } from '../../src/service/upgrade-types.js';
import { native } from '../../src/native/addon.js';
import { useResources } from '../support/resources.js';

describe('connection hand-over: pass(), its events and its refusals', () => {
  const r = useResources();

  async function setUp(): Promise<{ sender: HandoverSender; old: EventEmitter<UpgraderEvents>; next: EventEmitter<UpgraderEvents>; warnings: Error[]; connect: () => Promise<{ client: net.Socket; accepted: net.Socket }> }> {
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
    const sender = await HandoverSender.start({ fd: a, pid: process.pid, drain: new Drain([], { idleConnections: 'drain' }), events: old, warn, heldTimeoutMs: 2000 });
    expect(sender, 'the receiving side said hello').to.not.equal(undefined);
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
    return { sender: sender!, old, next, warnings, connect };
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
    const { sender, old, next, connect } = await setUp();
    const { client, accepted } = await connect();
    const localPort = accepted.localPort;
    accepted.on('data', () => expect.fail('the old side read after the hand-over'));
    const passed: unknown[] = [];
    old.on('passed', (event) => passed.push(event));
    const adopted = once(next, 'connection');
    expect(await sender.pass(accepted, { user: 'ada', seen: [1, 2] })).to.equal('passed');
    const [socket, state] = (await adopted) as [net.Socket, unknown];
    r.node(socket);
    expect(state).to.deep.equal({ user: 'ada', seen: [1, 2] });
    expect(passed).to.deep.equal([{ pid: process.pid, kind: 'raw', remoteAddress: '127.0.0.1', remotePort: client.localPort, localPort }]);
    expect(accepted.destroyed).to.equal(true);
    client.write('hello');
    const [data] = (await once(socket, 'data')) as [Buffer];
    expect(data.toString()).to.equal('hello');
  });

  it('refuses what it cannot pass, with nothing paused: TypeError, ERR_SD_FD_UNSUITABLE, ERR_SD_FD_INVALID', async () => {
    const { sender, connect } = await setUp();
    const { client, accepted } = await connect();
    expect(await codeOf(sender.pass({} as net.Socket, 1))).to.equal('TypeError');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(await codeOf(sender.pass(accepted, circular))).to.equal('TypeError');
    expect(await codeOf(sender.pass(accepted, { big: 'x'.repeat(70_000) }))).to.equal('TypeError');
    expect(await codeOf(sender.pass(accepted, 10n))).to.equal('TypeError');
    const secure = new tls.TLSSocket((await connect()).accepted, { isServer: false });
    secure.on('error', () => undefined);
    expect(await codeOf(sender.pass(secure, 1))).to.equal('ERR_SD_FD_UNSUITABLE');
    secure.destroy();
    const gone = (await connect()).accepted;
    gone.destroy();
    expect(await codeOf(sender.pass(gone, 1))).to.equal('ERR_SD_FD_INVALID');
    // The connection that was refused is still this side's, reading as before.
    const got = once(accepted, 'data');
    client.write('still here');
    expect(String((await got)[0])).to.equal('still here');
  });

  it('once the hand-over is over, pass() keeps the connection here: kept, reading as before', async () => {
    const { sender, connect } = await setUp();
    const { client, accepted } = await connect();
    await sender.close();
    expect(await sender.pass(accepted, 1)).to.equal('kept');
    const got = once(accepted, 'data');
    client.write('mine');
    expect(String((await got)[0])).to.equal('mine');
  });

  it('the same socket passed twice at once: one hand-over, the same outcome', async () => {
    const { sender, next, connect } = await setUp();
    const { accepted } = await connect();
    let adopted = 0;
    next.on('connection', (socket) => {
      adopted++;
      r.node(socket);
    });
    const outcomes = await Promise.all([sender.pass(accepted, 1), sender.pass(accepted, 1)]);
    expect(outcomes).to.deep.equal(['passed', 'passed']);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(adopted).to.equal(1);
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
