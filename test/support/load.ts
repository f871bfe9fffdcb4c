import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** One HTTP stream of a {@link LoadPlan}. */
export interface HttpStream {
  host: string;
  port: number;
  /** Requests per second, at a constant rate. */
  rate: number;
  /** false: a new connection for each request (`Connection: close`); true: a pool of keep-alive connections. */
  keepAlive: boolean;
  /** With keepAlive: how many connections (default 4). */
  connections?: number;
}

/** What test/fixtures/load-client.ts sends. */
export interface LoadPlan {
  http: HttpStream[];
  /** Datagrams `SEQ` at a constant rate, each answered `SEQ PID`. */
  udp?: { host: string; port: number; rate: number; drainMs?: number };
  /** A request not answered within this is a timeout. */
  timeoutMs: number;
  /** The client stops by itself after this, whatever happens. */
  maxDurationMs: number;
}

/** [stream index, scheduled time (epoch ms), latency ms, kind ('ok', 'refused', 'reset', 'timeout', 'http-NNN', 'other:...'), serving pid (0 if none)] */
export type HttpRecord = [number, number, number, string, number];

/** What the client reports. */
export interface LoadResult {
  started: number;
  stopped: number;
  http: HttpRecord[];
  /** sent: [seq, epoch ms]; received: [seq, pid, epoch ms]. */
  udp: { sent: Array<[number, number]>; received: Array<[number, number, number]> };
}

const CLIENT = fileURLToPath(new URL('../fixtures/load-client.js', import.meta.url));

/** A load client running in a process of its own (its event loop is not the test's). */
export class LoadRun {
  readonly #child: ChildProcess;
  readonly #result: Promise<LoadResult>;
  /** When the first request was due (epoch ms). */
  readonly started: number;

  private constructor(child: ChildProcess, started: number, result: Promise<LoadResult>) {
    this.#child = child;
    this.started = started;
    this.#result = result;
  }

