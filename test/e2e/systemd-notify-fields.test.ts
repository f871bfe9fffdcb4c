import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { NOTIFY_BUFFER_MAX } from '../../src/shared/notify-receiver.js';
import { SystemdManager } from '../support/systemd-manager.js';

/*
 * The sd_notify(3) fields not covered by systemd-notify.test.ts, each sent to a real systemd 252
 * user manager and checked by its effect there: RELOADING, STOPPING, EXTEND_TIMEOUT_USEC, ERRNO,
 * BUSERROR (accepted; 252 shows it nowhere), WATCHDOG_USEC, WATCHDOG=trigger, FDSTORE/FDSTOREREMOVE
 * and BARRIER; and the longest datagram the manager takes.
 */

const SERVICE = fileURLToPath(new URL('../fixtures/notify-fields.js', import.meta.url));

describe('sd_notify fields under systemd (user manager)', function () {
  this.timeout(60_000);
  const id = randomBytes(4).toString('hex');
  let manager: SystemdManager;
  let root: string;
  let count = 0;

  /** A Type=notify unit running the fixture in a fresh directory; returns the unit and a way to send it commands. */
  async function start(
    extra: string[],
    args: string[] = [],
  ): Promise<{ unit: string; send: (call: string, arg?: string | number) => Promise<unknown>; post: (call: string) => void }> {
    const dir = join(root, String(count++));
    mkdirSync(dir);
    const unit = `sdact-fields-${id}-${count}.service`;
    await manager.installUnit(
      unit,
      ['[Service]', 'Type=notify', `ExecStart=${process.execPath} ${SERVICE} ${dir} ${args.join(' ')}`, 'TimeoutStopSec=5', ...extra].join('\n'),
    );
    let n = 0;
    const send = async (call: string, arg?: string | number): Promise<unknown> => {
      const step = n++;
      writeFileSync(join(dir, `cmd-${step}.json`), JSON.stringify({ call, arg }));
      const done = join(dir, `done-${step}.json`);
      await manager.waitFor(async () => existsSync(done), 10_000, `${unit} to run ${call}`);
      return (JSON.parse(readFileSync(done, 'utf8')) as { result: unknown }).result;
    };
    /** A command whose effect may end the process before it can say it is done. */
    const post = (call: string): void => writeFileSync(join(dir, `cmd-${n++}.json`), JSON.stringify({ call }));
    return { unit, send, post };
  }

  async function state(unit: string): Promise<string> {
    return manager.show(unit, 'ActiveState');
  }

  before(async function () {
    root = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    manager = await SystemdManager.start();
  });

  after(async function () {
    await manager?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('RELOADING=1 puts the unit in "reloading" until READY=1', async function () {
    const { unit, send } = await start([]);
    await manager.systemctlOk('start', unit);
    expect(await send('reloading')).to.equal(true);
    await manager.waitFor(async () => (await state(unit)) === 'reloading', 5000, 'reloading');
    expect(await send('ready')).to.equal(true);
    await manager.waitFor(async () => (await state(unit)) === 'active', 5000, 'active again');
  });

  it('STOPPING=1 puts the unit in "deactivating" until the process is gone', async function () {
    const { unit, send } = await start([]);
    await manager.systemctlOk('start', unit);
    expect(await send('stopping')).to.equal(true);
    await manager.waitFor(async () => (await state(unit)) === 'deactivating', 5000, 'deactivating');
    await manager.waitFor(async () => (await state(unit)) === 'inactive', 10_000, 'inactive once it exits');
  });

  it('EXTEND_TIMEOUT_USEC= keeps a start-up longer than TimeoutStartSec= alive; without it the start times out', async function () {
    const extended = await start(['TimeoutStartSec=1'], ['3000', 'extend']);
    await manager.systemctlOk('start', extended.unit);
    expect(await state(extended.unit)).to.equal('active');
    const plain = await start(['TimeoutStartSec=1'], ['3000']);
    const result = await manager.systemctl('start', plain.unit);
    expect(result.code).to.not.equal(0);
    expect(await manager.show(plain.unit, 'Result')).to.equal('timeout');
  });

  it('ERRNO= becomes StatusErrno; BUSERROR= is taken without harm (252 has no property to show it)', async function () {
    const { unit, send } = await start([]);
    await manager.systemctlOk('start', unit);
    await send('errno', 5);
    await manager.waitFor(async () => (await manager.show(unit, 'StatusErrno')) === '5', 5000, 'StatusErrno=5');
    // StatusBusError= appeared after systemd 252: here the field is parsed and kept out of sight.
    expect(await send('busError', 'org.freedesktop.DBus.Error.Failed')).to.equal(true);
    expect(await send('barrier')).to.equal(true);
    expect(await state(unit)).to.equal('active');
  });

  it('WATCHDOG_USEC= changes the watchdog timeout; WATCHDOG=trigger fails the unit with Result=watchdog', async function () {
    const { unit, send, post } = await start(['WatchdogSec=30']);
    await manager.systemctlOk('start', unit);
    expect(await manager.show(unit, 'WatchdogUSec')).to.equal('30s');
    await send('watchdogUsec', 45_000);
    await manager.waitFor(async () => (await manager.show(unit, 'WatchdogUSec')) === '45s', 5000, 'WatchdogUSec=45s');
    post('watchdogTrigger');
    await manager.waitFor(async () => (await manager.show(unit, 'Result')) === 'watchdog', 10_000, 'Result=watchdog');
  });

  it(`a datagram of ${NOTIFY_BUFFER_MAX} bytes is taken, one byte more is ignored whole (NotifyReceiver's default limit)`, async function () {
    const { unit, send } = await start([]);
    await manager.systemctlOk('start', unit);
    const fits = 'a'.repeat(NOTIFY_BUFFER_MAX - 'STATUS='.length);
    await send('status', fits);
    expect(await send('barrier')).to.equal(true);
    expect(await manager.show(unit, 'StatusText')).to.equal(fits);
    await send('status', `b${fits}`);
    expect(await send('barrier')).to.equal(true);
    expect(await manager.show(unit, 'StatusText')).to.equal(fits);
    expect(manager.log()).to.include('Received notify message exceeded maximum size. Ignoring.');
  });

  it('FDSTORE=1 adds to the store, FDSTOREREMOVE=1 takes it out; BARRIER=1 returns once both are processed', async function () {
    const { unit, send } = await start(['FileDescriptorStoreMax=4']);
    await manager.systemctlOk('start', unit);
    await send('fdStore', 'kept');
    expect(await send('barrier')).to.equal(true);
    expect(await manager.show(unit, 'NFileDescriptorStore')).to.equal('1');
    await send('fdStoreRemove', 'kept');
    expect(await send('barrier')).to.equal(true);
    expect(await manager.show(unit, 'NFileDescriptorStore')).to.equal('0');
  });
});
