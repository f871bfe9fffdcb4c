#!/usr/bin/env node
// Builds the prebuilt Node-API binaries that ship in the package, with prebuildify:
//
//   prebuilds/linux-x64/sd-activate.glibc.node     the host compiler
//   prebuilds/linux-arm64/sd-activate.glibc.node   cross-compiled with Debian's gcc-aarch64-linux-gnu
//   prebuilds/linux-x64/sd-activate.musl.node      Debian's musl-tools (musl-gcc)
//
// One binary per platform serves every Node version: the addon uses Node-API (NAPI_VERSION 8) only.
// node-gyp-build picks the file at run time by platform, arch and libc tag.
//
// Each target is built in its own staging copy of binding.gyp and src/native, so the work tree's
// build/ (what `npm install` compiled for development) is never touched, and a cross-compiled
// binary can never end up where node-gyp-build would load it first.
//
// usage: node scripts/build-prebuilds.mjs [target ...]     (default: every target; on an x64 Linux host)
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/** ELF e_machine values of the architectures built here. */
const EM = { x64: 62, arm64: 183 };

const TARGETS = [
  { id: 'linux-x64-glibc', arch: 'x64', libc: 'glibc', tools: {}, strip: 'strip', apt: 'gcc' },
  {
    id: 'linux-arm64-glibc',
    arch: 'arm64',
    libc: 'glibc',
    tools: { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-gcc', LINK: 'aarch64-linux-gnu-gcc', AR: 'aarch64-linux-gnu-ar' },
    strip: 'aarch64-linux-gnu-strip',
    apt: 'gcc-aarch64-linux-gnu',
  },
  {
    id: 'linux-x64-musl',
    arch: 'x64',
    libc: 'musl',
    // There is no C++ in the addon; musl-gcc links too, so the module's only libc is musl's.
    tools: { CC: 'musl-gcc', CXX: 'musl-gcc', LINK: 'musl-gcc' },
    strip: 'strip',
    apt: 'musl-tools',
  },
];

function fail(message) {
  console.error(`build-prebuilds: ${message}`);
  process.exit(1);
}

function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
}

/** Node's headers (node_api.h, common.gypi): given, or those of the running node's own install. */
function nodeHeaders() {
  const candidates = [process.env.npm_config_nodedir, resolve(dirname(process.execPath), '..')].filter(Boolean);
  for (const dir of candidates) {
    if (existsSync(join(dir, 'include', 'node', 'node_api.h')) && existsSync(join(dir, 'include', 'node', 'common.gypi'))) return dir;
  }
  fail(`Node's headers were not found in ${candidates.join(' or ')}; set npm_config_nodedir to a directory with include/node/node_api.h`);
}

/** node-gyp: the one npm brings along (npm sets npm_config_node_gyp for scripts), else npm's own copy. */
function nodeGyp() {
  const given = process.env.npm_config_node_gyp;
  if (given && existsSync(given)) return given;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const npm = join(dir, 'npm');
    if (!dir || !existsSync(npm)) continue;
    const cli = realpathSync(npm); // .../npm/bin/npm-cli.js
    const bundled = join(dirname(cli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(bundled)) return bundled;
  }
  fail('node-gyp was not found: run this through npm (npm run build:prebuilds), or set npm_config_node_gyp');
}

/** Reads the ELF header: class, type and machine are enough to tell a wrong build from a right one. */
function elfHeader(file) {
  const b = readFileSync(file);
  if (b.length < 20 || b.readUInt32BE(0) !== 0x7f454c46) return null;
  return { class64: b[4] === 2, littleEndian: b[5] === 1, type: b.readUInt16LE(16), machine: b.readUInt16LE(18) };
}

function build(target, headers, gyp, version, outRoot) {
  for (const tool of [target.tools.CC ?? 'cc', target.strip]) {
    if (!onPath(tool)) fail(`${target.id} needs ${tool} (Debian package ${target.apt}); install it or name the targets to build`);
  }
  const stage = mkdtempSync(join(tmpdir(), `sd-activate-prebuild-${target.id}-`));
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    cpSync(join(root, 'binding.gyp'), join(stage, 'binding.gyp'));
    cpSync(join(root, 'src', 'native'), join(stage, 'src', 'native'), { recursive: true });
    // prebuildify names the file after the package: sd-activate.<libc>.node
    cpSync(join(root, 'package.json'), join(stage, 'package.json'));
    const args = [
      require.resolve('prebuildify/bin.js'),
      '--napi',
      `--target=${version}`,
      `--arch=${target.arch}`,
      `--tag-libc=${target.libc}`,
      '--strip',
      `--strip-bin=${target.strip}`,
      `--cwd=${stage}`,
      `--out=${stage}`,
    ];
    const env = { ...process.env, ...target.tools, npm_config_nodedir: headers, PREBUILD_NODE_GYP: gyp };
    for (const key of ['npm_config_arch', 'npm_config_platform', 'npm_config_target', 'npm_config_build_from_source']) delete env[key];
    const started = process.hrtime.bigint();
    const run = spawnSync(process.execPath, args, { cwd: stage, env, encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (run.status !== 0) {
      process.stderr.write(run.stdout + run.stderr);
      fail(`${target.id}: prebuildify exited with ${run.status ?? run.signal}`);
    }
    const dir = join(stage, 'prebuilds', `linux-${target.arch}`);
    const file = join(dir, `${pkg.name}.${target.libc}.node`);
    if (!existsSync(file)) fail(`${target.id}: prebuildify did not produce ${file} (it made: ${readdirSync(dir).join(', ')})`);
    const elf = elfHeader(file);
    if (!elf || !elf.class64 || !elf.littleEndian || elf.type !== 3 || elf.machine !== EM[target.arch]) {
      fail(`${target.id}: ${file} is not a 64-bit little-endian shared object for ${target.arch}: ${JSON.stringify(elf)}`);
    }
    const dest = join(outRoot, 'prebuilds', `linux-${target.arch}`);
    mkdirSync(dest, { recursive: true });
    cpSync(file, join(dest, `${pkg.name}.${target.libc}.node`));
    const described = spawnSync('file', ['-b', file], { encoding: 'utf8' });
    console.log(
      `${target.id}: prebuilds/linux-${target.arch}/${pkg.name}.${target.libc}.node, ${statSync(file).size} bytes, ${ms.toFixed(0)} ms` +
        (described.status === 0 ? `\n  ${described.stdout.trim()}` : ''),
    );
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

const wanted = process.argv.slice(2);
for (const id of wanted) if (!TARGETS.some((t) => t.id === id)) fail(`unknown target ${id}; targets: ${TARGETS.map((t) => t.id).join(', ')}`);
if (process.platform !== 'linux' || process.arch !== 'x64') fail(`prebuilds are made on an x64 Linux host (this is ${process.platform}-${process.arch})`);

const selected = wanted.length ? TARGETS.filter((t) => wanted.includes(t.id)) : TARGETS;
const headers = nodeHeaders();
const gyp = nodeGyp();
if (!wanted.length) rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
for (const target of selected) build(target, headers, gyp, process.versions.node, root);