  /** Starts the client and resolves once it sends. */
  static start(plan: LoadPlan): Promise<LoadRun> {
    const child = spawn(process.execPath, [CLIENT, JSON.stringify(plan)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return new Promise((resolve, reject) => {
      let started: number | undefined;
      const result = new Promise<LoadResult>((resolveResult, rejectResult) => {
        child.on('close', (code) => {
          const last = stdout.trim().split('\n').pop() ?? '';
          try {
            const parsed = JSON.parse(last) as LoadResult;
            if (!Array.isArray(parsed.http)) throw new Error('no result');
            resolveResult(parsed);
          } catch {
            const error = new Error(`the load client exited (${code}) without a result: ${stderr}`);
            rejectResult(error);
            reject(error);
          }
        });
      });
      result.catch(() => undefined);
      child.stdout!.on('data', (d: string) => {
        stdout += d;
        if (started === undefined && stdout.includes('\n')) {
          started = (JSON.parse(stdout.slice(0, stdout.indexOf('\n'))) as { started: number }).started;
          resolve(new LoadRun(child, started, result));
        }
      });
    });
  }

  /** Stops sending, waits for what is in flight, and resolves with everything recorded. */
  stop(): Promise<LoadResult> {
    this.#child.stdin!.end();
    return this.#result;
  }

  /** Kills the client (an after hook's last resort). */
  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}

/** A time window (epoch ms): an upgrade, from its trigger until the old process is gone. */
export interface Window {
  start: number;
  end: number;
}

/** Latency figures of a set of requests, in ms. */
export interface LatencyFigures {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** What a load run shows. */
export interface LoadSummary {
  requests: number;
  ok: number;
  refused: number;
  reset: number;
  timeout: number;
  /** Any other failure, HTTP errors included, by kind. */
  other: Record<string, number>;
  /** Serving pid -> answers. */
  pids: Map<number, number>;
  /** Per HTTP stream of the plan: requests, and failures by kind. */
  streams: Array<{ requests: number; failures: Record<string, number> }>;
  steady: LatencyFigures;
  /** One per window, in order. */
  switches: LatencyFigures[];
  /** Every request of every window together. */
  pooled: LatencyFigures;
  udp: { sent: number; answered: number; lost: number; pids: Map<number, number> };
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function figures(latencies: number[]): LatencyFigures {
  const sorted = latencies.sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.length ? sorted[sorted.length - 1]! : NaN };
}

/**
 * Counts the outcomes, and splits the latencies into those of requests due within a window
 * (widened by `marginMs` after its end) and the steady state: every other request.
 */
export function summarize(result: LoadResult, windows: readonly Window[] = [], marginMs = 250): LoadSummary {
  const summary: LoadSummary = {
    requests: result.http.length,
    ok: 0,
    refused: 0,
    reset: 0,
    timeout: 0,
    other: {},
    pids: new Map(),
    streams: [],
    steady: figures([]),
    switches: [],
    pooled: figures([]),
    udp: { sent: 0, answered: 0, lost: 0, pids: new Map() },
  };
  const steady: number[] = [];
  const during: number[][] = windows.map(() => []);
  for (const [stream, due, latency, kind, pid] of result.http) {
    summary.streams[stream] ??= { requests: 0, failures: {} };
    const s = summary.streams[stream]!;
    s.requests++;
    if (kind !== 'ok') s.failures[kind] = (s.failures[kind] ?? 0) + 1;
    if (kind === 'ok') summary.ok++;
    else if (kind === 'refused') summary.refused++;
    else if (kind === 'reset') summary.reset++;
    else if (kind === 'timeout') summary.timeout++;
    else summary.other[kind] = (summary.other[kind] ?? 0) + 1;
    if (pid) summary.pids.set(pid, (summary.pids.get(pid) ?? 0) + 1);
    if (kind !== 'ok') continue;
    const i = windows.findIndex((w) => due >= w.start && due <= w.end + marginMs);
    if (i === -1) steady.push(latency);
    else during[i]!.push(latency);
  }
  summary.steady = figures(steady);
  summary.pooled = figures(during.flat());
  summary.switches = during.map((latencies) => figures(latencies));
  const answered = new Set<number>();
  for (const [seq, pid] of result.udp.received) {
    if (answered.has(seq)) continue;
    answered.add(seq);
    summary.udp.pids.set(pid, (summary.udp.pids.get(pid) ?? 0) + 1);
  }
  summary.udp.sent = result.udp.sent.length;
  summary.udp.answered = answered.size;
  summary.udp.lost = result.udp.sent.filter(([seq]) => !answered.has(seq)).length;
  return summary;
}

/** The failures of a summary, by kind, for assertions: all zero in a run that lost nothing. */
export function failures(summary: LoadSummary): { refused: number; reset: number; timeout: number; other: number; lostDatagrams: number } {
  return {
    refused: summary.refused,
    reset: summary.reset,
    timeout: summary.timeout,
    other: Object.values(summary.other).reduce((a, b) => a + b, 0),
    lostDatagrams: summary.udp.lost,
  };
}

/**
 * The control for the switches' figures: windows of the steady state as long as a switch window
 * (its mean length plus `marginMs`), one after another, none within 300 ms of a switch window, and the p99 of each. With ~150 requests in such a window its p99 is its second-slowest
 * request, so a window without any switch can exceed a bound too: this says how often.
 */
export function controlWindows(result: LoadResult, windows: readonly Window[], marginMs = 250): LatencyFigures[] {
  if (windows.length === 0) return [];
  const length = Math.round(windows.reduce((sum, w) => sum + (w.end - w.start), 0) / windows.length) + marginMs;
  const clear = (t: number): boolean => windows.every((w) => t < w.start - 300 || t > w.end + marginMs + 300);
  const out: LatencyFigures[] = [];
  for (let start = result.started + 1000; start + length < result.stopped - 1000; start += length) {
    if (!clear(start) || !clear(start + length) || windows.some((w) => w.start >= start && w.start <= start + length)) continue;
    const latencies = result.http.filter(([, due, , kind]) => kind === 'ok' && due >= start && due < start + length).map(([, , latency]) => latency);
    if (latencies.length > 0) out.push(figures(latencies));
  }
  return out;
}

/** A few lines of figures for a test's or a bench's output. */
export function describeSummary(summary: LoadSummary): string {
  const ms = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)} ms` : '-');
  const other = Object.entries(summary.other).map(([k, v]) => `${k} ${v}`).join(', ') || '0';
  const streams = summary.streams
    .map((s, i) => `stream ${i}: ${s.requests}${Object.keys(s.failures).length ? ` (${Object.entries(s.failures).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`)
    .join('; ');
  const lines = [
    `requests ${summary.requests}: ok ${summary.ok}, refused ${summary.refused}, reset ${summary.reset}, timeout ${summary.timeout}, other ${other} [${streams}]`,
    `datagrams ${summary.udp.sent}: answered ${summary.udp.answered}, lost ${summary.udp.lost}`,
    `serving pids: http ${[...summary.pids.keys()].join(' ')}; udp ${[...summary.udp.pids.keys()].join(' ')}`,
    `latency, steady state (${summary.steady.count} requests): p50 ${ms(summary.steady.p50)}, p99 ${ms(summary.steady.p99)}, max ${ms(summary.steady.max)}`,
  ];
  summary.switches.forEach((s, i) => {
    lines.push(`latency, switch ${i + 1} (${s.count} requests): p50 ${ms(s.p50)}, p99 ${ms(s.p99)}, max ${ms(s.max)}`);
  });
  return lines.join('\n');
}
