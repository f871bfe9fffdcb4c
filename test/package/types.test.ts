/**
 * A TypeScript consumer of every subpath, by package name, compiled with tsc (module and
 * moduleResolution nodenext, strict, library checks on) against the installed tarball: the
 * declarations must be found through the exports map, agree with what each module exports at run
 * time, and be precise (the @ts-expect-error lines fail the compile if a type decays to any).
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { install, moduleSubpaths, node, root, run, specifier, writeScript } from './support.js';

/** Uses of each documented subpath the way the README shows them. */
const USAGE = `
import * as dgram from 'node:dgram';
import * as http from 'node:http';
import * as net from 'node:net';
import {
  LISTEN_FDS_START,
  ListenFd,
  SystemdError,
  isActivated,
  listenFds,
  parseListenEnvironment,
  systemdFd,
  systemdFds,
  type FdInfo,
  type SystemdErrorCode,
} from 'sd-activate';
import { connection, listen as listenNet } from 'sd-activate/net';
import { bind } from 'sd-activate/dgram';
import { listen as listenHttp, listenHttp2, listenHttps } from 'sd-activate/http';
import { listen as listenExpress } from 'sd-activate/express';
import { listen as listenFastify } from 'sd-activate/fastify';
import { handOverWebSockets, type WebSocketHandover } from 'sd-activate/ws';
import { startService } from 'sd-activate/testing';

export function uses(): void {
  const start: 3 = LISTEN_FDS_START;
  const fds: readonly ListenFd[] = listenFds();
  for (const { fd, name, info } of fds) {
    const described: FdInfo = info;
    if (info.kind === 'socket' && (info.family === 'ipv4' || info.family === 'ipv6')) {
      const port: number = info.local.port;
      void port;
    }
    void [fd + 1, name.length, described];
  }
  const activated: boolean = isActivated();
  net.createServer().listen(systemdFd('http', 8080));
  for (const target of systemdFds('http', 8080)) net.createServer().listen(target);
  const parsed = parseListenEnvironment({ LISTEN_PID: '1', LISTEN_FDS: '1' }, { pid: 1, pidfdId: () => null });
  void [start, activated, parsed];

  try {
    listenFds();
  } catch (error) {
    if (error instanceof SystemdError) {
      const code: SystemdErrorCode = error.code;
      void code;
    }
  }
  // @ts-expect-error: not one of the library's codes
  const wrong: SystemdErrorCode = 'ERR_SD_NO_SUCH_CODE';
  void wrong;

  const a: Promise<net.Server[]> = listenNet('admin', (socket: net.Socket) => socket.end('ok\\n'), { fallback: '/run/app.sock' });
  const conn: net.Socket = connection();
  const b: Promise<dgram.Socket[]> = bind('dns-udp', { fallback: 5353 });
  const c: Promise<http.Server[]> = listenHttp('http', (req: http.IncomingMessage, res: http.ServerResponse) => res.end('hi'), { fallback: 8080 });
  // @ts-expect-error: the name comes first
  void listenHttp((req: http.IncomingMessage, res: http.ServerResponse) => res.end('hi'), 'http');
  void [a, conn, b, c, listenHttps, listenHttp2, listenExpress, listenFastify, startService];

  // @ts-expect-error: the Upgrader and the WebSocketServer come first
  const handover: WebSocketHandover = handOverWebSockets({ boundaryTimeoutMs: 100 });
  handover.on('connection', (ws, state: unknown) => ws.send(String(state)));
  handover.on('restart', (ws, reason: string) => void [ws.readyState, reason]);
}
`;

/** Links the type packages the consumer needs from this repository's node_modules. */
function linkTypes(consumerDir: string): void {
  const from = join(root, 'node_modules');
  const to = join(consumerDir, 'node_modules');
  mkdirSync(join(to, '@types'), { recursive: true });
  for (const entry of readdirSync(join(from, '@types'))) {
    if (!existsSync(join(to, '@types', entry))) symlinkSync(join(from, '@types', entry), join(to, '@types', entry));
  }
  // fastify ships its own declarations; the adapters' declarations import them.
  for (const pkg of ['fastify', 'express']) if (!existsSync(join(to, pkg))) symlinkSync(join(from, pkg), join(to, pkg));
}

/** The runtime exports of `spec`, from a process of its own in `dir`. */
function runtimeExports(dir: string, spec: string): string[] {
  const result = node(dir, ['--input-type=module', '-e', 'console.log(JSON.stringify(Object.keys(await import(process.argv[1])).sort()))', spec]);
  expect(result.status, result.stderr).to.equal(0);
  return JSON.parse(result.stdout) as string[];
}

/** A consumer file: USAGE, and for every subpath a check that its declared values are its runtime exports. */
function consumerSource(dir: string, subpaths: readonly string[]): string {
  const lines = [USAGE];
  subpaths.forEach((subpath, i) => {
    const spec = specifier(subpath);
    const names = runtimeExports(dir, spec);
    lines.push(
      `import * as ns${i} from '${spec}';`,
      `const runtime${i} = ${JSON.stringify(names)} as const;`,
      `type Undeclared${i} = Exclude<(typeof runtime${i})[number], keyof typeof ns${i}>;`,
      `type Absent${i} = Exclude<keyof typeof ns${i}, (typeof runtime${i})[number]>;`,
      `export const agree${i}: [Undeclared${i}, Absent${i}] extends [never, never] ? true : { '${spec}': [Undeclared${i}, Absent${i}] } = true;`,
    );
  });
  return lines.join('\n') + '\n';
}

function compile(dir: string): { status: number | null; output: string } {
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
      },
      files: ['consumer.ts'],
    }),
  );
  const result = run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], { cwd: dir, check: false });
  return { status: result.status, output: result.stdout + result.stderr };
}

describe('package: types, compiled by a TypeScript consumer of every subpath (nodenext)', function () {
  this.timeout(180_000);

  it('compiles, and every subpath declares exactly the values it exports at run time', function () {
    const consumer = install({ ignoreScripts: true, purpose: 'types' });
    linkTypes(consumer.dir);
    const subpaths = moduleSubpaths(consumer.pkg);
    writeScript(consumer.dir, 'consumer.ts', consumerSource(consumer.dir, subpaths));
    const { status, output } = compile(consumer.dir);
    expect(output.trim()).to.equal('');
    expect(status).to.equal(0);
  });

  it('fails when a subpath has no declarations (the control)', function () {
    const consumer = install({ ignoreScripts: true, purpose: 'types-control' });
    linkTypes(consumer.dir);
    const subpaths = moduleSubpaths(consumer.pkg);
    writeScript(consumer.dir, 'consumer.ts', consumerSource(consumer.dir, subpaths));
    rmSync(join(consumer.pkg, 'dist', 'adapters', 'dgram.d.ts'));
    const { status, output } = compile(consumer.dir);
    expect(status).to.not.equal(0);
    expect(output).to.match(/error TS7016: Could not find a declaration file for module 'sd-activate\/dgram'/);
  });
});
