// npm run bench:handover: how long passing N idle TCP connections from one process to another
// takes (batches of 253 fds over the seqpacket channel: pause, fds, held, release, new sockets),
// next to an anchor measured in the same run: the time the old process took to accept the same N
// connections. Then every client sends a line, which must be answered by the new process, and no
// client may have seen a FIN or a reset.
//
// Goals on the 2-core machine: 1,000 connections in under 100 ms, 10,000 in under 1 s.
//
//   BENCH_SIZES (1000,10000)   connection counts
//   BENCH_ROUNDS (5)           rounds per count (fresh processes each); the median is printed
//   BENCH_CPU_PROF (unset)     a directory: the new process of each round writes a --cpu-prof profile there
import { cpus, loadavg } from 'node:os';
import { GOALS, handoverReport, round, type Round } from './support/handover-round.js';

const SIZES = (process.env.BENCH_SIZES ?? '1000,10000').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

let failed = false;
console.log(`connection hand-over, ${ROUNDS} rounds per count (Node ${process.version}, load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores); medians [p25, p75]\n`);
for (const count of SIZES) {
  const rounds: Round[] = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await round(count));
  const { correct, medianMs } = handoverReport(count, rounds);
  const goal = GOALS[count];
  if (!correct || (goal !== undefined && medianMs >= goal)) failed = true;
}
console.log(`load average at the end: ${loadavg()[0]!.toFixed(1)}`);
process.exit(failed ? 1 : 0);
