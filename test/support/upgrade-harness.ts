import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadPlan, Window } from './load.js';
import { freeTcpPort, freeUdpPort } from './network.js';

/*
 * What the upgrade tests and `npm run bench:upgrade` share: the service of
 * test/fixtures/upgrade-service.ts in a directory of its own, its unit, the load on it, and the
 * wait for one upgrade to be over.
 */

export const UPGRADE_SERVICE = fileURLToPath(new URL('../fixtures/upgrade-service.js', import.meta.url));

/** DIR/config.json of the service, less the addresses (free ports are found). */
export interface ServiceConfig {
  mode: 'store' | 'self-bind';
  workers?: number;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
  /** Serve the raw line service too, on a socket "lines": TCP (a free port is found), or a unix socket in the service's directory. */
  lines?: boolean | 'unix';
  /** The new process takes the line connections with connections(), not the 'connection' event. */
  iterate?: boolean;
  /** The http server's keepAliveTimeout. */
  keepAliveTimeoutMs?: number;
  /** WebSockets on the web socket, handed over by sd-activate/ws: permessage-deflate offered or not; moved: a ws whose Sender's privates moved. */
  ws?: 'plain' | 'deflate' | 'moved';
  /** sd-activate/ws's boundaryTimeoutMs. */
  boundaryTimeoutMs?: number;
}

/** The service's directory: its configuration, the version "on disk", its event log. */
export interface ServiceDir {
  dir: string;
  webPort: number;
  udpPort: number;
  /** The line service's port (0 without `lines`, or on a unix socket). */
  linesPort: number;
  /** The line service's unix socket, with `lines: 'unix'`. */
  linesPath: string | undefined;
  /** Writes version.json: what the next process started will be. */
  deploy(version: string, behavior?: 'ok' | 'crash' | 'hang' | 'stubborn' | 'no-handover' | 'no-worker-handover'): void;
  /** The `EVENT PID VERSION` lines so far. */
  events(): string[];
}

/** A fresh directory under `parent` for a service on free loopback ports, at version v1. */
export async function prepareService(parent: string, config: ServiceConfig): Promise<ServiceDir> {
  const dir = mkdtempSync(join(parent, 'service-'));
  const webPort = await freeTcpPort();
  const udpPort = await freeUdpPort();
  const linesPort = config.lines === true ? await freeTcpPort() : 0;
  const linesPath = config.lines === 'unix' ? join(dir, 'lines.sock') : undefined;
  const { lines, ...rest } = config;
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      web: { address: '127.0.0.1', port: webPort },
      udp: { address: '127.0.0.1', port: udpPort },
      ...(lines ? { lines: linesPath ? { path: linesPath } : { address: '127.0.0.1', port: linesPort } } : {}),
      ...rest,
    }),
  );
  const service: ServiceDir = {
    dir,
    webPort,
    udpPort,
    linesPort,
    linesPath,
    deploy: (version, behavior = 'ok') => writeFileSync(join(dir, 'version.json'), JSON.stringify({ version, behavior })),
    events: () => (existsSync(join(dir, 'events.log')) ? readFileSync(join(dir, 'events.log'), 'utf8').trim().split('\n') : []),
  };
  service.deploy('v1');
  return service;
}

/** A path or argument as a unit file takes it: quoted, with '%' not taken for a specifier. */
export function unitArg(text: string): string {
  return `"${text.replace(/%/g, '%%').replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * The service's unit: Type=notify (MAINPID= and READY=1 from the main process, NotifyAccess=main
 * by default), ExecReload= sending SIGHUP, the fd store for the sockets it opens itself.
 */
export function serviceUnit(service: ServiceDir, extra: readonly string[] = []): string {
  return [
    '[Service]',
    'Type=notify',
    'NotifyAccess=main',
    `ExecStart=${unitArg(process.execPath)} ${unitArg(UPGRADE_SERVICE)} ${unitArg(service.dir)}`,
    'ExecReload=/bin/kill -HUP $MAINPID',
    'FileDescriptorStoreMax=16',
    `StandardOutput=append:${join(service.dir, 'output.log').replace(/%/g, '%%')}`,
    'StandardError=inherit',
    'TimeoutStartSec=20',
    'TimeoutStopSec=10',
    ...extra,
  ].join('\n');
}

/** What the service wrote, for a failed assertion's message. */
export function serviceOutput(service: ServiceDir): string {
  const file = join(service.dir, 'output.log');
  const output = existsSync(file) ? readFileSync(file, 'utf8').trim() : '(none)';
  const warnings = join(service.dir, 'warnings.log');
  const warned = existsSync(warnings) ? `\n--- warnings:\n${readFileSync(warnings, 'utf8').trim()}` : '';
  return `\n--- events:\n${service.events().join('\n')}\n--- output:\n${output}${warned}`;
}

/** Rates of the load on a service. */
export interface Rates {
  /** New connection per request. */
  close: number;
  /** Over 4 keep-alive connections. */
  keepAlive: number;
  udp: number;
}

/** The load plan for a service: HTTP without and with keep-alive, UDP, at constant rates. */
export function loadPlan(service: ServiceDir, rates: Rates, maxDurationMs: number): LoadPlan {
  return {
    http: [
      { host: '127.0.0.1', port: service.webPort, rate: rates.close, keepAlive: false },
      { host: '127.0.0.1', port: service.webPort, rate: rates.keepAlive, keepAlive: true, connections: 4 },
    ],
    udp: { host: '127.0.0.1', port: service.udpPort, rate: rates.udp, drainMs: 1000 },
    timeoutMs: 3000,
    maxDurationMs,
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether a process runs (a zombie does not). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** One upgrade: the main pid before and after, and its window (from the trigger until the old process is gone). */
export interface UpgradeStep {
  from: number;
  to: number;
  window: Window;
}

/**
 * Triggers one upgrade and waits until the old process is gone and the main pid has changed.
 * The old process is watched in /proc, which costs nothing; `mainPid` (a `systemctl show`, a
 * process of its own) is asked only once it is gone, so that the harness does not load the
 * machine while it measures a switch.
 *
 * @throws Error when that does not happen within `timeoutMs`
 */
export async function upgradeOnce(trigger: () => Promise<void>, mainPid: () => Promise<number>, timeoutMs: number, explain: () => string = () => ''): Promise<UpgradeStep> {
  const from = await mainPid();
  const start = Date.now();
  await trigger();
  const deadline = start + timeoutMs;
  let end: number | undefined;
  for (;;) {
    if (end === undefined && !alive(from)) end = Date.now();
    if (end !== undefined) {
      const to = await mainPid();
      if (to > 0 && to !== from) return { from, to, window: { start, end } };
    }
    if (Date.now() > deadline) throw new Error(`no upgrade within ${timeoutMs} ms: main pid ${from}, old ${alive(from) ? 'alive' : 'gone'}${explain()}`);
    await sleep(end === undefined ? 5 : 50);
  }
}
