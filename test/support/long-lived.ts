import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'ws';

/*
 * Clients that stay on one TCP connection and send a message every `intervalMs`, for the tests of
 * the connection hand-over: each records every answer with the process that gave it, and whatever
 * would show a connection that did not survive (an end, an error, a second connection) or a
 * message answered twice or not at all.
 */

/** One answer: the sequence number of the message, who answered, when it came. */
export interface Answer {
  seq: number;
  pid: number;
  version: string;
  at: number;
  /** The line protocol's count of lines on the connection, kept by the service across processes. */
  n?: number;
}

/** What every client can say of itself. */
export interface LongLivedClient {
  readonly name: string;
  /** The answers so far, in the order they came. */
  readonly answers: Answer[];
  /** Messages sent so far (seq 1..sent). */
  readonly sent: number;
  /** How the connection failed, if it did: an end, an error, a new connection. */
  readonly failure: string | undefined;
  /** The client's local port on its connection. */
  readonly localPort: number | undefined;
  /** Stops sending; resolves once the messages sent so far are answered (or `timeoutMs` passed). */
  stop(timeoutMs?: number): Promise<void>;
  /** Closes the connection. */
  close(): void;
}

/** Sequence numbers answered more than once, and those never answered, of `client`. */
export function accounting(client: LongLivedClient): { twice: number[]; missing: number[]; outOfOrder: boolean } {
  const seen = new Map<number, number>();
  for (const a of client.answers) seen.set(a.seq, (seen.get(a.seq) ?? 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1).map(([seq]) => seq);
  const missing: number[] = [];
  for (let seq = 1; seq <= client.sent; seq++) if (!seen.has(seq)) missing.push(seq);
  const order = client.answers.map((a) => a.seq);
  return { twice, missing, outOfOrder: order.some((seq, i) => i > 0 && seq < order[i - 1]!) };
}

/** Waits until every message sent so far is answered, or `timeoutMs` passed. */
async function settle(client: LongLivedClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (new Set(client.answers.map((a) => a.seq)).size < client.sent && client.failure === undefined && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The line protocol of the upgrade service's "lines" socket: `SEQ` answered `SEQ PID VERSION N`. */
export class LineClient implements LongLivedClient {
  readonly name: string;
  readonly answers: Answer[] = [];
  sent = 0;
  /** When each message's line was complete on the wire (epoch ms), by seq - 1: its latency runs from then. */
  readonly sentAt: number[] = [];
  failure: string | undefined;
  readonly #socket: Socket;
  readonly #timer: NodeJS.Timeout;
  #text = '';
  #closing = false;
  #port: number | undefined;
  /** The second half of the line cut in two last, until it is sent. */
  #rest: { seq: number; text: string } | undefined;

  constructor(name: string, port: number, intervalMs: number) {
    this.name = name;
    this.#socket = connect({ host: '127.0.0.1', port });
    this.#socket.once('connect', () => (this.#port = this.#socket.localPort));
    this.#socket.setEncoding('utf8');
    this.#socket.on('data', (chunk: string) => {
      this.#text += chunk;
      const lines = this.#text.split('\n');
      this.#text = lines.pop()!;
      for (const line of lines) {
        const [seq, pid, version, n] = line.split(' ');
        this.answers.push({ seq: Number(seq), pid: Number(pid), version: version!, at: Date.now(), n: Number(n) });
      }
    });
    this.#socket.on('end', () => (this.failure ??= this.#closing ? undefined : 'the server ended the connection (FIN)'));
    this.#socket.on('error', (error) => (this.failure ??= this.#closing ? undefined : `error: ${error.message}`));
    // Each line in two writes a moment apart now and then: a line may be cut by a hand-over.
    // The second half goes out before the next line whatever the timers do: after a stall of
    // this process, the next line's timer was seen to run before the half's (tcpdump showed
    // "2", "226\n", "25\n" on the wire), which reads as a line lost and another answered twice.
    this.#timer = setInterval(() => {
      this.#finishLine();
      const line = `${++this.sent}\n`;
      const seq = this.sent;
      if (this.sent % 5 === 0) {
        this.#socket.write(line.slice(0, 1));
        this.sentAt[seq - 1] = NaN;
        this.#rest = { seq, text: line.slice(1) };
        setTimeout(() => this.#finishLine(), intervalMs / 3);
      } else {
        this.sentAt[seq - 1] = Date.now();
        this.#socket.write(line);
      }
    }, intervalMs);
  }

  /** Sends the second half of a line cut in two, if one is due. */
  #finishLine(): void {
    const rest = this.#rest;
    if (!rest) return;
    this.#rest = undefined;
    this.sentAt[rest.seq - 1] = Date.now();
    if (this.#socket.writable) this.#socket.write(rest.text);
  }

  get localPort(): number | undefined {
    return this.#port;
  }

  async stop(timeoutMs = 5000): Promise<void> {
    clearInterval(this.#timer);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await settle(this, timeoutMs);
  }

  close(): void {
    this.#closing = true;
    clearInterval(this.#timer);
    this.#socket.destroy();
  }
}

/**
 * A client of the `ws` package on the upgrade service's web socket: message `SEQ` answered
 * `SEQ PID VERSION N PROTOCOL`, N the service's count of messages on the WebSocket. A WebSocket
 * cannot reconnect by itself: any close is a failure, with its code (1012 when it was not passed).
 */
export class WsClient implements LongLivedClient {
  readonly name: string;
  readonly answers: Answer[] = [];
  sent = 0;
  /** When each message was sent (epoch ms), by seq - 1. */
  readonly sentAt: number[] = [];
  failure: string | undefined;
  readonly #ws: WebSocket;
  #timer: NodeJS.Timeout | undefined;
  #closing = false;
  #port: number | undefined;

  constructor(name: string, port: number, intervalMs: number) {
    this.name = name;
    this.#ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    this.#ws.once('upgrade', (res) => (this.#port = res.socket.localPort));
    this.#ws.once(
      'open',
      () =>
        (this.#timer = setInterval(() => {
          this.sentAt[this.sent] = Date.now();
          this.#ws.send(String(++this.sent));
        }, intervalMs)),
    );
    this.#ws.on('message', (data: Buffer) => {
      const [seq, pid, version, n] = data.toString('utf8').split(' ');
      this.answers.push({ seq: Number(seq), pid: Number(pid), version: version!, at: Date.now(), n: Number(n) });
    });
    this.#ws.on('close', (code: number, reason: Buffer) => (this.failure ??= this.#closing ? undefined : `closed with ${code} ${reason.toString()}`));
    this.#ws.on('error', (error) => (this.failure ??= this.#closing ? undefined : `error: ${error.message}`));
  }

  get localPort(): number | undefined {
    return this.#port;
  }

  async stop(timeoutMs = 5000): Promise<void> {
    clearInterval(this.#timer);
    await settle(this, timeoutMs);
  }

  close(): void {
    this.#closing = true;
    clearInterval(this.#timer);
    this.#ws.terminate();
  }
}

/** Node's HTTP client with a keep-alive agent of one socket: `GET /?seq` answered `PID VERSION`. */
export class KeepAliveClient implements LongLivedClient {
  readonly name: string;
  readonly answers: Answer[] = [];
  sent = 0;
  /** When each request was sent (epoch ms), by seq - 1. */
  readonly sentAt: number[] = [];
  failure: string | undefined;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 1 });
  readonly #timer: NodeJS.Timeout;
  readonly #ports = new Set<number>();
  #port: number | undefined;

  readonly #path: string;

  /** `path`: what is asked for, `/` or `/slow` (answered after 500 ms), with `?SEQ` appended. */
  constructor(name: string, port: number, intervalMs: number, path = '/') {
    this.name = name;
    this.#path = path;
    this.#timer = setInterval(() => this.#get(port), intervalMs);
  }

  #get(port: number): void {
    const seq = ++this.sent;
    this.sentAt[seq - 1] = Date.now();
    const req = request({ host: '127.0.0.1', port, path: `${this.#path}?${seq}`, agent: this.#agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const [pid, version] = body.trim().split(' ');
        this.answers.push({ seq, pid: Number(pid), version: version!, at: Date.now() });
        if (/close/i.test(String(res.headers.connection))) this.failure ??= `answer ${seq} said Connection: close`;
      });
    });
    req.on('socket', (socket: Socket) => {
      const note = (): void => {
        this.#port ??= socket.localPort;
        if (socket.localPort !== undefined) this.#ports.add(socket.localPort);
        if (this.#ports.size > 1) this.failure ??= `request ${seq} went on a new connection (local ports ${[...this.#ports].join(', ')})`;
      };
      if (socket.localPort === undefined) socket.once('connect', note);
      else note();
    });
    req.on('error', (error) => (this.failure ??= `request ${seq}: ${error.message}`));
    req.end();
  }

  get localPort(): number | undefined {
    return this.#port;
  }

  /** TCP connections the client has used so far (1 when it never had to open another). */
  get connections(): number {
    return this.#ports.size;
  }

  async stop(timeoutMs = 5000): Promise<void> {
    clearInterval(this.#timer);
    await settle(this, timeoutMs);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#agent.destroy();
  }
}

