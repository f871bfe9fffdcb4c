import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { summarize, type HttpRecord, type Window } from '../../test/support/load.js';
import type { UpgradeStep } from '../../test/support/upgrade-harness.js';
import { latencyReport } from './latency.js';

/*
 * The long-lived clients of `npm run bench:upgrade` (bench/fixtures/long-lived-load.ts): the
 * process that runs them, and what their result says of a run of upgrades: connections closed
 * client-side, messages lost or answered twice (by sequence numbers), the clients the new version
 * answered after each switch, the message latency during the switches against the steady state,
 * and how long each client went without an answer.
 */

/** The kinds of long-lived clients, with how the report names them. */
const KIND_NAMES = { lines: 'raw TCP line clients', http: 'HTTP keep-alive clients', ws: 'WebSocket clients (ws)' } as const;
export type ClientKind = keyof typeof KIND_NAMES;

/** What bench/fixtures/long-lived-load.ts runs. */
export interface LongLivedPlan {
  linesPort: number;
  webPort: number;
  /** Raw TCP clients of the line protocol. */
  lines: number;
  /** HTTP keep-alive clients, each on one connection. */
  keepAlive: number;
  /** WebSocket clients (the `ws` package's), on the web socket: the service must serve them (config `ws`). */
  ws: number;
  /** ms between two messages of a client. */
  intervalMs: number;
  /** A line or WebSocket client whose connection ends opens another (the anchor: a service that drains). */
  reconnect: boolean;
}

/** One client at the end. */
export interface LongLivedClientResult {
  kind: ClientKind;
  sent: number;
  /** Messages sent and never answered. */
  lost: number;
  /** Messages answered more than once. */
  twice: number;
  /** Connections of this client that ended (a FIN, a reset, `Connection: close`). */
  closes: number;
  /** How the first one ended. */
  firstClose?: string;
  /** The first messages lost or answered twice, and the answers around them. */
  detail?: string;
}

/** What the clients report: each answered message as [client index, sent (epoch ms), latency ms, 'ok', pid]. */
export interface LongLivedResult {
  started: number;
  stopped: number;
  records: HttpRecord[];
  clients: LongLivedClientResult[];
}

const CLIENTS = fileURLToPath(new URL('../fixtures/long-lived-load.js', import.meta.url));

/** The clients' process. */
export class LongLivedRun {
  readonly #child: ChildProcess;
  readonly #result: Promise<LongLivedResult>;

  private constructor(child: ChildProcess, result: Promise<LongLivedResult>) {
    this.#child = child;
    this.#result = result;
  }

