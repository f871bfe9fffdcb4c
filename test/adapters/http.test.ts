import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:net';
import { RUNTIME } from '../support/runtime.js';
import { withApps } from './harness.js';

function get(options: http.RequestOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http
      .get(options, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
      })
      .on('error', reject);
    if (options.timeout) req.setTimeout(options.timeout, () => req.destroy(new Error('no answer')));
  });
}

/** The TCP ports process `pid` listens on, as ss(8) sees them. */
function listeningPorts(pid: number): number[] {
  const lines = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' }).split('\n');
  return lines.filter((line) => line.includes(`pid=${pid},`)).map((line) => Number(/:(\d+)\s/.exec(line)?.[1]));
}

describe('sd-activate/http', () => {
  const { sockets, start } = withApps();

  it('http.createServer().listen(systemdFd(name)) serves the inherited socket; on Bun, which would listen elsewhere, it throws at once', async () => {
    const tcp = sockets.tcp('127.0.0.1');
    const run = await start('raw-http', 'web', { fds: [tcp.fd], names: ['web'] });
    const pid = run.child.pid!;
    if (RUNTIME === 'bun') {
      expect(run.error?.code).to.equal('ERR_SD_UNSUPPORTED_RUNTIME');
      expect(run.error?.message).to.include('fd 3 "web"').and.include('sd-activate/http');
      // Refused before Bun's server bound anything: the only listening socket is the inherited one.
      expect(listeningPorts(pid)).to.deep.equal([tcp.port]);
      return;
    }
    expect(run.error).to.equal(undefined);
    expect(run.result).to.deep.equal([{ address: '127.0.0.1', family: 'IPv4', port: tcp.port }]);
    expect(await get({ host: '127.0.0.1', port: tcp.port, path: '/raw' })).to.equal(`raw-http ${pid} /raw`);
  });

  it('net.createServer().listen(systemdFd(name)) serves the inherited socket, on Bun too', async () => {
    const tcp = sockets.tcp('127.0.0.1');
    const run = await start('raw-net', 'web', { fds: [tcp.fd], names: ['web'] });
    expect(run.error).to.equal(undefined);
    expect(listeningPorts(run.child.pid!)).to.deep.equal([tcp.port]);
    const answer = await new Promise<string>((resolve, reject) => {
      let text = '';
      connect({ host: '127.0.0.1', port: tcp.port })
        .setEncoding('utf8')
        .on('data', (d: string) => (text += d))
        .on('end', () => resolve(text))
        .on('error', reject);
    });
    expect(answer).to.equal(`raw-net ${run.child.pid}\n`);
  });

  it('serves HTTP on every fd of the name: IPv4, IPv6 and a unix socket', async () => {
    const v4 = sockets.tcp('127.0.0.1');
    const v6 = sockets.tcp('::1');
    const unix = sockets.unix('stream');
    const other = sockets.tcp('127.0.0.1');
    const run = await start('http', 'web', { fds: [v4.fd, other.fd, v6.fd, unix.fd], names: ['web', 'other', 'web', 'web'] });
    expect(run.error).to.equal(undefined);
    expect(run.result).to.have.length(3);
    const pid = run.child.pid!;
    // sh execs node, so the child's pid is the server's.
    expect(await get({ host: '127.0.0.1', port: v4.port, path: '/a' })).to.equal(`http ${pid} /a`);
    expect(await get({ host: '::1', port: v6.port, path: '/b' })).to.equal(`http ${pid} /b`);
    expect(await get({ socketPath: unix.path, path: '/c' })).to.equal(`http ${pid} /c`);
    // The fd of another name is not served by this app.
    const refused = await get({ host: '127.0.0.1', port: other.port, path: '/', timeout: 300 }).then(
      () => 'answered',
      (e: Error) => e.message,
    );
    expect(refused).to.equal('no answer');
  });

  it('serves on the fallback when not activated', async () => {
    const probe = sockets.tcp('127.0.0.1');
    sockets.closeAll(); // a port that was just free
    const run = await start('http', 'web', null, { host: '127.0.0.1', port: probe.port });
    expect(await get({ host: '127.0.0.1', port: probe.port, path: '/fb' })).to.equal(`http ${run.child.pid} /fb`);
  });

  it('refuses a UDP fd with an error naming the fd, what it is and what would work', async () => {
    const udp = sockets.udp();
    const run = await start('http', 'web', { fds: [udp.fd], names: ['web'] });
    expect(run.error?.code).to.equal('ERR_SD_FD_UNSUITABLE');
    expect(run.error?.message).to.include('fd 3 "web"').and.include('udp 127.0.0.1').and.include('sd-activate/dgram');
  });

  it('refuses a unix datagram socket and a FIFO', async () => {
    const dgram = sockets.unix('dgram');
    const run = await start('http', 'web', { fds: [dgram.fd], names: ['web'] });
    expect(run.error?.code).to.equal('ERR_SD_FD_UNSUITABLE');
    expect(run.error?.message).to.include('unix dgram');
  });

  it('refuses an activated process whose name is missing, listing the names there are', async () => {
    const tcp = sockets.tcp();
    const run = await start('http', 'web', { fds: [tcp.fd], names: ['api'] }, 8080);
    expect(run.error?.code).to.equal('ERR_SD_FD_NOT_FOUND');
    expect(run.error?.message).to.include('"web"').and.include('"api" (fd 3');
  });

  it('says how to run it activated when there is neither an fd nor a fallback', async () => {
    const run = await start('http', 'web', null);
    expect(run.error?.code).to.equal('ERR_SD_NOT_ACTIVATED');
    expect(run.error?.message).to.include('FileDescriptorName=web').and.include('systemd-socket-activate');
  });

  it('serves HTTPS with the given TLS options', async () => {
    const dir = sockets.tempDir();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const key = readFileSync(join(dir, 'key.pem'), 'utf8');
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const tcp = sockets.tcp();
    const run = await start('https', 'web', { fds: [tcp.fd], names: ['web'] }, undefined, { TLS_KEY: key, TLS_CERT: cert });
    const body = await new Promise<string>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: tcp.port, path: '/tls', ca: cert, servername: 'localhost' }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve(text));
      }).on('error', reject);
    });
    expect(body).to.equal(`https ${run.child.pid} /tls`);
  });

  it('serves cleartext HTTP/2', async () => {
    const tcp = sockets.tcp();
    const run = await start('http2', 'web', { fds: [tcp.fd], names: ['web'] });
    const session = http2.connect(`http://127.0.0.1:${tcp.port}`);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/h2' });
        let text = '';
        req.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve(text)).on('error', reject);
      });
      expect(body).to.equal(`http2 ${run.child.pid} /h2`);
    } finally {
      session.close();
    }
  });
});
