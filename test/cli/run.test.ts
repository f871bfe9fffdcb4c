import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { uniqueName } from '../support/resources.js';
import { CLI, exchange, fixture, freePort, readableCopy, runCli, useClis, type Cli } from './helpers.js';

/** Connects again and again for `ms`, one connection at a time, and counts how each ended. */
async function hammer(port: number, ms: number): Promise<{ ok: number; refused: number; other: Record<string, number>; pids: Set<string> }> {
  const tally = { ok: 0, refused: 0, other: {} as Record<string, number>, pids: new Set<string>() };
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const answer = await exchange({ host: '127.0.0.1', port }, undefined, 5000);
      const pid = /^ok (\d+)/.exec(answer)?.[1];
      if (pid) {
        tally.ok++;
        tally.pids.add(pid);
      } else {
        tally.other.empty = (tally.other.empty ?? 0) + 1;
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
      if (code === 'ECONNREFUSED') tally.refused++;
      else tally.other[code] = (tally.other[code] ?? 0) + 1;
    }
  }
  return tally;
}

function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, `exactly one line on stderr, got:\n${stderr}`).to.have.length(1);
  expect(stderr).not.to.match(/^\s+at /m);
  return lines[0]!;
}

describe('sd-activate run', function () {
  this.timeout(30_000);
  const clis = useClis();

  describe('sockets of every kind reach the child at fd 3+ with their names', () => {
    it('TCP v4/v6 under one name, UDP, unix stream/dgram/seqpacket, abstract, FIFO, message queue, special file', async () => {
      const dir = clis.tempDir();
      const abstract = uniqueName('sd-activate-run');
      const mq = `/${uniqueName('sd-activate-run')}`;
      const result = await runCli([
        'run',
        '-l', 'web=tcp:127.0.0.1:0',
        '-l', 'web=tcp:[::1]:0',
        '-l', 'dns=udp:127.0.0.1:0',
        '-l', `admin=unix:${dir}/admin.sock,mode=0600`,
        '-l', `log=unix-dgram:${dir}/log.sock`,
        '-l', `ctl=seqpacket:${dir}/ctl.sock`,
        '-l', `abs=@${abstract}`,
        '-l', `in=fifo:${dir}/in.fifo`,
        '-l', `queue=mqueue:${mq}`,
        '-l', 'null=special:/dev/null',
        '--', process.execPath, CLI, 'ls', '--json',
      ]);
      expect(result.code, result.stderr).to.equal(0);
      const rows = JSON.parse(result.stdout) as Array<Record<string, unknown>>;
      // The ports the tool printed are the ones the child sees.
      const printed = [...result.stderr.matchAll(/^sd-activate: fd (\d+) "([^"]+)": (?:tcp|udp) (\S+)/gm)].map((m) => [Number(m[1]), m[2], m[3]]);
      expect(printed).to.have.length(3);
      expect(rows.map((r) => [r.fd, r.name, r.kind, r.family, r.type, r.listening])).to.deep.equal([
        [3, 'web', 'socket', 'ipv4/tcp', 'stream', true],
        [4, 'web', 'socket', 'ipv6/tcp', 'stream', true],
        [5, 'dns', 'socket', 'ipv4/udp', 'dgram', false],
        [6, 'admin', 'socket', 'unix', 'stream', true],
        [7, 'log', 'socket', 'unix', 'dgram', false],
        [8, 'ctl', 'socket', 'unix', 'seqpacket', true],
        [9, 'abs', 'socket', 'unix', 'stream', true],
        [10, 'in', 'fifo', null, null, null],
        [11, 'queue', 'mqueue', null, null, null],
        [12, 'null', 'character-device', null, null, null],
      ]);
      expect(rows.slice(0, 3).map((r) => [r.fd, r.name, r.address])).to.deep.equal(printed);
      expect(rows[0]!.address).to.match(/^127\.0\.0\.1:[1-9]\d*$/);
      expect(rows[1]!.address).to.match(/^\[::1\]:[1-9]\d*$/);
      expect(rows.slice(4).map((r) => r.address)).to.deep.equal([
        `${dir}/log.sock`,
        `${dir}/ctl.sock`,
        `@${abstract}`,
        `${dir}/in.fifo`,
        mq,
        '/dev/null',
      ]);
      expect(rows[3]!.address).to.equal(`${dir}/admin.sock`);
      // RemoveOnStop: what the tool created is gone once it ended.
      for (const file of ['admin.sock', 'log.sock', 'ctl.sock', 'in.fifo']) expect(existsSync(join(dir, file)), file).to.equal(false);
      expect(existsSync(`/dev/mqueue${mq}`)).to.equal(false);
    });

    it('SocketMode: a socket file gets the mode asked for (mode= or --socket-mode)', async () => {
      const dir = clis.tempDir();
      const a = await runCli(['run', '-l', `a=unix:${dir}/a.sock,mode=0600`, '--', 'stat', '-c', '%a', `${dir}/a.sock`]);
      expect(a.stdout.trim(), a.stderr).to.equal('600');
      const b = await runCli(['run', '--socket-mode', '0640', '-l', `b=unix:${dir}/b.sock`, '--', 'stat', '-c', '%a', `${dir}/b.sock`]);
      expect(b.stdout.trim(), b.stderr).to.equal('640');
      const c = await runCli(['run', '-l', `c=unix:${dir}/c.sock`, '--', 'stat', '-c', '%a', `${dir}/c.sock`]);
      expect(c.stdout.trim(), c.stderr).to.equal('666');
    });

    it('relative unix paths are taken from the working directory, and a stale socket file is replaced', async () => {
      const dir = clis.tempDir();
      // A socket file nobody listens on, as a crashed server leaves it.
      const crashed = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(join(dir, 'app.sock'))}, () => process.kill(process.pid, 'SIGKILL'))`]);
      await once(crashed, 'exit');
      expect(statSync(join(dir, 'app.sock')).isSocket()).to.equal(true);
      const result = await runCli(['run', '-l', 'app=unix:./app.sock', '--', process.execPath, CLI, 'ls', '--json'], { cwd: dir });
      expect(result.code, result.stderr).to.equal(0);
      expect((JSON.parse(result.stdout) as Array<{ address: string }>)[0]!.address).to.equal(join(dir, 'app.sock'));
    });

    it('the child is its own LISTEN_PID, so LISTEN_* are for it and not for what it starts', async () => {
      const result = await runCli(['run', '-l', 'web=tcp:127.0.0.1:0', '--', 'sh', '-c', 'echo "$LISTEN_PID $$ $LISTEN_FDS $LISTEN_FDNAMES"']);
      const [listenPid, pid, fds, names] = result.stdout.trim().split(' ');
      // sh -c runs the script in the exec'ed process itself: its $$ is the pid LISTEN_PID names.
      expect(listenPid).to.equal(pid);
      expect([fds, names]).to.deep.equal(['1', 'web']);
    });

    it('the tool itself never accepts: a connection waits in the backlog until the child takes it', async () => {
      // The child sleeps before it serves; a connection made meanwhile must be served by it, not hang half-accepted.
      const cli = clis.start(['run', '-l', 'web=tcp:127.0.0.1:0', '--', 'sh', '-c', `sleep 0.5; exec "${process.execPath}" "${fixture('hello-server')}"`]);
      const [port] = await cli.ports('web');
      const started = Date.now();
      const answer = await exchange({ host: '127.0.0.1', port: port! });
      expect(answer).to.match(/^hello \d+ web\n$/);
      expect(Date.now() - started).to.be.greaterThan(300);
    });
  });

  describe('--restart always keeps the sockets open', () => {
    it('a client connecting all through a crash loop is never refused', async function () {
      this.timeout(40_000);
      // No start limit: the loop is the point here (systemd would stop it after 5 starts in 10 s: see below).
      const cli = clis.start([
        'run', '--restart', 'always', '--restart-sec', '50ms', '--start-limit-interval', '0', '-l', 'web=tcp:127.0.0.1:0',
        '--', process.execPath, fixture('crash-server'), 'inherited', '5',
      ]);
      const [port] = await cli.ports('web');
      const tally = await hammer(port!, 3000);
      const restarts = [...cli.stderr.matchAll(/exited with status 1 after .*; restarting in 50ms/g)].length;
      expect(restarts, cli.stderr).to.be.at.least(3);
      expect(tally.pids.size, JSON.stringify(tally.other)).to.be.at.least(3);
      expect(tally.ok).to.be.at.least(15);
      expect(tally.refused, `refused ${tally.refused} of ${tally.ok + tally.refused}`).to.equal(0);
    });

    it('(control) the same crash loop with a server that binds the port itself is refused', async function () {
      this.timeout(40_000);
      // What the test above guards against: restarting a self-binding server leaves moments with no listener.
      const port = await freePort();
      let stop = false;
      let child: ChildProcess | undefined;
      const loop = (async () => {
        while (!stop) {
          child = spawn(process.execPath, [fixture('crash-server'), 'bind', String(port), '5'], { stdio: 'ignore' });
          await once(child, 'exit');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      try {
        const tally = await hammer(port, 3000);
        expect(tally.pids.size).to.be.at.least(2);
        expect(tally.refused).to.be.greaterThan(0);
      } finally {
        stop = true;
        child?.kill('SIGKILL');
        await loop;
      }
    });

    it('a crash loop stops after 5 starts within 10 s, as StartLimitBurst= and StartLimitIntervalSec= have it', async () => {
      const looping = ['--', 'sh', '-c', 'echo started; exit 1'];
      const limited = await runCli(['run', '--restart', 'always', '--restart-sec', '10ms', ...looping]);
      expect(limited.stdout.match(/started/g), limited.stderr).to.have.length(5);
      expect(limited.stderr).to.match(/sh was started 5 times within 10s and is not started again \(StartLimitBurst=/);
      expect(limited.code).to.equal(1);
      // The flags change it; a start after the window has passed opens a new one.
      const three = await runCli(['run', '--restart', 'always', '--restart-sec', '10ms', '--start-limit-burst', '3', ...looping]);
      expect(three.stdout.match(/started/g), three.stderr).to.have.length(3);
      const spaced = await runCli(['run', '--restart', 'on-failure', '--restart-sec', '120ms', '--start-limit-burst', '2', '--start-limit-interval', '100ms', '--', 'sh', '-c', 'echo started; test -e "$0" && exit 0; n=$(cat "$0.n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$0.n"; test $n -ge 6 && touch "$0"; exit 1', join(clis.tempDir(), 'spaced')]);
      expect(spaced.stdout.match(/started/g), spaced.stderr).to.have.length(7);
      expect(spaced.code, spaced.stderr).to.equal(0);
    });

    it('each start gets a new INVOCATION_ID, as systemd gives each invocation of a unit', async () => {
      const result = await runCli(['run', '--restart', 'on-failure', '--restart-sec', '10ms', '--', 'sh', '-c', 'echo "ID $INVOCATION_ID"; test -e "$0" && exit 0; touch "$0"; exit 3', join(clis.tempDir(), 'marker')], {
        env: { ...process.env, INVOCATION_ID: 'ffffffffffffffffffffffffffffffff' },
      });
      const ids = [...result.stdout.matchAll(/^ID (.*)$/gm)].map((m) => m[1]);
      expect(ids, result.stderr).to.have.length(2);
      for (const id of ids) expect(id).to.match(/^[0-9a-f]{32}$/).and.not.equal('ffffffffffffffffffffffffffffffff');
      expect(ids[0]).to.not.equal(ids[1]);
    });

    it('the exit status of a service that is not restarted is the tool\'s, and on-failure stops on success', async () => {
      expect((await runCli(['run', '--', 'sh', '-c', 'exit 7'])).code).to.equal(7);
      const result = await runCli(['run', '--restart', 'on-failure', '--restart-sec', '10ms', '--', 'sh', '-c', 'test -e "$0" && exit 0; touch "$0"; exit 3', join(clis.tempDir(), 'marker')]);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stderr).to.match(/exited with status 3 .*restarting in 10ms/);
      expect([...result.stderr.matchAll(/^sd-activate: started sh/gm)]).to.have.length(2);
    });
  });

  describe('--accept', () => {
    it('runs one child per connection, the connection at fd 3 named "connection"', async () => {
      const script = 'echo "$LISTEN_FDS $LISTEN_FDNAMES $([ "$LISTEN_PID" = $$ ] && echo self) $$" >&3; exec cat <&3 >&3';
      const cli = clis.start(['run', '--accept', '-l', 'echo=tcp:127.0.0.1:0', '--', 'sh', '-c', script]);
      const [port] = await cli.ports('echo');
      const answers = await Promise.all(['one', 'two', 'three'].map((word) => exchange({ host: '127.0.0.1', port: port! }, `${word}\n`)));
      const pids = new Set<string>();
      answers.forEach((answer, i) => {
        const [head, echoed] = answer.split('\n');
        const [count, name, self, pid] = head!.split(' ');
        expect([count, name, self]).to.deep.equal(['1', 'connection', 'self']);
        expect(echoed).to.equal(['one', 'two', 'three'][i]);
        pids.add(pid!);
      });
      expect(pids.size).to.equal(3);
    });

    it('refuses datagram sockets, as Accept=yes does', async () => {
      const result = await runCli(['run', '--accept', '-l', 'udp:127.0.0.1:0', '--', 'true']);
      expect(result.code).to.equal(2);
      expect(oneLine(result.stderr)).to.match(/--accept takes stream and seqpacket sockets only/);
    });
  });

  describe('--lazy', () => {
    it('starts the child on the first connection, and again on the next one after it exits', async () => {
      const cli = clis.start(['run', '--lazy', '-l', 'web=tcp:127.0.0.1:0', '--', process.execPath, fixture('hello-server'), '--once']);
      const [port] = await cli.ports('web');
      await cli.waitFor(/waiting for a connection to start node/);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(cli.stderr).not.to.match(/started node/);
      const first = await exchange({ host: '127.0.0.1', port: port! });
      expect(first).to.match(/^hello \d+ web\n$/);
      expect(cli.stderr).to.match(/activity on fd 3 "web": starting node/);
      // The service exits when idle; the socket goes back to waiting, as a .socket unit does.
      await cli.waitFor(/waiting for a connection[^]*waiting for a connection/);
      const second = await exchange({ host: '127.0.0.1', port: port! });
      expect(second).to.match(/^hello \d+ web\n$/);
      expect(second).not.to.equal(first);
    });
  });

  describe('notify', () => {
    it('repeats no message at length: one warning for datagrams over 4096 bytes, long values cut', async () => {
      const index = JSON.stringify(new URL('../../src/index.js', import.meta.url).href);
      const script =
        `const { notify } = await import(${index});` +
        `for (let i = 0; i < 20; i++) notify({ STATUS: 'x'.repeat(200000) });` +
        `notify({ STATUS: 'y'.repeat(3000) }); notify.ready();`;
      const result = await runCli(['run', '--type', 'notify', '--', process.execPath, '--input-type=module', '-e', script]);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stderr.match(/ignored a notify message of 200007 bytes/g), result.stderr).to.have.length(1);
      expect(result.stderr).to.include('(3000 bytes)');
      expect(result.stderr).to.not.include('x'.repeat(200));
      expect(result.stderr.length, 'all of it, for 4 MB sent').to.be.below(2000);
    });

    it('EXTEND_TIMEOUT_USEC= moves the start timeout later, never earlier', async () => {
      const node = [process.execPath, fixture('notify-service')];
      // 100 ms asked for, with 3 s left: the 3 s stand (systemd keeps the later deadline).
      const shorter = await runCli(['run', '--type', 'notify', '--timeout-start', '3s', '--', ...node, 'extend:100', 'sleep:400', 'ready', 'exit:0']);
      expect(shorter.stderr).to.match(/is ready after/);
      expect(shorter.code, shorter.stderr).to.equal(0);
      // 5 s asked for, with less than 1.5 s left: ready after 2.5 s is in time.
      const longer = await runCli(['run', '--type', 'notify', '--timeout-start', '1.5s', '--', ...node, 'extend:5000', 'sleep:2500', 'ready', 'exit:0']);
      expect(longer.stderr).to.match(/is ready after/);
      expect(longer.code, longer.stderr).to.equal(0);
    });

    it('EXTEND_TIMEOUT_USEC= after SIGTERM moves the stop timeout: no SIGKILL for a service that says it needs longer', async () => {
      const cli = clis.start(['run', '--type', 'notify', '--timeout-stop', '300ms', '--', process.execPath, fixture('notify-service'), 'term-extend:800', 'ready', 'hang']);
      await cli.waitFor(/is ready after/);
      const { code } = await cli.stop();
      expect(cli.stderr).to.not.match(/SIGKILL/);
      expect(cli.stderr).to.match(/exited with status 0/);
      expect(code).to.equal(0);
    });

    it('prints notify messages as they arrive; --type notify reports the start-up time', async () => {
      const cli = clis.start(['run', '--type', 'notify', '--', process.execPath, fixture('notify-service'), 'status:warming up', 'sleep:200', 'ready', 'status:serving', 'hang']);
      await cli.waitFor(/STATUS=serving/);
      const lines = cli.stderr.split('\n');
      const at = (re: RegExp): number => lines.findIndex((l) => re.test(l));
      expect(at(/\[\d+\] STATUS="warming up"$/)).to.be.greaterThan(-1);
      expect(at(/\[\d+\] READY=1$/)).to.be.greaterThan(at(/STATUS="warming up"/));
      const ready = /node \(pid \d+\) is ready after (\d+(?:\.\d+)?)(ms|s)$/.exec(lines[at(/is ready after/)]!);
      expect(ready).to.not.equal(null);
      const ms = Number(ready![1]) * (ready![2] === 's' ? 1000 : 1);
      expect(ms).to.be.at.least(200).and.below(5000);
      expect(at(/STATUS=serving/)).to.be.greaterThan(at(/is ready after/));
    });

    it('--type notify: no READY=1 within --timeout-start is one line and a non-zero exit', async () => {
      const result = await runCli(['run', '--type', 'notify', '--timeout-start', '300ms', '-q', '--', process.execPath, fixture('notify-service'), 'hang']);
      expect(result.code).to.not.equal(0);
      expect(oneLine(result.stderr)).to.match(/^sd-activate: node \(pid \d+\) sent no READY=1 within 300ms; stopping it/);
    });

    it('--watchdog sets WATCHDOG_USEC and WATCHDOG_PID, and SIGABRTs the service when the pings stop', async () => {
      const cli = clis.start([
        'run', '--type', 'notify', '--watchdog', '300ms', '--restart', 'on-failure', '--restart-sec', '10ms',
        '--', process.execPath, fixture('notify-service'), 'print-env:WATCHDOG_USEC', 'print-env:WATCHDOG_PID', 'ready', 'watchdog:8', 'hang',
      ]);
      await cli.waitFor(/started node[^]*started node/);
      expect(cli.stdout).to.match(/^ENV WATCHDOG_USEC=300000$/m);
      const pid = /sd-activate: started node \(pid (\d+)\)/.exec(cli.stderr)![1];
      expect(cli.stdout).to.include(`ENV WATCHDOG_PID=${pid}\n`);
      // 8 pings 50 ms apart keep it alive for 400 ms (longer than 300), then it is killed.
      const killed = await cli.waitFor(/watchdog: node \(pid (\d+)\) sent no WATCHDOG=1 for 300ms; sending SIGABRT\n.*node \(pid \1\) was killed by SIGABRT after (\d+(?:\.\d+)?)(ms|s); restarting/);
      expect(killed[1]).to.equal(pid);
      expect(Number(killed[2]) * (killed[3] === 's' ? 1000 : 1)).to.be.at.least(650);
    });

    it('--fd-store keeps the fds a service stores and hands them back under their FDNAME on restart', async () => {
      const result = await runCli([
        'run', '--fd-store', '4', '--restart', 'on-failure', '--restart-sec', '10ms', '-l', 'web=tcp:127.0.0.1:0',
        '--', process.execPath, fixture('notify-service'), 'print-fds', 'exit-if:cache', 'store:cache', 'exit:3',
      ]);
      expect(result.code, result.stderr).to.equal(0);
      const runs = [...result.stdout.matchAll(/^FDS (.*)$/gm)].map((m) => JSON.parse(m[1]!) as unknown);
      expect(runs).to.deep.equal([
        [{ fd: 3, name: 'web', kind: 'socket' }],
        [
          { fd: 3, name: 'web', kind: 'socket' },
          { fd: 4, name: 'cache', kind: 'socket' },
        ],
      ]);
      expect(result.stderr).to.match(/FDSTORE=1 FDNAME=cache \(\+1 fd\)/);
      expect(result.stderr).to.match(/started node \(pid \d+\) with 1 stored fd/);
    });

    it('as systemd, a stored fd that hangs up is dropped from the store, unless stored with FDPOLL=0', async () => {
      const result = await runCli([
        'run', '--fd-store', '4', '--restart', 'on-failure', '--restart-sec', '300ms',
        '--', process.execPath, fixture('notify-service'), 'print-fds', 'exit-if:kept', 'store-pipe:hungup', 'store-pipe-nopoll:kept', 'exit:3',
      ]);
      expect(result.code, result.stderr).to.equal(0);
      const runs = [...result.stdout.matchAll(/^FDS (.*)$/gm)].map((m) => JSON.parse(m[1]!) as unknown);
      expect(runs).to.deep.equal([[], [{ fd: 3, name: 'kept', kind: 'fifo' }]]);
      expect(result.stderr).to.match(/warning: fd store: dropped "hungup", which hung up \(store it with FDPOLL=0/);
    });

    it('without --fd-store, FDSTORE=1 fds are dropped, with a warning that says how to keep them', async () => {
      // A Type=simple service has a NOTIFY_SOCKET only when --notify-access is given, as under systemd.
      const result = await runCli(['run', '--restart', 'on-failure', '--notify-access', 'main', '--', process.execPath, fixture('notify-service'), 'store:cache', 'print-fds', 'exit:0']);
      expect(result.code).to.equal(0);
      expect(result.stderr).to.match(/warning: dropped 1 fd\(s\) sent with FDSTORE=1: the fd store is off \(use --fd-store N/);
    });

    it('MAINPID= moves the watched pid: the service runs until that process ends', async () => {
      const cli = clis.start(['run', '--type', 'notify', '--', process.execPath, fixture('notify-service'), 'ready', 'mainpid', 'exit:0']);
      const moved = await cli.waitFor(/main pid is now (\d+) \(was (\d+)\)/);
      const child = (await cli.waitFor(/^CHILD (\d+)$/m, { stream: 'stdout' }))[1];
      expect(moved[1]).to.equal(child);
      await new Promise((resolve) => setTimeout(resolve, 300));
      // The first process is gone; the supervisor still runs, watching the new main pid.
      expect(cli.child.exitCode).to.equal(null);
      const { code } = await cli.exited;
      expect(code).to.equal(0);
      // A subreaper, as systemd is: the new main process became its child and was reaped.
      expect(cli.stderr).to.match(new RegExp(`\\(pid ${child}\\) exited with status 0`));
      expect(cli.stderr).to.not.match(/is gone|unknown/);
    });

    it("an upgraded main process's exit status counts, as under systemd: it fails the service and Restart= acts on it", async () => {
      const failed = await runCli(['run', '--type', 'notify', '--', process.execPath, fixture('notify-service'), 'ready', 'mainpid:3', 'exit:0']);
      const child = /^CHILD (\d+)$/m.exec(failed.stdout)?.[1];
      expect(failed.stderr).to.match(new RegExp(`\\(pid ${child}\\) exited with status 3`));
      expect(failed.code, failed.stderr).to.equal(3);

      const cli = clis.start(['run', '--type', 'notify', '--restart', 'on-failure', '--', process.execPath, fixture('notify-service'), 'ready', 'mainpid:3', 'exit:0']);
      await cli.waitFor(/\(pid \d+\) exited with status 3 after [^;\n]+; restarting/);
      await cli.waitFor(/started \S+ \(pid \d+\)[^]*started \S+ \(pid \d+\)/);
    });

    it('what the service leaves running in its process group is stopped with it (SIGTERM, then SIGKILL), as KillMode=control-group does', async () => {
      const gone = (pid: number): boolean => !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
      // A child that ignores SIGTERM (exec keeps SIG_IGN), started in the background; the service exits at once.
      const result = await runCli(['run', '--timeout-stop', '300ms', '--', 'sh', '-c', '(trap "" TERM; exec sleep 30) & echo "LEFT $!"; exit 0']);
      const left = Number(/^LEFT (\d+)$/m.exec(result.stdout)?.[1]);
      expect(left, result.stdout).to.be.above(0);
      expect(result.stderr).to.match(/sh \(pid \d+\) is gone but left processes in process group \d+: sending SIGTERM[^]*sending SIGKILL/);
      expect(gone(left), `pid ${left} still runs`).to.equal(true);
      // Leftovers that had to be killed fail the service, as Result=timeout does.
      expect(result.code, result.stderr).to.equal(1);

      // One that stops on SIGTERM leaves the service's own status alone.
      const polite = await runCli(['run', '--timeout-stop', '5s', '--', 'sh', '-c', 'sleep 30 & echo "LEFT $!"; exit 0']);
      const politeLeft = Number(/^LEFT (\d+)$/m.exec(polite.stdout)?.[1]);
      expect(polite.stderr).to.match(/left processes in process group \d+: sending SIGTERM/);
      expect(polite.stderr).to.not.match(/SIGKILL/);
      expect(gone(politeLeft)).to.equal(true);
      expect(polite.code, polite.stderr).to.equal(0);
    });

    it('a second Ctrl-C kills what a stopped service left running too, instead of waiting for --timeout-stop', async () => {
      const cli = clis.start(['run', '--timeout-stop', '60s', '--', 'sh', '-c', '(trap "" TERM; exec sleep 60) & echo "LEFT $!"; exec sleep 60']);
      const left = Number((await cli.waitFor(/^LEFT (\d+)$/m, { stream: 'stdout' }))[1]);
      cli.child.kill('SIGINT');
      await cli.waitFor(/left processes in process group \d+: sending SIGTERM/);
      // The tool takes a second signal as a person's only after a second (see run.ts).
      await new Promise((resolve) => setTimeout(resolve, 1100));
      cli.child.kill('SIGINT');
      const started = Date.now();
      await cli.exited;
      expect(Date.now() - started, cli.stderr).to.be.below(5000);
      expect(cli.stderr).to.match(/SIGINT again: killing sh/);
      expect(existsSync(`/proc/${left}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${left}/status`, 'utf8'))).to.equal(false);
    });

    it('a process the service leaves behind is adopted and reaped (no zombie), as systemd reaps it', async () => {
      const cli = clis.start(['run', '--', process.execPath, fixture('notify-service'), 'orphan:400', 'hang']);
      const orphan = Number((await cli.waitFor(/^ORPHAN (\d+)$/m, { stream: 'stdout' }))[1]);
      // Its parent, the shell, has exited: the tool is its parent now.
      expect(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${orphan}/status`, 'utf8'))?.[1]).to.equal(String(cli.child.pid));
      const deadline = Date.now() + 5000;
      while (existsSync(`/proc/${orphan}`) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(existsSync(`/proc/${orphan}`), `pid ${orphan} was not reaped`).to.equal(false);
      expect(cli.child.exitCode).to.equal(null);
    });
  });

  describe('--watch', () => {
    it('restarts the child when a file changes; the socket and its port stay', async () => {
      const dir = clis.tempDir();
      writeFileSync(join(dir, 'app.js'), '1');
      const cli = clis.start(['run', '--watch', dir, '-l', 'web=tcp:127.0.0.1:0', '--', process.execPath, fixture('hello-server')]);
      const [port] = await cli.ports('web');
      const before = await exchange({ host: '127.0.0.1', port: port! });
      writeFileSync(join(dir, 'app.js'), '2');
      await cli.waitFor(/app\.js changed: restarting node\n.*was killed by SIGTERM.*\n.*started node/);
      const after = await exchange({ host: '127.0.0.1', port: port! });
      expect(after).to.match(/^hello \d+ web\n$/);
      expect(after).not.to.equal(before);
    });
  });

  describe('errors: one line, a non-zero exit, no stack trace', () => {
    it('a bad SPEC', async () => {
      const result = await runCli(['run', '-l', 'web=tcp:127.0.0.1:99999', '--', 'true']);
      expect(result.code).to.equal(2);
      expect(oneLine(result.stderr)).to.equal('sd-activate: bad --listen "web=tcp:127.0.0.1:99999": port "99999" is not a number from 0 to 65535');
    });

    it('a port in use', async () => {
      const server = net.createServer().listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as net.AddressInfo;
      try {
        const result = await runCli(['run', '-l', `web=tcp:127.0.0.1:${port}`, '--', 'true']);
        expect(result.code).to.equal(1);
        expect(oneLine(result.stderr)).to.equal(`sd-activate: cannot listen on tcp 127.0.0.1:${port} ("web"): address already in use; another process listens there (EADDRINUSE)`);
      } finally {
        server.close();
      }
    });

    it('a UDP port in use, and nothing stays open when a later socket fails', async () => {
      const taken = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', resolve));
      const dir = clis.tempDir();
      try {
        const result = await runCli(['run', '-l', `a=unix:${dir}/a.sock`, '-l', `dns=udp:127.0.0.1:${taken.address().port}`, '--', 'true']);
        expect(result.code).to.equal(1);
        expect(oneLine(result.stderr)).to.match(/cannot listen on udp 127\.0\.0\.1:\d+ \("dns"\): address already in use/);
        expect(existsSync(join(dir, 'a.sock'))).to.equal(false);
      } finally {
        taken.close();
      }
    });

    it('a path without permission', async () => {
      // Root may bind anywhere: the tool runs as nobody here, in a directory only root may write.
      const dir = clis.tempDir();
      expect(statSync(dir).mode & 0o022).to.equal(0);
      if (process.getuid?.() === 0) {
        // The checkout may be where nobody cannot read (a clone under /root): nobody runs a copy.
        const cli = readableCopy(clis.tempDir());
        const asNobody = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cli, 'run', '-l', `admin=unix:${dir}/admin.sock`, '--', 'true'], { stdio: ['ignore', 'ignore', 'pipe'] });
          let stderr = '';
          child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
          child.on('close', (code) => resolve({ code, stderr }));
        });
        expect(asNobody.code).to.equal(1);
        expect(oneLine(asNobody.stderr)).to.equal(`sd-activate: cannot listen on unix ${dir}/admin.sock ("admin"): permission denied (EACCES)`);
      } else {
        const result = await runCli(['run', '-l', `admin=unix:/proc/admin.sock`, '--', 'true']);
        expect(result.code).to.equal(1);
        expect(oneLine(result.stderr)).to.match(/permission denied \(EACCES\)/);
      }
    });

    it('a command that is not found (127), or not executable (127)', async () => {
      const result = await runCli(['run', '-l', 'web=tcp:127.0.0.1:0', '--', 'no-such-command-here']);
      expect(result.code).to.equal(127);
      expect(oneLine(result.stderr)).to.equal('sd-activate: command not found: no-such-command-here (searched PATH)');
      const dir = clis.tempDir();
      writeFileSync(join(dir, 'script'), '#!/bin/sh\n', { mode: 0o644 });
      const notExecutable = await runCli(['run', '--', './script'], { cwd: dir });
      expect(notExecutable.code).to.equal(127);
      expect(oneLine(notExecutable.stderr)).to.equal('sd-activate: command is not an executable file: ./script');
    });

    it('bad usage: an unknown option, a missing command, a bad value (exit 2)', async () => {
      const unknown = await runCli(['run', '--frobnicate', '--', 'true']);
      expect(unknown.code).to.equal(2);
      expect(oneLine(unknown.stderr)).to.equal("sd-activate: unknown option --frobnicate; see 'sd-activate run --help'");
      const missing = await runCli(['run', '-l', '8080']);
      expect(missing.code).to.equal(2);
      expect(oneLine(missing.stderr)).to.match(/no command to run; usage: sd-activate run \[options\] -- COMMAND/);
      const restart = await runCli(['run', '--restart', 'sometimes', '--', 'true']);
      expect(restart.code).to.equal(2);
      expect(oneLine(restart.stderr)).to.match(/--restart takes no, on-success, on-failure/);
      const value = await runCli(['run', '--watchdog', 'soon', '--', 'true']);
      expect(oneLine(value.stderr)).to.match(/--watchdog takes a time span like 5, 2.5s, 500ms/);
      const noValue = await runCli(['run', '-l']);
      expect(oneLine(noValue.stderr)).to.equal('sd-activate: option --listen needs a value');
      const notCommand = await runCli(['frob']);
      expect(notCommand.code).to.equal(2);
      expect(oneLine(notCommand.stderr)).to.match(/'frob' is not a command; the commands are run, ls, reload, units and doctor/);
    });

    it('--verbose adds the stack trace', async () => {
      const result = await runCli(['run', '--verbose', '-l', 'web=tcp:127.0.0.1:99999', '--', 'true']);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.match(/^sd-activate: bad --listen/);
      // A frame of the command's own code: the bin, one bundled file.
      expect(result.stderr.split('\n').some((line) => /^\s+at /.test(line) && line.includes(CLI)), result.stderr).to.equal(true);
    });

    it('the options of the command are its own: parsing stops at the command', async () => {
      const result = await runCli(['run', '-l', 'web=tcp:127.0.0.1:0', 'sh', '-c', 'echo "$1"', 'sh', '--frobnicate']);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('--frobnicate\n');
    });
  });

  it('Ctrl-C stops the service with SIGTERM and exits 0', async () => {
    const cli: Cli = clis.start(['run', '-l', 'web=tcp:127.0.0.1:0', '--', process.execPath, fixture('hello-server')]);
    await cli.waitFor(/started node \(pid (\d+)\)/);
    const pid = Number(/started node \(pid (\d+)\)/.exec(cli.stderr)![1]);
    const { code } = await cli.stop();
    expect(code).to.equal(0);
    expect(cli.stderr).to.match(new RegExp(`SIGINT: stopping node\\n.*node \\(pid ${pid}\\) was killed by SIGTERM`));
    expect(() => process.kill(pid, 0)).to.throw();
  });
});
