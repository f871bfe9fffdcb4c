/*
 * What the adapters share: turning a name into listen targets, and checking that each
 * inherited fd can serve what the adapter serves before Node is handed it (Node's own
 * errors for a wrong fd type are obscure: EINVAL, ERR_INVALID_FD_TYPE, or a silent hang).
 */
import type { Server } from 'node:net';
import type { TlsOptions } from 'node:tls';
import {
  ListenFd,
  SystemdError,
  systemdFds,
  type FallbackListenOptions,
  type FdInfo,
  type ListenFallback,
} from '../src/index.js';
import { listenThroughBridge, needsBridge } from './bun.js';

/** What every adapter accepts. */
export interface AdapterOptions {
  /** Where to listen when the process was not socket-activated: a port, a unix path, or `{ host, port }`. */
  fallback?: ListenFallback;
}

/** An inherited fd or, when not activated, the fallback. */
export type ListenTarget = ListenFd | FallbackListenOptions;

function unsuitable(handle: ListenFd, adapter: string, needs: string, instead: string): SystemdError {
  return new SystemdError(
    'ERR_SD_FD_UNSUITABLE',
    `fd ${handle.fd} "${handle.name}" is ${handle.describe()}; ${adapter} needs ${needs}${instead ? `; ${instead}` : ''}`,
  );
}

function isInetOrUnix(info: FdInfo): boolean {
  return info.kind === 'socket' && (info.family === 'ipv4' || info.family === 'ipv6' || info.family === 'unix');
}

/** Throws ERR_SD_FD_UNSUITABLE unless the fd is a listening TCP or unix stream socket. */
export function checkStreamListener(handle: ListenFd, adapter: string): void {
  const info = handle.info;
  const needs = 'a listening stream socket (ListenStream=, TCP or unix)';
  if (info.kind !== 'socket') throw unsuitable(handle, adapter, needs, 'Node can read it with fs.createReadStream(null, { fd })');
  if (info.type === 'dgram' && (info.family === 'ipv4' || info.family === 'ipv6')) {
    throw unsuitable(handle, adapter, needs, 'serve it with sd-activate/dgram');
  }
  if (info.type === 'dgram' || info.type === 'seqpacket') {
    throw unsuitable(handle, adapter, needs, `Node cannot serve unix ${info.type} sockets`);
  }
  if (!isInetOrUnix(info) || info.type !== 'stream') throw unsuitable(handle, adapter, needs, '');
  if (!info.listening) {
    throw unsuitable(
      handle,
      adapter,
      needs,
      'peer' in info && info.peer ? 'it is one accepted connection (Accept=yes): take it with connection() from sd-activate/net' : 'it is not listening',
    );
  }
}

/** Throws ERR_SD_FD_UNSUITABLE unless the fd is a UDP (inet datagram) socket. */
export function checkDatagram(handle: ListenFd, adapter: string): 'udp4' | 'udp6' {
  const info = handle.info;
  const needs = 'a UDP socket (ListenDatagram= on an IP address)';
  if (info.kind === 'socket' && info.type === 'dgram' && (info.family === 'ipv4' || info.family === 'ipv6')) {
    return info.family === 'ipv4' ? 'udp4' : 'udp6';
  }
  if (info.kind === 'socket' && info.family === 'unix' && info.type === 'dgram') {
    throw unsuitable(handle, adapter, needs, "Node's dgram module cannot use unix datagram sockets");
  }
  if (info.kind === 'socket' && info.type === 'stream') {
    throw unsuitable(handle, adapter, needs, 'serve stream sockets with sd-activate/net or sd-activate/http');
  }
  throw unsuitable(handle, adapter, needs, '');
}

/** Every target of `name`, each checked for a stream server, before anything listens. */
export function streamTargets(name: string, adapter: string, options: AdapterOptions = {}): ListenTarget[] {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const targets = systemdFds(name, options.fallback);
  for (const target of targets) if (target instanceof ListenFd) checkStreamListener(target, adapter);
  return targets;
}

/**
 * `server.listen(target)` as a promise: resolves once listening, rejects with the listen error
 * (and leaves no listener behind either way).
 */
export function listenOn<S extends Server>(server: S, target: ListenTarget, tls?: TlsOptions): Promise<S> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve(server);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    if (!(target instanceof ListenFd)) server.listen(target);
    else if (needsBridge(server)) listenThroughBridge(server, target, tls);
    else server.listen({ fd: target.fd });
  });
}

/**
 * Listens one server per target, all or none: on a failure the ones already listening are closed.
 * `tls`: the TLS options the servers were made with, for Bun (see ./bun.ts).
 */
export async function listenAll<S extends Server>(targets: readonly ListenTarget[], create: () => S, tls?: TlsOptions): Promise<S[]> {
  const servers: S[] = [];
  try {
    for (const target of targets) servers.push(await listenOn(create(), target, tls));
    return servers;
  } catch (error) {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    throw error;
  }
}
