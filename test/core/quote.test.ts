import { expect } from 'chai';
import { countOption, parseOptions } from '../../src/cli/args.js';
import { parseListenSpec } from '../../src/manager/listen-spec.js';
import { parseListenEnvironment } from '../../src/core/env.js';
import { openStoredSocket } from '../../src/service/fd-store.js';
import { notify, type NotifyFields } from '../../src/service/notify.js';
import { NotifyReceiver } from '../../src/shared/notify-receiver.js';
import { openSocket, type SocketDescription } from '../../src/shared/open-socket.js';
import { clip, list, QUOTE_MAX, quote, show } from '../../src/core/quote.js';
import { resolveCommand } from '../../src/manager/service-process.js';
import { encodeSockaddr, parseIPv4, parseIPv6 } from '../../src/core/sockaddr.js';
import { parseWatchdogEnvironment } from '../../src/service/watchdog.js';
import { saveEnv } from '../support/notify.js';

/** 10 KiB: what an environment variable or a datagram easily holds. */
const BIG = 10240;
const big = (prefix = ''): string => prefix + 'x'.repeat(BIG - prefix.length);

/** The message of what `fn` throws (synchronously or as a rejection). */
async function messageOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected a throw');
}

/** A message that shows a 10 KiB input: a screen's worth of it at most, and how long it was. */
function bounded(message: string, bytes: number | null = BIG): void {
  expect(message.length, message.slice(0, 300)).to.be.below(1000);
  if (bytes !== null) expect(message).to.include(`... (${bytes} bytes)`);
}

describe('quote(), clip(), show(), list(): what messages repeat of an input', () => {
  it('quote() keeps a short text whole, JSON-quoted; cuts a long one and says how long it was', () => {
    expect(quote('a"b\n')).to.equal(JSON.stringify('a"b\n'));
    expect(quote('y'.repeat(QUOTE_MAX))).to.equal(JSON.stringify('y'.repeat(QUOTE_MAX)));
    expect(quote('y'.repeat(QUOTE_MAX + 1))).to.equal(`${JSON.stringify('y'.repeat(QUOTE_MAX))}... (${QUOTE_MAX + 1} bytes)`);
    expect(quote('é'.repeat(1000))).to.equal(`${JSON.stringify('é'.repeat(QUOTE_MAX))}... (2000 bytes)`);
    // A control character reaches no terminal, even in the cut part.
    expect(quote('\x1b[2J'.repeat(1000))).not.to.include('\x1b');
  });

  it('never cuts a surrogate pair in two', () => {
    const text = 'y'.repeat(QUOTE_MAX - 1) + '😀'.repeat(10);
    expect(quote(text)).to.equal(`${JSON.stringify('y'.repeat(QUOTE_MAX - 1))}... (${QUOTE_MAX - 1 + 40} bytes)`);
  });

  it('clip() cuts raw text the same way; show() any value; list() names ten items at most', () => {
    expect(clip('short')).to.equal('short');
    expect(clip('z'.repeat(1000), 10)).to.equal('zzzzzzzzzz... (1000 bytes)');
    expect(show(3.5)).to.equal('3.5');
    expect(show(Symbol('s'))).to.equal('Symbol(s)');
    expect(show({ a: 'q'.repeat(BIG) }).length).to.be.below(300);
    expect(show(new Array(BIG).fill(1)).length).to.be.below(300);
    expect(list(['a', 'b'])).to.equal('a, b');
    expect(list(Array.from({ length: 1000 }, (_, i) => String(i)))).to.equal('0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 990 more');
  });
});

