/**
 * The exports map of the installed package, one subpath at a time, each in a process of its own:
 * what it exports, from `import` and from `require`, that importing it does nothing else
 * (`sideEffects: false`), and that the manifest says what the files are.
 */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { basename, join, relative } from 'node:path';
import { install, manifest, moduleSubpaths, node, specifier, writeScript } from './support.js';

/** What each subpath must export (at least, for `.` and `./testing`; exactly, for the adapters). */
const EXPECTED: Record<string, { names: string[]; exact: boolean }> = {
  '.': {
    names: ['InetAddress', 'LISTEN_FDS_START', 'ListenFd', 'SystemdError', 'describeFdInfo', 'formatAddress', 'isActivated', 'listenFds', 'parseListenEnvironment', 'systemdFd', 'systemdFds'],
    exact: false,
  },
  './net': { names: ['connection', 'listen'], exact: true },
  './dgram': { names: ['bind'], exact: true },
  './http': { names: ['listen', 'listenHttp2', 'listenHttps'], exact: true },
  './express': { names: ['listen'], exact: true },
  './fastify': { names: ['listen'], exact: true },
  './ws': { names: ['handOverWebSockets'], exact: true },
  './testing': { names: ['startService', 'stopAll'], exact: false },
};

/** Everything a module could change in a process just by being imported. */
const SNAPSHOT = `
function snapshot() {
  const events = ['exit', 'beforeExit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'uncaughtException', 'unhandledRejection', 'warning', 'message'];
  return {
    globals: Object.getOwnPropertyNames(globalThis).sort(),
    listeners: Object.fromEntries(events.map((e) => [e, process.listenerCount(e)])),
    // Handles and timers; requests (CloseReq, FSReqCallback, ...) come and go with module loading itself.
    resources: process.getActiveResourcesInfo().filter((name) => !/Req(Callback|Promise)?$/.test(name)).sort(),
    env: { ...process.env },
    addons: process.report.getReport().sharedObjects.filter((file) => file.endsWith('.node')),
    exitCode: process.exitCode ?? null,
    cwd: process.cwd(),
  };
}
`;

interface ImportProbe {
  names: string[];
  kinds: Record<string, string>;
  before: unknown;
  after: unknown;
}

function importProbe(dir: string, spec: string): { probe: ImportProbe; stderr: string } {
  const script = writeScript(
    dir,
    'import-probe.mjs',
    `${SNAPSHOT}
const tick = () => new Promise((resolve) => setImmediate(resolve));
// Their pipe handles open on first use, wherever that is: open them before the first snapshot.
process.stdout;
process.stderr;
await tick();
const before = snapshot();
const m = await import(process.argv[2]);
await tick();
const after = snapshot();
const names = Object.keys(m).sort();
console.log(JSON.stringify({ names, kinds: Object.fromEntries(names.map((n) => [n, typeof m[n]])), before, after }));
`,
  );
  const result = node(dir, [script, spec]);
  expect(result.status, `import('${spec}') failed: ${result.stderr}`).to.equal(0);
  return { probe: JSON.parse(result.stdout) as ImportProbe, stderr: result.stderr };
}

/** The files npm put in node_modules/sd-activate. */
function shippedFiles(pkg: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (entry === 'node_modules') continue;
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(pkg, path));
    }
  };
  walk(pkg);
  return out;
}

