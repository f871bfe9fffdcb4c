// npm run bench: time from process start to the first served request, through sd-activate and
// through the hand-written floor (`server.listen({ fd: 3 })`), alternating in the same run.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { closeFd, openSocket } from '../src/shared/open-socket.js';
import { portOf } from '../test/support/sockets.js';
import { outputOf, spawnActivated } from '../test/support/activated-child.js';
import { fmt, medianInterval, summary } from './support/stats.js';

// 100 rounds: the 95% interval of the median added time is about +-0.6 ms at the host's usual speed.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 100);
const fixture = (name: string): string => fileURLToPath(new URL(`../../bench/fixtures/${name}`, import.meta.url));

// The floor importing an empty package the way a service imports sd-activate (a name that Node
// resolves through node_modules and an "exports" map): what Node charges for any such package,
// printed beside the library's figure so that the two can be told apart. Not subtracted.
const probeDir = mkdtempSync(join(tmpdir(), 'sd-activate-startup-'));
mkdirSync(join(probeDir, 'node_modules', 'empty-package'), { recursive: true });
writeFileSync(join(probeDir, 'package.json'), '{ "type": "module" }');
writeFileSync(
  join(probeDir, 'node_modules', 'empty-package', 'package.json'),
  JSON.stringify({ name: 'empty-package', type: 'module', exports: { '.': { types: './index.d.ts', default: './index.js' }, './package.json': './package.json' } }),
);
writeFileSync(join(probeDir, 'node_modules', 'empty-package', 'index.js'), 'export const nothing = 0;\n');
writeFileSync(
  join(probeDir, 'empty-package.js'),
  "import http from 'node:http';\nimport { nothing } from 'empty-package';\n" +
    "const server = http.createServer((req, res) => { res.end('ok'); if (process.env.BENCH_ONE_REQUEST) server.close(); });\n" +
    'server.listen({ fd: 3 + nothing });\n',
);
const programs = { floor: fixture('floor.js'), 'sd-activate': fixture('activated-hello.js'), 'empty package': join(probeDir, 'empty-package.js') };

function request(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
    }).on('error', reject);
  });
}

async function once(program: string): Promise<number> {
  const fd = openSocket({ type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 } });
  try {
    const port = portOf(fd);
    const start = performance.now();
    const child = spawnActivated({ fds: [fd], names: ['http'], command: process.execPath, args: [program], env: { BENCH_ONE_REQUEST: '1' } });
    const exited = outputOf(child);
    // The socket already listens: the connection waits in the backlog until the child serves it.
    const body = await request(port);
    const elapsed = performance.now() - start;
    const { code, stderr } = await exited;
    if (body !== 'ok' || code !== 0) throw new Error(`${program}: body ${JSON.stringify(body)}, exit ${code}: ${stderr}`);
    return elapsed;
  } finally {
    closeFd(fd);
  }
}

const samples: Record<string, number[]> = { floor: [], 'sd-activate': [], 'empty package': [] };
try {
  // One warm-up each, so the first run does not pay for a cold page cache.
  for (const program of Object.values(programs)) await once(program);
  // Each round starts with another program, so that no program always runs first (or right
  // after the same other one): a position in the round may be slower, and that must not be
  // charged to one program.
  const order = Object.entries(programs);
  for (let i = 0; i < ROUNDS; i++) {
    for (let j = 0; j < order.length; j++) {
      const [name, program] = order[(i + j) % order.length]!;
      samples[name]!.push(await once(program));
    }
  }
} finally {
  rmSync(probeDir, { recursive: true, force: true });
}

const floor = summary(samples.floor!);
const ours = summary(samples['sd-activate']!);
const empty = summary(samples['empty package']!);
// Each round runs the three programs back to back, so a busy moment of the host slows all three:
// the median of the per-round differences is the steadier figure on a shared machine. The
// difference of the medians is printed beside it.
const differences = (name: string): number[] => samples[name]!.map((ms, i) => ms - samples.floor![i]!);
const added = summary(differences('sd-activate'));
const addedInterval = medianInterval(differences('sd-activate'));
const emptyAdded = summary(differences('empty package'));
console.log(`start-up to first served request (${ROUNDS} alternating rounds, node ${process.version})`);
console.log(`  floor: server.listen({ fd: 3 }) by hand   median ${fmt(floor.median)}  (p25 ${fmt(floor.p25)}, p75 ${fmt(floor.p75)})`);
console.log(`  sd-activate: listen(systemdFd('http'))   median ${fmt(ours.median)}  (p25 ${fmt(ours.p25)}, p75 ${fmt(ours.p75)})`);
console.log(
  `  added by sd-activate: ${fmt(added.median)} (median of the rounds' differences, 95% interval ${fmt(addedInterval.low)} to ${fmt(addedInterval.high)}; ` +
    `p25 ${fmt(added.p25)}, p75 ${fmt(added.p75)}; difference of the medians ${fmt(ours.median - floor.median)}; budget 5 ms)  ratio ${(ours.median / floor.median).toFixed(3)}`,
);
console.log(
  `  for comparison, the floor importing an empty package from node_modules: +${fmt(emptyAdded.median)} ` +
    `(difference of the medians +${fmt(empty.median - floor.median)}; Node's own cost of resolving and loading a package; included above, not subtracted)`,
);
