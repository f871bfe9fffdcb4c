import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { freeTcpPort, freeUdpPort, httpGet, udpRequest } from '../support/network.js';
import { SystemdManager } from '../support/systemd-manager.js';

/*
 * The watchdog and notify-reload examples under a real systemd 252 user manager, with the unit
 * files they ship: only the names, the port and the paths are changed to fit this machine.
 */

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));

/** An example's unit file with `replacements` applied (each must match, so a changed file fails here). */
function shippedUnit(example: string, file: string, replacements: Array<[string, string]>): string {
  let text = readFileSync(join(EXAMPLES, example, file), 'utf8');
  for (const [from, to] of replacements) {
    expect(text, `${example}/${file} has ${from}`).to.include(from);
    text = text.split(from).join(to);
  }
  return text;
}

async function body(port: number, path = '/'): Promise<string> {
  return (await httpGet({ host: '127.0.0.1', port }, path)).body;
}

/** A .socket/.service pair of an example, installed under fresh names with `port` in place of its own. */
async function installExample(
  manager: SystemdManager,
  example: string,
  unit: string,
  name: string,
  ports: Array<[string, string]>,
): Promise<{ socket: string; service: string }> {
  const socket = `${name}.socket`;
  const service = `${name}.service`;
  await manager.installUnits({
    [socket]: shippedUnit(example, `${unit}.socket`, ports).replace('[Socket]', `[Socket]\nService=${service}`),
    [service]: shippedUnit(example, `${unit}.service`, [
      [`${unit}.socket`, socket],
      [`/usr/bin/node /opt/${example}/server.js`, `${process.execPath} ${join(EXAMPLES, example, 'server.js')}`],
    ]),
  });
  return { socket, service };
}

describe('systemd user manager: the Express, Fastify and UDP examples with their own units', function () {
  this.timeout(90_000);
  const id = randomBytes(4).toString('hex');
  let manager: SystemdManager;

  before(async function () {
    manager = await SystemdManager.start();
  });

  after(async function () {
    await manager?.stop();
  });

  it('express-app: the first connection starts it, and it serves the socket it was given', async function () {
    const port = await freeTcpPort();
    const { socket, service } = await installExample(manager, 'express-app', 'express-app', `sdact-ex-${id}`, [['127.0.0.1:3000', `127.0.0.1:${port}`]]);
    await manager.systemctlOk('start', socket);
    expect(await manager.show(service, 'ActiveState')).to.equal('inactive');
    const reply = await body(port);
    expect(reply).to.equal(`hello from express (pid ${await manager.show(service, 'MainPID')})\n`);
  });

  it('fastify-app: one instance serves IPv4 and IPv6 under one name', async function () {
    const port = await freeTcpPort();
    const { socket, service } = await installExample(manager, 'fastify-app', 'fastify-app', `sdact-fa-${id}`, [
      ['127.0.0.1:3001', `127.0.0.1:${port}`],
      ['[::1]:3001', `[::1]:${port}`],
    ]);
    await manager.systemctlOk('start', socket);
    const v4 = JSON.parse(await body(port)) as { pid: number };
    const v6 = JSON.parse((await httpGet({ host: '::1', port }, '/')).body) as { pid: number };
    expect(v4.pid).to.equal(Number(await manager.show(service, 'MainPID')));
    expect(v6.pid).to.equal(v4.pid);
  });

  it('udp-responder: a datagram starts it and is answered, on IPv4 and IPv6', async function () {
    const port = await freeUdpPort();
    const { socket, service } = await installExample(manager, 'udp-responder', 'udp-responder', `sdact-udp-${id}`, [
      ['127.0.0.1:5300', `127.0.0.1:${port}`],
      ['[::1]:5300', `[::1]:${port}`],
    ]);
    await manager.systemctlOk('start', socket);
    expect(await manager.show(service, 'ActiveState')).to.equal('inactive');
    expect(await udpRequest('127.0.0.1', port, 'first')).to.equal('echo first');
    expect(await udpRequest('::1', port, 'second')).to.equal('echo second');
    expect(await manager.show(service, 'ActiveState')).to.equal('active');
  });
});

