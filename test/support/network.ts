import { createSocket, type SocketType } from 'node:dgram';
import { get, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer, Socket, type NetConnectOpts } from 'node:net';
import { native } from '../../src/native/addon.js';
import { encodeSockaddr } from '../../src/core/sockaddr.js';

/**
 * A TCP port that is free right now on 127.0.0.1 and ::1 alike: bound on [::] (dual stack, so
 * both families reserve it), read, released. Whoever binds it next races only with the rest of
 * the machine's port 0 binds.
 */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen({ port: 0, host: '::', ipv6Only: false }, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A UDP port free right now on `host` (udp4 unless host contains ':'). */
export function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    socket.on('error', reject);
    socket.bind(0, host, () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** What a stream server said before it ended the connection, and the local end we used. */
export interface StreamReply {
  text: string;
  localAddress: string | undefined;
  localPort: number | undefined;
}

/**
 * Connects, sends `send` (if any), and collects everything until the server ends the connection.
 *
 * @throws Error on a connection error or when the server does not end it within `timeoutMs`
 */
export function readUntilEnd(options: NetConnectOpts, timeoutMs = 10000, send?: string): Promise<StreamReply> {
  return collect(connect(options), JSON.stringify(options), timeoutMs, send);
}

/**
 * As {@link readUntilEnd}, for an abstract unix socket. Node 20's net.connect() passes the whole
 * sizeof(sockaddr_un) for a name with a leading NUL, so it never reaches a socket bound with the
 * exact length, as systemd binds them: the connect is made with the addon instead.
 */
export function readUntilEndAbstract(name: string, timeoutMs = 10000, send?: string): Promise<StreamReply> {
  const n = native();
  const fd = n.socket(n.constants.AF_UNIX, n.constants.SOCK_STREAM | n.constants.SOCK_CLOEXEC, 0);
  try {
    n.connect(fd, encodeSockaddr({ family: 'unix', abstract: name }));
  } catch (error) {
    n.close(fd);
    throw error;
  }
  const socket = new Socket({ fd, readable: true, writable: true });
  return collect(socket, `@${name}`, timeoutMs, send, true);
}

function collect(socket: Socket, peer: string, timeoutMs: number, send: string | undefined, connected = false): Promise<StreamReply> {
  return new Promise((resolve, reject) => {
    let text = '';
    let localAddress: string | undefined;
    let localPort: number | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end of stream from ${peer} within ${timeoutMs} ms; got ${JSON.stringify(text)}`));
    }, timeoutMs);
    const onConnect = (): void => {
      localAddress = socket.localAddress;
      localPort = socket.localPort;
      if (send !== undefined) socket.write(send);
    };
    socket.setEncoding('utf8');
    if (connected) onConnect();
    else socket.on('connect', onConnect);
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.end();
      resolve({ text, localAddress, localPort });
    });
  });
}

/**
 * Sends `payload` to a UDP server and resolves with the first reply. The datagram is sent again
 * every `resendMs` until a reply comes, since a service that is still starting may miss none but
 * a reply can always be lost.
 */
export function udpRequest(host: string, port: number, payload: string, timeoutMs = 10000, resendMs = 1000): Promise<string> {
  const type: SocketType = host.includes(':') ? 'udp6' : 'udp4';
  return new Promise((resolve, reject) => {
    const socket = createSocket(type);
    const send = (): void => socket.send(payload, port, host);
    const resend = setInterval(send, resendMs);
    const timer = setTimeout(() => finish(new Error(`no UDP reply from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    function finish(error: Error | null, reply?: string): void {
      clearInterval(resend);
      clearTimeout(timer);
      socket.close();
      if (error) reject(error);
      else resolve(reply!);
    }
    socket.on('message', (message) => finish(null, message.toString('utf8')));
    socket.on('error', (error) => finish(error));
    socket.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', send);
  });
}

/** An HTTP response, read whole. */
export interface HttpReply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * GET `path` from `host:port` (or from the unix socket `socketPath`) on a fresh connection.
 *
 * @throws Error on a connection error or when no whole response comes within `timeoutMs`
 */
export function httpGet(target: { host: string; port: number } | { socketPath: string }, path: string, timeoutMs = 10000): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const request = get({ ...target, path, agent: false, headers: { connection: 'close' } }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body });
      });
      response.on('error', fail);
    });
    const timer = setTimeout(() => {
      request.destroy();
      reject(new Error(`no response to GET ${path} from ${JSON.stringify(target)} within ${timeoutMs} ms`));
    }, timeoutMs);
    function fail(error: Error): void {
      clearTimeout(timer);
      reject(error);
    }
    request.on('error', fail);
  });
}
