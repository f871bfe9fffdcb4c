import { expect } from 'chai';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { outputOf, spawnActivated } from '../support/activated-child.js';
import { SocketSet } from '../support/sockets.js';
import {
  BUILD_TOOLS,
  PREBUILDS,
  PROBE,
  activatedEnv,
  bareTarball,
  install,
  manifest,
  node,
  noCompilerBin,
  pack,
  parseProbe,
  root,
  run,
  userEnv,
  writeScript,
  type Installed,
  type ProbeResult,
} from './support.js';

/** Runs the probe in the consumer project, not activated. */
function probe(consumer: Installed): ProbeResult {
  const script = writeScript(consumer.dir, 'probe.mjs', PROBE);
  const result = node(consumer.dir, [script]);
  expect(result.status, result.stderr).to.equal(0);
  return parseProbe(result.stdout, result.stderr);
}

/** Runs the probe activated the way systemd does it: a listening TCP socket at fd 3 named "web". */
async function probeActivated(consumer: Installed, sockets: SocketSet): Promise<{ result: ProbeResult; port: number }> {
  const script = writeScript(consumer.dir, 'probe.mjs', PROBE);
  const { fd, port } = sockets.tcp('127.0.0.1');
  const child = spawnActivated({ fds: [fd], names: ['web'], command: process.execPath, args: [script], env: activatedEnv() });
  const out = await outputOf(child);
  expect(out.code, out.stderr).to.equal(0);
  return { result: parseProbe(out.stdout, out.stderr), port };
}

/** Whether `tool` can be found on the no-compiler PATH. */
function found(tool: string): boolean {
  return run('sh', ['-c', `command -v ${tool}`], { cwd: noCompilerBin(), env: userEnv(), check: false }).status === 0;
}

