/**
 * The prebuilt binaries, read statically with file(1) and readelf(1): only the x64 glibc one can run
 * on this machine (the install tests load it); the arm64 and musl ones are checked for what they
 * are, what they link against and what they import, and node-gyp-build is asked which file it
 * picks for each platform, from the inputs it reads there (arch, libc).
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PREBUILDS, install, node, pack, run } from './support.js';

interface Facts {
  file: string;
  needed: string[];
  /** Undefined dynamic symbols, without their version suffix. */
  imports: string[];
  /** GLIBC_x.y versions the imports ask for. */
  glibcVersions: string[];
}

function facts(path: string): Facts {
  const file = run('file', ['-b', path], { cwd: '/' }).stdout.trim();
  const dynamic = run('readelf', ['-W', '-d', path], { cwd: '/' }).stdout;
  const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
  const symbols = run('readelf', ['-W', '--dyn-syms', path], { cwd: '/' }).stdout;
  const imports: string[] = [];
  const glibcVersions = new Set<string>();
  for (const line of symbols.split('\n')) {
    const cols = line.trim().split(/\s+/);
    // Num: Value Size Type Bind Vis Ndx Name [(version index)]
    if (cols.length < 8 || cols[6] !== 'UND' || !cols[7]) continue;
    const [name, version] = cols[7].split('@');
    imports.push(name!);
    if (version?.startsWith('GLIBC_')) glibcVersions.add(version.slice('GLIBC_'.length));
  }
  return { file, needed, imports: [...new Set(imports)].sort(), glibcVersions: [...glibcVersions] };
}

function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

/** What the addon may take from Node: Node-API (and libuv, whose ABI is stable across Node majors). */
const FROM_NODE = /^(napi_|uv_)/;
/** What every ELF shared object may import weakly from the C runtime's start files. */
const CRT_WEAK = new Set(['_ITM_deregisterTMCloneTable', '_ITM_registerTMCloneTable', '__cxa_finalize', '__gmon_start__']);

/** The newest glibc the glibc builds may require (Debian 12, Ubuntu 22.04 and RHEL 9 have 2.34 or later). */
const NEWEST_GLIBC = '2.34';

describe('package: prebuilt binaries (checked with file and readelf)', function () {
  this.timeout(120_000);
  let prebuilt: (file: string) => string;

  before(function () {
    const { files } = pack();
    for (const file of PREBUILDS) expect(files.map((f) => f.path), file).to.include(file);
    const consumer = install({ ignoreScripts: true });
    prebuilt = (file) => join(consumer.pkg, file);
  });

  function expectNodeApiOnly(f: Facts, libc: Set<string> | null): void {
    const fromNode = f.imports.filter((s) => FROM_NODE.test(s));
    expect(fromNode.length, 'Node-API functions').to.be.above(10);
    const rest = f.imports.filter((s) => !FROM_NODE.test(s) && !CRT_WEAK.has(s));
    // Nothing from V8 or Node's C++ internals (mangled _Z... names), which would tie the binary to one Node ABI.
    expect(rest.filter((s) => s.startsWith('_Z'))).to.deep.equal([]);
    if (libc) expect(rest.filter((s) => !libc.has(s)), 'imports the C library does not define').to.deep.equal([]);
  }

  it('linux-x64 glibc: an x86-64 shared object that needs only libc.so.6, glibc <= 2.34, and Node-API', function () {
    const f = facts(prebuilt('prebuilds/linux-x64/sd-activate.glibc.node'));
    expect(f.file).to.match(/^ELF 64-bit LSB shared object, x86-64\b/);
    expect(f.needed).to.deep.equal(['libc.so.6']);
    expect(f.glibcVersions.length).to.be.above(0);
    for (const v of f.glibcVersions) expect(compareVersions(v, NEWEST_GLIBC), `GLIBC_${v}`).to.be.at.most(0);
    expectNodeApiOnly(f, null);
  });

  it('linux-arm64 glibc: an AArch64 shared object that needs only libc.so.6, glibc <= 2.34, and Node-API', function () {
    const f = facts(prebuilt('prebuilds/linux-arm64/sd-activate.glibc.node'));
    expect(f.file).to.match(/^ELF 64-bit LSB shared object, ARM aarch64\b/);
    expect(f.needed).to.deep.equal(['libc.so.6']);
    expect(f.glibcVersions.length).to.be.above(0);
    for (const v of f.glibcVersions) expect(compareVersions(v, NEWEST_GLIBC), `GLIBC_${v}`).to.be.at.most(0);
    expectNodeApiOnly(f, null);
  });

  it("linux-x64 musl: an x86-64 shared object whose every C import musl's libc defines, with no glibc symbol versions", function () {
    const f = facts(prebuilt('prebuilds/linux-x64/sd-activate.musl.node'));
    expect(f.file).to.match(/^ELF 64-bit LSB shared object, x86-64\b/);
    // musl's dynamic linker resolves libc.so (and librt.so) to itself.
    expect(f.needed).to.deep.equal(['libc.so']);
    expect(f.glibcVersions).to.deep.equal([]);
    const muslLibc = '/lib/x86_64-linux-musl/libc.so';
    expect(existsSync(muslLibc), `${muslLibc} (Debian package musl)`).to.equal(true);
    const exported = run('readelf', ['-W', '--dyn-syms', muslLibc], { cwd: '/' })
      .stdout.split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((cols) => cols.length >= 8 && cols[6] !== 'UND')
      .map((cols) => cols[7]!.split('@')[0]!);
    expectNodeApiOnly(f, new Set(exported));
  });

  describe('which file node-gyp-build picks, asked with the arch and libc it reads on each platform', function () {
    function pick(env: Record<string, string>): { file: string | null; error: string } {
      const consumer = install({ ignoreScripts: true });
      const result = node(consumer.dir, ['-e', "process.stdout.write(require('node-gyp-build').resolve(process.argv[1]))", consumer.pkg], env);
      return { file: result.status === 0 ? result.stdout.slice(consumer.pkg.length + 1) : null, error: result.stderr };
    }

    it('linux x64 glibc (this machine): the glibc build', function () {
      expect(pick({}).file).to.equal('prebuilds/linux-x64/sd-activate.glibc.node');
    });

    it('linux x64 musl (Alpine): the musl build', function () {
      expect(pick({ LIBC: 'musl' }).file).to.equal('prebuilds/linux-x64/sd-activate.musl.node');
    });

    it('linux arm64 glibc: the arm64 build', function () {
      expect(pick({ npm_config_arch: 'arm64' }).file).to.equal('prebuilds/linux-arm64/sd-activate.glibc.node');
    });

    it('linux arm64 musl and linux riscv64: none, and the error says what was looked for', function () {
      const arm64Musl = pick({ npm_config_arch: 'arm64', LIBC: 'musl' });
      expect(arm64Musl.file).to.equal(null);
      expect(arm64Musl.error).to.include('No native build was found for platform=linux arch=arm64');
      const riscv = pick({ npm_config_arch: 'riscv64' });
      expect(riscv.file).to.equal(null);
      expect(riscv.error).to.include('arch=riscv64');
    });
  });
});
