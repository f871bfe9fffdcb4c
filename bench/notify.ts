/**
 * What a notify call costs from Node, next to its anchors measured in the same run, against the
 * same receiver: libsystemd's C sd_notify() (bench/notify-libsystemd.c, compiled here), and
 * spawning `systemd-notify`, which is what a Node service without an addon does.
 *
 *   node dist/bench/notify.js [--rounds 7] [--calls 20000] [--spawns 100]
 *
 * The receiver is a NotifyReceiver in a child process: the senders here block in sendmsg() when
 * its queue is full (net.unix.max_dgram_qlen is small), so it must drain on its own CPU time.
 * Rounds alternate between the senders so that a busy machine slows them alike; medians are printed.
 * The target: a Node call costs at most 1.5x libsystemd's.
 */
import { execFileSync, fork, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { notify } from '../src/service/notify.js';
import { NotifyReceiver } from '../src/shared/notify-receiver.js';

const TARGET_RATIO = 1.5;

if (process.argv[2] === '--receiver') {
  runReceiver(process.argv[3]!);
} else {
  await main();
}

/** The child: counts messages, closes any fds (systemd-notify's barrier waits for that), reports on request. */
function runReceiver(address: string): void {
  const receiver = new NotifyReceiver(address);
  let count = 0;
  receiver.on('message', (message) => {
    count++;
    for (const fd of message.fds) closeSync(fd);
  });
  process.on('message', (request: string) => {
    if (request === 'count') process.send!({ count });
    if (request === 'exit') {
      receiver.close();
      process.disconnect();
    }
  });
  process.send!({ ready: true });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '7' }, calls: { type: 'string', default: '20000' }, spawns: { type: 'string', default: '100' } },
  });
  const rounds = Number(values.rounds);
  const calls = Number(values.calls);
  const spawns = Number(values.spawns);

  const dir = mkdtempSync(join(tmpdir(), 'sd-activate-bench-'));
  const anchor = join(dir, 'notify-libsystemd');
  execFileSync('cc', ['-O2', '-o', anchor, fileURLToPath(new URL('../../bench/notify-libsystemd.c', import.meta.url)), '-lsystemd'], { stdio: 'inherit' });

  const address = join(dir, 'notify');
  const child = fork(fileURLToPath(import.meta.url), ['--receiver', address], { stdio: 'inherit' });
  await once(child, 'message');
  process.env.NOTIFY_SOCKET = address;
  let sent = 0;

  const STATUS = 'Serving 12 connections';
  const senders: Array<{ label: string; message: string; run: (n: number) => number }> = [
    { label: 'libsystemd sd_notify() from C', message: 'WATCHDOG=1', run: (n) => c(anchor, n, 'WATCHDOG=1') },
    { label: 'sd-activate notify.watchdog()', message: 'WATCHDOG=1', run: (n) => timed(n, () => notify.watchdog()) },
    { label: 'libsystemd sd_notify() from C', message: `STATUS=${STATUS}`, run: (n) => c(anchor, n, `STATUS=${STATUS}`) },
    { label: 'sd-activate notify.status()', message: `STATUS=${STATUS}`, run: (n) => timed(n, () => notify.status(STATUS)) },
  ];

  // One untimed round each: the addon loaded, the code optimized, the page cache warm.
  for (const sender of senders) {
    sender.run(Math.min(calls, 2000));
    sent += Math.min(calls, 2000);
  }

  const perCall = senders.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? senders.map((_, i) => i) : senders.map((_, i) => i).reverse();
    for (const i of order) {
      perCall[i]!.push(senders[i]!.run(calls) / calls);
      sent += calls;
    }
  }

  // systemd-notify: a process per call, as `child_process` users do it; 252 also waits on a barrier each time.
  const spawnTimes: number[] = [];
  for (let round = 0; round < Math.min(rounds, 3); round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < spawns; i++) {
      const result = spawnSync('systemd-notify', ['WATCHDOG=1']);
      if (result.status !== 0) throw new Error(`systemd-notify failed: ${result.stderr.toString()}`);
    }
    spawnTimes.push(Number(process.hrtime.bigint() - start) / spawns);
    sent += spawns * 2; // its message, then BARRIER=1
  }

  const received = await countAtLeast(child, sent);
  child.send('exit');
  await once(child, 'exit');
  rmSync(dir, { recursive: true, force: true });
  // Every call timed must have been a datagram delivered, or the figures mean nothing.
  if (received !== sent) throw new Error(`the receiver counted ${received} datagrams, ${sent} were sent`);

  const medians = perCall.map(median);
  const spawnMedian = median(spawnTimes);
  const rows: string[][] = [['message', 'sender', 'calls/s', 'µs/call', 'vs C']];
  senders.forEach((sender, i) => {
    const anchorIndex = i - (i % 2);
    rows.push([sender.message, sender.label, fmt(1e9 / medians[i]!, 0), fmt(medians[i]! / 1000, 2), `${fmt(medians[i]! / medians[anchorIndex]!, 2)}x`]);
  });
  rows.push(['WATCHDOG=1', 'systemd-notify, spawned per call', fmt(1e9 / spawnMedian, 0), fmt(spawnMedian / 1000, 1), `${fmt(spawnMedian / medians[0]!, 0)}x`]);

  console.log(`sd_notify from Node vs libsystemd, one receiver (NotifyReceiver in a child process), Node ${process.version}`);
  console.log(`${rounds} rounds x ${calls} calls (systemd-notify: ${spawnTimes.length} x ${spawns} spawns), medians; all ${received} datagrams received`);
  console.log();
  printTable(rows);
  console.log();
  for (let i = 1; i < senders.length; i += 2) {
    const ratio = medians[i]! / medians[i - 1]!;
    console.log(
      `node/C ratio (${senders[i]!.message}): ${fmt(ratio, 2)}  (per round: ${perCall[i]!.map((v, r) => fmt(v / perCall[i - 1]![r]!, 2)).join(' ')})  target <= ${TARGET_RATIO}: ${ratio <= TARGET_RATIO ? 'met' : 'NOT MET'}`,
    );
  }
}

/** Runs `fn` n times and returns the elapsed nanoseconds. */
function timed(n: number, fn: () => boolean): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (!fn()) throw new Error('NOTIFY_SOCKET is not set');
  }
  return Number(process.hrtime.bigint() - start);
}

/** The C anchor's own measurement, in nanoseconds for n calls. */
function c(binary: string, n: number, message: string): number {
  return Number(execFileSync(binary, [String(n), message], { encoding: 'utf8', env: { NOTIFY_SOCKET: process.env.NOTIFY_SOCKET } }).trim());
}

/** Waits until the receiver has counted `n` datagrams (they are in flight a little after the last send). */
async function countAtLeast(child: ChildProcess, n: number): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    child.send('count');
    const [reply] = (await once(child, 'message')) as [{ count: number }];
    if (reply.count >= n || Date.now() > deadline) return reply.count;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function fmt(value: number, digits: number): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  for (const row of rows) {
    console.log(row.map((cell, col) => (col >= 2 ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!))).join('  '));
  }
}
