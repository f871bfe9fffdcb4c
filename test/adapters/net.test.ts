import { expect } from 'chai';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { withApps } from './harness.js';
import { RUNTIME } from '../support/runtime.js';

function read(options: { port: number; host?: string } | { path: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(options as never);
    let text = '';
    socket.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve(text)).on('error', reject);
  });
}

describe('sd-activate/net', () => {
  const { sockets, start } = withApps();

  it('runs one net.Server per fd of the name', async () => {
    const a = sockets.tcp('127.0.0.1');
    const b = sockets.tcp('::1');
    const run = await start('net', 'echo', { fds: [a.fd, b.fd], names: ['echo', 'echo'] });
    expect(run.result).to.have.length(2);
    expect(await read({ host: '127.0.0.1', port: a.port })).to.equal(`net ${run.child.pid}\n`);
    expect(await read({ host: '::1', port: b.port })).to.equal(`net ${run.child.pid}\n`);
  });

  /** The server side of a fresh TCP connection, as Accept=yes hands it over, and its client. */
  async function acceptedPair(): Promise<{ fd: number; client: Socket; close: () => void }> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<Socket>((r) => server.once('connection', r));
    const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
    const serverSide = await accepted;
    serverSide.pause();
    // Tests only: the fd behind Node's socket, to pass to a child as systemd would.
    const fd = (serverSide as unknown as { _handle: { fd: number } })._handle.fd;
    return { fd, client, close: () => (serverSide.destroy(), client.destroy(), server.close()) };
  }

  it('refuses an accepted connection given to listen(), pointing at connection()', async () => {
    const pair = await acceptedPair();
    try {
      const run = await start('net', 'echo', { fds: [pair.fd], names: ['echo'] });
      expect(run.error?.code).to.equal('ERR_SD_FD_UNSUITABLE');
      expect(run.error?.message).to.include('fd 3 "echo"').and.include('connection()');
    } finally {
      pair.close();
    }
  });

  it('connection() gives an Accept=yes service its connection as a net.Socket (on Bun, whose net.Socket cannot use it, refuses at once)', async () => {
    const pair = await acceptedPair();
    try {
      let text = '';
      pair.client.setEncoding('utf8').on('data', (d: string) => (text += d));
      const run = await start('connection', 'connection', { fds: [pair.fd], names: ['connection'] });
      if (RUNTIME === 'bun') {
        expect(run.error?.code).to.equal('ERR_SD_UNSUPPORTED_RUNTIME');
        expect(run.error?.message).to.include('connection()').and.include('Bun');
        return;
      }
      expect(run.error).to.equal(undefined);
      expect((run.result as { remote: string }).remote).to.equal('127.0.0.1');
      await new Promise((r) => pair.client.once('end', r));
      expect(text).to.equal(`connection ${run.child.pid}\n`);
    } finally {
      pair.close();
    }
  });

  it('connection() refuses a listening socket', async () => {
    const tcp = sockets.tcp();
    const run = await start('connection', 'connection', { fds: [tcp.fd], names: ['connection'] });
    expect(run.error?.code).to.equal('ERR_SD_FD_UNSUITABLE');
    expect(run.error?.message).to.include('listening');
  });
});
