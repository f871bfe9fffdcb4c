import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { NotifyReceiver } from '../../src/shared/notify-receiver.js';
import { outputOf, spawnActivated, waitForLine } from '../support/activated-child.js';
import { openReceiver } from '../support/notify.js';
import { SocketSet } from '../support/sockets.js';
import { serviceCommand } from '../support/runtime.js';

const APP = fileURLToPath(new URL('../fixtures/lifecycle-app.js', import.meta.url));

describe('lifecycle(): READY, RELOADING and a graceful stop', () => {
  const sockets = new SocketSet();
  let receiver: { receiver: NotifyReceiver; close: () => void } | undefined;
  let child: ChildProcess | undefined;

  afterEach(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
    receiver?.close();
    receiver = undefined;
    sockets.closeAll();
  });

  async function start(mode: string, env: Record<string, string> = {}): Promise<{ port: number; exit: ReturnType<typeof outputOf> }> {
    receiver = openReceiver();
    const tcp = sockets.tcp();
    child = spawnActivated({
      fds: [tcp.fd],
      names: ['http'],
      env: { NOTIFY_SOCKET: receiver.receiver.address, ...env },
      ...serviceCommand(APP, [mode]),
    });
    const exit = outputOf(child);
    return { port: tcp.port, exit };
  }

  async function next(): Promise<ReadonlyMap<string, string>> {
    return (await receiver!.receiver.receive({ timeoutMs: 10000 })).fields;
  }

  for (const mode of ['http', 'express', 'fastify']) {
    describe(mode, () => {
      it('sends READY=1 with STATUS once listening, reloads on SIGHUP, and stops gracefully on SIGTERM', async () => {
        const { port, exit } = await start(mode);
        const ready = await next();
        expect(ready.get('READY')).to.equal('1');
        expect(ready.get('STATUS')).to.equal('Serving');
        // READY means listening: a request now is served.
        expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).to.equal('ok');

        // Listen for the line before the signal: it may come before the notify messages do.
        const reloaded = waitForLine(child!, (l) => l === 'RELOADED');
        child!.kill('SIGHUP');
        const reloading = await next();
        expect(reloading.get('RELOADING')).to.equal('1');
        expect(Number(reloading.get('MONOTONIC_USEC'))).to.be.greaterThan(0);
        const readyAgain = await next();
        expect(readyAgain.get('READY')).to.equal('1');
        await reloaded;

        // An in-flight request started before SIGTERM still gets its answer.
        const slow = fetch(`http://127.0.0.1:${port}/slow`).then((r) => r.text());
        await new Promise((r) => setTimeout(r, 100));
        child!.kill('SIGTERM');
        const stopping = await next();
        expect(stopping.get('STOPPING')).to.equal('1');
        expect(await slow).to.equal('slow done');
        const { code, stdout } = await exit;
        expect(code).to.equal(0);
        expect(stdout).to.include('STOPPED');
      });
    });
  }

  it('cuts connections still open at the stop deadline, then exits', async () => {
    const { port, exit } = await start('http', { SLOW_MS: '60000', STOP_TIMEOUT_MS: '300' });
    await next();
    const slow = fetch(`http://127.0.0.1:${port}/slow`).then(
      () => 'answered',
      () => 'cut',
    );
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    child!.kill('SIGTERM');
    const { code } = await exit;
    expect(code).to.equal(0);
    expect(await slow).to.equal('cut');
    expect(Date.now() - started).to.be.lessThan(10000);
  });

  it('extendTimeoutWhile() sends EXTEND_TIMEOUT_USEC while the work runs, then stops', async () => {
    const { exit } = await start('extend');
    const extensions: string[] = [];
    for (;;) {
      const fields = await next();
      if (fields.get('READY') === '1') break;
      extensions.push(fields.get('EXTEND_TIMEOUT_USEC') ?? 'missing');
    }
    // At once, then every 100 ms for the 250 ms the work takes: two or three, each twice the interval.
    expect(extensions.length).to.be.within(2, 4);
    expect(new Set(extensions)).to.deep.equal(new Set(['200000']));
    child!.kill('SIGKILL');
    await exit;
  });
});
