import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { SystemdError, type SystemError } from '../../src/core/errors.js';
import type { NotifyMessage, NotifyReceiver } from '../../src/shared/notify-receiver.js';
import { MIN_PING_INTERVAL_MS, parseWatchdogEnvironment, startWatchdog, watchdogEnabled, type Watchdog } from '../../src/service/watchdog.js';
import { openReceiver, saveEnv } from '../support/notify.js';
import { evalCommand } from '../support/runtime.js';

const INDEX = fileURLToPath(new URL('../../src/index.js', import.meta.url));
const PID = 4242;
const U64_MAX = (1n << 64n) - 1n;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('watchdog', function () {
  describe('parseWatchdogEnvironment() (sd_watchdog_enabled rules)', function () {
    const cases: Array<[string, Record<string, string>, bigint | null | [string, number]]> = [
      ['WATCHDOG_USEC unset: disabled', {}, null],
      ['WATCHDOG_PID alone: disabled', { WATCHDOG_PID: String(PID) }, null],
      ['a plain number', { WATCHDOG_USEC: '30000000' }, 30_000_000n],
      ['1 µs', { WATCHDOG_USEC: '1' }, 1n],
      ['leading whitespace and +', { WATCHDOG_USEC: ' \t+5' }, 5n],
      ['0x hex (strtoull base 0)', { WATCHDOG_USEC: '0x10' }, 16n],
      ['a leading 0 is octal', { WATCHDOG_USEC: '010' }, 8n],
      ['0b binary', { WATCHDOG_USEC: '0b101' }, 5n],
      ['0o octal', { WATCHDOG_USEC: '0o17' }, 15n],
      ['2^64-2, the largest finite', { WATCHDOG_USEC: (U64_MAX - 1n).toString() }, U64_MAX - 1n],
      ['WATCHDOG_PID is ours', { WATCHDOG_USEC: '1000', WATCHDOG_PID: String(PID) }, 1000n],
      ['WATCHDOG_PID is another process: disabled', { WATCHDOG_USEC: '1000', WATCHDOG_PID: String(PID + 1) }, null],
      ['empty', { WATCHDOG_USEC: '' }, ['ERR_SD_WATCHDOG_USEC_INVALID', -22]],
      ['0', { WATCHDOG_USEC: '0' }, ['ERR_SD_WATCHDOG_USEC_INVALID', -22]],
      ['-0', { WATCHDOG_USEC: '-0' }, ['ERR_SD_WATCHDOG_USEC_INVALID', -22]],
      ['infinity (2^64-1)', { WATCHDOG_USEC: U64_MAX.toString() }, ['ERR_SD_WATCHDOG_USEC_INVALID', -22]],
      ['above 2^64-1', { WATCHDOG_USEC: (U64_MAX + 1n).toString() }, ['ERR_SD_WATCHDOG_USEC_INVALID', -34]],
      ['negative', { WATCHDOG_USEC: '-5' }, ['ERR_SD_WATCHDOG_USEC_INVALID', -34]],
      ['trailing space', { WATCHDOG_USEC: '5 ' }, ['ERR_SD_WATCHDOG_USEC_INVALID', -22]],
      ['a unit', { WATCHDOG_USEC: '30s' }, ['ERR_SD_WATCHDOG_USEC_INVALID', -22]],
      ['a fraction', { WATCHDOG_USEC: '1.5' }, ['ERR_SD_WATCHDOG_USEC_INVALID', -22]],
      ['garbage', { WATCHDOG_USEC: 'abc' }, ['ERR_SD_WATCHDOG_USEC_INVALID', -22]],
      ['USEC is checked before PID', { WATCHDOG_USEC: 'x', WATCHDOG_PID: 'y' }, ['ERR_SD_WATCHDOG_USEC_INVALID', -22]],
      ['WATCHDOG_PID garbage', { WATCHDOG_USEC: '1000', WATCHDOG_PID: 'abc' }, ['ERR_SD_WATCHDOG_PID_INVALID', -22]],
      ['WATCHDOG_PID empty', { WATCHDOG_USEC: '1000', WATCHDOG_PID: '' }, ['ERR_SD_WATCHDOG_PID_INVALID', -22]],
      ['WATCHDOG_PID 0', { WATCHDOG_USEC: '1000', WATCHDOG_PID: '0' }, ['ERR_SD_WATCHDOG_PID_INVALID', -34]],
      ['WATCHDOG_PID above INT_MAX', { WATCHDOG_USEC: '1000', WATCHDOG_PID: '2147483648' }, ['ERR_SD_WATCHDOG_PID_INVALID', -34]],
      ['WATCHDOG_PID negative', { WATCHDOG_USEC: '1000', WATCHDOG_PID: '-1' }, ['ERR_SD_WATCHDOG_PID_INVALID', -34]],
    ];
    for (const [name, env, want] of cases) {
      it(name, function () {
        if (Array.isArray(want)) {
          let error: unknown;
          try {
            parseWatchdogEnvironment(env, PID);
          } catch (e) {
            error = e;
          }
          expect(error).to.be.instanceOf(SystemdError);
          expect((error as SystemdError).code).to.equal(want[0]);
          expect(((error as SystemdError).cause as { errno: number }).errno).to.equal(want[1]);
          expect((error as SystemdError).message).to.match(/^WATCHDOG_(USEC|PID)=".*" /);
        } else {
          expect(parseWatchdogEnvironment(env, PID)).to.equal(want);
        }
      });
    }
  });

  describe('watchdogEnabled()', function () {
    let restore: () => void;
    beforeEach(() => (restore = saveEnv('WATCHDOG_USEC', 'WATCHDOG_PID')));
    afterEach(() => restore());

    it('reads process.env and returns milliseconds, or 0 when disabled', function () {
      delete process.env.WATCHDOG_USEC;
      delete process.env.WATCHDOG_PID;
      expect(watchdogEnabled()).to.equal(0);
      process.env.WATCHDOG_USEC = '30000000';
      expect(watchdogEnabled()).to.equal(30_000);
      process.env.WATCHDOG_USEC = '1500';
      expect(watchdogEnabled()).to.equal(1.5);
      process.env.WATCHDOG_PID = String(process.pid);
      expect(watchdogEnabled()).to.equal(1.5);
      process.env.WATCHDOG_PID = String(process.pid + 1);
      expect(watchdogEnabled()).to.equal(0);
    });

    it('unsetEnvironment removes both variables, on success and on error alike', function () {
      process.env.WATCHDOG_USEC = '1000';
      process.env.WATCHDOG_PID = String(process.pid);
      expect(watchdogEnabled({ unsetEnvironment: true })).to.equal(1);
      expect([process.env.WATCHDOG_USEC, process.env.WATCHDOG_PID]).to.deep.equal([undefined, undefined]);
      process.env.WATCHDOG_USEC = 'garbage';
      process.env.WATCHDOG_PID = '1';
      expect(() => watchdogEnabled({ unsetEnvironment: true })).to.throw(SystemdError, /WATCHDOG_USEC="garbage"/);
      expect([process.env.WATCHDOG_USEC, process.env.WATCHDOG_PID]).to.deep.equal([undefined, undefined]);
    });

    it('garbage is a typed error', function () {
      process.env.WATCHDOG_USEC = '10 s';
      expect(() => watchdogEnabled()).to.throw(SystemdError).with.property('code', 'ERR_SD_WATCHDOG_USEC_INVALID');
      process.env.WATCHDOG_USEC = '1000';
      process.env.WATCHDOG_PID = 'self';
      expect(() => watchdogEnabled()).to.throw(SystemdError).with.property('code', 'ERR_SD_WATCHDOG_PID_INVALID');
    });
  });

  describe('startWatchdog()', function () {
    let receiver: NotifyReceiver;
    let close: () => void;
    let restore: () => void;
    let watchdog: Watchdog | undefined;
    const pings: number[] = [];

    beforeEach(function () {
      restore = saveEnv('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID');
      ({ receiver, close } = openReceiver('abstract'));
      process.env.NOTIFY_SOCKET = receiver.address;
      delete process.env.WATCHDOG_PID;
      pings.length = 0;
      receiver.on('message', (message: NotifyMessage) => {
        expect(message.text).to.equal('WATCHDOG=1');
        pings.push(performance.now());
      });
    });

    afterEach(function () {
      watchdog?.stop();
      watchdog = undefined;
      close();
      restore();
    });

    it('pings at once, then every half WATCHDOG_USEC', async function () {
      process.env.WATCHDOG_USEC = '200000';
      const started = performance.now();
      watchdog = startWatchdog();
      expect(watchdog.enabled).to.equal(true);
      expect(watchdog.timeoutMs).to.equal(200);
      expect(watchdog.intervalMs).to.equal(100);
      await sleep(470);
      expect(pings.length, `pings at ${pings.map((t) => Math.round(t - started)).join(', ')} ms`).to.be.within(4, 6);
      expect(pings[0]! - started, 'the first at once').to.be.lessThan(60);
    });

    it(`a tiny WATCHDOG_USEC pings no more often than every ${MIN_PING_INTERVAL_MS} ms (WATCHDOG_USEC=1 pinged about 930 times a second)`, async function () {
      for (const usec of ['1', '3000', String(2 * MIN_PING_INTERVAL_MS * 1000 - 1)]) {
        process.env.WATCHDOG_USEC = usec;
        pings.length = 0;
        const started = performance.now();
        watchdog = startWatchdog();
        expect(watchdog.timeoutMs, usec).to.equal(Number(usec) / 1000);
        expect(watchdog.intervalMs, usec).to.equal(MIN_PING_INTERVAL_MS);
        await sleep(300);
        watchdog.stop();
        const elapsed = performance.now() - started;
        // At once, then one per interval: 31 in 300 ms at most, and it does keep pinging.
        expect(pings.length, `${usec}: ${pings.length} pings in ${Math.round(elapsed)} ms`).to.be.within(3, Math.floor(elapsed / MIN_PING_INTERVAL_MS) + 1);
      }
      // Twice the floor and above: half the timeout, as before.
      process.env.WATCHDOG_USEC = String(2 * MIN_PING_INTERVAL_MS * 1000);
      watchdog = startWatchdog();
      expect(watchdog.intervalMs).to.equal(MIN_PING_INTERVAL_MS);
      watchdog.stop();
      process.env.WATCHDOG_USEC = '50000';
      watchdog = startWatchdog();
      expect(watchdog.intervalMs).to.equal(25);
    });

    it('does nothing when no watchdog is asked for (WATCHDOG_USEC unset, or WATCHDOG_PID of another process)', async function () {
      let checks = 0;
      delete process.env.WATCHDOG_USEC;
      watchdog = startWatchdog({ healthCheck: () => (checks++, true) });
      expect([watchdog.enabled, watchdog.timeoutMs, watchdog.intervalMs]).to.deep.equal([false, 0, 0]);
      process.env.WATCHDOG_USEC = '20000';
      process.env.WATCHDOG_PID = String(process.pid + 1);
      const other = startWatchdog({ healthCheck: () => (checks++, true) });
      expect(other.enabled).to.equal(false);
      await sleep(100);
      expect(pings).to.deep.equal([]);
      expect(checks).to.equal(0);
    });

    it('skips the ping while the health check fails, and resumes when it passes', async function () {
      process.env.WATCHDOG_USEC = '60000';
      let healthy = false;
      let checks = 0;
      watchdog = startWatchdog({ healthCheck: () => (checks++, healthy) });
      await sleep(150);
      expect(checks, 'checked at each tick').to.be.greaterThan(2);
      expect(pings, 'no ping while unhealthy').to.deep.equal([]);
      healthy = true;
      await sleep(150);
      expect(pings.length).to.be.greaterThan(1);
    });

    it('an async health check: no ping and no second check while one is pending', async function () {
      process.env.WATCHDOG_USEC = '40000';
      let checks = 0;
      let release: (ok: boolean) => void = () => {};
      watchdog = startWatchdog({ healthCheck: () => (checks++, new Promise<boolean>((resolve) => (release = resolve))) });
      await sleep(150);
      expect(checks, 'one check, still pending').to.equal(1);
      expect(pings).to.deep.equal([]);
      release(true);
      await sleep(5);
      expect(pings.length, 'pinged once it passed').to.equal(1);
      await sleep(100);
      expect(checks).to.be.greaterThan(1);
    });

    it('a throwing, rejecting or non-boolean health check means no ping, and is reported', async function () {
      process.env.WATCHDOG_USEC = '1000000';
      const errors: unknown[] = [];
      const onError = (e: unknown): number => errors.push(e);
      const boom = new Error('db down');
      const a = startWatchdog({ healthCheck: () => { throw boom; }, onError });
      const b = startWatchdog({ healthCheck: () => Promise.reject(boom), onError });
      const c = startWatchdog({ healthCheck: () => 'yes' as unknown as boolean, onError });
      await sleep(20);
      [a, b, c].forEach((w) => w.stop());
      expect(pings).to.deep.equal([]);
      expect(errors).to.have.length(3);
      expect(errors.filter((e) => e === boom), 'the throw and the rejection').to.have.length(2);
      expect(errors.filter((e) => e instanceof TypeError), 'the non-boolean').to.have.length(1);
    });

    it('a failed send is reported to onError and the pinger goes on', async function () {
      process.env.WATCHDOG_USEC = '60000';
      process.env.NOTIFY_SOCKET = `@sd-activate-nobody-${process.pid}`;
      const errors: SystemError[] = [];
      watchdog = startWatchdog({ onError: (e) => errors.push(e as SystemError) });
      await sleep(100);
      expect(errors.length).to.be.greaterThan(1);
      expect(errors[0]!.code).to.equal('ECONNREFUSED');
    });

    it('stops on stop() and when its signal aborts', async function () {
      process.env.WATCHDOG_USEC = '40000';
      const controller = new AbortController();
      const a = startWatchdog({ signal: controller.signal });
      const b = startWatchdog();
      await sleep(60);
      controller.abort();
      b.stop();
      await sleep(20);
      const count = pings.length;
      expect(count).to.be.greaterThan(2);
      await sleep(120);
      expect(pings.length, 'no ping after stopping').to.equal(count);
      a.stop();
      expect(startWatchdog({ signal: AbortSignal.abort() }).enabled, 'an aborted signal: nothing starts').to.equal(true);
      await sleep(50);
      expect(pings.length).to.equal(count);
    });

    it('WATCHDOG_USEC garbage: startWatchdog() throws the typed error', function () {
      process.env.WATCHDOG_USEC = 'infinity';
      expect(() => startWatchdog()).to.throw(SystemdError).with.property('code', 'ERR_SD_WATCHDOG_USEC_INVALID');
    });

    it('its timer does not keep the process alive', async function () {
      const script = `import('${INDEX}').then(({ startWatchdog }) => startWatchdog())`;
      const { command, args } = evalCommand(script);
      const child = spawn(command, args, {
        env: { ...process.env, WATCHDOG_USEC: '600000000' },
        stdio: 'inherit',
      });
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
      clearTimeout(killer);
      expect([code, signal], 'exited by itself').to.deep.equal([0, null]);
      await sleep(20);
      expect(pings.length, 'after one ping').to.equal(1);
    });

    it('a blocked event loop sends no ping: that is what the watchdog is for', async function () {
      this.timeout(20_000);
      // The child pings every 50 ms, blocks its loop for 800 ms, then pings again for a while.
      const script = `import('${INDEX}').then(async ({ startWatchdog, notify }) => {
        const w = startWatchdog();
        await new Promise((r) => setTimeout(r, 300));
        notify.status('blocking');
        const end = Date.now() + 800;
        while (Date.now() < end) {}
        notify.status('unblocked');
        await new Promise((r) => setTimeout(r, 300));
        w.stop();
      })`;
      const statuses: Array<[string, number]> = [];
      receiver.removeAllListeners('message');
      receiver.on('message', (message: NotifyMessage) => {
        if (message.text === 'WATCHDOG=1') pings.push(performance.now());
        else statuses.push([message.text, performance.now()]);
      });
      const { command, args } = evalCommand(script);
      const child = spawn(command, args, { env: { ...process.env, WATCHDOG_USEC: '100000' }, stdio: 'inherit' });
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await once(child, 'exit');
      clearTimeout(killer);
      await sleep(20);
      expect(statuses.map(([text]) => text)).to.deep.equal(['STATUS=blocking', 'STATUS=unblocked']);
      const [blocked, unblocked] = [statuses[0]![1], statuses[1]![1]];
      const during = pings.filter((t) => t > blocked && t < unblocked);
      expect(during, 'no ping while the loop was blocked').to.deep.equal([]);
      expect(pings.filter((t) => t < blocked).length, 'pings before').to.be.greaterThan(3);
      expect(pings.filter((t) => t > unblocked).length, 'pings after').to.be.greaterThan(3);
    });
  });
});
