/**
 * Differential test: the notify client against the installed libsystemd (252 on Debian 12), through
 * test/support/notify-harness.c, compiled here once. Both send to the same NotifyReceiver, and
 * what arrives must be the same: the bytes, the number and kind of fds, and whose credentials.
 *
 * One difference is modelled, nothing else is tolerated:
 *
 * - more than 253 fds. libsystemd 252 does not count them and the kernel refuses the sendmsg with
 *   EINVAL; the addon refuses before the syscall with E2BIG. Either way nothing is sent.
 */
import { expect } from 'chai';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SystemdError, type SystemError } from '../../src/core/errors.js';
import { native } from '../../src/native/addon.js';
import { notify } from '../../src/service/notify.js';
import type { NotifyMessage, NotifyReceiver } from '../../src/shared/notify-receiver.js';
import { parseWatchdogEnvironment, watchdogEnabled } from '../../src/service/watchdog.js';
import { closeAll, fdIdentity, openReceiver, saveEnv } from '../support/notify.js';

const HARNESS_SOURCE = fileURLToPath(new URL('../../../test/support/notify-harness.c', import.meta.url));
const INDEX = fileURLToPath(new URL('../../src/index.js', import.meta.url));

describe('notify against libsystemd', function () {
  let dir: string;
  let harness: string;
  let receiver: NotifyReceiver;
  let close: () => void;
  let restore: () => void;
  let payload: string;

  before(function () {
    this.timeout(60_000);
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    harness = join(dir, 'notify-harness');
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', harness, HARNESS_SOURCE, '-lsystemd'], { stdio: 'inherit' });
    payload = join(dir, 'payload');
    writeFileSync(payload, 'payload');
  });

  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(function () {
    restore = saveEnv('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID');
    // Every datagram whole, whatever its size: what is compared is what each sender sends.
    ({ receiver, close } = openReceiver('path', { maxMessageBytes: Infinity }));
    process.env.NOTIFY_SOCKET = receiver.address;
  });

  afterEach(function () {
    close();
    restore();
  });

  /** Runs the harness with NOTIFY_SOCKET as given (unset for null); returns its output and pid. */
  function c(args: string[], notifySocket: string | null = receiver.address, extra: { prefix?: string[] } = {}): { out: string; pid: number } {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    if (notifySocket !== null) env.NOTIFY_SOCKET = notifySocket;
    const [command, ...rest] = [...(extra.prefix ?? []), harness, ...args];
    const child = spawnSync(command!, rest, { env, encoding: 'utf8', timeout: 10_000 });
    if (child.error) throw child.error;
    expect(child.status, `harness ${args.join(' ')}: ${child.stderr}`).to.equal(0);
    return { out: child.stdout.trim(), pid: child.pid };
  }

  const next = (): Promise<NotifyMessage> => receiver.receive({ timeoutMs: 5000 });

  /** Sends with libsystemd, then with Node; both must arrive the same. Returns both messages. */
  async function same(message: string, send: () => boolean): Promise<[NotifyMessage, NotifyMessage]> {
    const { out, pid } = c(['send', message]);
    expect(out, 'libsystemd sent it').to.equal('1');
    const fromC = await next();
    expect(send()).to.equal(true);
    const fromNode = await next();
    expect(fromNode.data.equals(fromC.data), `${JSON.stringify(fromNode.text)} vs libsystemd's ${JSON.stringify(fromC.text)}`).to.equal(true);
    expect(fromNode.data.equals(Buffer.from(message)), 'libsystemd sends the string as-is').to.equal(true);
    expect([fromC.fds.length, fromNode.fds.length]).to.deep.equal([0, 0]);
    expect([fromC.pid, fromC.uid, fromC.gid]).to.deep.equal([pid, process.getuid!(), process.getgid!()]);
    expect([fromNode.pid, fromNode.uid, fromNode.gid]).to.deep.equal([process.pid, process.getuid!(), process.getgid!()]);
    return [fromC, fromNode];
  }

  describe('every helper sends what sd_notify() sends for the same message', function () {
    const cases: Array<[string, () => boolean]> = [
      ['READY=1', () => notify.ready()],
      ['STATUS=Serving 3 clients, ünïcode ✓', () => notify.status('Serving 3 clients, ünïcode ✓')],
      ['STATUS=', () => notify.status('')],
      ['STOPPING=1', () => notify.stopping()],
      ['WATCHDOG=1', () => notify.watchdog()],
      ['WATCHDOG=trigger', () => notify.watchdogTrigger()],
      ['WATCHDOG_USEC=1500000', () => notify.watchdogUsec(1500)],
      ['MAINPID=4242', () => notify.mainPid(4242)],
      ['EXTEND_TIMEOUT_USEC=2500000', () => notify.extendTimeout(2500)],
      ['ERRNO=2', () => notify.errno('ENOENT')],
      ['BUSERROR=org.freedesktop.DBus.Error.TimedOut', () => notify.busError('org.freedesktop.DBus.Error.TimedOut')],
      ['FDSTOREREMOVE=1\nFDNAME=web', () => notify.fdStoreRemove('web')],
      ['READY=1\nSTATUS=Up\nMAINPID=7\nX_BUILD=12', () => notify({ READY: 1, STATUS: 'Up', MAINPID: 7, X_BUILD: 12n })],
      ['READY=1\nSTATUS=trailing newline\n', () => notify('READY=1\nSTATUS=trailing newline\n')],
      ['STATUS=' + 'x'.repeat(4000), () => notify.status('x'.repeat(4000))],
    ];
    for (const [message, send] of cases) {
      it(JSON.stringify(message.length > 60 ? message.slice(0, 60) + '…' : message), async function () {
        await same(message, send);
      });
    }

    it('an empty message', async function () {
      await same('', () => notify(''));
    });

    it('RELOADING=1 with MONOTONIC_USEC from the same clock as the C side (CLOCK_MONOTONIC, µs)', async function () {
      const before = BigInt(c(['monotonic']).out);
      notify.reloading();
      const after = BigInt(c(['monotonic']).out);
      const message = await next();
      const match = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(message.text);
      expect(match, message.text).to.not.equal(null);
      const usec = BigInt(match![1]!);
      expect(usec >= before && usec <= after, `${before} <= ${usec} <= ${after}`).to.equal(true);
      // and libsystemd passes the same text through unchanged
      await same(message.text, () => notify(message.text));
    });
  });

  describe('fds (sd_pid_notify_with_fds)', function () {
    it('FDSTORE with two fds: same bytes, same number of fds, the same files', async function () {
      expect(c(['send-fds', payload, '2', 'FDSTORE=1\nFDNAME=web']).out).to.equal('1');
      const fromC = await next();
      const a = openSync(payload, 'r');
      const b = openSync(payload, 'r');
      try {
        notify.fdStore('web', [a, b]);
        const fromNode = await next();
        expect(fromNode.data.equals(fromC.data)).to.equal(true);
        expect(fromC.fds).to.have.length(2);
        expect(fromNode.fds).to.have.length(2);
        const file = fdIdentity(a);
        expect([...fromC.fds, ...fromNode.fds].map(fdIdentity)).to.deep.equal([file, file, file, file]);
        closeAll([...fromC.fds, ...fromNode.fds]);
      } finally {
        closeAll([a, b]);
      }
    });

    it('253 fds go in one message; 254 fail on both sides (EINVAL from the kernel there, E2BIG here) and send nothing', async function () {
      const a = openSync(payload, 'r');
      try {
        expect(c(['send-fds', payload, '253', 'FDSTORE=1']).out).to.equal('1');
        const fromC = await next();
        notify('FDSTORE=1', { fds: new Array<number>(253).fill(a) });
        const fromNode = await next();
        expect([fromC.fds.length, fromNode.fds.length]).to.deep.equal([253, 253]);
        closeAll([...fromC.fds, ...fromNode.fds]);

        expect(c(['send-fds', payload, '254', 'FDSTORE=1']).out).to.equal('-22');
        let error: SystemError | undefined;
        try {
          notify('FDSTORE=1', { fds: new Array<number>(254).fill(a) });
        } catch (e) {
          error = e as SystemError;
        }
        expect(error?.code).to.equal('E2BIG');
        notify.status('marker');
        expect((await next()).text, 'neither sent anything').to.equal('STATUS=marker');
      } finally {
        closeSync(a);
      }
    });
  });

  describe('message size', function () {
    // The default send buffer of a new socket; the kernel takes a datagram up to a little less.
    const sndbuf = Number(readFileSync('/proc/sys/net/core/wmem_default', 'utf8'));
    const below = sndbuf - 16_384;
    const above = Math.min(sndbuf + 100_000, 4 * 1024 * 1024);

    it(`below the default send buffer (${below} bytes) and above it (${above}), both send it whole`, async function () {
      expect(c(['send-status', String(below)]).out).to.equal('1');
      const fromC = await next();
      notify.status('x'.repeat(below));
      const fromNode = await next();
      expect(fromNode.data.length).to.equal(below + 7);
      expect(fromNode.data.equals(fromC.data)).to.equal(true);

      // libsystemd raises SO_SNDBUF to 8 MiB first; the addon does the same for large messages.
      expect(c(['send-status', String(above)]).out).to.equal('1');
      const bigFromC = await next();
      expect(bigFromC.data.length).to.equal(above + 7);
      notify.status('x'.repeat(above));
      const bigFromNode = await next();
      expect(bigFromNode.data.equals(bigFromC.data)).to.equal(true);
    });
  });

  describe('sd_notify_barrier', function () {
    it('the same BARRIER=1 with one pipe fd; both return once the receiver closes it', async function () {
      const child = spawn(harness, ['barrier', '5000000'], { env: { NOTIFY_SOCKET: receiver.address } });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      const fromC = await next();
      const done = notify.barrier(5000);
      const fromNode = await next();
      expect(fromNode.data.equals(fromC.data)).to.equal(true);
      expect(fromC.text).to.equal('BARRIER=1');
      const { S_IFIFO } = native().constants;
      expect([fromC.fds.length, fromNode.fds.length]).to.deep.equal([1, 1]);
      expect([native().inspect(fromC.fds[0]!).mode, native().inspect(fromNode.fds[0]!).mode]).to.deep.equal([S_IFIFO, S_IFIFO]);
      closeAll([...fromC.fds, ...fromNode.fds]);
      await once(child, 'exit');
      expect(out.trim(), 'sd_notify_barrier() returned 1').to.equal('1');
      expect(await done).to.equal(true);
    });

    it('both time out with ETIMEDOUT when the receiver keeps the fd', async function () {
      const child = spawn(harness, ['barrier', '200000'], { env: { NOTIFY_SOCKET: receiver.address } });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      const fromC = await next();
      const done = notify.barrier(200).then(
        () => undefined,
        (e: unknown) => e as SystemError,
      );
      const fromNode = await next();
      await once(child, 'exit');
      const error = await done;
      closeAll([...fromC.fds, ...fromNode.fds]);
      expect(out.trim()).to.equal('-110');
      expect(error?.errno).to.equal(-110);
      expect(error?.code).to.equal('ETIMEDOUT');
    });

    it('both return 0/false without NOTIFY_SOCKET', async function () {
      expect(c(['barrier', '1000000'], null).out).to.equal('0');
      delete process.env.NOTIFY_SOCKET;
      expect(await notify.barrier(1000)).to.equal(false);
    });
  });

  describe('NOTIFY_SOCKET, valid or not: the same outcome', function () {
    const values: Array<[string, () => string | undefined]> = [
      ['unset', () => undefined],
      ['the receiver (path)', () => receiver.address],
      ['empty', () => ''],
      ['relative', () => 'run/notify'],
      ['@ alone', () => '@'],
      ['/ alone', () => '/'],
      ['leading space', () => ' /x'],
      ['vsock: (newer systemd only)', () => 'vsock:2:1234'],
      ['// (a directory)', () => '//'],
      ['a path nobody bound', () => join(dir, 'nobody')],
      ['an abstract name nobody bound', () => `@sd-activate-nobody-${process.pid}`],
      ['path of 107 bytes', () => '/' + 'a'.repeat(106)],
      ['path of 108 bytes', () => '/' + 'a'.repeat(107)],
      ['path of 200 bytes', () => '/' + 'a'.repeat(199)],
      ['abstract of 107 bytes', () => '@' + 'a'.repeat(106)],
      ['abstract of 108 bytes', () => '@' + 'a'.repeat(107)],
      ['UTF-8 path of 108 bytes', () => '/é' + 'a'.repeat(105)],
      ['UTF-8 path of 107 bytes', () => '/é' + 'a'.repeat(104)],
    ];

    /** What Node's notify.ready() did, in libsystemd's terms: 1 sent, 0 not under a manager, -errno. */
    function nodeResult(options: { unsetEnvironment?: boolean } = {}): number {
      try {
        return notify.ready(options) ? 1 : 0;
      } catch (error) {
        if (error instanceof SystemdError) {
          expect(error.code).to.equal('ERR_SD_NOTIFY_SOCKET_INVALID');
          return (error.cause as { errno: number }).errno;
        }
        return (error as SystemError).errno;
      }
    }

    function setSocket(value: string | undefined): void {
      if (value === undefined) delete process.env.NOTIFY_SOCKET;
      else process.env.NOTIFY_SOCKET = value;
    }

    for (const [name, value] of values) {
      it(name, async function () {
        const v = value();
        const r = Number(c(['send', 'READY=1'], v ?? null).out);
        if (r === 1) expect((await next()).text).to.equal('READY=1');
        setSocket(v);
        expect(nodeResult(), 'sd_notify() returned ' + r).to.equal(r);
        if (r === 1) expect((await next()).text).to.equal('READY=1');

        // unset_environment: removed on every path where the variable was set, errors included
        const [r2, state] = c(['send-unset', 'READY=1'], v ?? null).out.split(' ');
        if (r2 === '1') await next();
        setSocket(v);
        expect(nodeResult({ unsetEnvironment: true })).to.equal(Number(r2));
        if (r2 === '1') await next();
        expect(process.env.NOTIFY_SOCKET === undefined ? 'unset' : 'kept').to.equal(state);
      });
    }
  });

  describe('credentials (sd_pid_notify)', function () {
    it('claiming another pid: both send it (root has CAP_SYS_ADMIN here)', async function () {
      expect(c(['pid-send', String(process.pid), 'MAINPID=1']).out).to.equal('1');
      const fromC = await next();
      expect(fromC.pid).to.equal(process.pid);
      notify('MAINPID=1', { pid: process.ppid });
      expect((await next()).pid).to.equal(process.ppid);
    });

    it('without CAP_SYS_ADMIN both fall back to sending as themselves', async function () {
      const prefix = ['setpriv', '--bounding-set=-sys_admin', '--inh-caps=-sys_admin'];
      // setpriv execs the harness: the pid spawnSync reports is the harness's
      const { out, pid } = c(['pid-send', String(process.pid), 'READY=1'], receiver.address, { prefix });
      expect(out).to.equal('1');
      expect((await next()).pid).to.equal(pid);

      const script = `import('${INDEX}').then(({ notify }) => { notify.ready({ pid: process.ppid }); process.stdout.write(String(process.pid)); })`;
      const child = spawnSync(prefix[0]!, [...prefix.slice(1), process.execPath, '-e', script], {
        env: { ...process.env, NOTIFY_SOCKET: receiver.address },
        encoding: 'utf8',
        timeout: 10_000,
      });
      expect(child.status, child.stderr).to.equal(0);
      expect((await next()).pid).to.equal(Number(child.stdout));
    });
  });

  describe('sd_watchdog_enabled', function () {
    /** [WATCHDOG_USEC, WATCHDOG_PID]; undefined: unset; @SELF@ is the process's own pid. */
    const cases: Array<[string | undefined, string | undefined]> = [];
    const usecs = [
      undefined, '', '0', '1', '30000000', ' 5', '\t5', '\n5', ' \v5', '+5', '-0', '-5', '- 5', '5 ', '5s', '1.5', 'abc',
      '0x10', '0X1f', '0x', '0xg', '+0x10', '-0x0', '010', '08', '0b101', '0B11', '0b', '0b2', '0o17', '0O7', '0o8',
      ' 0b101', '0b -1', '0b-1', '0b+1', '00', '0x0', '18446744073709551614', '18446744073709551615', '18446744073709551616',
      '99999999999999999999999x', '0xffffffffffffffff', '0x1ffffffffffffffff', '-18446744073709551615',
    ];
    for (const u of usecs) cases.push([u, undefined]);
    const pids = ['', '0', '1', '@SELF@', ' @SELF@', '+@SELF@', '@SELF@ ', '@SELF@x', '-1', '2147483647', '2147483648', '4294967296', 'abc', '0x1', '0b1'];
    for (const p of pids) cases.push(['1000', p]);
    cases.push(['garbage', 'garbage'], ['0', '@SELF@'], [undefined, '@SELF@']);

    const field = (v: string | undefined): string => (v === undefined ? '-' : '=' + Buffer.from(v, 'utf8').toString('hex'));

    function run(unset: boolean): { pid: number; results: string[][] } {
      const input = cases.map(([u, p]) => `${field(u)} ${field(p)}\n`).join('');
      const child = spawnSync(harness, unset ? ['watchdog', 'unset'] : ['watchdog'], { input, encoding: 'utf8', env: {}, timeout: 10_000 });
      expect(child.status, child.stderr).to.equal(0);
      const lines = child.stdout.trimEnd().split('\n');
      const pid = Number(/^pid (\d+)$/.exec(lines.shift()!)![1]);
      expect(lines).to.have.length(cases.length);
      return { pid, results: lines.map((l) => l.split(' ')) };
    }

    it('parseWatchdogEnvironment() agrees with libsystemd on every value', function () {
      const { pid, results } = run(false);
      cases.forEach(([u, p], i) => {
        const env: Record<string, string> = {};
        if (u !== undefined) env.WATCHDOG_USEC = u.replaceAll('@SELF@', String(pid));
        if (p !== undefined) env.WATCHDOG_PID = p.replaceAll('@SELF@', String(pid));
        const [r, usec] = results[i]!;
        const label = `WATCHDOG_USEC=${JSON.stringify(u)} WATCHDOG_PID=${JSON.stringify(p)}: libsystemd ${r} ${usec}`;
        let got: string;
        try {
          const value = parseWatchdogEnvironment(env, pid);
          got = value === null ? '0 -' : `1 ${value}`;
        } catch (error) {
          expect(error, label).to.be.instanceOf(SystemdError);
          got = `${((error as SystemdError).cause as { errno: number }).errno} -`;
        }
        expect(got, label).to.equal(`${r} ${usec}`);
      });
    });

    it('unset_environment: both variables are removed in every case, as watchdogEnabled({ unsetEnvironment }) does', function () {
      const { results } = run(true);
      expect(new Set(results.map((r) => r[2]))).to.deep.equal(new Set(['unset']));
      for (const [u, p] of cases) {
        if (u === undefined) delete process.env.WATCHDOG_USEC;
        else process.env.WATCHDOG_USEC = u.replaceAll('@SELF@', String(process.pid));
        if (p === undefined) delete process.env.WATCHDOG_PID;
        else process.env.WATCHDOG_PID = p.replaceAll('@SELF@', String(process.pid));
        try {
          watchdogEnabled({ unsetEnvironment: true });
        } catch {
          // the error itself is compared above
        }
        expect([process.env.WATCHDOG_USEC, process.env.WATCHDOG_PID], `${u} ${p}`).to.deep.equal([undefined, undefined]);
      }
    });
  });
});
