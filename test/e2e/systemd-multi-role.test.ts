import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { formatAddress } from 'sd-activate';
import { native } from '../../src/native/addon.js';
import { decodeSockaddr, encodeSockaddr } from '../../src/core/sockaddr.js';
import { freeTcpPort, freeUdpPort, httpGet, readUntilEnd, readUntilEndAbstract, udpRequest } from '../support/network.js';
import { parseFds, PRINT_FDS, type FdReport } from '../support/print-fds.js';
import { SystemdManager } from '../support/systemd-manager.js';

/*
 * End to end under a real systemd 252 user manager (test/support/systemd-manager.ts): several
 * .socket units, each with its FileDescriptorName=, all feeding one service.
 */

const MULTI_ROLE = fileURLToPath(new URL('../../../examples/multi-role/server.js', import.meta.url));

/** systemd's word after each Listen= address, in the words of SocketType / FdInfo.kind. */
const SYSTEMD_TYPES: Record<string, string> = {
  Stream: 'stream',
  Datagram: 'dgram',
  SequentialPacket: 'seqpacket',
  FIFO: 'fifo',
  MessageQueue: 'mqueue',
  Netlink: 'netlink',
};

/** `127.0.0.1:80 (Stream)` -> `127.0.0.1:80 stream`, sorted; an unknown word stays visible. */
function systemdListen(lines: string[]): string[] {
  return lines
    .map((line) => {
      const match = /^(.*) \(([A-Za-z]+)\)$/.exec(line);
      if (!match) return `unparsed: ${line}`;
      return `${match[1]} ${SYSTEMD_TYPES[match[2]!] ?? `unmapped-${match[2]}`}`;
    })
    .sort();
}

/** The same line for what the service saw: formatAddress() and the type, or the path and the kind. */
function ourListen(report: FdReport): string {
  const info = report.info;
  if (info.kind === 'socket') return `${formatAddress(info.local)} ${info.type}`;
  if (info.kind === 'fifo' || info.kind === 'mqueue') return `${info.path} ${info.kind}`;
  return `unexpected ${report.description}`;
}

/** A path or argument as a unit file takes it: quoted, with '%' not taken for a specifier. */
function unitArg(text: string): string {
  return `"${text.replace(/%/g, '%%').replace(/(["\\])/g, '\\$1')}"`;
}

function unitPath(text: string): string {
  return text.replace(/%/g, '%%');
}

function tag(): string {
  return randomBytes(4).toString('hex');
}

/** Runs `work`; a failure gets `context()` (service output, manager log) added to its message. */
async function explained<T>(work: Promise<T>, context: () => string): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof Error) error.message += `\n${context()}`;
    throw error;
  }
}

/** What a service wrote to its StandardOutput=/StandardError= files in `dir`. */
function serviceOutput(dir: string, stdout: string, stderr: string): string {
  const read = (name: string): string => (existsSync(join(dir, name)) ? readFileSync(join(dir, name), 'utf8').trim() : '(no file)');
  return `--- service stdout (${stdout}): ${read(stdout)}\n--- service stderr (${stderr}): ${read(stderr)}`;
}

async function activeState(manager: SystemdManager, unit: string): Promise<string> {
  return manager.show(unit, 'ActiveState');
}