describe('no message repeats an input whole', () => {
  let restore: () => void;
  beforeEach(() => {
    restore = saveEnv('NOTIFY_SOCKET');
  });
  afterEach(() => restore());

  const self = { pid: 4242, pidfdId: () => 78n };

  it('LISTEN_* (src/env.ts)', async () => {
    bounded(await messageOf(() => parseListenEnvironment({ LISTEN_PID: big() }, self)));
    bounded(await messageOf(() => parseListenEnvironment({ LISTEN_PID: '4242', LISTEN_FDS: big() }, self)));
    bounded(await messageOf(() => parseListenEnvironment({ LISTEN_PID: '4242', LISTEN_FDS: '2', LISTEN_FDNAMES: big() }, self)));
    // Valid numbers can be long too: strtol takes leading white space.
    bounded(await messageOf(() => parseListenEnvironment({ LISTEN_PID: '4242', LISTEN_FDS: ' '.repeat(BIG - 1) + '2', LISTEN_FDNAMES: 'a' }, self)));
    const other = parseListenEnvironment({ LISTEN_PID: ' '.repeat(BIG - 1) + '1', LISTEN_FDS: '1' }, self);
    expect(other.activated).to.equal(false);
    bounded((other as { reason: string }).reason);
    const pidfd = parseListenEnvironment({ LISTEN_PID: '4242', LISTEN_PIDFDID: ' '.repeat(BIG - 2) + '77', LISTEN_FDS: '1' }, self);
    bounded((pidfd as { reason: string }).reason);
  });

  it('WATCHDOG_* (src/watchdog.ts)', async () => {
    bounded(await messageOf(() => parseWatchdogEnvironment({ WATCHDOG_USEC: big() }, 1)));
    bounded(await messageOf(() => parseWatchdogEnvironment({ WATCHDOG_USEC: '1', WATCHDOG_PID: big() }, 1)));
  });

  it('notify (src/notify.ts)', async () => {
    process.env.NOTIFY_SOCKET = big('/');
    bounded(await messageOf(() => notify.ready()));
    process.env.NOTIFY_SOCKET = '@sd-activate-quote-test-nobody-listens';
    bounded(await messageOf(() => notify.status(big('\n'))));
    bounded(await messageOf(() => notify.status(big('\ud800'))), 3 + BIG - 1);
    bounded(await messageOf(() => notify(big('\0'))));
    bounded(await messageOf(() => notify(big('\udc00'))), 3 + BIG - 1);
    bounded(await messageOf(() => notify({ [big().toUpperCase()]: 'a\nb' } as NotifyFields)));
    bounded(await messageOf(() => notify({ [big('a')]: 1 } as NotifyFields)));
    bounded(await messageOf(() => notify({ X_BIG: big('\n') })));
    bounded(await messageOf(() => notify.fdStore(big(), [0])));
    bounded(await messageOf(() => notify.fdStoreRemove(big(':'))));
    bounded(await messageOf(() => notify.busError(big('\n'))));
    bounded(await messageOf(() => notify.errno(big())));
    bounded(await messageOf(() => notify.mainPid(big() as unknown as number)));
    bounded(await messageOf(() => notify.extendTimeout(big() as unknown as number)));
    bounded(await messageOf(() => notify.ready({ pid: big() as unknown as number })));
    bounded(await messageOf(() => notify.barrier(big() as unknown as number)));
  });

  it('sockets and addresses (src/open-socket.ts, src/sockaddr.ts, src/fd-store.ts, src/notify-receiver.ts)', async () => {
    const tcp = (address: string): SocketDescription => ({ type: 'stream', address: { family: 'ipv4', address, port: 0 } });
    bounded(await messageOf(() => openSocket({ ...tcp('127.0.0.1'), type: big() as 'stream' })));
    bounded(await messageOf(() => openSocket({ type: 'stream', address: { family: big() } as never })), null);
    bounded(await messageOf(() => openSocket({ ...tcp('127.0.0.1'), backlog: big() as unknown as number })));
    bounded(await messageOf(() => openSocket({ ...tcp('127.0.0.1'), mode: big() as unknown as number })));
    bounded(await messageOf(() => openSocket(tcp(big()))));
    bounded(await messageOf(() => encodeSockaddr({ family: big() } as never)));
    bounded(await messageOf(() => encodeSockaddr({ family: 'ipv4', address: '127.0.0.1', port: big() as unknown as number })));
    bounded(await messageOf(() => parseIPv4(big())));
    bounded(await messageOf(() => parseIPv6(big())));
    bounded(await messageOf(() => openStoredSocket(big(), tcp('127.0.0.1'))));
    bounded(await messageOf(() => new NotifyReceiver(big())));
  });

  it('--listen specs and command lines (src/cli/listen-spec.ts, src/cli/args.ts, src/service-process.ts)', async () => {
    for (const spec of [
      `tcp:${big()}:80`,
      `tcp:127.0.0.1:${big('9')}`,
      `tcp:[${big()}]:80`,
      `tcp:[::1%${big()}]:80`,
      `tcp:${big('::')}:80`,
      `${big()}:80`,
      `tcp:80,${big()}=1`,
      `tcp:80,backlog=${big()}`,
      `tcp:80,reuse-port=${big()}`,
      `unix:/a.sock,mode=${big()}`,
      `${big('a,')}=tcp:80`,
    ]) {
      bounded(await messageOf(() => parseListenSpec(spec)), null);
    }
    bounded(await messageOf(() => countOption('n', big())));
    bounded(await messageOf(() => parseOptions([`--${big()}`], {}, 'run')), BIG + 2);
    bounded(await messageOf(() => resolveCommand(big('/'))));
  });
});