describe('package: npm pack', function () {
  this.timeout(180_000);

  it('holds the compiled library, its types, the prebuilt binaries and the C sources, and nothing else', function () {
    const { files, size, unpackedSize } = pack();
    const paths = files.map((f) => f.path).sort();
    const allowed = [
      /^package\.json$/,
      /^README\.md$/,
      /^CHANGELOG\.md$/,
      /^LICENSE(\.md)?$/,
      /^dist\/(src|adapters)\/.+\.d\.ts$/,
      /^dist\/pkg\/(cli\/)?[\w-]+\.js$/,
      /^prebuilds\/linux-(x64|arm64)\/sd-activate\.(glibc|musl)\.node$/,
      /^src\/native\/[^/]+\.[ch]$/,
      /^binding\.gyp$/,
      /^scripts\/install\.cjs$/,
    ];
    const unexpected = paths.filter((p) => !allowed.some((re) => re.test(p)));
    expect(unexpected, 'files a user does not need').to.deep.equal([]);
    for (const file of [...PREBUILDS, 'package.json', 'README.md', 'CHANGELOG.md', 'binding.gyp', 'scripts/install.cjs', 'dist/pkg/index.js', 'dist/src/index.d.ts']) {
      expect(paths, file).to.include(file);
    }
    expect(paths.some((p) => /^src\/native\/.+\.c$/.test(p)), 'the C sources, to build where no prebuilt binary fits').to.equal(true);
    // Every module a user imports ships with its declarations (chunks are imported by those, the CLI is run).
    const entryPoints = ['index', 'net', 'dgram', 'http', 'express', 'fastify', 'ws', 'testing'].map((name) => `dist/pkg/${name}.js`);
    for (const js of entryPoints) {
      expect(paths, js).to.include(js);
      const name = js.slice('dist/pkg/'.length).replace(/\.js$/, '.d.ts');
      expect(paths.includes(`dist/src/${name}`) || paths.includes(`dist/adapters/${name}`), `${js} without declarations`).to.equal(true);
    }
    expect(size).to.be.above(0);
    expect(unpackedSize).to.be.above(size);
  });

  it('holds every file the exports map, the bin and the install script name', function () {
    const { files } = pack();
    const paths = new Set(files.map((f) => f.path));
    const own = manifest(root);
    const targets: string[] = [];
    for (const value of Object.values(own.exports)) {
      if (typeof value === 'string') targets.push(value);
      else targets.push(...Object.values(value));
    }
    targets.push(...Object.values(own.bin ?? {}));
    for (const target of targets) expect(paths.has(target.replace(/^\.\//, '')), `${target} is not in the tarball`).to.equal(true);
    expect(own.scripts?.install).to.equal('node scripts/install.cjs');
  });

  it("package-lock.json records package.json's bin (else `npm install` in a clean clone rewrites it)", function () {
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { bin?: Record<string, string> }> };
    const bin = Object.fromEntries(Object.entries(manifest(root).bin ?? {}).map(([name, path]) => [name, path.replace(/^\.\//, '')]));
    expect(lock.packages['']?.bin).to.deep.equal(bin);
  });
});

describe('package: installed with no compiler on PATH', function () {
  this.timeout(300_000);
  const sockets = new SocketSet();
  after(() => sockets.closeAll());

  it('that PATH has node, npm, npx and sh, and no compiler, make or python', function () {
    for (const tool of ['node', 'npm', 'npx', 'sh']) expect(found(tool), tool).to.equal(true);
    for (const tool of BUILD_TOOLS) expect(found(tool), `${tool} is on the no-compiler PATH`).to.equal(false);
    // And npm on it is the npm of this machine, run by this node.
    const version = run('npm', ['--version'], { cwd: noCompilerBin(), env: userEnv() });
    expect(version.stdout.trim()).to.match(/^\d+\.\d+\.\d+/);
  });

  for (const ignoreScripts of [false, true]) {
    const mode = ignoreScripts ? 'with --ignore-scripts' : 'with install scripts';

    describe(mode, function () {
      it('npm install <tarball> succeeds, compiles nothing, and keeps the prebuilt binaries', function () {
        const consumer = install({ ignoreScripts });
        expect(existsSync(join(consumer.pkg, 'package.json'))).to.equal(true);
        expect(existsSync(join(consumer.pkg, 'build')), 'a build/ directory: something was compiled').to.equal(false);
        for (const file of PREBUILDS) expect(existsSync(join(consumer.pkg, file)), file).to.equal(true);
        expect(consumer.log).to.not.match(/gyp (info|ERR)|SOLINK_MODULE|CC\(target\)/);
        // npm prints the install script it ran (--foreground-scripts); with --ignore-scripts there is none.
        if (ignoreScripts) expect(consumer.log).to.not.include('node scripts/install.cjs');
        else expect(consumer.log).to.include('node scripts/install.cjs');
      });

      it("import('sd-activate') works and listenFds() is [] when not activated", function () {
        const result = probe(install({ ignoreScripts }));
        expect(result.error).to.equal(null);
        expect(result.fds).to.deep.equal([]);
        expect(result.node).to.equal(process.version);
      });

      it('a child handed a listening TCP socket at fd 3 sees it described, through the prebuilt binary', async function () {
        const consumer = install({ ignoreScripts });
        const { result, port } = await probeActivated(consumer, sockets);
        expect(result.error).to.equal(null);
        expect(result.fds).to.have.length(1);
        const [listen] = result.fds!;
        expect(listen).to.include({ fd: 3, name: 'web' });
        expect(listen!.info).to.include({ kind: 'socket', family: 'ipv4', type: 'stream', listening: true });
        expect(listen!.info.local).to.include({ address: '127.0.0.1', port });
        expect(listen!.description).to.include(`127.0.0.1:${port}`);
        const loaded = realpathSync(join(consumer.pkg, 'prebuilds', 'linux-x64', 'sd-activate.glibc.node'));
        expect(result.addons).to.deep.equal([loaded]);
      });

      it('the sd-activate command (npx sd-activate) runs a program with a socket, as its README shows', function () {
        const consumer = install({ ignoreScripts });
        const bin = join(consumer.dir, 'node_modules', '.bin', 'sd-activate');
        const result = run(bin, ['run', '-l', 'web=tcp:127.0.0.1:0', '--', bin, 'ls', '--json'], { cwd: consumer.dir, env: userEnv(), check: false });
        expect(result.status, result.stderr).to.equal(0);
        const listed = JSON.parse(result.stdout) as Array<{ fd: number; name: string; kind: string; listening: boolean }>;
        expect(listed).to.have.length(1);
        expect(listed[0]).to.include({ fd: 3, name: 'web', kind: 'socket', listening: true });
      });
    });
  }

  describe('the same tarball without its prebuilt binaries (the control)', function () {
    let bare: string;
    before(function () {
      bare = bareTarball();
    });

    it('fails to install with install scripts: nothing on that PATH can compile the addon', function () {
      const consumer = install({ ignoreScripts: false, tarball: bare, check: false });
      expect(consumer.status, consumer.log).to.not.equal(0);
      expect(consumer.log).to.match(/gyp/);
    });

    it('installs with --ignore-scripts, imports, and a call that needs the addon says why it cannot run', async function () {
      const consumer = install({ ignoreScripts: true, tarball: bare });
      const idle = probe(consumer);
      expect(idle.fds).to.deep.equal([]);
      const { result } = await probeActivated(consumer, sockets);
      expect(result.fds).to.equal(null);
      expect(result.error).to.include({ name: 'SystemdError', code: 'ERR_SD_UNSUPPORTED_PLATFORM' });
      expect(result.error!.message).to.include('linux-x64');
      expect(result.error!.cause).to.include('No native build was found');
      expect(result.addons).to.deep.equal([]);
    });
  });
});
