import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { SystemdError, SystemError } from '../../src/core/errors.js';
import { native } from '../../src/native/addon.js';
import { notify } from '../../src/service/notify.js';
import { NOTIFY_BUFFER_MAX, NotifyReceiver, type DroppedNotifyMessage } from '../../src/shared/notify-receiver.js';
import { openReceiver, saveEnv } from '../support/notify.js';
import { openFds } from '../support/resources.js';

const INDEX = fileURLToPath(new URL('../../src/index.js', import.meta.url));
const RECEIVER = fileURLToPath(new URL('../../src/shared/notify-receiver.js', import.meta.url));

describe('NotifyReceiver', function () {
  let receiver: NotifyReceiver;
  let close: () => void;
  let restore: () => void;
  let fdsBefore: Set<number>;

  beforeEach(function () {
    restore = saveEnv('NOTIFY_SOCKET');
    native();
    fdsBefore = openFds();
    ({ receiver, close } = openReceiver('path'));
    process.env.NOTIFY_SOCKET = receiver.address;
  });

  afterEach(function () {
    close();
    restore();
    expect([...openFds()].filter((fd) => !fdsBefore.has(fd)), 'fds left open').to.deep.equal([]);
  });

  it('is a bound, non-blocking, close-on-exec datagram socket with SO_PASSCRED at the path', function () {
    const facts = native().inspect(receiver.fd);
    expect(facts.type).to.equal(native().constants.SOCK_DGRAM);
    expect(native().getCloexec(receiver.fd)).to.equal(true);
    expect(existsSync(receiver.address)).to.equal(true);
    const address = receiver.address;
    close();
    expect(existsSync(address), 'close() removes the socket file').to.equal(false);
    ({ receiver, close } = openReceiver('path'));
  });

  it("emits 'message' for every datagram, with the fields as systemd reads them (first one wins)", async function () {
    const seen: string[] = [];
    receiver.on('message', (m) => seen.push(m.text));
    notify('READY=1\nSTATUS=a\nno equals sign\nSTATUS=b\n=x\nX_EMPTY=');
    const message = await receiver.receive({ timeoutMs: 2000 });
    expect([...message.fields]).to.deep.equal([
      ['READY', '1'],
      ['STATUS', 'a'],
      ['X_EMPTY', ''],
    ]);
    expect(seen).to.deep.equal([message.text]);
  });

  it('delivers a burst larger than one read batch, all of it, in order', async function () {
    for (let i = 0; i < 300; i++) {
      notify.status(String(i));
      // the kernel queues only a few datagrams per receiver: let it drain now and then
      if (i % 8 === 7) await new Promise((resolve) => setImmediate(resolve));
    }
    const texts: string[] = [];
    for (let i = 0; i < 300; i++) texts.push((await receiver.receive({ timeoutMs: 2000 })).text);
    expect(texts).to.deep.equal(Array.from({ length: 300 }, (_, i) => `STATUS=${i}`));
  });

  it('iterates with for await, until closed', async function () {
    notify.status('1');
    notify.status('2');
    const texts: string[] = [];
    for await (const message of receiver) {
      texts.push(message.text);
      if (texts.length === 2) setTimeout(() => receiver.close(), 10);
    }
    expect(texts).to.deep.equal(['STATUS=1', 'STATUS=2']);
  });

  it('receive() times out with ETIMEDOUT; close() rejects a waiting receive() and closes queued fds', async function () {
    const error = (await receiver.receive({ timeoutMs: 50 }).catch((e: unknown) => e)) as SystemError;
    expect(error.code).to.equal('ETIMEDOUT');

    const devnull = openSync('/dev/null', 'r');
    notify.fdStore('x', [devnull]);
    native().close(devnull);
    await receiver.receive({ timeoutMs: 2000 }).then((m) => m.fds.forEach((f) => native().close(f)));
    // queue one with an fd, then close before anyone takes it: the fd must not leak (afterEach checks)
    const again = openSync('/dev/null', 'r');
    notify.fdStore('y', [again]);
    native().close(again);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const waiting = receiver.receive();
    const second = receiver.receive();
    receiver.close();
    expect((await waiting).text).to.equal('FDSTORE=1\nFDNAME=y');
    expect(((await second.catch((e: unknown) => e)) as SystemdError).code).to.equal('ERR_SD_NOTIFY_RECEIVER_CLOSED');
    (await waiting).fds.forEach((f) => native().close(f));
  });

  it('refuses an address that is not absolute or @abstract, and one in use (EADDRINUSE)', function () {
    expect(() => new NotifyReceiver('relative/notify')).to.throw(TypeError);
    expect(() => new NotifyReceiver('@')).to.throw(TypeError);
    const error = ((): unknown => {
      try {
        new NotifyReceiver(receiver.address);
      } catch (e) {
        return e;
      }
    })() as SystemError;
    expect(error.code).to.equal('EADDRINUSE');
    expect(error.syscall).to.equal('bind');
  });

  it('keeps the process alive until closed, unless unref()ed', function () {
    const script = (unref: boolean): string =>
      `import('${RECEIVER}').then(({ NotifyReceiver }) => { const r = new NotifyReceiver('@sd-activate-alive-' + process.pid); ${unref ? 'r.unref();' : 'setTimeout(() => r.close(), 200);'} })`;
    for (const unref of [true, false]) {
      const started = Date.now();
      const child = spawnSync(process.execPath, ['-e', script(unref)], { encoding: 'utf8', timeout: 10_000 });
      expect(child.status, child.stderr).to.equal(0);
      if (!unref) expect(Date.now() - started, 'lived until closed').to.be.greaterThan(190);
    }
  });

  it("a throwing 'message' listener reaches uncaughtException, as from any other I/O callback", function () {
    const script = `Promise.all([import('${RECEIVER}'), import('${INDEX}')]).then(([{ NotifyReceiver }, { notify }]) => {
      const r = new NotifyReceiver('@sd-activate-throw-' + process.pid);
      process.env.NOTIFY_SOCKET = r.address;
      process.on('uncaughtException', (e) => { process.stdout.write('caught ' + e.message); r.close(); });
      r.on('message', () => { throw new Error('listener failed'); });
      notify.ready();
    })`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(child.stdout).to.equal('caught listener failed');
    expect(child.status).to.equal(0);
  });

  it('a receiver left open in a worker thread that ends is cleaned up with it', async function () {
    const code = `Promise.all([import('${RECEIVER}'), import('${INDEX}')]).then(([{ NotifyReceiver }, { notify }]) => {
      const r = new NotifyReceiver('@sd-activate-worker-' + process.pid + '-' + require('node:worker_threads').threadId);
      process.env.NOTIFY_SOCKET = r.address;
      r.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m.text));
      notify.ready();
    })`;
    for (let i = 0; i < 5; i++) {
      const worker = new Worker(code, { eval: true });
      expect(await new Promise((resolve) => worker.once('message', resolve))).to.equal('READY=1');
      expect(await worker.terminate()).to.equal(1);
    }
    // and their sockets were closed with them: afterEach finds no fd left open
  });

  describe('the longest datagram taken', function () {
    const status = (bytes: number, fill = 'x'): string => fill.repeat(bytes - 'STATUS='.length);

    it(`takes ${NOTIFY_BUFFER_MAX} bytes; drops a longer datagram whole with its fds, as systemd does, and tells the first one`, async function () {
      const dropped: DroppedNotifyMessage[] = [];
      receiver.on('dropped', (d) => dropped.push(d));
      notify.status(status(NOTIFY_BUFFER_MAX));
      const devnull = openSync('/dev/null', 'r');
      try {
        notify.fdStore('big', [devnull]);
        notify({ STATUS: status(NOTIFY_BUFFER_MAX + 1), FDSTORE: 1, FDNAME: 'big' }, { fds: [devnull] });
        notify.status(status(200_000));
      } finally {
        native().close(devnull);
      }
      notify.status('after');
      const texts: string[] = [];
      for (let i = 0; i < 3; i++) {
        const message = await receiver.receive({ timeoutMs: 2000 });
        texts.push(message.text.length > 20 ? `${message.text.length} bytes` : message.text);
        message.fds.forEach((fd) => native().close(fd));
      }
      expect(texts).to.deep.equal([`${NOTIFY_BUFFER_MAX} bytes`, 'FDSTORE=1\nFDNAME=big', 'STATUS=after']);
      expect(receiver.droppedMessages).to.equal(2);
      expect(dropped).to.deep.equal([
        { bytes: 'STATUS=\nFDSTORE=1\nFDNAME=big'.length + NOTIFY_BUFFER_MAX + 1 - 'STATUS='.length, fds: 1, pid: process.pid, uid: process.getuid!(), gid: process.getgid!(), maxMessageBytes: NOTIFY_BUFFER_MAX },
      ]);
      // The dropped message's fd was closed here: afterEach finds no fd left open.
    });

    it('maxMessageBytes: Infinity takes any datagram whole, a smaller one drops sooner; anything else is a TypeError', async function () {
      const all = openReceiver('abstract', { maxMessageBytes: Infinity });
      const small = openReceiver('abstract', { maxMessageBytes: 10 });
      try {
        process.env.NOTIFY_SOCKET = all.receiver.address;
        notify.status(status(200_000));
        expect((await all.receiver.receive({ timeoutMs: 2000 })).data.length).to.equal(200_000);
        process.env.NOTIFY_SOCKET = small.receiver.address;
        notify.status('abc');
        notify.status('abcd');
        expect((await small.receiver.receive({ timeoutMs: 2000 })).text).to.equal('STATUS=abc');
        expect(small.receiver.droppedMessages).to.equal(1);
      } finally {
        all.close();
        small.close();
      }
      for (const bad of [0, -1, 1.5, '4096', NaN]) {
        expect(() => new NotifyReceiver('@sd-activate-never-bound', { maxMessageBytes: bad as number }), String(bad)).to.throw(TypeError, /maxMessageBytes/);
      }
    });
  });
});