/**
 * curl, one process, `count` transfers of `GET /?N` at `perSecond` (--rate) on the connection it
 * keeps alive: each transfer prints its body, the local port and how many connections it made.
 */
export class CurlClient implements LongLivedClient {
  readonly name: string;
  readonly answers: Answer[] = [];
  failure: string | undefined;
  readonly #child: ChildProcess;
  readonly #ports = new Set<number>();
  readonly #exited: Promise<void>;
  #text = '';
  #closing = false;

  constructor(name: string, port: number, perSecond: number, count: number) {
    this.name = name;
    this.#child = spawn('curl', ['-sS', '--no-buffer', '--rate', `${perSecond}/s`, '-w', '|%{local_port} %{num_connects}\\n', `http://127.0.0.1:${port}/?[1-${count}]`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Each transfer: its body (`PID VERSION` and a newline), then `|LOCALPORT CONNECTS`, which
    // curl may flush only with the next body: an answer's time is its body's.
    let body: Answer | undefined;
    this.#child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.#text += chunk;
      for (;;) {
        const m = body ? /^\|(\d+) (\d+)\n/.exec(this.#text) : /^(\d+) (\S+)\n/.exec(this.#text);
        if (!m) break;
        this.#text = this.#text.slice(m[0].length);
        if (!body) {
          body = { seq: this.answers.length + 1, pid: Number(m[1]), version: m[2]!, at: Date.now() };
          continue;
        }
        this.answers.push(body);
        body = undefined;
        this.#ports.add(Number(m[1]));
        if (this.answers.length > 1 && m[2] !== '0') this.failure ??= `transfer ${this.answers.length} made a new connection`;
      }
      if (/^[^\d|]/.test(this.#text)) this.failure ??= `curl printed ${JSON.stringify(this.#text.slice(0, 80))}`;
    });
    let stderr = '';
    this.#child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    this.#exited = new Promise((resolve) =>
      this.#child.once('close', (code) => {
        if (code !== 0 && !this.#closing) this.failure ??= `curl exited with ${code}: ${stderr.trim()}`;
        resolve();
      }),
    );
  }

  get sent(): number {
    return this.answers.length;
  }

  get localPort(): number | undefined {
    return [...this.#ports][0];
  }

  async stop(timeoutMs = 5000): Promise<void> {
    await Promise.race([this.#exited, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
  }

  close(): void {
    this.#closing = true;
    this.#child.kill('SIGKILL');
  }
}
