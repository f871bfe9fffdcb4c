#!/usr/bin/env node
// The Debian packages the test suite needs beyond Node and a C compiler, and their installation:
// `npm test` runs this first (its pretest script). When every package is installed it prints
// nothing. When some are missing it installs them with apt-get if it runs as root, saying so in one
// line; otherwise it stops, before anything is built or run, with one message naming them and the
// command that installs them. This list is the only place that names them.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';

/** Each package, with what the suite needs it for. */
const DEBIAN_TEST_PACKAGES = {
  'libsystemd-dev': "the C harnesses that compare sd-activate with libsystemd's own functions",
  systemd: 'the real user manager the end-to-end tests start (not as PID 1), systemd-socket-activate',
  socat: 'talks to the sockets the end-to-end tests and the examples pass',
  curl: "the README's and the examples' own commands",
  'gcc-aarch64-linux-gnu': 'cross-compiles the linux-arm64 prebuilt binary',
  'musl-tools': 'musl-gcc, for the linux-x64 musl prebuilt binary',
  file: 'checks the prebuilt binaries',
  binutils: 'readelf, checks the prebuilt binaries',
  'qemu-user': 'runs Node.js for arm64 on the arm64 binary',
  'libstdc++6-arm64-cross': "Node.js for arm64's C++ library, under qemu-user",
  // The programs the conformance suite (test/conformance) runs under both managers.
  dbus: 'dbus-daemon --address=systemd: and dbus-send',
  'redis-server': 'redis-server --supervised systemd',
  'python3-gunicorn': 'gunicorn, Type=notify on a passed socket',
  'python3-systemd': 'systemd.daemon, as python services use it',
  lighttpd: 'server.systemd-socket-activation',
  'openssh-server': 'sshd -i, inetd style (Accept=yes, StandardInput=socket)',
  unbound: "use-systemd: yes (LISTEN_FDS only when sd_booted())",
  'knot-resolver': 'kresd, Type=notify with a watchdog',
  'php-fpm': 'Type=notify with periodic STATUS=',
};

/**
 * The daemons' packages must not start or enable them on the machine that runs the tests: while
 * apt-get installs, a policy-rc.d refuses every action (exit 101), unless one is there already.
 */
const POLICY = '/usr/sbin/policy-rc.d';

/** The packages of `names` that dpkg does not report as installed; null when there is no dpkg. */
function missing(names) {
  const query = spawnSync('dpkg-query', ['-W', '-f=${Package} ${Status}\\n', ...names], { encoding: 'utf8' });
  if (query.error) return null;
  const installed = new Set(
    query.stdout
      .split('\n')
      .filter((line) => line.endsWith(' install ok installed'))
      .map((line) => line.split(' ')[0].replace(/:.*$/, '')),
  );
  return names.filter((name) => !installed.has(name));
}

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

const names = Object.keys(DEBIAN_TEST_PACKAGES);
const absent = missing(names);
if (absent === null || absent.length > 0) {
  const list = absent ?? names;
  const command = `apt-get install -y ${list.join(' ')}`;
  const root = process.getuid?.() === 0;
  if (absent === null || !root || !has('apt-get')) {
    const why = absent === null ? 'and there is no dpkg-query to check them (not Debian?)' : 'which are not installed';
    const how = root ? 'Install them with' : 'Install them as root with';
    console.error(`npm test: the test suite needs these Debian packages, ${why}: ${list.join(', ')}. ${how}: ${command}`);
    process.exit(1);
  }
  console.error(`npm test: installing the Debian packages the test suite needs: ${command}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const ownPolicy = !existsSync(POLICY);
  if (ownPolicy) writeFileSync(POLICY, '#!/bin/sh\n# Left by sd-activate\'s scripts/test-deps.mjs while it installs: no daemon is started.\nexit 101\n', { mode: 0o755 });
  process.on('exit', () => {
    if (ownPolicy) rmSync(POLICY, { force: true });
  });
  // Waits for the dpkg lock when another apt-get holds it, rather than failing at once.
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  for (const args of [[...lock, 'update', '-qq'], [...lock, 'install', '-y', '-qq', ...list]]) {
    const result = spawnSync('apt-get', args, { env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    if (result.status !== 0) {
      process.stderr.write(result.stderr ?? '');
      console.error(`npm test: apt-get ${args.slice(lock.length).join(' ')} failed (${result.status ?? result.signal}); install the packages with: ${command}`);
      process.exit(1);
    }
  }
}
