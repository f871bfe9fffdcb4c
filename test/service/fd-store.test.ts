import { expect } from 'chai';
import { closeSync, fstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStoredSocket, type SocketDescription } from '../../src/index.js';
import type { NotifyMessage } from '../../src/shared/notify-receiver.js';
import { outputOf, spawnActivated } from '../support/activated-child.js';
import { freeTcpPort } from '../support/network.js';
import { openReceiver } from '../support/notify.js';
import { portOf, SocketSet } from '../support/sockets.js';
import { serviceCommand, spawnService } from '../support/runtime.js';

const PROBE = fileURLToPath(new URL('../fixtures/fd-store-probe.js', import.meta.url));

interface OpenReport {
  fds?: Array<{ fd: number; name: string; port: number }>;
  same?: boolean;
  body?: string;
  open: string[];
  before: string[];
  error?: { code: string | null; name: string; message: string };
}

const tcp = (port: number, address = '127.0.0.1'): SocketDescription => ({
  type: 'stream',
  address: address.includes(':') ? { family: 'ipv6', address, port } : { family: 'ipv4', address, port },
  v6Only: address.includes(':') ? true : undefined,
});

const identity = (fd: number): string => `socket:[${fstatSync(fd).ino}]`;

describe('openStoredSocket() and fdStoreRemoveUnused(): the fd store', function () {
  this.timeout(20_000);
  const sockets = new SocketSet();
  let receiver: ReturnType<typeof openReceiver> | undefined;

  afterEach(function () {
    receiver?.close();
    receiver = undefined;
    sockets.closeAll();
  });

  /** Runs the probe (activated with `fds` when given) and collects every notify message up to its READY=1. */
  async function probe(args: string[], fds?: { fds: number[]; names: string[] }, env: Record<string, string | undefined> = {}): Promise<{ report: unknown; messages: NotifyMessage[] }> {
    receiver = openReceiver();
    const notifyEnv = { NOTIFY_SOCKET: receiver.receiver.address, ...env };
    const child = fds
      ? spawnActivated({ fds: fds.fds, names: fds.names, env: notifyEnv, ...serviceCommand(PROBE, args) })
      : spawnService(PROBE, args, { env: { ...cleanEnv(), ...notifyEnv } as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const output = outputOf(child);
    const messages: NotifyMessage[] = [];
    if (notifyEnv.NOTIFY_SOCKET === receiver.receiver.address) {
      for (;;) {
        const message = await receiver.receiver.receive({ timeoutMs: 10_000 });
        messages.push(message);
        if (message.fields.get('READY') === '1') break;
      }
    }
    const { code, stdout, stderr } = await output;
    expect(code, stderr).to.equal(0);
    return { report: JSON.parse(stdout.trim().split('\n').pop()!), messages };
  }

  function cleanEnv(): NodeJS.ProcessEnv {
    const env = { ...process.env };
    for (const key of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES', 'NOTIFY_SOCKET']) delete env[key];
    return env;
  }

  function closeReceived(messages: NotifyMessage[]): void {
    for (const m of messages) for (const fd of m.fds) closeSync(fd);
  }

  it('not activated: opens the socket, stores it under its name (FDSTORE=1, FDNAME=), and serves it like an inherited one', async function () {
    const { report, messages } = await probe(['open', 'web', JSON.stringify([tcp(0)])]);
    const r = report as OpenReport;
    expect(r.fds).to.have.length(1);
    expect(r.fds![0]!.name).to.equal('web');
    expect(r.same, 'systemdFds() returns the same sockets').to.equal(true);
    expect(r.body, 'the http adapter served it').to.equal('served');
    expect(messages.map((m) => m.text)).to.deep.equal(['FDSTORE=1\nFDNAME=web', 'READY=1']);
    const stored = messages[0]!.fds;
    expect(stored).to.have.length(1);
    expect(portOf(stored[0]!)).to.equal(r.fds![0]!.port);
    expect(r.open).to.include(identity(stored[0]!));
    closeReceived(messages);
  });

  it('stores every socket of a name in one message (IPv4 and IPv6 under one name)', async function () {
    const port = await freeTcpPort();
    const { report, messages } = await probe(['open', 'web', JSON.stringify([tcp(port), tcp(port, '::1')])]);
    const r = report as OpenReport;
    expect(r.fds!.map((f) => f.port)).to.deep.equal([port, port]);
    expect(messages[0]!.text).to.equal('FDSTORE=1\nFDNAME=web');
    expect(messages[0]!.fds.map(portOf)).to.deep.equal([port, port]);
    closeReceived(messages);
  });

  it('activated with a socket of that name and address: takes it, and stores nothing', async function () {
    const socket = sockets.tcp();
    for (const port of [socket.port, 0]) {
      const { report, messages } = await probe(['open', 'web', JSON.stringify([tcp(port)])], { fds: [socket.fd], names: ['web'] });
      const r = report as OpenReport;
      expect(r.fds, `description port ${port}`).to.deep.equal([{ fd: 3, name: 'web', port: socket.port }]);
      expect(messages.map((m) => m.text)).to.deep.equal(['READY=1']);
      receiver!.close();
      receiver = undefined;
    }
  });

  it('activated with a socket of that name on another address: drops it (FDSTOREREMOVE=1) and opens and stores the one described', async function () {
    const old = sockets.tcp();
    const port = await freeTcpPort();
    const { report, messages } = await probe(['open', 'web', JSON.stringify([tcp(port)])], { fds: [old.fd], names: ['web'] });
    const r = report as OpenReport;
    expect(r.fds!.map((f) => [f.name, f.port])).to.deep.equal([['web', port]]);
    expect(messages.map((m) => m.text)).to.deep.equal(['FDSTOREREMOVE=1\nFDNAME=web', 'FDSTORE=1\nFDNAME=web', 'READY=1']);
    expect(portOf(messages[1]!.fds[0]!)).to.equal(port);
    expect(r.open, 'the old socket is closed').to.not.include(identity(old.fd));
    closeReceived(messages);
  });

  it('{ store: false } opens without storing; without NOTIFY_SOCKET it opens and nothing is sent', async function () {
    const { report, messages } = await probe(['open', 'web', JSON.stringify([tcp(0)]), JSON.stringify({ store: false })]);
    expect((report as OpenReport).body).to.equal('served');
    expect(messages.map((m) => m.text)).to.deep.equal(['READY=1']);
    receiver!.close();
    receiver = undefined;
    const quiet = await probe(['open', 'web', JSON.stringify([tcp(0)])], undefined, { NOTIFY_SOCKET: undefined });
    expect((quiet.report as OpenReport).body).to.equal('served');
  });

  it('a notify socket that is gone: throws the send error and leaves nothing open', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    try {
      const { report } = await probe(['open', 'web', JSON.stringify([tcp(0)])], undefined, { NOTIFY_SOCKET: join(dir, 'gone') });
      const r = report as OpenReport;
      expect(r.error?.code).to.equal('ENOENT');
      expect(r.open).to.deep.equal(r.before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fdStoreRemoveUnused(): removes and closes the inherited fds whose names nothing asked for, keeps the rest', async function () {
    const web = sockets.tcp();
    const old = sockets.tcp();
    const kept = sockets.tcp();
    const { report, messages } = await probe(['remove-unused', JSON.stringify(['web']), JSON.stringify(['kept'])], {
      fds: [web.fd, old.fd, kept.fd],
      names: ['web', 'old', 'kept'],
    });
    const r = report as { removed: string[]; open: string[] };
    expect(r.removed).to.deep.equal(['old']);
    expect(messages.map((m) => m.text)).to.deep.equal(['FDSTOREREMOVE=1\nFDNAME=old', 'READY=1']);
    expect(r.open).to.include(identity(web.fd));
    expect(r.open).to.include(identity(kept.fd));
    expect(r.open).to.not.include(identity(old.fd));
  });

  it('checks its arguments before doing anything', function () {
    for (const name of ['a:b', '', 'x'.repeat(256), 'tab\there', 42]) {
      expect(() => openStoredSocket(name as string, tcp(0)), String(name)).to.throw(TypeError, /FDNAME/);
    }
    expect(() => openStoredSocket('web', [])).to.throw(TypeError, /at least one/);
    expect(() => openStoredSocket('web', tcp(0), { store: 'yes' as never })).to.throw(TypeError, /store/);
  });
});
