import { execFile } from 'node:child_process';
import * as dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import * as http from 'node:http';
import * as net from 'node:net';

/*
 * Clients of the daemons under test: plain sockets, Node's own HTTP and DNS clients, and the
 * clients Debian ships with the daemons (dbus-send). test/cli/helpers.ts has the TCP exchange
 * with a half-close and freePort().
 */

export { exchange, freePort } from '../cli/helpers.js';

/** An HTTP GET on 127.0.0.1:port; resolves with the status and body. */
export function httpGet(port: number, path = '/', timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (d: string) => (body += d));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`no HTTP answer from port ${port} within ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/** The A records of `name` from the DNS server on 127.0.0.1:port (UDP, as c-ares asks first). */
export async function resolveA(port: number, name: string): Promise<string[]> {
  const resolver = new Resolver({ timeout: 2000, tries: 3 });
  resolver.setServers([`127.0.0.1:${port}`]);
  return (await resolver.resolve4(name)).sort();
}

/** Connect, send (without a half-close: not every proxy passes one on), read until the server closes. */
export async function request(port: number, send: string, timeoutMs = 10_000): Promise<string> {
  const connection = new HeldConnection(port);
  try {
    await connection.connected;
    connection.socket.write(send);
    if (!(await connection.closedWithin(timeoutMs))) throw new Error(`port ${port} did not close within ${timeoutMs} ms (so far: ${JSON.stringify(connection.data)})`);
    if (connection.closed?.how === 'error') throw new Error(`port ${port}: ${connection.closed.code} (so far: ${JSON.stringify(connection.data)})`);
    return connection.data;
  } finally {
    connection.close();
  }
}

/** A connection kept open: what arrived so far, whether the server closed it, and when. */
export class HeldConnection {
  readonly socket: net.Socket;
  data = '';
  /** Set once the server ended or reset the connection. */
  closed: { how: 'end' | 'error'; afterMs: number; code?: string } | undefined;
  readonly connected: Promise<void>;
  readonly #began = Date.now();

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.setEncoding('utf8');
    this.socket.on('data', (d: string) => (this.data += d));
    this.socket.on('end', () => (this.closed ??= { how: 'end', afterMs: Date.now() - this.#began }));
    this.socket.on('error', (error: NodeJS.ErrnoException) => (this.closed ??= { how: 'error', afterMs: Date.now() - this.#began, code: error.code ?? 'unknown' }));
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
  }

  /** The local port of this end: what the server sees as REMOTE_PORT. */
  get localPort(): number {
    return this.socket.localPort ?? -1;
  }

  /** Waits until `done(data)` holds or the server closes; false on timeout. */
  async until(done: (data: string) => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.data) && this.closed === undefined) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return done(this.data);
  }

  /** Waits until the server closes it; false on timeout. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.closed === undefined) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return true;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Runs a client program to its end; rejects on a non-zero exit, with its stderr. */
export function runClient(file: string, args: readonly string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')}: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The bus's answer to GetNameOwner("org.freedesktop.DBus"), asked with Debian's dbus-send over `socketPath`. */
export async function dbusNameOwner(socketPath: string): Promise<string> {
  const out = await runClient('dbus-send', [
    `--bus=unix:path=${socketPath}`,
    '--print-reply=literal',
    '--dest=org.freedesktop.DBus',
    '/org/freedesktop/DBus',
    'org.freedesktop.DBus.GetNameOwner',
    'string:org.freedesktop.DBus',
  ]);
  return out.trim();
}

/** A port that was free for both TCP and UDP on 127.0.0.1 a moment ago. */
export async function freeTcpUdpPort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const udp = dgram.createSocket('udp4');
    const udpFree = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    if (udpFree) udp.close();
    await new Promise((resolve) => server.close(resolve));
    if (udpFree) return port;
    if (attempt > 20) throw new Error('no port free for both TCP and UDP');
  }
}
