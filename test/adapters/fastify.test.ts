import { expect } from 'chai';
import { withApps } from './harness.js';
import { waitForLine } from '../support/activated-child.js';

describe('sd-activate/fastify', () => {
  const { sockets, start } = withApps();

  it('serves every fd of the name, not only the first, and closes them all with fastify.close()', async () => {
    const v4 = sockets.tcp('127.0.0.1');
    const v6 = sockets.tcp('::1');
    const unix = sockets.unix('stream');
    const run = await start('fastify', 'web', { fds: [v4.fd, v6.fd, unix.fd], names: ['web', 'web', 'web'] });
    const addresses = run.result as string[];
    expect(addresses).to.have.length(3);
    expect(addresses[0]).to.include(`127.0.0.1:${v4.port}`);
    expect(addresses[1]).to.include(`[::1]:${v6.port}`);
    expect(addresses[2]).to.equal(unix.path);
    expect(await (await fetch(`http://127.0.0.1:${v4.port}/`)).text()).to.equal(`fastify ${run.child.pid} /`);
    expect(await (await fetch(`http://[::1]:${v6.port}/`)).text()).to.equal(`fastify ${run.child.pid} /`);
    const closed = waitForLine(run.child, (l) => l === 'CLOSED');
    expect(await (await fetch(`http://[::1]:${v6.port}/close`)).text()).to.equal('closing');
    await closed;
    // Every server is closed: the child has nothing left to keep it alive.
    const code = await new Promise((r) => (run!.child.exitCode !== null ? r(run!.child.exitCode) : run!.child.once('exit', r)));
    expect(code).to.equal(0);
  });

  it('listens on the fallback when not activated', async () => {
    const probe = sockets.tcp('127.0.0.1');
    sockets.closeAll();
    const run = await start('fastify', 'web', null, { host: '127.0.0.1', port: probe.port });
    expect(await (await fetch(`http://127.0.0.1:${probe.port}/`)).text()).to.equal(`fastify ${run.child.pid} /`);
  });

  it('refuses a UDP fd with a typed error', async () => {
    const udp = sockets.udp();
    const run = await start('fastify', 'web', { fds: [udp.fd], names: ['web'] });
    expect(run.error?.code).to.equal('ERR_SD_FD_UNSUITABLE');
  });
});
