import { expect } from 'chai';
import { createSocket } from 'node:dgram';
import { withApps } from './harness.js';

function ask(port: number, host: string, message: string): Promise<string> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer')), 3000);
    socket.on('message', (reply) => {
      clearTimeout(timer);
      resolve(reply.toString());
    });
    socket.send(message, port, host);
  }).finally(() => socket.close());
}

describe('sd-activate/dgram', () => {
  const { sockets, start } = withApps();

  it('binds a udp4 and a udp6 socket, each of the type its fd needs', async () => {
    const v4 = sockets.udp('127.0.0.1');
    const v6 = sockets.udp('::1');
    const run = await start('dgram', 'dns', { fds: [v4.fd, v6.fd], names: ['dns', 'dns'] });
    const addresses = run.result as Array<{ family: string; port: number }>;
    expect(addresses.map((a) => a.family)).to.deep.equal(['IPv4', 'IPv6']);
    expect(await ask(v4.port, '127.0.0.1', 'one')).to.equal(`dgram ${run.child.pid} one`);
    expect(await ask(v6.port, '::1', 'two')).to.equal(`dgram ${run.child.pid} two`);
  });

  it('answers a datagram that was queued before the service started', async () => {
    const v4 = sockets.udp('127.0.0.1');
    const early = createSocket('udp4');
    const reply = new Promise<string>((resolve) => early.on('message', (m) => resolve(m.toString())));
    await new Promise<void>((r) => early.send('early', v4.port, '127.0.0.1', () => r()));
    const run = await start('dgram', 'dns', { fds: [v4.fd], names: ['dns'] });
    expect(await reply).to.equal(`dgram ${run.child.pid} early`);
    early.close();
  });

  it('refuses a unix datagram socket, saying Node cannot use it', async () => {
    const unix = sockets.unix('dgram');
    const run = await start('dgram', 'dns', { fds: [unix.fd], names: ['dns'] });
    expect(run.error?.code).to.equal('ERR_SD_FD_UNSUITABLE');
    expect(run.error?.message).to.include(unix.path).and.include('cannot use unix datagram');
  });

  it('refuses a TCP socket, pointing at the stream adapters', async () => {
    const tcp = sockets.tcp();
    const run = await start('dgram', 'dns', { fds: [tcp.fd], names: ['dns'] });
    expect(run.error?.code).to.equal('ERR_SD_FD_UNSUITABLE');
    expect(run.error?.message).to.include('sd-activate/net');
  });

  it('binds the fallback when not activated', async () => {
    const probe = sockets.udp('127.0.0.1');
    sockets.closeAll();
    const run = await start('dgram', 'dns', null, { host: '127.0.0.1', port: probe.port });
    expect(await ask(probe.port, '127.0.0.1', 'fb')).to.equal(`dgram ${run.child.pid} fb`);
  });
});
