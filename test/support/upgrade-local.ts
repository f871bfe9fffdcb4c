import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NotifyMessage } from '../../src/shared/notify-receiver.js';
import { openReceiver } from './notify.js';
import { spawnService } from './runtime.js';
import { prepareService, sleep, UPGRADE_SERVICE, type ServiceConfig, type ServiceDir } from './upgrade-harness.js';

/*
 * The service of test/fixtures/upgrade-service.ts started by a test process that plays the
 * service manager's notify socket (a NotifyReceiver), for the tests of upgrader() between real
 * processes without a real manager: what the service sends, and who serves.
 */

/** Every notify message, in order, with a way to wait for one. */
export class Messages {
  readonly all: NotifyMessage[] = [];
  readonly #receiver: ReturnType<typeof openReceiver>;

  constructor() {
    this.#receiver = openReceiver();
    this.#receiver.receiver.on('message', (m) => {
      this.all.push(m);
      // As systemd: the fds it does not keep are closed, which answers a BARRIER=1.
      for (const fd of m.fds) closeSync(fd);
    });
  }

  get address(): string {
    return this.#receiver.receiver.address;
  }

  async wait(what: string, match: (m: NotifyMessage) => boolean, timeoutMs = 10_000): Promise<NotifyMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.all.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no notify message ${what} within ${timeoutMs} ms; got ${JSON.stringify(this.all.map((m) => [m.pid, m.text]))}`);
      await sleep(10);
    }
  }

  close(): void {
    this.#receiver.close();
  }
}

/** Waits for `condition`, polling; throws with `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A started service: its directory, its first process and how that ends. */
export interface Started {
  service: ServiceDir;
  child: ChildProcess;
  exit: Promise<number | null>;
  pid: number;
}

/**
 * Services started by one test file, cleaned up after each test: every process is killed (those
 * an upgrade started are not the test's children), the receiver closed, the directory removed.
 */
export class LocalServices {
  dir = '';
  messages: Messages | undefined;
  readonly children: ChildProcess[] = [];
  readonly pids = new Set<number>();
  readonly #services: ServiceDir[] = [];

  setUp(): void {
    this.dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
  }

  tearDown(): void {
    for (const child of this.children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // Every process the services logged: the workers of a pool too, which no test started itself.
    for (const service of this.#services.splice(0)) for (const e of service.events()) if (e.startsWith('start ')) this.pids.add(Number(e.split(' ')[1]));
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.pids.clear();
    this.messages?.close();
    this.messages = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Starts the service as a service manager would, without sockets: it opens and stores its own. */
  async start(config: ServiceConfig, env: Record<string, string | undefined> = {}): Promise<Started> {
    const service = await prepareService(this.dir, config);
    this.#services.push(service);
    this.messages = new Messages();
    const childEnv: NodeJS.ProcessEnv = { ...process.env, NOTIFY_SOCKET: this.messages.address };
    delete childEnv.INVOCATION_ID;
    for (const [key, value] of Object.entries(env)) {
      if (value === undefined) delete childEnv[key];
      else childEnv[key] = value;
    }
    const child = spawnService(UPGRADE_SERVICE, [service.dir], { env: childEnv, stdio: ['ignore', 'inherit', 'inherit'] });
    this.children.push(child);
    const pid = child.pid!;
    this.pids.add(pid);
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(() => service.events().includes(`ready ${pid} v1`), `pid ${pid} ready`);
    return { service, child, exit, pid };
  }

  /** SIGHUP to `pid` with `version` deployed; resolves with the new process's pid once MAINPID= names it. */
  async upgrade(started: Started, pid: number, version: string, behavior?: Parameters<ServiceDir['deploy']>[1]): Promise<number> {
    const before = this.messages!.all.length;
    started.service.deploy(version, behavior);
    process.kill(pid, 'SIGHUP');
    const handover = await this.messages!.wait(`MAINPID= for ${version}`, (x) => this.messages!.all.indexOf(x) >= before && x.fields.has('MAINPID'));
    const next = Number(handover.fields.get('MAINPID'));
    this.pids.add(next);
    return next;
  }
}

/** A client on one stream connection that keeps what it gets and how the connection ended. */
export interface StreamClient {
  socket: Socket;
  text: string;
  ended: boolean;
  error: string | undefined;
  write(text: string): void;
}

/** Connects a {@link StreamClient}. */
export function streamClient(options: NetConnectOpts): StreamClient {
  const socket = connect(options);
  const client: StreamClient = { socket, text: '', ended: false, error: undefined, write: (text) => void socket.write(text) };
  socket.setEncoding('utf8').on('data', (d: string) => (client.text += d));
  socket.on('end', () => (client.ended = true));
  socket.on('error', (error) => (client.error = error.message));
  return client;
}

/** The HTTP/1.1 responses in `text`, each as its status line's code, its `Connection` header, its body. */
export function responses(text: string): Array<{ status: number; connection: string | undefined; body: string }> {
  const out: Array<{ status: number; connection: string | undefined; body: string }> = [];
  let rest = text;
  for (;;) {
    const head = rest.indexOf('\r\n\r\n');
    if (head === -1) return out;
    const header = rest.slice(0, head);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(header)?.[1] ?? NaN);
    if (Number.isNaN(length) || rest.length < head + 4 + length) return out;
    out.push({ status: Number(header.split(' ')[1]), connection: /\r\nconnection: *([^\r]*)/i.exec(header)?.[1]?.toLowerCase(), body: rest.slice(head + 4, head + 4 + length) });
    rest = rest.slice(head + 4 + length);
  }
}

/** A GET request on a keep-alive connection. */
export const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`;