  /** Starts the clients; resolves once each has been answered. */
  static async start(plan: LongLivedPlan): Promise<LongLivedRun> {
    const child = spawn(process.execPath, [CLIENTS, JSON.stringify(plan)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
    const result = closed.then((code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{"started"')) throw new Error(`the long-lived clients exited (${code}) without a result: ${stderr}`);
      return JSON.parse(last) as LongLivedResult;
    });
    result.catch(() => undefined);
    while (!stdout.includes('\n')) {
      if (child.exitCode !== null) await result;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return new LongLivedRun(child, result);
  }

  /** Stops sending, waits for the answers, and resolves with the result. */
  stop(): Promise<LongLivedResult> {
    this.#child.stdin!.end();
    return this.#result;
  }

  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}

/** The correctness figures of a run: what its verdicts are on. */
export interface LongLivedFigures {
  clients: number;
  closes: number;
  lost: number;
  twice: number;
  /** Per switch: clients answered by the new process after it. */
  byNew: number[];
}

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

/** Nearest-rank percentile. */
function rank(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]! : NaN;
}

/**
 * How long each client went without an answer: the gaps between its consecutive answers (a
 * reconnection included: the drain's cost that its message latency does not show). A gap that
 * touches a switch window (widened by `marginMs`) counts for that switch, each client's longest
 * per switch; the others are the steady state.
 */
function silences(records: readonly HttpRecord[], windows: readonly Window[], marginMs = 250): { switches: number[]; steady: number[] } {
  const byClient = new Map<number, number[]>();
  for (const [client, sent, latency] of records) {
    const answers = byClient.get(client) ?? [];
    byClient.set(client, answers);
    answers.push(sent + latency);
  }
  const switches: number[] = [];
  const steady: number[] = [];
  for (const answers of byClient.values()) {
    answers.sort((a, b) => a - b);
    const longest = windows.map(() => 0);
    for (let i = 1; i < answers.length; i++) {
      const [from, to] = [answers[i - 1]!, answers[i]!];
      const w = windows.findIndex((window) => from <= window.end + marginMs && to >= window.start);
      if (w === -1) steady.push(to - from);
      else longest[w] = Math.max(longest[w]!, to - from);
    }
    switches.push(...longest.filter((gap) => gap > 0));
  }
  return { switches, steady };
}

/** Prints what the clients saw across `steps` (with `latency`, their message latency too), and returns the figures. */
export function longLivedReport(result: LongLivedResult, steps: readonly UpgradeStep[], latency = true): LongLivedFigures {
  const { clients, records } = result;
  for (const kind of Object.keys(KIND_NAMES) as ClientKind[]) {
    const mine = clients.filter((c) => c.kind === kind);
    if (mine.length === 0) continue;
    const closes = sum(mine.map((c) => c.closes));
    const closed = mine.filter((c) => c.closes > 0).length;
    const first = mine.find((c) => c.firstClose)?.firstClose;
    const detail = mine.filter((c) => c.detail).slice(0, 3);
    console.log(
      `  ${mine.length} ${KIND_NAMES[kind]}: ${sum(mine.map((c) => c.sent))} messages, ` +
        `lost ${sum(mine.map((c) => c.lost))}, answered twice ${sum(mine.map((c) => c.twice))}; connections closed client-side ${closes} ` +
        `(${(closes / Math.max(1, steps.length)).toFixed(1)} per upgrade, ${closed} of ${mine.length} clients)${first ? `; first: ${first}` : ''}`,
    );
    for (const c of detail) console.log(`    ${clients.indexOf(c)}: ${c.detail}`);
    if (!latency) continue;
    const index = new Set(clients.map((c, i) => (c.kind === kind ? i : -1)));
    // As the HTTP load's requests: each message's latency from its sending, split into the switch windows and the steady state.
    const asLoad = { started: result.started, stopped: result.stopped, http: records.filter((r) => index.has(r[0])), udp: { sent: [], received: [] } };
    latencyReport({ ...summarize(asLoad, steps.map((s) => s.window)), result: asLoad }, steps, 'messages', false);
    const gaps = silences(asLoad.http, steps.map((s) => s.window));
    console.log(
      `  longest time a client went without an answer in a switch: median ${rank(gaps.switches, 50).toFixed(0)} ms, p99 ${rank(gaps.switches, 99).toFixed(0)} ms, max ${rank(gaps.switches, 100).toFixed(0)} ms ` +
        `(${gaps.switches.length} client-switches); steady state, between two answers: p50 ${rank(gaps.steady, 50).toFixed(0)} ms, p99 ${rank(gaps.steady, 99).toFixed(0)} ms`,
    );
  }
  // After each switch, until the next: the clients whose messages the new process answered.
  const byNew = steps.map((step, k) => {
    const next = steps[k + 1]?.window.start ?? result.stopped;
    const answered = new Set(records.filter(([, sent, , , pid]) => sent > step.window.end && sent < next && pid === step.to).map((r) => r[0]));
    return answered.size;
  });
  console.log(`  clients answered by the new process after each switch: ${byNew.join(', ')} of ${clients.length}`);
  return { clients: clients.length, closes: sum(clients.map((c) => c.closes)), lost: sum(clients.map((c) => c.lost)), twice: sum(clients.map((c) => c.twice)), byNew };
}
