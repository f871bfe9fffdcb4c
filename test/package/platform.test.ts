/**
 * Outside Linux, simulated: a preload makes process.platform read 'darwin' or 'win32' before the
 * package is imported (the package decides by process.platform alone, and loads the addon only when
 * a call needs it). The package must import, work where no addon is needed (not activated: the
 * fallbacks), and say that systemd is Linux-only on every call that needs it. The install script
 * must succeed there without building anything.
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { outputOf, spawnActivated } from '../support/activated-child.js';
import { SocketSet } from '../support/sockets.js';
import { activatedEnv, bareTarball, install, moduleSubpaths, node, run, specifier, tempDir, userEnv, writeScript } from './support.js';

const PRELOAD = `'use strict';
Object.defineProperty(process, 'platform', { value: process.env.FAKE_PLATFORM, enumerable: true, configurable: true });
`;

const PROBE = `
const subpaths = JSON.parse(process.argv[2]);
const imported = {};
for (const spec of subpaths) imported[spec] = Object.keys(await import(spec)).length;
const sd = await import('sd-activate');
const { listen } = await import('sd-activate/http');
async function outcome(fn) {
  try {
    const value = await fn();
    return { value: value === undefined ? null : JSON.parse(JSON.stringify(value)) };
  } catch (e) {
    return { error: { name: e.name, code: e.code, message: e.message } };
  }
}
const result = {
  platform: process.platform,
  imported,
  listenFds: await outcome(() => sd.listenFds()),
  isActivated: await outcome(() => sd.isActivated()),
  systemdFd: await outcome(() => sd.systemdFd('web', 8080)),
  httpListen: await outcome(async () => {
    const servers = await listen('web', (req, res) => res.end(), { fallback: { host: '127.0.0.1', port: 0 } });
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    return servers.length;
  }),
  notifyReady: await outcome(() => sd.notify.ready()),
  addons: process.report.getReport().sharedObjects.filter((file) => file.endsWith('.node')),
};
console.log(JSON.stringify(result));
`;

type Outcome = { value: unknown } | { error: { name: string; code: string; message: string } };
interface Probe {
  platform: string;
  imported: Record<string, number>;
  listenFds: Outcome;
  isActivated: Outcome;
  systemdFd: Outcome;
  httpListen: Outcome;
  notifyReady: Outcome;
  addons: string[];
}

function parse(stdout: string, stderr: string): Probe {
  try {
    return JSON.parse(stdout.trim().split('\n').pop() ?? '') as Probe;
  } catch {
    throw new Error(`the probe printed no result; stdout: ${stdout}; stderr: ${stderr}`);
  }
}

describe('package: outside Linux (process.platform simulated by a preload)', function () {
  this.timeout(180_000);
  const sockets = new SocketSet();
  after(() => sockets.closeAll());
  let consumer: { dir: string; pkg: string };
  let preload: string;
  let probe: string;
  let subpaths: string[];

  before(function () {
    consumer = install({ ignoreScripts: false });
    preload = writeScript(consumer.dir, 'fake-platform.cjs', PRELOAD);
    probe = writeScript(consumer.dir, 'platform-probe.mjs', PROBE);
    subpaths = moduleSubpaths(consumer.pkg).map(specifier);
  });

  for (const platform of ['darwin', 'win32']) {
    describe(platform, function () {
      it('imports every subpath; not activated, the calls work without the addon', function () {
        const result = node(consumer.dir, ['--require', preload, probe, JSON.stringify(subpaths)], { FAKE_PLATFORM: platform });
        expect(result.status, result.stderr).to.equal(0);
        const probed = parse(result.stdout, result.stderr);
        expect(probed.platform).to.equal(platform);
        expect(Object.keys(probed.imported)).to.deep.equal(subpaths);
        expect(probed.listenFds).to.deep.equal({ value: [] });
        expect(probed.isActivated).to.deep.equal({ value: false });
        expect(probed.systemdFd).to.not.have.property('error');
        expect(probed.httpListen).to.deep.equal({ value: 1 });
        expect(probed.notifyReady).to.deep.equal({ value: false });
        expect(probed.addons).to.deep.equal([]);
      });

      it('activated, with NOTIFY_SOCKET: every call throws ERR_SD_UNSUPPORTED_PLATFORM saying systemd is Linux-only', async function () {
        const { fd } = sockets.tcp('127.0.0.1');
        const notifySocket = join(tempDir('notify-'), 'notify.sock');
        const child = spawnActivated({
          fds: [fd],
          names: ['web'],
          command: process.execPath,
          args: ['--require', preload, probe, JSON.stringify(subpaths)],
          env: activatedEnv({ FAKE_PLATFORM: platform, NOTIFY_SOCKET: notifySocket }),
        });
        const out = await outputOf(child);
        expect(out.code, out.stderr).to.equal(0);
        const probed = parse(out.stdout, out.stderr);
        expect(probed.platform).to.equal(platform);
        for (const call of ['listenFds', 'isActivated', 'systemdFd', 'httpListen', 'notifyReady'] as const) {
          const outcome = probed[call];
          expect(outcome, call).to.have.property('error');
          const { error } = outcome as { error: { name: string; code: string; message: string } };
          expect(error, call).to.include({ name: 'SystemdError', code: 'ERR_SD_UNSUPPORTED_PLATFORM' });
          expect(error.message, call).to.include('only on Linux').and.include(platform);
        }
        expect(probed.addons).to.deep.equal([]);
        expect(existsSync(notifySocket), 'something was sent or bound').to.equal(false);
      });
    });
  }

  describe('the install script', function () {
    it('does nothing and succeeds outside Linux, where the same package on Linux with no prebuilt binary and no compiler fails', function () {
      // The package without prebuilds/, installed without running its scripts: then run its install script by hand.
      const bare = install({ ignoreScripts: true, tarball: bareTarball(), purpose: 'install-script' });
      const script = join(bare.pkg, 'scripts', 'install.cjs');
      const fake = writeScript(bare.dir, 'fake-platform.cjs', PRELOAD);
      for (const platform of ['darwin', 'win32']) {
        const result = run(process.execPath, ['--require', fake, script], {
          cwd: bare.pkg,
          env: userEnv({ FAKE_PLATFORM: platform, PATH: `${join(bare.dir, 'node_modules', '.bin')}:${userEnv().PATH}` }),
          check: false,
          input: '',
        });
        expect(result.status, `${platform}: ${result.stderr}`).to.equal(0);
        expect(result.stdout + result.stderr, platform).to.equal('');
      }
      const onLinux = run(process.execPath, [script], {
        cwd: bare.pkg,
        env: userEnv({ PATH: `${join(bare.dir, 'node_modules', '.bin')}:${userEnv().PATH}` }),
        check: false,
      });
      expect(onLinux.status, 'on Linux it tries to build from source').to.not.equal(0);
      expect(onLinux.stdout + onLinux.stderr).to.match(/gyp/);
      expect(existsSync(join(bare.pkg, 'build', 'Release')), 'nothing was built').to.equal(false);
    });
  });
});
