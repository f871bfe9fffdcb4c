import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { freeTcpPort, httpGet } from '../support/network.js';
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
