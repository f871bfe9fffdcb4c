import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Supervisor } from '../../src/manager/supervisor.js';

/*
 * Accept=yes: what each connection's instance is told of its client (REMOTE_ADDR, REMOTE_PORT, as
 * systemd's service_spawn() sets them) and where it finds the connection (fd 3, or fds 0 and 1 with
 * StandardInput=socket).
 */

/** The service's answer on one connection, and the client's own port. */
async function ask(connect: net.NetConnectOpts): Promise<{ answer: string; clientPort: number | undefined }> {
  const socket = net.connect(connect);
  socket.setEncoding('utf8');
  let answer = '';
  socket.on('data', (d: string) => (answer += d));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const clientPort = socket.localPort;
  await new Promise<void>((resolve, reject) => {
    socket.once('end', resolve);
    socket.once('error', reject);
  });
  socket.destroy();
  return { answer, clientPort };
}

describe('Supervisor: accept', function () {
  this.timeout(20_000);
  const running: Supervisor[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop()));
  });

  async function acceptOn(listen: string, script: string, extra: Partial<ConstructorParameters<typeof Supervisor>[0]> = {}): Promise<Supervisor> {
    const s = new Supervisor({ command: 'sh', args: ['-c', script], listen: [listen], accept: true, stdio: 'ignore', ...extra });
    running.push(s);
    await s.start();
    return s;
  }

  const portOf = (s: Supervisor): number => {
    const info = s.sockets[0]!.info;
    if (info.kind !== 'socket' || !('port' in info.local)) throw new Error('not an IP socket');
    return (info.local as { port: number }).port;
  };

  const REPORT = 'echo "${REMOTE_ADDR-unset} ${REMOTE_PORT-unset}" >&3';

  it('REMOTE_ADDR and REMOTE_PORT name an IPv6 client as such, an IPv4 one on a dual-stack socket as IPv4', async () => {
    const v6 = await acceptOn('tcp:[::1]:0', REPORT);
    const six = await ask({ host: '::1', port: portOf(v6) });
    expect(six.answer).to.equal(`::1 ${six.clientPort}\n`);

    const dual = await acceptOn('tcp:[::]:0', REPORT);
    const four = await ask({ host: '127.0.0.1', port: portOf(dual) });
    expect(four.answer).to.equal(`127.0.0.1 ${four.clientPort}\n`);
  });

  it('a unix socket client sets neither, as under systemd', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-activate-accept-'));
    try {
      await acceptOn(`unix:${dir}/s.sock`, REPORT);
      expect((await ask({ path: `${dir}/s.sock` })).answer).to.equal('unset unset\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('standardInput socket: the connection at fds 0 and 1, nothing at 3, no LISTEN_*', async () => {
    const s = await acceptOn('tcp:127.0.0.1:0', 'if [ -e /proc/self/fd/3 ]; then f=fd3; else f=no-fd3; fi; echo "${LISTEN_FDS-none} $f"; read -r line; echo "got $line"', {
      standardInput: 'socket',
    });
    const socket = net.connect({ host: '127.0.0.1', port: portOf(s) }).setEncoding('utf8');
    let answer = '';
    socket.on('data', (d: string) => {
      answer += d;
      if (answer.split('\n').length === 2) socket.write('hello\n');
    });
    await new Promise((resolve) => socket.once('end', resolve));
    socket.destroy();
    expect(answer).to.equal('none no-fd3\ngot hello\n');
  });
});
