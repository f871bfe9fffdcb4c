import { expect } from 'chai';
import { withApps } from './harness.js';

describe('sd-activate/express', () => {
  const { sockets, start } = withApps();

  it('serves the app on every fd of the name', async () => {
    const v4 = sockets.tcp('127.0.0.1');
    const v6 = sockets.tcp('::1');
    const run = await start('express', 'web', { fds: [v4.fd, v6.fd], names: ['web', 'web'] });
    expect(run.result).to.have.length(2);
    expect(await (await fetch(`http://127.0.0.1:${v4.port}/`)).text()).to.equal(`express ${run.child.pid} /`);
    expect(await (await fetch(`http://[::1]:${v6.port}/`)).text()).to.equal(`express ${run.child.pid} /`);
  });

  it('refuses a UDP fd', async () => {
    const udp = sockets.udp();
    const run = await start('express', 'web', { fds: [udp.fd], names: ['web'] });
    expect(run.error?.code).to.equal('ERR_SD_FD_UNSUITABLE');
    expect(run.error?.message).to.include('sd-activate/express needs a listening stream socket');
  });
});
