import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { native } from '../../src/native/addon.js';
import { fmt, summary } from './stats.js';

/*
 * One round of `npm run bench:handover` (also run by `npm run bench:upgrade`): an old process
 * with N idle TCP clients hands them all over to a new one (bench/fixtures/handover-side.ts),
 * timed from the old one's start to the new one's last socket, beside the anchor of the same
 * round: the time the old process took to accept them. Then each client sends a line, which the
 * new process must answer, and no client may have seen a FIN or a reset.
 */

const SIDE = fileURLToPath(new URL('../fixtures/handover-side.js', import.meta.url));

/** Goals on the 2-core machine, in ms: 1,000 connections in under 100 ms, 10,000 in under 1 s. */
export const GOALS: Readonly<Record<number, number>> = { 1000: 100, 10000: 1000 };

type Event = Record<string, number | boolean>;

function side(args: string[], channel: number): { child: ChildProcess; next: (key: string, timeoutMs?: number) => Promise<Event>; events: Event[] } {
  const child = spawn(process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []), SIDE, ...args], { stdio: ['pipe', 'pipe', 'inherit', channel] });
  const events: Event[] = [];
  let wake: (() => void) | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    events.push(JSON.parse(line) as Event);
    wake?.();
  });
  const next = async (key: string, timeoutMs = 60_000): Promise<Event> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = events.findIndex((e) => key in e);
      if (at !== -1) return events.splice(at, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`no ${key} from ${args[0]} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  };
  return { child, next, events };
}

export interface Round {
  acceptMs: number;
  sendMs: number;
  endToEndMs: number;
  answeredByNew: number;
  brokenClients: number;
}

export async function round(count: number): Promise<Round> {
  const [a, b] = native().seqpacketPair();
  const old = side(['old', String(count)], a!);
  const fresh = side(['new'], b!);
  native().close(a!);
  native().close(b!);
  try {
    const port = (await old.next('listening')).listening as number;
    await fresh.next('receiving');
    const clients: net.Socket[] = [];
    let broken = 0;
    const answers = new Map<net.Socket, string>();
    for (let i = 0; i < count; i++) {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => broken++);
      socket.on('end', () => broken++);
      socket.on('data', (chunk: Buffer) => answers.set(socket, (answers.get(socket) ?? '') + chunk.toString()));
      clients.push(socket);
      // A few hundred connects in flight at once, as a busy service sees them.
      if (i % 256 === 255) await once(socket, 'connect');
    }
    const accepted = await old.next('accepted');
    old.child.stdin!.write('handover\n');
    const passed = await old.next('passed');
    if (passed.passed !== count) throw new Error(`passed ${passed.passed} of ${count} (kept ${passed.kept})`);
    let lastAt = 0;
    for (let adopted = 0; adopted < count; ) {
      const event = await fresh.next('adopted');
      adopted = event.adopted as number;
      lastAt = event.at as number;
    }
    for (const socket of clients) socket.write('x\n');
    const deadline = Date.now() + 30_000;
    const byNew = (): number => clients.filter((socket) => answers.get(socket) === 'B\n').length;
    while (byNew() < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const result = {
      acceptMs: accepted.acceptMs as number,
      sendMs: passed.sendMs as number,
      endToEndMs: lastAt - (passed.startedAt as number),
      answeredByNew: byNew(),
      brokenClients: broken,
    };
    for (const socket of clients) socket.destroy();
    return result;
  } finally {
    old.child.kill('SIGKILL');
    fresh.child.stdin!.end();
    setTimeout(() => fresh.child.kill('SIGKILL'), 5000).unref();
    await Promise.all([once(old.child, 'exit'), once(fresh.child, 'exit')]);
  }
}

/** Prints the rounds of one count; returns whether every client was answered by the new process and none broke, and the median hand-over. */
export function handoverReport(count: number, rounds: readonly Round[]): { correct: boolean; medianMs: number; anchorMs: number } {
  const line = (values: number[]): string => {
    const s = summary(values);
    return `${fmt(s.median, 1)} [${fmt(s.p25, 1)}, ${fmt(s.p75, 1)}]`;
  };
  const medianMs = summary(rounds.map((r) => r.endToEndMs)).median;
  const anchorMs = summary(rounds.map((r) => r.acceptMs)).median;
  const goal = GOALS[count];
  console.log(`${count} idle TCP connections:`);
  console.log(`  hand-over, end to end     ${line(rounds.map((r) => r.endToEndMs))}${goal ? `   goal < ${goal} ms: ${medianMs < goal ? 'met' : 'NOT met'}` : ''}; ${(medianMs / anchorMs).toFixed(2)}x the anchor`);
  console.log(`    of which sendConnections ${line(rounds.map((r) => r.sendMs))}`);
  console.log(`  anchor: accepting them    ${line(rounds.map((r) => r.acceptMs))}`);
  console.log(`  answered by the new process afterwards: ${rounds.map((r) => r.answeredByNew).join(', ')} of ${count}; clients that saw a FIN or reset: ${rounds.map((r) => r.brokenClients).join(', ')}\n`);
  return { correct: rounds.every((r) => r.answeredByNew === count && r.brokenClients === 0), medianMs, anchorMs };
}
