// npm run bench: time from process start to the first served request, through sd-activate and
// through the hand-written floor (`server.listen({ fd: 3 })`), alternating in the same run.
import { get } from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { closeFd, openSocket } from '../src/open-socket.js';
import { portOf } from '../test/support/sockets.js';
import { outputOf, spawnActivated } from '../test/support/activated-child.js';
import { fmt, summary } from './support/stats.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 30);
const fixture = (name: string): string => fileURLToPath(new URL(`../../bench/fixtures/${name}`, import.meta.url));
const programs = { floor: fixture('floor.js'), 'sd-activate': fixture('activated-hello.js') };

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

const samples: Record<string, number[]> = { floor: [], 'sd-activate': [] };
// One warm-up each, so the first run does not pay for a cold page cache.
await once(programs.floor);
await once(programs['sd-activate']);
for (let i = 0; i < ROUNDS; i++) {
  for (const [name, program] of Object.entries(programs)) samples[name]!.push(await once(program));
}

const floor = summary(samples.floor!);
const ours = summary(samples['sd-activate']!);
console.log(`start-up to first served request (${ROUNDS} alternating rounds, node ${process.version})`);
console.log(`  floor: server.listen({ fd: 3 }) by hand   median ${fmt(floor.median)}  (p25 ${fmt(floor.p25)}, p75 ${fmt(floor.p75)})`);
console.log(`  sd-activate: listen(systemdFd('http'))   median ${fmt(ours.median)}  (p25 ${fmt(ours.p25)}, p75 ${fmt(ours.p75)})`);
console.log(`  added by sd-activate: ${fmt(ours.median - floor.median)} (median difference; budget 5 ms)  ratio ${(ours.median / floor.median).toFixed(3)}`);
