/*
 * The addon's hand-over primitives (src/native/handover.c) on real sockets: a seqpacket pair,
 * fds by SCM_RIGHTS with a payload, what the receiver gets, and the kernel queue counts.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fstatSync } from 'node:fs';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import { native } from '../../src/native/addon.js';
import { openSocket } from '../../src/shared/open-socket.js';
import { handleFd, openFds, useResources } from '../support/resources.js';

const n = native();
const c = n.constants;
const NATIVE = fileURLToPath(new URL('../../src/native/addon.js', import.meta.url));

function sameFile(a: number, b: number): boolean {
  const x = fstatSync(a);
  const y = fstatSync(b);
  return x.dev === y.dev && x.ino === y.ino;
}

function thrown(fn: () => unknown): Error & { code?: string; syscall?: string } {
  try {
    fn();
  } catch (error) {
    return error as Error & { code?: string; syscall?: string };
  }
  throw new Error('expected a throw');
}

/** Resolves once `fd` is readable, through the addon's event-loop watcher. */
function readable(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const watcher = n.watchReadable(fd, (errno) => {
      n.unwatch(watcher);
      if (errno) reject(new Error(`poll failed: errno ${errno}`));
      else resolve();
    });
  });
}

/** A connected TCP pair on loopback: the client socket and the accepted one, both Node sockets. */
async function tcpPair(r: ReturnType<typeof useResources>): Promise<{ client: net.Socket; accepted: net.Socket }> {
  const server = r.node(net.createServer());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const client = r.node(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'));
  const [socket] = (await accepted) as [net.Socket];
  r.node(socket);
  await once(client, 'connect').catch(() => undefined);
  return { client, accepted: socket };
}

describe('native: hand-over primitives', () => {
  const r = useResources();

  it('seqpacketPair(): two connected AF_UNIX SOCK_SEQPACKET sockets, close-on-exec', () => {
    const [a, b] = n.seqpacketPair().map((fd) => r.fd(fd)) as [number, number];
    for (const fd of [a, b]) {
      const facts = n.inspect(fd);
      expect([facts.mode, facts.domain, facts.type]).to.deep.equal([c.S_IFSOCK, c.AF_UNIX, c.SOCK_SEQPACKET]);
      expect(n.getCloexec(fd), `fd ${fd} close-on-exec`).to.equal(true);
    }
  });

  it('a payload and fds arrive together, whole and in order; the fds are new, close-on-exec, the same files', () => {
    const [a, b] = n.seqpacketPair().map((fd) => r.fd(fd)) as [number, number];
    const [pipeRead, pipeWrite] = n.pipe().map((fd) => r.fd(fd)) as [number, number];
    expect(n.sendFds(a, Buffer.from('first'), [pipeRead, pipeWrite])).to.equal(5);
    expect(n.sendFds(a, Buffer.from('second, no fds'), [])).to.equal(14);
    const first = n.receiveFds(b)!;
    first.fds.forEach((fd) => r.fd(fd));
    expect(first.data.toString()).to.equal('first');
    expect(first.fds).to.have.length(2);
    expect([first.truncated, first.controlTruncated]).to.deep.equal([false, false]);
    expect(first.fds).not.to.include(pipeRead);
    expect(first.fds).not.to.include(pipeWrite);
    expect(sameFile(first.fds[0]!, pipeRead) && sameFile(first.fds[1]!, pipeWrite), 'the same pipe ends').to.equal(true);
    expect(first.fds.map((fd) => n.getCloexec(fd))).to.deep.equal([true, true]);
    const second = n.receiveFds(b)!;
    expect([second.data.toString(), second.fds]).to.deep.equal(['second, no fds', []]);
    expect(n.receiveFds(b), 'nothing queued').to.equal(null);
  });

  it(`up to SCM_MAX_FD (${c.SCM_MAX_FD}) fds in one message; one more is E2BIG and sends nothing`, () => {
    const [a, b] = n.seqpacketPair().map((fd) => r.fd(fd)) as [number, number];
    const [pipeRead] = n.pipe().map((fd) => r.fd(fd)) as [number, number];
    const many = Array.from({ length: c.SCM_MAX_FD }, () => pipeRead);
    expect(thrown(() => n.sendFds(a, Buffer.from('x'), [...many, pipeRead]))).to.include({ code: 'E2BIG', syscall: 'sendmsg' });
    expect(n.receiveFds(b)).to.equal(null);
    n.sendFds(a, Buffer.from('253'), many);
    const got = n.receiveFds(b)!;
    got.fds.forEach((fd) => r.fd(fd));
    expect(got.fds).to.have.length(c.SCM_MAX_FD);
    expect(new Set(got.fds).size, 'each its own fd').to.equal(c.SCM_MAX_FD);
    expect(got.fds.every((fd) => sameFile(fd, pipeRead))).to.equal(true);
  });

  it('arguments that are not what the calls take: TypeError, nothing sent', () => {
    const [a, b] = n.seqpacketPair().map((fd) => r.fd(fd)) as [number, number];
    expect(() => n.sendFds(a, Buffer.alloc(0), [])).to.throw(TypeError, /empty/);
    expect(() => n.sendFds(a, 'text' as unknown as Buffer, [])).to.throw(TypeError);
    expect(() => n.sendFds(a, Buffer.from('x'), [3.5])).to.throw(TypeError);
    expect(() => n.sendFds(a, Buffer.from('x'), null as unknown as number[])).to.throw(TypeError);
    expect(() => n.receiveFds(-1)).to.throw(TypeError);
    expect(() => n.inq(2 ** 32 + 3)).to.throw(TypeError);
    expect(n.receiveFds(b)).to.equal(null);
  });

  it('a failed syscall is a Node-style error naming the fd', () => {
    const [a, b] = n.seqpacketPair();
    n.close(a);
    n.close(b);
    expect(thrown(() => n.sendFds(a!, Buffer.from('x'), []))).to.include({ code: 'EBADF', syscall: 'sendmsg', fd: a });
    expect(thrown(() => n.receiveFds(b!))).to.include({ code: 'EBADF', syscall: 'recv' });
  });

  it("the peer's end: an empty message; the peer gone with messages unread: ECONNRESET once, then the end", () => {
    const [a, b] = n.seqpacketPair() as [number, number];
    r.fd(a);
    n.close(b); // closes with nothing queued
    const [c1, d1] = n.seqpacketPair();
    r.fd(c1!);
    const end = n.receiveFds(a)!;
    expect(end.data.length).to.equal(0);
    expect(end.fds).to.deep.equal([]);
    // d1 closes with a message of c1's unread: c1 learns it was not read.
    n.sendFds(c1!, Buffer.from('unread'), []);
    n.close(d1!);
    expect(thrown(() => n.receiveFds(c1!))).to.include({ code: 'ECONNRESET' });
    expect(n.receiveFds(c1!)!.data.length).to.equal(0);
    expect(thrown(() => n.sendFds(c1!, Buffer.from('x'), []))).to.include({ code: 'EPIPE' });
  });

  it('a full socket: EAGAIN, never a blocked loop; the watcher that reads says when there is room again (watchEvents())', async () => {
    const [a, b] = n.seqpacketPair().map((fd) => r.fd(fd)) as [number, number];
    const events: number[] = [];
    let wake: (() => void) | undefined;
    const watcher = n.watchReadable(a, (errno, mask) => {
      events.push(errno === 0 ? mask : -errno);
      if (mask & 1) while (n.receiveFds(a)) events.push(0);
      if (mask & 2) n.watchEvents(watcher, true, false);
      wake?.();
    });
    const next = (): Promise<void> => new Promise((resolve) => (wake = resolve));
    const chunk = Buffer.alloc(16 * 1024, 1);
    let sent = 0;
    let error: Error & { code?: string };
    for (;;) {
      try {
        n.sendFds(a, chunk, []);
        sent++;
      } catch (e) {
        error = e as Error & { code?: string };
        break;
      }
      if (sent > 100_000) throw new Error('the socket never filled');
    }
    expect(error.code).to.equal('EAGAIN');
    // A second watcher on the fd is what libuv refuses: the one there waits for room too.
    expect(thrown(() => n.watchReadable(a, () => undefined))).to.include({ code: 'EEXIST' });
    n.watchEvents(watcher, true, true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(events, 'no room yet, nothing to read').to.deep.equal([]);
    let received = 0;
    while (n.receiveFds(b)) received++;
    expect(received).to.equal(sent);
    await next();
    expect(events).to.deep.equal([2]);
    expect(n.sendFds(a, chunk, [])).to.equal(chunk.length);
    // Still reading, and no longer woken for room.
    n.sendFds(b, Buffer.from('x'), []);
    await next();
    expect(events).to.deep.equal([2, 1, 0]);
    n.unwatch(watcher);
  });

  it('a receiver out of fds: MSG_CTRUNC reported, the fds that did arrive closed, none leaked', async function () {
    // A child with RLIMIT_NOFILE too low to take the 253 fds of one message.
    const [a, b] = n.seqpacketPair().map((fd) => r.fd(fd)) as [number, number];
    const [pipeRead] = n.pipe().map((fd) => r.fd(fd)) as [number, number];
    n.sendFds(a, Buffer.from('batch'), Array.from({ length: c.SCM_MAX_FD }, () => pipeRead));
    const script = `
      const { native } = await import(${JSON.stringify(NATIVE)});
      const { readdirSync } = await import('node:fs');
      const count = () => readdirSync('/proc/self/fd').length;
      const before = count();
      const got = native().receiveFds(3);
      console.log(JSON.stringify({ before, after: count(), fds: got.fds, data: got.data.toString(), controlTruncated: got.controlTruncated }));`;
    const child = spawn('prlimit', ['--nofile=64:64', process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit', b] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const [code] = await once(child, 'exit');
    expect(code).to.equal(0);
    const result = JSON.parse(out) as { before: number; after: number; fds: number[]; data: string; controlTruncated: boolean };
    expect(result).to.deep.include({ data: 'batch', controlTruncated: true, fds: [] });
    expect(result.after, 'the fds open in the child after the receive').to.equal(result.before);
  });

  it('inq()/outq(): what the kernel holds for a reader that has not read yet, TCP and unix', async () => {
    const deadline = Date.now() + 5000;
    const settle = async (test: () => boolean): Promise<void> => {
      while (!test() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    };
    const { client, accepted } = await tcpPair(r);
    stopReading(accepted);
    const fd = handleFd(accepted);
    client.write('12345');
    await settle(() => n.inq(fd) === 5);
    expect(n.inq(fd)).to.equal(5);
    // Loopback acknowledges at once: nothing is left unacknowledged on the sender's side.
    await settle(() => n.outq(handleFd(client)) === 0);
    expect(n.outq(handleFd(client))).to.equal(0);

    const [ux, uy] = await unixPair(r);
    stopReading(uy);
    ux.write('abc');
    const ufd = handleFd(uy);
    await settle(() => n.inq(ufd) === 3);
    expect(n.inq(ufd)).to.equal(3);
    // On a unix stream socket SIOCOUTQ counts the memory of what the peer has not read, not bytes.
    expect(n.outq(handleFd(ux))).to.be.above(0);
    const read = once(uy, 'data');
    startReading(uy);
    expect(String((await read)[0])).to.equal('abc');
    await settle(() => n.outq(handleFd(ux)) === 0);
    expect(n.outq(handleFd(ux))).to.equal(0);
    // Read what is left, so that closing sends no RST.
    const rest = once(accepted, 'data');
    startReading(accepted);
    await rest;
  });

  it('dup(): a listening socket outlives the Node server that closes it; connections wait in its backlog for the next one', async () => {
    const fd = openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 } });
    const first = net.createServer(() => expect.fail('the closed server accepted'));
    first.listen({ fd });
    await once(first, 'listening');
    const port = (first.address() as net.AddressInfo).port;
    const copy = n.dup(fd);
    expect(copy).not.to.equal(fd);
    expect(n.getCloexec(copy)).to.equal(true);
    first.close();
    await once(first, 'close');
    // Nobody accepts now: the kernel completes the handshake and queues the connection.
    const client = r.node(net.connect(port, '127.0.0.1'));
    let ended = false;
    client.on('end', () => (ended = true));
    await once(client, 'connect');
    client.write('waiting');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = r.node(net.createServer());
    const accepted = once(second, 'connection');
    second.listen({ fd: copy });
    const [socket] = (await accepted) as [net.Socket];
    r.node(socket);
    const [data] = (await once(socket, 'data')) as [Buffer];
    expect([data.toString(), ended]).to.deep.equal(['waiting', false]);
  });

  it('watchReadable() on a seqpacket socket: a message wakes it in the event loop', async () => {
    const [a, b] = n.seqpacketPair().map((fd) => r.fd(fd)) as [number, number];
    const woke = readable(b);
    setTimeout(() => n.sendFds(a, Buffer.from('wake'), []), 10);
    await woke;
    expect(n.receiveFds(b)!.data.toString()).to.equal('wake');
  });

  it('no fd is left open by a send and a receive whose fds are closed', () => {
    const before = openFds();
    const [a, b] = n.seqpacketPair();
    const [p, q] = n.pipe();
    n.sendFds(a!, Buffer.from('x'), [p!, q!]);
    const got = n.receiveFds(b!)!;
    for (const fd of [...got.fds, a!, b!, p!, q!]) n.close(fd);
    expect([...openFds()].filter((fd) => !before.has(fd))).to.deep.equal([]);
  });
});

async function unixPair(r: ReturnType<typeof useResources>): Promise<[net.Socket, net.Socket]> {
  const path = `${r.dir()}/s.sock`;
  const server = r.node(net.createServer());
  server.listen(path);
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const client = r.node(net.connect(path));
  const [socket] = (await accepted) as [net.Socket];
  r.node(socket);
  return [client, socket];
}

/** Starts reading again after stopReading(). */
function startReading(socket: net.Socket): void {
  (socket as unknown as { _handle: { readStart(): number } })._handle.readStart();
}

/** Stops Node reading from the socket at once (pause() alone lets it read up to the high-water mark). */
function stopReading(socket: net.Socket): void {
  (socket as unknown as { _handle: { readStop(): number } })._handle.readStop();
}
