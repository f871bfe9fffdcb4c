import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SystemdError, type SystemError } from '../../src/core/errors.js';
import { native } from '../../src/native/addon.js';
import { notify } from '../../src/service/notify.js';
import type { NotifyMessage, NotifyReceiver } from '../../src/shared/notify-receiver.js';
import { encodeSockaddr } from '../../src/core/sockaddr.js';
import { closeAll, fdIdentity, openReceiver, saveEnv } from '../support/notify.js';
import { openFds } from '../support/resources.js';

const INDEX = fileURLToPath(new URL('../../src/index.js', import.meta.url));

/** Expects `fn` to throw, and returns what it threw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  expect.fail('expected an error');
}

describe('notify', function () {
  let receiver: NotifyReceiver;
  let close: () => void;
  let restore: () => void;
  let fdsBefore: Set<number>;

  beforeEach(function () {
    restore = saveEnv('NOTIFY_SOCKET');
    native(); // loaded before counting fds: the addon's own are not the test's
    fdsBefore = openFds();
    ({ receiver, close } = openReceiver('path'));
    process.env.NOTIFY_SOCKET = receiver.address;
  });

  afterEach(function () {
    close();
    restore();
    expect([...openFds()].filter((fd) => !fdsBefore.has(fd)), 'fds left open').to.deep.equal([]);
  });

  const next = (): Promise<NotifyMessage> => receiver.receive({ timeoutMs: 2000 });

  async function expectOnly(text: string): Promise<NotifyMessage> {
    const message = await next();
    expect(message.text).to.equal(text);
    expect(message.data.equals(Buffer.from(text, 'utf8')), 'the exact bytes, with no trailing newline or NUL').to.equal(true);
    expect(message.fds).to.deep.equal([]);
    expect(message.pid).to.equal(process.pid);
    expect(message.uid).to.equal(process.getuid!());
    expect(message.gid).to.equal(process.getgid!());
    return message;
  }

  describe('helpers send exactly the documented bytes', function () {
    const cases: Array<[string, () => boolean, string]> = [
      ['ready()', () => notify.ready(), 'READY=1'],
      ['status()', () => notify.status('Serving 3 clients, ünïcode ✓ 😀'), 'STATUS=Serving 3 clients, ünïcode ✓ 😀'],
      ['status("")', () => notify.status(''), 'STATUS='],
      ['stopping()', () => notify.stopping(), 'STOPPING=1'],
      ['watchdog()', () => notify.watchdog(), 'WATCHDOG=1'],
      ['watchdogTrigger()', () => notify.watchdogTrigger(), 'WATCHDOG=trigger'],
      ['watchdogUsec(1500)', () => notify.watchdogUsec(1500), 'WATCHDOG_USEC=1500000'],
      ['watchdogUsec(0.25)', () => notify.watchdogUsec(0.25), 'WATCHDOG_USEC=250'],
      ['mainPid()', () => notify.mainPid(4242), 'MAINPID=4242'],
      ['extendTimeout(2500)', () => notify.extendTimeout(2500), 'EXTEND_TIMEOUT_USEC=2500000'],
      ['errno(2)', () => notify.errno(2), 'ERRNO=2'],
      ["errno('EADDRINUSE')", () => notify.errno('EADDRINUSE'), 'ERRNO=98'],
      ['busError()', () => notify.busError('org.freedesktop.DBus.Error.TimedOut'), 'BUSERROR=org.freedesktop.DBus.Error.TimedOut'],
      ['fdStoreRemove()', () => notify.fdStoreRemove('web'), 'FDSTOREREMOVE=1\nFDNAME=web'],
      ['a string, as-is', () => notify('READY=1\nSTATUS=up\n'), 'READY=1\nSTATUS=up\n'],
      ['an empty string', () => notify(''), ''],
      [
        'a fields object, in its order',
        () => notify({ STATUS: 'up', READY: 1, MAINPID: 7, X_BUILD: 12n, WATCHDOG: 'trigger', STOPPING: undefined, RELOADING: false as unknown as 1 }),
        'STATUS=up\nREADY=1\nMAINPID=7\nX_BUILD=12\nWATCHDOG=trigger',
      ],
      ['true as 1', () => notify({ READY: true, FDSTORE: '1' }), 'READY=1\nFDSTORE=1'],
    ];
    for (const [name, send, text] of cases) {
      it(name, async function () {
        expect(send()).to.equal(true);
        await expectOnly(text);
      });
    }

    it('reloading() sends MONOTONIC_USEC, CLOCK_MONOTONIC in µs, taken at the call', async function () {
      const before = process.hrtime.bigint() / 1000n;
      expect(notify.reloading()).to.equal(true);
      const after = process.hrtime.bigint() / 1000n;
      const message = await next();
      const match = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(message.text);
      expect(match, message.text).to.not.equal(null);
      const usec = BigInt(match![1]!);
      expect(usec >= before && usec <= after, `${before} <= ${usec} <= ${after}`).to.equal(true);
    });

    it('reloading({ status }) adds STATUS, as systemd does', async function () {
      notify.reloading({ status: 'Reloading configuration' });
      expect((await next()).text).to.match(/^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=Reloading configuration$/);
    });

    it('a STATUS of 4000 bytes arrives whole, in one datagram', async function () {
      const text = 'x'.repeat(3993);
      notify.status(text);
      await expectOnly(`STATUS=${text}`);
    });

    it('several calls are several datagrams, in order', async function () {
      notify.ready();
      notify.status('one');
      notify.status('two');
      expect((await next()).text).to.equal('READY=1');
      expect((await next()).text).to.equal('STATUS=one');
      expect((await next()).text).to.equal('STATUS=two');
    });
  });

  describe('fds', function () {
    let file: string;
    beforeEach(function () {
      file = join(receiver.address, '..', 'payload');
      writeFileSync(file, 'payload');
    });

    it('fdStore() sends FDSTORE=1 and FDNAME with the fds, in order, by SCM_RIGHTS', async function () {
      const a = openSync(file, 'r');
      const b = openSync('/dev/null', 'r');
      try {
        expect(notify.fdStore('web-1', [a, b])).to.equal(true);
        const message = await next();
        expect(message.text).to.equal('FDSTORE=1\nFDNAME=web-1');
        expect(message.fds).to.have.length(2);
        expect(message.fds.map(fdIdentity)).to.deep.equal([fdIdentity(a), fdIdentity(b)]);
        expect(message.fds, 'new fds in this process, not the numbers sent').to.not.include(a);
        expect(native().getCloexec(message.fds[0]!), 'received close-on-exec').to.equal(true);
        closeAll(message.fds);
      } finally {
        closeAll([a, b]);
      }
    });

    it('fdStore(name, fds, { poll: false }) adds FDPOLL=0', async function () {
      const a = openSync(file, 'r');
      try {
        notify.fdStore('fifo', [a], { poll: false });
        const message = await next();
        expect(message.text).to.equal('FDSTORE=1\nFDNAME=fifo\nFDPOLL=0');
        closeAll(message.fds);
      } finally {
        closeSync(a);
      }
    });

    it('notify(message, { fds }) passes fds with any message; 253 at most, more is E2BIG and sends nothing', async function () {
      const a = openSync(file, 'r');
      try {
        notify({ FDSTORE: 1 }, { fds: new Array<number>(253).fill(a) });
        const message = await next();
        expect(message.text).to.equal('FDSTORE=1');
        expect(message.fds).to.have.length(253);
        expect(new Set(message.fds.map(fdIdentity))).to.deep.equal(new Set([fdIdentity(a)]));
        closeAll(message.fds);

        const error = thrown(() => notify({ FDSTORE: 1 }, { fds: new Array<number>(254).fill(a) })) as SystemError;
        expect(error.code).to.equal('E2BIG');
        expect(error.errno).to.equal(-7);
        notify.status('after');
        expect((await next()).text, 'nothing was sent for the refused message').to.equal('STATUS=after');
      } finally {
        closeSync(a);
      }
    });

    it('an fd that is not open is EBADF from sendmsg', function () {
      const error = thrown(() => notify.fdStore('x', [999_999])) as SystemError;
      expect(error.code).to.equal('EBADF');
      expect(error.syscall).to.equal('sendmsg');
      expect(error.fd).to.equal(999_999);
    });

    it("an fd closed just before (the number the send's own socket takes next) is EBADF, and nothing is sent", async function () {
      const a = openSync(file, 'r');
      try {
        // The lowest free number: what socket() in the send would get, and so pass as itself.
        const gone = openSync('/dev/null', 'r');
        closeSync(gone);
        for (const send of [() => notify.fdStore('gone', [gone]), () => notify.fdStore('gone', [a, gone]), () => notify('FDSTORE=1\nFDNAME=gone', { fds: [gone] })]) {
          const error = thrown(send) as SystemError;
          expect(error.code, error.message).to.equal('EBADF');
          expect(error.fd).to.equal(gone);
          expect(error.message).to.match(new RegExp(`^EBADF: bad file descriptor, sendmsg \\(fd ${gone}\\) '`));
        }
        notify.status('after');
        expect((await next()).text, 'nothing was sent for the refused messages').to.equal('STATUS=after');
      } finally {
        closeSync(a);
      }
    });
  });

  describe('barrier()', function () {
    it('sends BARRIER=1 alone with one fd, the write end of a pipe, and resolves when the receiver closes it', async function () {
      let settled = false;
      const done = notify.barrier(5000).then((value) => ((settled = true), value));
      const message = await next();
      expect(message.text).to.equal('BARRIER=1');
      expect(message.fds).to.have.length(1);
      expect(native().inspect(message.fds[0]!).mode, 'a pipe').to.equal(native().constants.S_IFIFO);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(settled, 'still waiting while the receiver holds the fd').to.equal(false);
      closeAll(message.fds);
      expect(await done).to.equal(true);
    });

    it('is sent at the call, in order with the calls around it', async function () {
      notify.status('before');
      const done = notify.barrier(5000);
      notify.ready();
      expect((await next()).text).to.equal('STATUS=before');
      const barrier = await next();
      expect(barrier.text).to.equal('BARRIER=1');
      expect((await next()).text).to.equal('READY=1');
      closeAll(barrier.fds);
      expect(await done).to.equal(true);
    });

    it('waits without blocking the event loop', async function () {
      const done = notify.barrier(5000);
      const message = await next();
      let ticks = 0;
      const interval = setInterval(() => ticks++, 5);
      await new Promise((resolve) => setTimeout(resolve, 100));
      clearInterval(interval);
      expect(ticks, 'timers ran while the barrier waited').to.be.greaterThan(5);
      closeAll(message.fds);
      await done;
    });

    it('rejects with ETIMEDOUT when the receiver keeps the fd, and closes its pipe', async function () {
      const done = notify.barrier(150);
      const message = await next();
      const error = (await done.then(
        () => expect.fail('resolved'),
        (e: unknown) => e,
      )) as SystemError;
      expect(error.code).to.equal('ETIMEDOUT');
      expect(error.errno).to.equal(-110);
      closeAll(message.fds);
      // afterEach checks that neither end of the pipe is left open here
    });

    it('rejects with the send error (and closes both ends) when nobody listens', async function () {
      close();
      const error = (await notify.barrier(1000).then(
        () => expect.fail('resolved'),
        (e: unknown) => e,
      )) as SystemError;
      expect(error.code).to.equal('ENOENT');
      ({ receiver, close } = openReceiver('path'));
    });

    it('refuses a timeout that is not a positive number of ms', async function () {
      for (const bad of [0, -1, NaN, 2 ** 31, '5' as unknown as number]) {
        const error = await notify.barrier(bad).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, String(bad)).to.be.instanceOf(TypeError);
      }
    });
  });

  describe('NOTIFY_SOCKET', function () {
    it('unset: every helper returns false (barrier resolves false) and nothing is sent', async function () {
      delete process.env.NOTIFY_SOCKET;
      expect(notify.ready()).to.equal(false);
      expect(notify.status('x')).to.equal(false);
      expect(notify({ READY: 1 })).to.equal(false);
      expect(notify.fdStore('x', [0])).to.equal(false);
      expect(await notify.barrier(100)).to.equal(false);
      process.env.NOTIFY_SOCKET = receiver.address;
      notify.status('marker');
      expect((await next()).text, 'the first datagram is the marker').to.equal('STATUS=marker');
    });

    it('an abstract name (@...) works', async function () {
      const abstract = openReceiver('abstract');
      try {
        process.env.NOTIFY_SOCKET = abstract.receiver.address;
        notify.ready();
        expect((await abstract.receiver.receive({ timeoutMs: 2000 })).text).to.equal('READY=1');
      } finally {
        abstract.close();
      }
    });

    it('is read at each call: a change takes effect at once', async function () {
      const other = openReceiver('abstract');
      try {
        notify.status('first');
        process.env.NOTIFY_SOCKET = other.receiver.address;
        notify.status('second');
        process.env.NOTIFY_SOCKET = receiver.address;
        notify.status('third');
        expect((await next()).text).to.equal('STATUS=first');
        expect((await next()).text).to.equal('STATUS=third');
        expect((await other.receiver.receive({ timeoutMs: 2000 })).text).to.equal('STATUS=second');
      } finally {
        other.close();
      }
    });

    const garbage: Array<[string, string, number]> = [
      ['empty', '', -22],
      ['relative path', 'run/notify', -22],
      ['a lone @', '@', -22],
      ['a lone /', '/', -22],
      ['leading space', ' /run/notify', -22],
      ['a vsock: address (systemd 253+)', 'vsock:2:1234', -22],
      ['a path of 108 bytes', '/' + 'a'.repeat(107), -36],
      ['an abstract name of 108 bytes with the @', '@' + 'a'.repeat(107), -22],
      ['a path of 108 bytes in UTF-8, 107 characters', '/é' + 'a'.repeat(105), -36],
    ];
    for (const [name, value, errno] of garbage) {
      it(`garbage (${name}) is ERR_SD_NOTIFY_SOCKET_INVALID and sends nothing`, function () {
        process.env.NOTIFY_SOCKET = value;
        const error = thrown(() => notify.ready()) as SystemdError;
        expect(error).to.be.instanceOf(SystemdError);
        expect(error.code).to.equal('ERR_SD_NOTIFY_SOCKET_INVALID');
        expect(error.message).to.include('NOTIFY_SOCKET=');
        expect((error.cause as { errno: number }).errno).to.equal(errno);
      });
    }

    it('107 bytes is the longest accepted (path: ENOENT from sendmsg, not a parse error)', function () {
      process.env.NOTIFY_SOCKET = '/' + 'a'.repeat(106);
      expect((thrown(() => notify.ready()) as SystemError).code).to.equal('ENOENT');
      process.env.NOTIFY_SOCKET = '@' + 'a'.repeat(106);
      expect((thrown(() => notify.ready()) as SystemError).code).to.equal('ECONNREFUSED');
    });

    it('a receiver that has gone away: ENOENT (path removed), ECONNREFUSED (socket closed, or no abstract name)', function () {
      const address = receiver.address;
      close();
      let error = thrown(() => notify.ready()) as SystemError;
      expect(error.code).to.equal('ENOENT');
      expect(error.errno).to.equal(-2);
      expect(error.syscall).to.equal('sendmsg');
      expect(error.path).to.equal(address);
      expect(error.message).to.equal(`ENOENT: no such file or directory, sendmsg '${address}'`);

      process.env.NOTIFY_SOCKET = `@sd-activate-nobody-${process.pid}`;
      error = thrown(() => notify.status('x')) as SystemError;
      expect(error.code).to.equal('ECONNREFUSED');
      expect(error.errno).to.equal(-111);

      // a socket file whose socket is closed: what a crashed manager leaves behind
      const b = native();
      const dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
      try {
        const stale = join(dir, 'stale');
        const fd = b.socket(b.constants.AF_UNIX, b.constants.SOCK_DGRAM | b.constants.SOCK_CLOEXEC, 0);
        b.bind(fd, encodeSockaddr({ family: 'unix', path: stale }));
        b.close(fd);
        process.env.NOTIFY_SOCKET = stale;
        error = thrown(() => notify.ready()) as SystemError;
        expect(error.code).to.equal('ECONNREFUSED');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      ({ receiver, close } = openReceiver('path'));
    });

    describe('unsetEnvironment', function () {
      it('removes NOTIFY_SOCKET after a send, so later calls (and children) see none', async function () {
        expect(notify.ready({ unsetEnvironment: true })).to.equal(true);
        expect(process.env.NOTIFY_SOCKET).to.equal(undefined);
        expect((await next()).text).to.equal('READY=1');
        expect(notify.status('x')).to.equal(false);
      });

      it('removes it when the send fails too, as libsystemd does', function () {
        close();
        expect((thrown(() => notify.ready({ unsetEnvironment: true })) as SystemError).code).to.equal('ENOENT');
        expect(process.env.NOTIFY_SOCKET).to.equal(undefined);
        process.env.NOTIFY_SOCKET = 'garbage';
        expect((thrown(() => notify.ready({ unsetEnvironment: true })) as SystemdError).code).to.equal('ERR_SD_NOTIFY_SOCKET_INVALID');
        expect(process.env.NOTIFY_SOCKET).to.equal(undefined);
        ({ receiver, close } = openReceiver('path'));
      });

      it('works for barrier() too', async function () {
        const done = notify.barrier(2000, { unsetEnvironment: true });
        expect(process.env.NOTIFY_SOCKET).to.equal(undefined);
        closeAll((await next()).fds);
        expect(await done).to.equal(true);
      });

      it('a child spawned afterwards has no NOTIFY_SOCKET', function () {
        notify.ready({ unsetEnvironment: true });
        const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.env.NOTIFY_SOCKET))'], { encoding: 'utf8' });
        expect(child.stdout).to.equal('undefined');
      });
    });

    describe('the socket option', function () {
      it('sends to the socket given, whatever process.env holds, and leaves process.env alone', async function () {
        const address = receiver.address;
        delete process.env.NOTIFY_SOCKET;
        expect(notify.ready({ socket: address })).to.equal(true);
        expect((await next()).text).to.equal('READY=1');
        process.env.NOTIFY_SOCKET = '/nonexistent/elsewhere';
        expect(notify({ STATUS: 'x' }, { socket: address })).to.equal(true);
        expect((await next()).text).to.equal('STATUS=x');
        expect(process.env.NOTIFY_SOCKET).to.equal('/nonexistent/elsewhere');
      });

      it('barrier() waits on the socket given', async function () {
        delete process.env.NOTIFY_SOCKET;
        const done = notify.barrier(2000, { socket: receiver.address });
        const message = await next();
        expect(message.text).to.equal('BARRIER=1');
        closeAll(message.fds);
        expect(await done).to.equal(true);
      });

      it('is checked like NOTIFY_SOCKET, and must be a string', function () {
        expect((thrown(() => notify.ready({ socket: 'relative' })) as SystemdError).code).to.equal('ERR_SD_NOTIFY_SOCKET_INVALID');
        expect(thrown(() => notify.ready({ socket: 7 as unknown as string }))).to.be.instanceOf(TypeError);
      });
    });
  });

  describe('values that would change the message are refused', function () {
    const refused: Array<[string, () => unknown]> = [
      ['STATUS with LF', () => notify.status('a\nREADY=1')],
      ['STATUS with CR', () => notify.status('a\rb')],
      ['STATUS with NUL', () => notify.status('a\0b')],
      ['STATUS with a lone surrogate', () => notify.status('a\ud800b')],
      ['STATUS ending in a high surrogate', () => notify.status('ok \ud83d')],
      ['STATUS with a pair the wrong way round', () => notify.status('\ude00\ud83d')],
      ['STATUS with a low surrogate after a pair', () => notify.status('\ud83d\ude00\ude00')],
      ['STATUS not a string', () => notify.status(5 as unknown as string)],
      ['STATUS with LF in a fields object', () => notify({ STATUS: 'a\nMAINPID=1' })],
      ['a private field with LF', () => notify({ X_NOTE: 'a\nREADY=1' })],
      ['a field name with =', () => notify({ ['A=B']: 1 } as never)],
      ['a lower-case field name', () => notify({ ready: 1 } as never)],
      ['a fractional number', () => notify({ MAINPID: 1.5 })],
      ['an object value', () => notify({ X_A: {} } as never)],
      ['NUL in a string message', () => notify('READY=1\0')],
      ['a lone surrogate in a string message', () => notify('STATUS=\udc00')],
      ['FDNAME with :', () => notify.fdStore('a:b', [0])],
      ['FDNAME empty', () => notify.fdStore('', [0])],
      ['FDNAME of 256 chars', () => notify.fdStore('n'.repeat(256), [0])],
      ['FDNAME with a control character', () => notify.fdStore('a\tb', [0])],
      ['FDNAME with DEL', () => notify.fdStore('a\x7f', [0])],
      ['FDNAME not ASCII', () => notify.fdStore('café', [0])],
      ['FDNAME with LF in a fields object', () => notify({ FDSTOREREMOVE: 1, FDNAME: 'a\nb' })],
      ['fdStore() without fds', () => notify.fdStore('a', [])],
      ['fdStore() with a negative fd', () => notify.fdStore('a', [-1])],
      ['fds that are not an array', () => notify('FDSTORE=1', { fds: 3 as unknown as number[] })],
      ['mainPid(0)', () => notify.mainPid(0)],
      ['mainPid(1.5)', () => notify.mainPid(1.5)],
      ['watchdogUsec(-1)', () => notify.watchdogUsec(-1)],
      ['watchdogUsec(Infinity)', () => notify.watchdogUsec(Infinity)],
      ['extendTimeout(NaN)', () => notify.extendTimeout(NaN)],
      ['errno(-1)', () => notify.errno(-1)],
      ["errno('ENOTANERRNO')", () => notify.errno('ENOTANERRNO')],
      ['busError with LF', () => notify.busError('a\nb')],
      ['options.pid not a pid', () => notify.ready({ pid: -5 })],
      ['options.poll not a boolean', () => notify.fdStore('a', [0], { poll: 'no' as unknown as boolean })],
    ];
    for (const [name, call] of refused) {
      it(`${name}: TypeError, nothing sent`, async function () {
        expect(thrown(call)).to.be.instanceOf(TypeError);
        notify.status('marker');
        expect((await next()).text).to.equal('STATUS=marker');
      });
    }

    it('FDNAME of 255 printable characters is accepted', async function () {
      const name = Array.from({ length: 255 }, (_, i) => String.fromCharCode(0x20 + (i % 95))).join('').replaceAll(':', '.');
      notify.fdStoreRemove(name);
      expect((await next()).text).to.equal(`FDSTOREREMOVE=1\nFDNAME=${name}`);
    });
  });

  describe('credentials', function () {
    it('a plain send carries none of its own: the receiver sees what the kernel fills in', async function () {
      notify.ready();
      const message = await next();
      expect([message.pid, message.uid, message.gid]).to.deep.equal([process.pid, process.getuid!(), process.getgid!()]);
    });

    it('{ pid } claims another process (allowed here: CAP_SYS_ADMIN)', async function () {
      notify.mainPid(process.ppid, { pid: process.ppid });
      const message = await next();
      expect(message.text).to.equal(`MAINPID=${process.ppid}`);
      expect(message.pid).to.equal(process.ppid);
    });

    it('{ pid: process.pid } and { pid: 0 } are this process', async function () {
      notify.ready({ pid: process.pid });
      notify.ready({ pid: 0 });
      expect((await next()).pid).to.equal(process.pid);
      expect((await next()).pid).to.equal(process.pid);
    });

    it('without CAP_SYS_ADMIN the claim is refused by the kernel and the message is sent as ourselves', async function () {
      const script = `import('${INDEX}').then(({ notify }) => { notify.ready({ pid: process.ppid }); process.stdout.write(String(process.pid)); })`;
      const child = spawnSync('setpriv', ['--bounding-set=-sys_admin', '--inh-caps=-sys_admin', process.execPath, '-e', script], {
        encoding: 'utf8',
        env: { ...process.env, NOTIFY_SOCKET: receiver.address },
        timeout: 10_000,
      });
      expect(child.status, child.stderr).to.equal(0);
      const message = await next();
      expect(message.text).to.equal('READY=1');
      expect(message.pid, 'the child itself, not the pid it claimed').to.equal(Number(child.stdout));
    });
  });
});