describe('systemd user manager: one service (print-fds) fed by seven .socket units', function () {
  this.timeout(60000);
  const id = tag();
  const service = `sdact-${id}.service`;
  const unit = (role: string): string => `sdact-${id}-${role}.socket`;
  let manager: SystemdManager | undefined;
  let dir: string;
  let httpPort: number;
  let dnsPort: number;
  let connPort: number;
  const abstract = `sd-activate-${id}`;
  const mq = `/sd-activate-test-${id}`;
  /** The socket units of the service: unit role -> FileDescriptorName=. */
  const names: Record<string, string> = {
    http: 'http',
    dns: 'dns-udp',
    admin: 'admin',
    seq: 'seq',
    fifo: 'fifo',
    mq: 'mq',
    control: 'control',
  };
  let fds: FdReport[] | undefined;
  let firstReply = '';

  function seen(): FdReport[] {
    if (!fds) throw new Error('the service never reported its fds: see the first test of this group');
    return fds;
  }

  function named(name: string): FdReport[] {
    return seen().filter((f) => f.name === name);
  }

  before(async function () {
    expect(existsSync(PRINT_FDS), `${PRINT_FDS} must be built`).to.equal(true);
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    httpPort = await freeTcpPort();
    dnsPort = await freeUdpPort();
    connPort = await freeTcpPort();
    manager = await SystemdManager.start();

    const socket = (role: string, listen: string[], extra: string[] = []): string =>
      [
        '[Unit]',
        `Description=sd-activate e2e: ${role}`,
        '',
        '[Socket]',
        ...listen,
        ...extra,
        `FileDescriptorName=${names[role]}`,
        `Service=${service}`,
      ].join('\n');
    await manager.installUnits({
      [unit('http')]: socket('http', [`ListenStream=127.0.0.1:${httpPort}`, `ListenStream=[::1]:${httpPort}`], ['BindIPv6Only=ipv6-only']),
      [unit('dns')]: socket('dns', [`ListenDatagram=127.0.0.1:${dnsPort}`]),
      [unit('admin')]: socket('admin', [`ListenStream=${unitPath(join(dir, 'admin.sock'))}`], ['RemoveOnStop=yes']),
      [unit('seq')]: socket('seq', [`ListenSequentialPacket=${unitPath(join(dir, 'seq.sock'))}`], ['RemoveOnStop=yes']),
      [unit('fifo')]: socket('fifo', [`ListenFIFO=${unitPath(join(dir, 'in.fifo'))}`], ['RemoveOnStop=yes']),
      [unit('mq')]: socket('mq', [`ListenMessageQueue=${mq}`], ['RemoveOnStop=yes']),
      [unit('control')]: socket('control', [`ListenStream=@${abstract}`]),
      [service]: [
        '[Unit]',
        'Description=sd-activate e2e: print-fds',
        '',
        '[Service]',
        `ExecStart=${unitArg(process.execPath)} ${unitArg(PRINT_FDS)}`,
        `StandardOutput=file:${unitPath(join(dir, 'out.log'))}`,
        `StandardError=file:${unitPath(join(dir, 'err.log'))}`,
        'TimeoutStopSec=5',
      ].join('\n'),
      // Accept=yes: one instance of the template per connection, given only that connection.
      [`sdact-${id}-conn.socket`]: ['[Socket]', `ListenStream=127.0.0.1:${connPort}`, 'Accept=yes'].join('\n'),
      [`sdact-${id}-conn@.service`]: [
        '[Service]',
        `ExecStart=${unitArg(process.execPath)} ${unitArg(PRINT_FDS)}`,
        `StandardOutput=append:${unitPath(join(dir, 'conn-out.log'))}`,
        `StandardError=append:${unitPath(join(dir, 'conn-err.log'))}`,
        'TimeoutStopSec=5',
      ].join('\n'),
    });
    await manager.systemctlOk('start', ...Object.keys(names).map(unit));
  });

  after(async function () {
    await manager?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    try {
      // RemoveOnStop= unlinks it when the manager stops the unit; this covers a manager that was killed.
      native().mqUnlink(mq);
    } catch {
      // gone already
    }
  });

  it('listens on every socket unit and starts the service on the first connection', async function () {
    const m = manager!;
    for (const role of Object.keys(names)) expect(await activeState(m, unit(role)), unit(role)).to.equal('active');
    expect(await activeState(m, service), 'before any connection').to.equal('inactive');

    const reply = await explained(
      readUntilEnd({ host: '127.0.0.1', port: httpPort }, 20000),
      () => `${serviceOutput(dir, 'out.log', 'err.log')}${m.logExcerpt()}`,
    );
    fds = parseFds(reply.text);
    firstReply = reply.text.trim();

    expect(await activeState(m, service)).to.equal('active');
    expect(Number(await m.show(service, 'MainPID'))).to.be.greaterThan(0);
    // What it printed on start (StandardOutput=file:) is what it answered.
    const out = join(dir, 'out.log');
    const line = await m.waitFor(
      () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').find((l) => l.startsWith('FDS ')) : undefined),
      10000,
      `an FDS line in ${out}`,
    );
    expect(line.slice(4)).to.equal(firstReply);
  });

  it('hands the service every fd, each with its name and what it is', function () {
    const all = seen();
    expect(all.map((f) => f.fd).sort((a, b) => a - b)).to.deep.equal([3, 4, 5, 6, 7, 8, 9, 10]);
    expect(all.map((f) => f.name).sort()).to.deep.equal(['admin', 'control', 'dns-udp', 'fifo', 'http', 'http', 'mq', 'seq']);

    const http = named('http').map((f) => f.info);
    expect(http.map((i) => (i.kind === 'socket' ? i.family : i.kind)).sort()).to.deep.equal(['ipv4', 'ipv6']);
    for (const info of http) {
      if (info.kind !== 'socket' || (info.family !== 'ipv4' && info.family !== 'ipv6')) throw new Error('http: not inet');
      expect(info).to.include({ type: 'stream', protocol: 'tcp', listening: true, peer: null });
      expect(info.local).to.include({ port: httpPort, address: info.family === 'ipv4' ? '127.0.0.1' : '::1', v4Mapped: false });
    }

    const [dns] = named('dns-udp');
    if (dns?.info.kind !== 'socket' || dns.info.family !== 'ipv4') throw new Error(`dns-udp: ${dns?.description}`);
    expect(dns.info).to.include({ type: 'dgram', protocol: 'udp', listening: false, peer: null });
    expect(dns.info.local).to.include({ address: '127.0.0.1', port: dnsPort });

    const unixOf = (name: string): { type: string; listening: boolean; local: unknown } => {
      const list = named(name);
      expect(list, name).to.have.length(1);
      const info = list[0]!.info;
      if (info.kind !== 'socket' || info.family !== 'unix') throw new Error(`${name}: ${list[0]!.description}`);
      return info;
    };
    expect(unixOf('admin')).to.deep.include({ type: 'stream', listening: true, local: { family: 'unix', kind: 'path', path: join(dir, 'admin.sock') } });
    expect(unixOf('seq')).to.deep.include({ type: 'seqpacket', listening: true, local: { family: 'unix', kind: 'path', path: join(dir, 'seq.sock') } });
    expect(unixOf('control')).to.deep.include({ type: 'stream', listening: true, local: { family: 'unix', kind: 'abstract', name: abstract } });

    expect(named('fifo').map((f) => f.info)).to.deep.equal([{ kind: 'fifo', path: join(dir, 'in.fifo') }]);
    const [queue] = named('mq');
    if (queue?.info.kind !== 'mqueue') throw new Error(`mq: ${queue?.description}`);
    expect(queue.info.path).to.equal(mq);
    expect(queue.info.maxmsg).to.be.greaterThan(0);
    expect(queue.info.msgsize).to.be.greaterThan(0);
    expect(queue.info.curmsgs).to.equal(0);
  });

  it('agrees with `systemctl show -p Listen` on every socket unit: same addresses, same types', async function () {
    for (const [role, name] of Object.entries(names)) {
      const lines = await manager!.showList(unit(role), 'Listen');
      const ours = named(name).map(ourListen).sort();
      expect(ours, `fds named ${name}`).to.not.be.empty;
      expect(systemdListen(lines), `${unit(role)}: ${lines.join(' | ')}`).to.deep.equal(ours);
    }
  });

  it('serves on every network socket: TCP over IPv4 and IPv6, UDP, a unix path and an abstract name', async function () {
    seen();
    for (const host of ['127.0.0.1', '::1']) {
      expect((await readUntilEnd({ host, port: httpPort })).text.trim(), host).to.equal(firstReply);
    }
    expect(await udpRequest('127.0.0.1', dnsPort, 'ping')).to.equal(firstReply);
    expect((await readUntilEnd({ path: join(dir, 'admin.sock') })).text.trim()).to.equal(firstReply);
    expect((await readUntilEndAbstract(abstract)).text.trim()).to.equal(firstReply);
  });

  it('leaves the seqpacket socket, the FIFO and the message queue live', function () {
    seen();
    const n = native();
    const c = n.constants;
    // seqpacket: the listening socket takes a connection (Node has no seqpacket client).
    const seq = n.socket(c.AF_UNIX, c.SOCK_SEQPACKET | c.SOCK_CLOEXEC, 0);
    try {
      n.connect(seq, encodeSockaddr({ family: 'unix', path: join(dir, 'seq.sock') }));
      const facts = n.inspect(seq);
      expect(facts.type).to.equal(c.SOCK_SEQPACKET);
      expect(decodeSockaddr(facts.peer!)).to.deep.equal({ family: 'unix', kind: 'path', path: join(dir, 'seq.sock') });
    } finally {
      n.close(seq);
    }
    // FIFO: a non-blocking open for writing fails with ENXIO unless someone holds it open for reading.
    const fifo = openSync(join(dir, 'in.fifo'), fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    try {
      expect(writeSync(fifo, 'ping\n')).to.equal(5);
    } finally {
      closeSync(fifo);
    }
    // message queue: it exists under the name systemd shows.
    const queue = n.mqOpen(mq, c.O_WRONLY, 0, 0, 0);
    try {
      expect(n.inspect(queue).mq).to.include({ curmsgs: 0 });
    } finally {
      n.close(queue);
    }
  });

  it('gives an Accept=yes instance its connection alone, as fd 3 named "connection"', async function () {
    const m = manager!;
    const socketUnit = `sdact-${id}-conn.socket`;
    await m.systemctlOk('start', socketUnit);
    const reply = await explained(
      readUntilEnd({ host: '127.0.0.1', port: connPort }, 20000),
      () => `${serviceOutput(dir, 'conn-out.log', 'conn-err.log')}${m.logExcerpt()}`,
    );
    const conn = parseFds(reply.text);
    expect(conn.map((f) => [f.fd, f.name])).to.deep.equal([[3, 'connection']]);
    const info = conn[0]!.info;
    if (info.kind !== 'socket' || info.family !== 'ipv4') throw new Error(`connection: ${conn[0]!.description}`);
    expect(info).to.include({ type: 'stream', protocol: 'tcp', listening: false });
    expect(info.local).to.include({ address: '127.0.0.1', port: connPort });
    expect(info.peer).to.include({ address: reply.localAddress, port: reply.localPort });
    expect(await m.show(socketUnit, 'NAccepted')).to.equal('1');
    // The instance exits once it has answered, and the socket counts no open connection.
    await m.waitFor(async () => (await m.show(socketUnit, 'NConnections')) === '0', 10000, `${socketUnit} NConnections=0`);
  });
});

describe('systemd user manager: examples/multi-role/server.js with HTTP (IPv4+IPv6), dns-udp and admin sockets', function () {
  this.timeout(60000);
  const id = tag();
  const service = `sdact-mr-${id}.service`;
  const sockets = { http: `sdact-mr-${id}-http.socket`, dns: `sdact-mr-${id}-dns.socket`, admin: `sdact-mr-${id}-admin.socket` };
  let manager: SystemdManager | undefined;
  let dir: string;
  let httpPort: number;
  let dnsPort: number;
  let adminPath: string;

  async function mainPid(): Promise<number> {
    return explained(
      manager!.waitFor(
        async () => {
          const pid = Number(await manager!.show(service, 'MainPID'));
          return pid > 0 && (await activeState(manager!, service)) === 'active' ? pid : 0;
        },
        15000,
        `${service} to be active with a main pid`,
      ),
      () => serviceOutput(dir, 'out.log', 'err.log'),
    );
  }

  before(async function () {
    expect(existsSync(MULTI_ROLE), `${MULTI_ROLE} must exist`).to.equal(true);
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    adminPath = join(dir, 'admin.sock');
    httpPort = await freeTcpPort();
    dnsPort = await freeUdpPort();
    manager = await SystemdManager.start();
    const all = Object.values(sockets).join(' ');
    await manager.installUnits({
      [sockets.http]: [
        '[Socket]',
        `ListenStream=127.0.0.1:${httpPort}`,
        `ListenStream=[::1]:${httpPort}`,
        'BindIPv6Only=ipv6-only',
        'FileDescriptorName=http',
        `Service=${service}`,
      ].join('\n'),
      [sockets.dns]: ['[Socket]', `ListenDatagram=127.0.0.1:${dnsPort}`, 'FileDescriptorName=dns-udp', `Service=${service}`].join('\n'),
      [sockets.admin]: [
        '[Socket]',
        `ListenStream=${unitPath(adminPath)}`,
        'SocketMode=0600',
        'RemoveOnStop=yes',
        'FileDescriptorName=admin',
        `Service=${service}`,
      ].join('\n'),
      [service]: [
        '[Unit]',
        `Requires=${all}`,
        `After=${all}`,
        '',
        '[Service]',
        `ExecStart=${unitArg(process.execPath)} ${unitArg(MULTI_ROLE)}`,
        `Sockets=${all}`,
        `StandardOutput=file:${unitPath(join(dir, 'out.log'))}`,
        `StandardError=file:${unitPath(join(dir, 'err.log'))}`,
        'TimeoutStopSec=5',
      ].join('\n'),
    });
    await manager.systemctlOk('start', ...Object.values(sockets));
    await manager.systemctlOk('start', service);
  });

  after(async function () {
    await manager?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers GET / over IPv4 and IPv6 with its name and the pid systemd shows', async function () {
    const pid = await mainPid();
    for (const host of ['127.0.0.1', '::1']) {
      const reply = await explained(httpGet({ host, port: httpPort }, '/'), () => serviceOutput(dir, 'out.log', 'err.log'));
      expect(reply.status, host).to.equal(200);
      expect(reply.body, host).to.contain('multi-role');
      expect(reply.body, host).to.match(new RegExp(`\\b${pid}\\b`));
    }
  });

  it('lists on GET /fds what systemd shows in Listen=, by name', async function () {
    const reply = await httpGet({ host: '127.0.0.1', port: httpPort }, '/fds');
    expect(reply.status).to.equal(200);
    expect(reply.headers['content-type']).to.contain('application/json');
    const fds = parseFds(reply.body);
    expect(fds.map((f) => f.name).sort()).to.deep.equal(['admin', 'dns-udp', 'http', 'http']);
    expect(fds.map((f) => f.fd).sort((a, b) => a - b)).to.deep.equal([3, 4, 5, 6]);
    for (const [role, name] of [
      ['http', 'http'],
      ['dns', 'dns-udp'],
      ['admin', 'admin'],
    ] as const) {
      const lines = await manager!.showList(sockets[role], 'Listen');
      expect(systemdListen(lines), sockets[role]).to.deep.equal(fds.filter((f) => f.name === name).map(ourListen).sort());
    }
    expect(fds.filter((f) => f.name === 'http').map(ourListen).sort()).to.deep.equal([`127.0.0.1:${httpPort} stream`, `[::1]:${httpPort} stream`]);
  });

  it('answers a datagram on dns-udp with "pong <payload>"', async function () {
    const payload = `ping-${tag()}`;
    expect(await udpRequest('127.0.0.1', dnsPort, payload)).to.equal(`pong ${payload}`);
  });

  it('writes {pid, fds} and a newline on the admin socket, then closes', async function () {
    const pid = await mainPid();
    const reply = await readUntilEnd({ path: adminPath });
    expect(reply.text.endsWith('\n')).to.equal(true);
    const report = JSON.parse(reply.text) as { pid: number; fds: unknown[] };
    expect(report.pid).to.equal(pid);
    const fds = parseFds(JSON.stringify(report.fds));
    const [admin] = fds.filter((f) => f.name === 'admin');
    expect(admin && ourListen(admin)).to.equal(`${adminPath} stream`);
    expect(fds).to.have.length(4);
  });

  it('stops cleanly, and the sockets it leaves behind start a new instance on the next request', async function () {
    const m = manager!;
    const before = await mainPid();
    await m.systemctlOk('stop', service);
    expect(await activeState(m, service)).to.equal('inactive');
    expect(await m.show(service, 'Result')).to.equal('success');
    // stopping the service does not stop its sockets: they still listen and queue the next request
    for (const unit of Object.values(sockets)) expect(await activeState(m, unit), unit).to.equal('active');

    const reply = await httpGet({ host: '::1', port: httpPort }, '/');
    const after = await mainPid();
    expect(after).to.not.equal(before);
    expect(reply.body).to.contain('multi-role');
    expect(reply.body).to.match(new RegExp(`\\b${after}\\b`));
  });
});