describe('systemd user manager: the watchdog and notify-reload examples with their own units', function () {
  this.timeout(90_000);
  const id = randomBytes(4).toString('hex');
  let manager: SystemdManager;
  let dir: string;

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    manager = await SystemdManager.start();
  });

  after(async function () {
    await manager?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('watchdog: Type=notify with WatchdogSec=2; a failing health check gets Result=watchdog and a restart on the same socket', async function () {
    const port = await freeTcpPort();
    const socket = `sdact-wd-${id}.socket`;
    const service = `sdact-wd-${id}.service`;
    await manager.installUnits({
      [socket]: shippedUnit('watchdog', 'watchdog-demo.socket', [['127.0.0.1:8081', `127.0.0.1:${port}`]]).replace('[Socket]', `[Socket]\nService=${service}`),
      [service]: shippedUnit('watchdog', 'watchdog-demo.service', [
        ['watchdog-demo.socket', socket],
        ['/usr/bin/node /opt/watchdog/server.js', `${process.execPath} ${join(EXAMPLES, 'watchdog', 'server.js')}`],
      ]),
    });
    await manager.systemctlOk('start', socket);
    const first = await body(port);
    const pid = /^pid (\d+), healthy: true$/m.exec(first)?.[1];
    expect(pid, first).to.be.a('string');
    expect(await manager.show(service, 'MainPID')).to.equal(pid);
    expect(await manager.show(service, 'StatusText')).to.equal('Serving');
    expect(await manager.show(service, 'WatchdogUSec')).to.equal('2s');

    await body(port, '/sick');
    await manager.waitFor(async () => (await manager.show(service, 'NRestarts')) === '1', 20_000, `${service} restarted\n${manager.logExcerpt()}`);
    expect(manager.log()).to.match(/[Ww]atchdog timeout/);
    const again = await manager.waitFor(
      async () => {
        const main = await manager.show(service, 'MainPID');
        return main !== '0' && main !== pid && (await manager.show(service, 'ActiveState')) === 'active' ? main : undefined;
      },
      20_000,
      `${service} active again with a new main pid`,
    );
    expect(await body(port)).to.equal(`pid ${again}, healthy: true\n`);
  });

  it('notify-reload: systemctl reload runs ExecReload=; the same process serves the new greeting and is active again', async function () {
    const port = await freeTcpPort();
    const greeting = join(dir, 'greeting.txt');
    writeFileSync(greeting, 'hello\n');
    const socket = `sdact-nr-${id}.socket`;
    const service = `sdact-nr-${id}.service`;
    await manager.installUnits({
      [socket]: shippedUnit('notify-reload', 'notify-reload.socket', [['127.0.0.1:8082', `127.0.0.1:${port}`]]).replace('[Socket]', `[Socket]\nService=${service}`),
      [service]: shippedUnit('notify-reload', 'notify-reload.service', [
        ['notify-reload.socket', socket],
        ['/usr/bin/node /opt/notify-reload/server.js', `${process.execPath} ${join(EXAMPLES, 'notify-reload', 'server.js')}`],
        ['GREETING_FILE=/opt/notify-reload/greeting.txt', `GREETING_FILE=${greeting}`],
      ]),
    });
    await manager.systemctlOk('start', socket);
    expect(await body(port)).to.equal('hello\n');
    const pid = await manager.show(service, 'MainPID');
    writeFileSync(greeting, 'bonjour\n');
    await manager.systemctlOk('reload', service);
    await manager.waitFor(async () => (await body(port)) === 'bonjour\n', 10_000, 'the new greeting');
    await manager.waitFor(async () => (await manager.show(service, 'ActiveState')) === 'active', 10_000, `${service} active after the reload`);
    expect(await manager.show(service, 'StatusText')).to.equal('Serving');
    // Reloaded in place: the same process, not a restart.
    expect(await manager.show(service, 'MainPID')).to.equal(pid);
    expect(await manager.show(service, 'NRestarts')).to.equal('0');
  });
});
