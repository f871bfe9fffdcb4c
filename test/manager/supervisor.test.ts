import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { once } from 'node:events';
import * as net from 'node:net';
import { Supervisor, type SupervisorEvents } from '../../src/manager/supervisor.js';
import { exchange, fixture } from '../cli/helpers.js';
import { openFds } from '../support/resources.js';

const INDEX = new URL('../../src/index.js', import.meta.url).href;
const portOf = (s: Supervisor, i = 0): number => {
  const info = s.sockets[i]!.info;
  if (info.kind !== 'socket' || !('port' in info.local)) throw new Error('not an IP socket');
  return (info.local as { port: number }).port;
};

/** Collects every event of a supervisor, for assertions on what happened in which order. */
function record(s: Supervisor): Array<[keyof SupervisorEvents, unknown]> {
  const events: Array<[keyof SupervisorEvents, unknown]> = [];
  for (const name of ['listening', 'waiting', 'trigger', 'spawn', 'notify', 'ready', 'exit', 'restart', 'warning', 'stopped'] as const) {
    s.on(name, (...args: unknown[]) => events.push([name, args[0]]));
  }
  return events;
}

describe('Supervisor', function () {
  this.timeout(20_000);
  const running: Supervisor[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop()));
  });
  const make = (options: ConstructorParameters<typeof Supervisor>[0]): Supervisor => {
    const s = new Supervisor({ stdio: 'ignore', timeoutStopMs: 3000, ...options });
    running.push(s);
    return s;
  };

  it('validates its options with TypeErrors that name them', () => {
    expect(() => new Supervisor({} as never)).to.throw(TypeError, /options.command/);
    expect(() => new Supervisor({ command: 'x', restart: 'sometimes' as never })).to.throw(TypeError, /options.restart takes no, on-success/);
    expect(() => new Supervisor({ command: 'x', watchdogMs: 0 })).to.throw(TypeError, /watchdogMs must be a number of milliseconds above 0/);
    expect(() => new Supervisor({ command: 'x', accept: true, listen: ['udp:127.0.0.1:0'] })).to.throw(TypeError, /options.accept takes stream and seqpacket sockets only/);
    expect(() => new Supervisor({ command: 'x', lazy: true })).to.throw(TypeError, /options.lazy needs a socket to wait on/);
    expect(() => new Supervisor({ command: 'x', startLimitBurst: 1.5 })).to.throw(TypeError, /options.startLimitBurst must be a whole number/);
    expect(() => new Supervisor({ command: 'x', startLimitIntervalMs: -1 })).to.throw(TypeError, /startLimitIntervalMs must be a number of milliseconds/);
    expect(() => new Supervisor({ command: 'x', notifyAccess: 'none', type: 'notify' })).to.throw(TypeError, /options.notifyAccess none leaves no NOTIFY_SOCKET/);
  });

  it('stop() before start() resolves, and a failed start() leaves nothing open', async () => {
    expect((await new Supervisor({ command: 'true' }).stop()).exitCode).to.equal(0);
    const before = openFds();
    const s = new Supervisor({ command: 'true', listen: ['tcp:127.0.0.1:0'], lazy: true, watch: ['/no/such/path'] });
    let error: unknown;
    await s.start().catch((e: unknown) => (error = e));
    expect((error as Error).message).to.equal('cannot watch /no/such/path: no such file or directory');
    await s.done;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect([...openFds()].filter((fd) => !before.has(fd))).to.deep.equal([]);
  });

  it('accept with maxConnections: 1: a second connection is accepted and closed at once, with a warning, as MaxConnections= does', async () => {
    const s = make({ command: 'sh', args: ['-c', 'echo "hi $$" >&3; cat <&3 >/dev/null'], listen: ['tcp:127.0.0.1:0'], accept: true, maxConnections: 1 });
    const events = record(s);
    await s.start();
    const port = portOf(s);
    const first = net.connect(port, '127.0.0.1');
    await once(first, 'data');
    let secondData = '';
    const second = net.connect(port, '127.0.0.1').setEncoding('utf8');
    second.on('data', (d: string) => (secondData += d));
    second.on('error', () => undefined);
    // Closed by the supervisor, not left waiting in the backlog: 'end' comes, with nothing read.
    await once(second, 'end');
    expect(secondData).to.equal('');
    expect(events.filter(([e]) => e === 'spawn')).to.have.length(1);
    const warnings = events.filter(([e]) => e === 'warning').map(([, w]) => (w as Error).message);
    expect(warnings).to.deep.equal(['Too many incoming connections (1), dropping connection (MaxConnections=1)']);
    // Once the first service has ended, a connection gets a service again.
    const ended = once(s, 'exit');
    first.end();
    await ended;
    const third = net.connect(port, '127.0.0.1').setEncoding('utf8');
    const [answer] = (await once(third, 'data')) as [string];
    expect(answer).to.match(/^hi \d+\n$/);
    expect(events.filter(([e]) => e === 'spawn')).to.have.length(2);
    third.end();
    second.destroy();
  });

  it('refuses MAINPID= of a pid that is gone, as systemd does ("does not exist or is a zombie"), and keeps the main pid', async () => {
    // A process that has exited and been reaped: its pid names nothing now.
    const gone = spawnSync('true').pid!;
    const script = `"${process.execPath}" --input-type=module -e "import { notify } from '${INDEX}'; notify.mainPid(${gone}, { pid: process.ppid }); notify.status('after')"; sleep 5`;
    const s = make({ command: 'sh', args: ['-c', script], notifyAccess: 'all' });
    const events = record(s);
    await s.start();
    const started = s.mainPid;
    const deadline = Date.now() + 5000;
    while (!events.some(([e, m]) => e === 'notify' && (m as { message: { text: string } }).message.text === 'STATUS=after') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const warning = events.find(([e]) => e === 'warning');
    expect((warning?.[1] as Error | undefined)?.message).to.equal(`ignored MAINPID=${gone}: the new main pid does not exist or is a zombie`);
    expect(events.some(([e]) => e === 'mainpid')).to.equal(false);
    expect(s.mainPid).to.equal(started);
    await s.stop();
  });

  it('NotifyAccess=main (and exec, with no other Exec*= processes) ignores messages from other processes; all takes them', async () => {
    const grandchild = `"${process.execPath}" --input-type=module -e "import { notify } from '${INDEX}'; notify.status('from a child')"; sleep 5`;
    for (const notifyAccess of ['main', 'exec', 'all'] as const) {
      const s = make({ command: 'sh', args: ['-c', grandchild], notifyAccess });
      const events = record(s);
      await s.start();
      const deadline = Date.now() + 5000;
      while (!events.some(([e]) => e === 'notify' || e === 'warning') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const seen = events.find(([e]) => e === 'notify' || e === 'warning')!;
      if (notifyAccess !== 'all') {
        expect(seen[0]).to.equal('warning');
        expect((seen[1] as Error).message).to.match(new RegExp(`^ignored a notify message from pid \\d+, not the service's main process \\(NotifyAccess=${notifyAccess}\\): "STATUS=from a child"$`));
      } else {
        expect(seen[0]).to.equal('notify');
      }
      await s.stop();
    }
  });

  it('answers BARRIER=1 from any process, as systemd does before it looks for the unit; a barrier with more in it is dropped', async () => {
    // A grandchild (not the main process) waits on a barrier, then sends one with a status in it.
    const script =
      `"${process.execPath}" --input-type=module -e "import { notify } from '${INDEX}'; await notify.barrier(3000); ` +
      `notify({ STATUS: 'after', BARRIER: 1 }); console.log('barrier passed')"; sleep 5`;
    const s = make({ command: 'sh', args: ['-c', script], notifyAccess: 'main', stdio: 'pipe' });
    const events = record(s);
    let out = '';
    s.on('output', ({ stream, data }) => {
      if (stream === 'stdout') out += data.toString();
    });
    await s.start();
    const deadline = Date.now() + 8000;
    const done = (): boolean => out.includes('\n') && events.some(([e, m]) => e === 'warning' && /extra notification/.test((m as Error).message));
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const warnings = events.filter(([e]) => e === 'warning').map(([, m]) => (m as Error).message);
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.match(/^extra notification messages sent with BARRIER=1, ignoring everything: /);
    expect(events.some(([e]) => e === 'notify')).to.equal(false);
    // The first barrier was answered although a grandchild sent it: notify.barrier() resolved.
    expect(out).to.equal('barrier passed\n');
  });

  it('lazy: a service that never takes the connection hits the start limit (5 starts in 10 s), as its .socket unit would', async () => {
    const s = make({ command: 'true', listen: ['tcp:127.0.0.1:0'], lazy: true });
    let starts = 0;
    s.on('spawn', () => starts++);
    await s.start();
    const client = net.connect(portOf(s), '127.0.0.1');
    client.on('error', () => undefined);
    const result = await s.done;
    client.destroy();
    expect(starts).to.equal(5);
    expect(result.exitCode).to.equal(1);
    expect(result.error?.code).to.equal('ERR_SD_START_LIMIT_HIT');
    expect(result.error?.message).to.match(/^true was started 5 times within 10s and is not started again \(StartLimitBurst=/);
  });

  it('lazy, without a start limit: the trigger limit (20 in 2 s) ends the loop', async () => {
    const s = make({ command: 'true', listen: ['tcp:127.0.0.1:0'], lazy: true, startLimitIntervalMs: 0 });
    await s.start();
    const client = net.connect(portOf(s), '127.0.0.1');
    client.on('error', () => undefined);
    const result = await s.done;
    client.destroy();
    expect(result.exitCode).to.equal(1);
    expect(result.error?.code).to.equal('ERR_SD_SERVICE_EXITED');
    expect(result.error?.message).to.match(/triggered 21 times within 2s .* \(TriggerLimitBurst=\)/);
  });

  it('closes every fd it opened: sockets, the notify socket, the wake-up pipe, stored fds, connections', async () => {
    const before = openFds();
    const s = new Supervisor({
      command: process.execPath,
      args: [fixture('notify-service'), 'store:kept', 'ready', 'hang'],
      listen: ['tcp:127.0.0.1:0', 'udp:127.0.0.1:0'],
      fdStoreMax: 2,
      type: 'notify',
      stdio: 'ignore',
    });
    await s.start();
    await once(s, 'ready');
    expect(s.fdStore.map((f) => f.name)).to.deep.equal(['kept']);
    await s.stop();
    const accepting = new Supervisor({ command: 'sh', args: ['-c', 'echo x >&3'], listen: ['tcp:127.0.0.1:0'], accept: true, stdio: 'ignore' });
    await accepting.start();
    expect(await exchange({ host: '127.0.0.1', port: portOf(accepting) })).to.equal('x\n');
    await accepting.stop();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect([...openFds()].filter((fd) => !before.has(fd))).to.deep.equal([]);
  });

  it('restart(): the service is replaced, the socket kept', async () => {
    const s = make({ command: process.execPath, args: [fixture('hello-server')], listen: ['web=tcp:127.0.0.1:0'] });
    await s.start();
    const first = await exchange({ host: '127.0.0.1', port: portOf(s) });
    s.restart();
    await once(s, 'spawn');
    const second = await exchange({ host: '127.0.0.1', port: portOf(s) });
    expect(first).to.match(/^hello \d+ web\n$/);
    expect(second).to.match(/^hello \d+ web\n$/);
    expect(second).not.to.equal(first);
  });
});