/** The package a bare specifier names: `@scope/name` or `name`. */
function packageOf(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

describe('package: each subpath of the exports map, in a process of its own', function () {
  this.timeout(180_000);
  let consumer: { dir: string; pkg: string };
  let subpaths: string[];

  before(function () {
    consumer = install({ ignoreScripts: false });
    subpaths = moduleSubpaths(consumer.pkg);
  });

  it('the map has the subpaths the package documents', function () {
    expect(subpaths).to.include.members(Object.keys(EXPECTED));
  });

  it('every subpath imports with no warning, exports what it should, and does nothing else on import', function () {
    for (const subpath of subpaths) {
      const spec = specifier(subpath);
      const { probe, stderr } = importProbe(consumer.dir, spec);
      expect(stderr, `${spec} printed`).to.equal('');
      const expected = EXPECTED[subpath];
      if (expected?.exact) expect(probe.names, spec).to.deep.equal(expected.names);
      else if (expected) expect(probe.names, spec).to.include.members(expected.names);
      expect(probe.names.length, `${spec} exports nothing`).to.be.above(0);
      for (const [name, kind] of Object.entries(probe.kinds)) expect(kind, `${spec} ${name}`).to.not.equal('undefined');
      // sideEffects: false, and the addon loads only when a call needs it.
      expect(probe.after, `importing ${spec} changed the process`).to.deep.equal(probe.before);
    }
  });

  it('every subpath loads with require() too (Node 20.19+ loads ES modules synchronously), with the same exports', function () {
    for (const subpath of subpaths) {
      const spec = specifier(subpath);
      const esm = importProbe(consumer.dir, spec).probe.names;
      const cjs = node(consumer.dir, ['-e', 'console.log(JSON.stringify(Object.keys(require(process.argv[1])).sort()))', spec]);
      expect(cjs.status, `require('${spec}') failed: ${cjs.stderr}`).to.equal(0);
      expect(JSON.parse(cjs.stdout), spec).to.deep.equal(esm);
    }
  });

  it("a SystemdError thrown by sd-activate/testing's own copy of the library is instanceof the main entry's", function () {
    // The testing bundle opens its notify socket through its own copy of the addon loader (one
    // loaded addon per install is shared), and rejects with its own copy of SystemdError.
    const script = writeScript(
      consumer.dir,
      'instanceof-probe.mjs',
      `import { SystemdError } from 'sd-activate';
import { NotifyReceiver } from 'sd-activate/testing';
const receiver = new NotifyReceiver('@sd-activate-instanceof-' + process.pid);
const waiting = receiver.receive({ timeoutMs: 10000 });
receiver.close();
const error = await waiting.then(() => null, (e) => e);
console.log(JSON.stringify({ code: error?.code, same: error instanceof SystemdError, plain: new Error('x') instanceof SystemdError }));
`,
    );
    const result = node(consumer.dir, [script]);
    expect(result.status, result.stderr).to.equal(0);
    expect(JSON.parse(result.stdout)).to.deep.equal({ code: 'ERR_SD_NOTIFY_RECEIVER_CLOSED', same: true, plain: false });
  });

  it('a subpath outside the map is refused, as the map intends', function () {
    const result = node(consumer.dir, ['--input-type=module', '-e', "await import('sd-activate/dist/src/native/addon.js')"]);
    expect(result.status).to.not.equal(0);
    expect(result.stderr).to.include('ERR_PACKAGE_PATH_NOT_EXPORTED');
  });
});

describe('package: the manifest', function () {
  this.timeout(180_000);
  let pkgDir: string;
  let pkg: ReturnType<typeof manifest>;

  before(function () {
    pkgDir = install({ ignoreScripts: false }).pkg;
    pkg = manifest(pkgDir);
  });

  it('puts "types" first in every exports entry, and every file it names is there', function () {
    for (const [subpath, value] of Object.entries(pkg.exports)) {
      if (typeof value === 'string') {
        expect(subpath, `${subpath} maps to a bare file`).to.equal('./package.json');
        expect(existsSync(join(pkgDir, value))).to.equal(true);
        continue;
      }
      expect(Object.keys(value)[0], `${subpath}: the first condition`).to.equal('types');
      expect(value.types, subpath).to.match(/\.d\.ts$/);
      expect(Object.keys(value), subpath).to.include('default');
      for (const target of Object.values(value)) expect(existsSync(join(pkgDir, target)), `${subpath}: ${target}`).to.equal(true);
      // The code is the bundle of the module whose declarations tsc wrote.
      expect(value.default, subpath).to.match(/^\.\/dist\/pkg\//);
      expect(basename(value.types!, '.d.ts'), subpath).to.equal(basename(value.default!, '.js'));
    }
  });

  it('declares sideEffects: false, ESM, Node >= 20.19, and no "os" restriction (it installs and imports everywhere)', function () {
    expect(pkg.sideEffects).to.equal(false);
    expect((pkg as { type?: string }).type).to.equal('module');
    expect(pkg.engines?.node).to.equal('>=20.19');
    expect(pkg.os).to.equal(undefined);
  });

  it('every runtime dependency is used by the shipped code, and the shipped code imports nothing else', function () {
    const used = new Set<string>();
    for (const file of shippedFiles(pkgDir).filter((f) => /\.(c|m)?js$/.test(f))) {
      // Comments hold usage examples, not imports.
      const source = readFileSync(join(pkgDir, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
      for (const m of source.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|\bcreateRequire\([^)]*\)\s*\(\s*)['"]([^'"]+)['"]/g)) {
        const spec = m[1]!;
        if (spec.startsWith('.') || spec.startsWith('/') || isBuiltin(spec)) continue;
        used.add(packageOf(spec));
      }
    }
    const dependencies = Object.keys(pkg.dependencies ?? {});
    const peers = Object.keys(pkg.peerDependencies ?? {});
    used.delete(pkg.name); // a self-reference goes through the exports map
    expect([...used].filter((name) => !dependencies.includes(name) && !peers.includes(name)), 'imported but not a dependency').to.deep.equal([]);
    expect(dependencies.filter((name) => !used.has(name)), 'dependencies nothing imports').to.deep.equal([]);
    // Peers are optional: express and fastify are needed only by their adapters.
    for (const peer of peers) expect(pkg.peerDependenciesMeta?.[peer]?.optional, peer).to.equal(true);
  });
});
