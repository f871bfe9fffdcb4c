import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exchange, fixture } from './cli/helpers.js';
import { SystemdError } from '../src/core/errors.js';
import { startService, stopAll, type TestService } from '../src/testing.js';

/** Gone, or a zombie that only waits for a parent (init, after ours exited) to reap it. */
const isGone = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
};

async function rejection(promise: Promise<unknown>): Promise<SystemdError> {
  try {
    await promise;
  } catch (error) {
    return error as SystemdError;
  }
  throw new Error('expected a rejection');
}

describe('sd-activate/testing', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sd-activate-'))));
  afterEach(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts a command with named sockets and gives back where to connect', async () => {
    const service = await startService({
      command: process.execPath,
      args: [fixture('hello-server')],
      listen: { web: ['tcp:127.0.0.1:0', 'tcp:[::1]:0'], admin: `unix:${dir}/admin.sock`, abs: `@sd-activate-testing-${process.pid}` },
    });
    expect(service.addresses.map((a) => [a.name, a.kind])).to.deep.equal([
      ['web', 'tcp'],
      ['web', 'tcp'],
      ['admin', 'unix'],
      ['abs', 'unix'],
    ]);
    const web = service.address('web');
    expect(web).to.include({ kind: 'tcp', family: 4, host: '127.0.0.1' });
    expect(service.url('web')).to.equal(`http://127.0.0.1:${(web as { port: number }).port}`);
    expect(service.addresses[1]).to.include({ family: 6, host: '::1' });
    // Each address goes to net.connect() as it is (but an abstract one: see ServiceAddress).
    for (const address of service.addresses.slice(0, 3)) expect(await exchange(address)).to.equal(`hello ${service.pid} ${address.name}\n`);
    expect(service.address('abs')).to.include({ abstract: true, path: `\0sd-activate-testing-${process.pid}` });
    expect(() => service.address('nope')).to.throw(TypeError, /no socket named "nope"; there are "web", "web", "admin", "abs"/);

    const pid = service.pid!;
    const result = await service.stop();
    expect(result.exitCode).to.equal(0);
    expect(isGone(pid)).to.equal(true);
    expect(existsSync(join(dir, 'admin.sock'))).to.equal(false);
    const error = await rejection(exchange(web));
    expect((error as unknown as NodeJS.ErrnoException).code).to.equal('ECONNREFUSED');
  });

  it('runs a function in a child, awaits READY=1, and reads notify messages as they come', async () => {
    const service = await startService({
      type: 'notify',
      listen: { web: 'tcp:127.0.0.1:0' },
      fnArgs: ['hi'],
      fn: async (sd, greeting: string) => {
        const net = await import('node:net');
        const [web] = sd.listenFds();
        net.createServer((socket) => socket.end(`${greeting} ${process.pid}\n`)).listen(web);
        sd.notify.status('starting');
        await new Promise((resolve) => setTimeout(resolve, 100));
        sd.notify.ready();
        let n = 0;
        setInterval(() => sd.notify.status(`served ${++n}`), 50);
      },
    });
    // Resolved on READY=1: the STATUS before it is already there.
    expect(service.messages.map((m) => m.text)).to.deep.equal(['STATUS=starting', 'READY=1']);
    expect(await exchange(service.address('web'))).to.equal(`hi ${service.pid}\n`);
    const third = await service.waitFor({ STATUS: /^served 3$/ });
    expect(third.pid).to.equal(service.pid);
    const seen: string[] = [];
    for await (const message of service.notifications()) {
      seen.push(message.text);
      if (seen.length === 4) break;
    }
    expect(seen.slice(0, 2)).to.deep.equal(['STATUS=starting', 'READY=1']);
    expect(seen[2]).to.match(/^STATUS=served \d+$/);
    const next = await service.waitFor('STATUS', { fromNow: true });
    expect(Number(/\d+/.exec(next.fields.get('STATUS')!)![0])).to.be.greaterThan(3);
  });

  it('a service that exits before READY=1 rejects with its exit and stderr, and nothing stays open', async () => {
    const error = await rejection(
      startService({
        command: process.execPath,
        args: ['-e', 'console.error("config file missing"); process.exit(4)'],
        listen: { web: 'tcp:127.0.0.1:0' },
        type: 'notify',
      }),
    );
    expect(error).to.be.instanceOf(SystemdError);
    expect(error.code).to.equal('ERR_SD_SERVICE_EXITED');
    expect(error.message).to.match(/exited with status 4 before READY=; its stderr ends:\nconfig file missing/);
  });

  it('no READY=1 within timeoutMs: ERR_SD_START_TIMEOUT, and the service is stopped', async () => {
    const started = Date.now();
    const error = await rejection(
      startService({ command: process.execPath, args: [fixture('notify-service'), 'print-env:NOTIFY_SOCKET', 'hang'], type: 'notify', timeoutMs: 300 }),
    );
    expect(error.code).to.equal('ERR_SD_START_TIMEOUT');
    expect(error.message).to.match(/sent no READY=1 within 300 ms/);
    expect(Date.now() - started).to.be.below(5000);
  });

  it('waitForOutput and waitForExit; restart keeps the socket, connections wait for the new process', async () => {
    const service = await startService({ command: process.execPath, args: [fixture('hello-server')], listen: { web: 'tcp:127.0.0.1:0' }, restart: 'always', restartMs: 200 });
    const first = service.pid!;
    expect(await exchange(service.address('web'))).to.equal(`hello ${first} web\n`);
    service.kill('SIGKILL');
    const exit = await service.waitForExit();
    expect(exit).to.include({ pid: first, signal: 'SIGKILL', result: 'signal', restarting: true, restartDelayMs: 200 });
    // Connected while nothing runs: answered by the next process.
    const answer = await exchange(service.address('web'));
    expect(answer).to.match(/^hello \d+ web\n$/);
    expect(answer).not.to.include(String(first));
  });

  it('captures output', async () => {
    const service = await startService({ command: process.execPath, args: ['-e', 'console.log("listening"); console.error("warn: x"); setInterval(() => {}, 1000)'] });
    expect(await service.waitForOutput('listening')).to.equal('listening');
    expect(await service.waitForOutput(/warn: (\w)/, { stream: 'stderr' })).to.equal('warn: x');
    const error = await rejection(service.waitForOutput('never', { timeoutMs: 100 }));
    expect(error.code).to.equal('ERR_SD_WAIT_TIMEOUT');
  });

  it('messages show a few lines of what the service wrote, each cut, and long names cut too', async () => {
    const service = await startService({
      command: process.execPath,
      args: ['-e', 'console.error("y".repeat(1 << 20)); console.log("up"); setInterval(() => {}, 1000)'],
      listen: { web: 'tcp:127.0.0.1:0' },
    });
    await service.waitForOutput('up');
    const long = 'z'.repeat(10240);
    const error = await rejection(service.waitForOutput(long, { timeoutMs: 100 }));
    expect(error.code).to.equal('ERR_SD_WAIT_TIMEOUT');
    expect(error.message.length, error.message.slice(0, 300)).to.be.below(1000);
    expect(error.message).to.include(`... (${1 << 20} bytes)`);
    expect(() => service.address(long)).to.throw(TypeError, /^no socket named "z+"\.\.\. \(10240 bytes\); there are "web"$/);
    expect(() => service.url(long)).to.throw(TypeError, /\(10240 bytes\)/);
  });

  it('stopAll() and asyncDispose stop what is running', async () => {
    const a: TestService = await startService({ command: process.execPath, args: [fixture('hello-server')], listen: { web: 'tcp:127.0.0.1:0' } });
    const b = await startService({ command: process.execPath, args: [fixture('hello-server')], listen: { web: 'tcp:127.0.0.1:0' } });
    const [pa, pb] = [a.pid!, b.pid!];
    await b[Symbol.asyncDispose]();
    expect(isGone(pb)).to.equal(true);
    await stopAll();
    expect(isGone(pa)).to.equal(true);
  });

  it('a test process that fails with a service running still kills it', async () => {
    const child = spawn(process.execPath, [fixture('testing-abandon'), fixture('hello-server')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).to.equal(1);
    const pid = Number(/PID (\d+)/.exec(stdout)?.[1]);
    expect(pid).to.be.greaterThan(0);
    // SIGKILL is sent synchronously on exit; give the kernel a moment to reap it.
    for (let i = 0; i < 150 && !isGone(pid); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(isGone(pid)).to.equal(true);
  });

  it('refuses options that are not', async () => {
    await rejection(startService({} as never)).then((e) => expect(e).to.be.instanceOf(TypeError));
    await rejection(startService({ command: 'x', fn: () => 1 } as never)).then((e) => expect(e.message).to.match(/either a command or a function/));
    const bad = await rejection(startService({ command: process.execPath, listen: { web: 'tcp:1.2.3.4:99999' } }));
    expect(bad.code).to.equal('ERR_SD_LISTEN_SPEC_INVALID');
    const missing = await rejection(startService({ command: 'no-such-command-here' }));
    expect(missing.code).to.equal('ERR_SD_COMMAND_NOT_FOUND');
  });
});
