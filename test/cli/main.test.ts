import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fdRow, formatTable } from '../../src/cli/ls.js';
import { formatNotifyFields, runOptions } from '../../src/cli/run.js';
import { UsageError } from '../../src/cli/usage-error.js';
import { CLI, ROOT, runCli, useClis } from './helpers.js';

const cleanEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  for (const key of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES', 'LISTEN_PIDFDID']) delete env[key];
  return env;
};

describe('sd-activate (command line)', function () {
  this.timeout(30_000);
  const clis = useClis();

  describe('help', () => {
    const pages: Array<[string, string[]]> = [
      ['sd-activate --help', ['--help']],
      ['sd-activate (no command)', []],
      ['sd-activate run --help', ['run', '--help']],
      ['sd-activate ls --help', ['ls', '--help']],
      ['sd-activate help run', ['help', 'run']],
      ['sd-activate units --help', ['units', '--help']],
      ['sd-activate help units', ['help', 'units']],
      ['sd-activate doctor --help', ['doctor', '--help']],
      ['sd-activate help doctor', ['help', 'doctor']],
    ];
    for (const [title, args] of pages) {
      it(`${title}: usage first, examples, 80 columns, exit 0`, async () => {
        const result = await runCli(args);
        expect(result.code).to.equal(0);
        expect(result.stderr).to.equal('');
        expect(result.stdout).to.match(/^usage: sd-activate/);
        expect(result.stdout).to.match(/\nExamples:\n {2}\S/);
        for (const line of result.stdout.split('\n')) expect(line.length, line).to.be.at.most(80);
      });
    }

    it('help run is run --help; help of an unknown command is a usage error', async () => {
      expect((await runCli(['help', 'run'])).stdout).to.equal((await runCli(['run', '--help'])).stdout);
      const bad = await runCli(['help', 'frob']);
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.equal('sd-activate: no such command: frob; the commands are run, ls, reload, units and doctor\n');
    });

    it('--version prints the package version', async () => {
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
      expect((await runCli(['--version'])).stdout).to.equal(`sd-activate ${pkg.version}\n`);
    });

    it('runs through npx (the package bin) and directly (the shebang, executable)', async () => {
      const viaNpx = await promisify(execFile)('npx', ['--no-install', 'sd-activate', '--version'], { cwd: ROOT, timeout: 30_000 });
      expect(viaNpx.stdout).to.match(/^sd-activate \d+\.\d+\.\d+\n$/);
      const direct = await promisify(execFile)(CLI, ['--version'], { timeout: 10_000 });
      expect(direct.stdout).to.equal(viaNpx.stdout);
    });
  });

  describe('ls', () => {
    it('lists what it inherited as a table: name, fd, kind, family, type, address, listening', async () => {
      const dir = clis.tempDir();
      const result = await runCli(['run', '-l', 'web=tcp:127.0.0.1:0', '-l', `in=fifo:${dir}/in`, '-l', 'udp:[::1]:0', '--', process.execPath, CLI, 'ls']);
      expect(result.code, result.stderr).to.equal(0);
      const lines = result.stdout.trimEnd().split('\n');
      expect(lines[0]!.split(/\s+/)).to.deep.equal(['NAME', 'FD', 'KIND', 'FAMILY', 'TYPE', 'ADDRESS', 'LISTENING']);
      expect(lines[1]!.split(/\s+/)[5]).to.match(/^127\.0\.0\.1:[1-9]\d*$/);
      expect(lines.slice(1).map((l) => l.split(/\s+/).filter((_, i) => i !== 5))).to.deep.equal([
        ['web', '3', 'socket', 'ipv4/tcp', 'stream', 'yes'],
        ['in', '4', 'fifo', '-', '-', '-'],
        ['unknown', '5', 'socket', 'ipv6/udp', 'dgram', 'no'],
      ]);
      expect(lines[2]).to.include(`${dir}/in`);
      // Columns line up: every ADDRESS starts where its header does.
      const column = lines[0]!.indexOf('ADDRESS');
      for (const line of lines.slice(1)) expect(line[column - 1]).to.equal(' ');
    });

    it('without inherited fds: says why on stderr, exit 0; --json prints []', async () => {
      const text = await runCli(['ls'], { env: cleanEnv() });
      expect(text.code).to.equal(0);
      expect(text.stdout).to.equal('');
      expect(text.stderr).to.equal('sd-activate: no inherited fds: LISTEN_PID is not set\n');
      const json = await runCli(['ls', '--json'], { env: cleanEnv() });
      expect(json.stdout).to.equal('[]\n');
      const other = await runCli(['ls'], { env: { ...cleanEnv(), LISTEN_PID: '1', LISTEN_FDS: '1' } });
      expect(other.stderr).to.match(/^sd-activate: no inherited fds: LISTEN_PID=1 names another process/);
    });

    it('a malformed environment is one line and exit 1', async () => {
      const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        execFile('sh', ['-c', `LISTEN_PID=$$ LISTEN_FDS=x exec "${process.execPath}" "${CLI}" ls`], { env: cleanEnv() }, (error, _stdout, stderr) =>
          resolve({ code: error ? (error as { code?: number }).code ?? 1 : 0, stderr }),
        );
      });
      expect(result.code).to.equal(1);
      expect(result.stderr).to.equal('sd-activate: LISTEN_FDS="x" is not a number\n');
    });

    it('fdRow and formatTable, without a process around them', () => {
      const table = formatTable([{ name: 'a', fd: 3, kind: 'fifo', family: null, type: null, address: '/x', listening: null }]);
      expect(table).to.equal('NAME  FD  KIND  FAMILY  TYPE  ADDRESS  LISTENING\na     3   fifo  -       -     /x       -\n');
      expect(fdRow).to.be.a('function');
    });
  });

  describe('run: the command line', () => {
    it('maps flags onto the supervisor options', () => {
      const parsed = runOptions([
        '-l', 'web=8080', '--type', 'notify', '--restart', 'always', '--restart-sec', '250ms', '--timeout-start', '5',
        '--timeout-stop', '1s', '--watchdog', '2', '--fd-store', '3', '--notify-access', 'all', '--backlog', '7',
        '--ipv6-only', '--reuse-port', '-E', 'A=1', '--start-limit-burst', '9', '--start-limit-interval', '1min',
        '--remove-on-stop', 'no', '--standard-input', 'null', '--sd-booted',
        'node', 'app.js', '--port', '1',
      ]);
      expect(parsed.help).to.equal(false);
      if (parsed.help) return;
      const { listen, env, ...rest } = parsed.options;
      expect(rest).to.deep.equal({
        command: 'node',
        args: ['app.js', '--port', '1'],
        type: 'notify',
        restart: 'always',
        restartMs: 250,
        startLimitBurst: 9,
        startLimitIntervalMs: 60_000,
        timeoutStartMs: 5000,
        timeoutStopMs: 1000,
        watchdogMs: 2000,
        fdStoreMax: 3,
        notifyAccess: 'all',
        removeOnStop: false,
        standardInput: 'null',
        sdBooted: true,
      });
      expect(listen).to.have.length(1);
      expect(listen![0]).to.deep.include({ name: 'web', backlog: 7, v6Only: true, reusePort: true });
      expect(env!.A).to.equal('1');
    });

    it('--timeout-start infinity waits for ever (0 to the supervisor)', () => {
      const parsed = runOptions(['--type', 'notify', '--timeout-start', 'infinity', '--', 'x']);
      expect(!parsed.help && parsed.options.timeoutStartMs).to.equal(0);
    });

    it('refuses combinations that mean nothing', () => {
      const cases: Array<[string[], RegExp]> = [
        [['--accept', '--lazy', '-l', '1', '--', 'x'], /--accept and --lazy do not go together/],
        [['--accept', '--', 'x'], /--accept needs a socket/],
        [['--lazy', '--', 'x'], /--lazy needs a socket/],
        [['--notify-access', 'none', '--type', 'notify', '--', 'x'], /leaves no NOTIFY_SOCKET/],
        [['--accept', '--fd-store', '1', '-l', '1', '--', 'x'], /--accept and --fd-store/],
        [['--type', 'forking', '--', 'x'], /--type takes simple or notify/],
        [['--watchdog', '0', '--', 'x'], /--watchdog must be a time span above 0/],
        [['--fd-store=-1', '--', 'x'], /--fd-store takes a whole number/],
        [['--start-limit-burst', 'five', '--', 'x'], /--start-limit-burst takes a whole number/],
        [['--notify-access', 'control', '--', 'x'], /--notify-access takes main, exec, all or none/],
        [['--start-limit-interval', 'soon', '--', 'x'], /--start-limit-interval takes a time span/],
        [['--fd-store', '-1', '--', 'x'], /option --fd-store needs a value; for one that starts with '-', write --fd-store=VALUE/],
        [['--lazy=yes', '--', 'x'], /option --lazy does not take a value/],
        [['--socket-mode', 'rw', '--', 'x'], /--socket-mode takes an octal mode/],
        [['-E', 'NOEQUALS', '--', 'x'], /--setenv takes NAME=VALUE/],
        [['--remove-on-stop', 'maybe', '--', 'x'], /--remove-on-stop takes yes or no, got "maybe"/],
        [['--standard-input', 'tty', '--', 'x'], /--standard-input takes null or socket/],
        [['--standard-input', 'socket', '-l', '1', '-l', '2', '--', 'x'], /--standard-input socket takes --accept, or exactly one socket .*: there are 2/],
        [['--standard-input', 'socket', '-l', '1', '--fd-store', '1', '--', 'x'], /--standard-input socket passes no fds at 3\+/],
      ];
      for (const [args, re] of cases) expect(() => runOptions(args), args.join(' ')).to.throw(UsageError, re);
    });

    it('formats notify messages on one line, quoting what needs it', () => {
      expect(formatNotifyFields('READY=1\nSTATUS=Serving 3 clients\n')).to.equal('READY=1 STATUS="Serving 3 clients"');
      expect(formatNotifyFields('X_Y=a"b')).to.equal('X_Y="a\\"b"');
      expect(formatNotifyFields('garbage')).to.equal('"garbage"');
    });
  });
});
