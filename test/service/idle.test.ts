import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI } from '../support/cli-bin.js';
import { outputOf, spawnActivated } from '../support/activated-child.js';
import { freeTcpPort } from '../support/network.js';
import { SocketSet } from '../support/sockets.js';
import { SystemdManager } from '../support/systemd-manager.js';

const SERVICE = fileURLToPath(new URL('../fixtures/idle-service.js', import.meta.url));
const INDEX = fileURLToPath(new URL('../../src/index.js', import.meta.url));

/** One HTTP request on a new connection: the body, or the error's code ('ECONNREFUSED', ...). */
function get(port: number, path = '/'): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body.trim()));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The `start PID` / `exit PID` lines the service logged. */
function events(log: string): string[] {
  try {
    return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

describe('idle exit (idleTimeoutMs)', function () {
  this.timeout(90_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'sd-activate-idle-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // A test that times out never reaches its finally: its tool (and through it the service) must not outlive the run.
  let running: ChildProcess | undefined;
  afterEach(() => {
    if (running && running.exitCode === null && running.signalCode === null) running.kill('SIGINT');
    running = undefined;
  });

  it('is refused with ERR_SD_IDLE_EXIT_UNSAFE when the sockets would not outlive the process', async function () {
    const sockets = new SocketSet();
    try {
      const script = (setup: string): string =>
        `import * as sd from ${JSON.stringify(INDEX)}; import http from 'node:http';` +
        `${setup}; try { await sd.lifecycle({ servers: [server], idleTimeoutMs: 100, exit: false }); console.log('accepted'); } catch (e) { console.log(e.code + ' ' + e.message); } process.exit(0);`;
      // Not activated: it listens on a port of its own.
      const own = spawn(process.execPath, ['--input-type=module', '-e', script(`const server = http.createServer().listen(0)`)], { env: { ...process.env, LISTEN_FDS: undefined, LISTEN_PID: undefined } as NodeJS.ProcessEnv });
      const ownOut = await outputOf(own);
      expect(ownOut.stdout).to.match(/^ERR_SD_IDLE_EXIT_UNSAFE cannot exit when idle: this process was not socket-activated/);
      // Activated, but it opened a socket of its own too.
      const { fd } = sockets.tcp('127.0.0.1');
      const mixed = spawnActivated({
        fds: [fd],
        names: ['web'],
        command: process.execPath,
        args: [
          '--input-type=module',
          '-e',
          script(`sd.openStoredSocket('mine', { type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 0 } }); const server = http.createServer().listen(sd.systemdFd('web'))`),
        ],
      });
      const mixedOut = await outputOf(mixed);
      expect(mixedOut.stdout).to.match(/^ERR_SD_IDLE_EXIT_UNSAFE cannot exit when idle: it opened sockets of its own/);
      // Activated, every socket inherited: accepted.
      const { fd: fd2 } = sockets.tcp('127.0.0.1');
      const good = spawnActivated({ fds: [fd2], names: ['web'], command: process.execPath, args: ['--input-type=module', '-e', script(`const server = http.createServer().listen(sd.systemdFd('web'))`)] });
      expect((await outputOf(good)).stdout).to.equal('accepted\n');
    } finally {
      sockets.closeAll();
    }
  });

  it('under `sd-activate run --lazy`: exits when idle, and the next client is answered; 20 cycles, a connection during each exit, nothing refused', async function () {
    const port = await freeTcpPort();
    const log = join(dir, 'run.log');
    let stderr = '';
    const cli: ChildProcess = spawn(process.execPath, [CLI, 'run', '-l', `web=tcp:127.0.0.1:${port}`, '--lazy', '--type', 'notify', '--start-limit-burst', '0', '--', process.execPath, SERVICE, '200', log], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    running = cli;
    cli.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    try {
      // The tool listens from here on.
      for (const end = Date.now() + 10_000; !/waiting for a connection/.test(stderr) && Date.now() < end; ) await sleep(10);
      const answers: string[] = [];
      for (let cycle = 0; cycle < 20; cycle++) {
        const before = (stderr.match(/Idle for 200 ms/g) ?? []).length;
        answers.push(await get(port));
        // When the service says it is idle, it is stopping: a connection now comes during the exit.
        const deadline = Date.now() + 10_000;
        while ((stderr.match(/Idle for 200 ms/g) ?? []).length === before && Date.now() < deadline) await sleep(2);
        answers.push(await get(port, '/slow'));
        // Until it is gone, and back to waiting.
        while (!/waiting for a connection[^]*$/.test(stderr.slice(stderr.lastIndexOf('Idle for 200 ms'))) && Date.now() < deadline + 10_000) await sleep(10);
      }
      expect(answers.filter((a) => !/^\d+$/.test(a)), `failed requests\n${stderr.slice(-3000)}`).to.deep.equal([]);
      const starts = events(log).filter((e) => e.startsWith('start '));
      const exits = events(log).filter((e) => e.startsWith('exit '));
      expect(starts.length, stderr).to.be.at.least(20);
      expect(exits.length).to.be.at.least(19);
      expect(stderr).to.not.match(/exited with status [1-9]|was killed by/);
    } finally {
      cli.kill('SIGINT');
      await new Promise((resolve) => cli.once('close', resolve));
    }
  });

  it('under systemd with a .socket unit: exits when idle, and the next client starts it again; 20 cycles, nothing refused', async function () {
    const manager = await SystemdManager.start();
    try {
      const port = await freeTcpPort();
      const log = join(dir, 'systemd.log');
      await manager.installUnits({
        'sdact-idle.socket': ['[Socket]', `ListenStream=127.0.0.1:${port}`, 'FileDescriptorName=web'].join('\n'),
        // Each start after an idle exit counts for StartLimitBurst= (5 in 10 s by default).
        'sdact-idle.service': ['[Unit]', 'StartLimitIntervalSec=0', '[Service]', 'Type=notify', `ExecStart=${process.execPath} ${SERVICE} 200 ${log}`].join('\n'),
      });
      await manager.systemctlOk('start', 'sdact-idle.socket');
      const answers: string[] = [];
      for (let cycle = 0; cycle < 20; cycle++) {
        answers.push(await get(port));
        // Around the idle timeout: some land while it exits, some after.
        await sleep(150 + (cycle % 5) * 40);
        answers.push(await get(port, '/slow'));
        await sleep(500);
      }
      expect(answers.filter((a) => !/^\d+$/.test(a)), `failed requests${manager.logExcerpt(40)}`).to.deep.equal([]);
      const exits = events(log).filter((e) => e.startsWith('exit '));
      expect(exits.length, manager.logExcerpt(40)).to.be.at.least(15);
      expect(await manager.show('sdact-idle.service', 'Result')).to.equal('success');
      expect(await manager.show('sdact-idle.service', 'NRestarts')).to.equal('0');
    } finally {
      await manager.stop();
    }
  });
});
