import { connect } from 'node:net';
/**
 * README.md, done as a user does it, from the packed tarball: every code block is either run here,
 * as written (free ports in place of the fixed ones, and the adaptations each test names), or
 * listed below with the reason it cannot be. The blocks are read from README.md itself, so a
 * change there is tested here; a new block that is neither fails the first test.
 *
 * "A user" is a new directory where the README's `npm install` installs the tarball (with and
 * without install scripts, on a PATH with no compiler), and a shell whose PATH has node, npm,
 * npx and the system's tools: the CLI runs as the package's installed `bin`, through npx.
 */
import { expect } from 'chai';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { httpGet, readUntilEnd } from '../support/network.js';
import { SystemdManager } from '../support/systemd-manager.js';
import { codeBlocks, commandLines, inlineCommand, shellWords, swapPorts, type CodeBlock } from './markdown.js';
import { accepting, freePorts, sh, shellEnv, systemctlUser, useBackground } from './shell.js';
import { manifest, pack, root, run, tempDir, userEnv } from './support.js';

const README = join(root, 'README.md');

/** Which test runs a block, or why none can. */
interface Claim {
  name: string;
  match(block: CodeBlock): boolean;
  /** Set when the block is not run: why. */
  notRun?: string;
}

const CLAIMS: Claim[] = [
  { name: 'the opening example', match: (b) => b.heading === 'sd-activate' && b.lang === 'js' },
  { name: 'the set-up of a clone', match: (b) => b.heading === 'Try it from this repository' && b.lang === 'sh' },
  { name: 'npm install', match: (b) => b.heading === 'Install' && b.lang === 'sh' },
  { name: 'server.mjs', match: (b) => b.heading === 'The first example' && b.lang === 'js' },
  { name: 'three ways', match: (b) => b.heading === 'The first example' && b.lang === 'sh' && b.text.includes('node server.mjs') },
  { name: 'hello.socket', match: (b) => b.heading === 'The first example' && b.lang === 'ini' && b.text.includes('[Socket]') },
  { name: 'hello.service', match: (b) => b.heading === 'The first example' && b.lang === 'ini' && b.text.includes('[Service]') },
  { name: 'systemctl', match: (b) => b.heading === 'The first example' && b.lang === 'sh' && b.text.includes('systemctl') },
  { name: 'the ListenFd loop', match: (b) => b.heading === 'Activation: `sd-activate`' && b.lang === 'js' },
  {
    name: 'notify',
    match: (b) => b.heading === 'Notify: `sd-activate`' && b.lang === 'js',
    notRun: "a fragment of a program: `server`, `n` and `db` are the reader's own; every call in it is run against real managers by test/notify*.test.ts, test/watchdog.test.ts and test/e2e/systemd-notify*.test.ts",
  },
  {
    name: 'lifecycle',
    match: (b) => b.heading === 'Lifecycle: `sd-activate`' && b.lang === 'js',
    notRun: "a fragment of a program: `handler` and `loadConfig` are the reader's own; examples/watchdog and examples/notify-reload call lifecycle() this way and are run by examples.test.ts",
  },
  {
    name: 'adapters',
    match: (b) => b.heading === 'Adapters' && b.lang === 'js',
    notRun: "alternatives, not one program: `connection()` needs an Accept=yes connection at fd 3 and every other line a listening socket, and `handler`, `app` and `fastify` are the reader's; test/adapters/*.test.ts runs each",
  },
  {
    name: 'upgrades',
    match: (b) => b.heading === 'Zero-downtime upgrades and worker pools' && b.lang === 'js' && !b.text.includes('workerPool') && !b.text.includes("'handover'"),
    notRun: "a fragment (`handler` is the reader's): examples/zero-downtime/server.js makes these calls, run by examples.test.ts under sd-activate run and systemd",
  },
  {
    name: 'connection hand-over',
    match: (b) => b.heading === 'Zero-downtime upgrades and worker pools' && b.lang === 'js' && b.text.includes("'handover'"),
    notRun:
      "a fragment (`listen`, `serve` and `log` are the reader's): test/fixtures/upgrade-service.ts passes its line protocol's sessions this way, run by test/e2e/handover.test.ts under systemd and sd-activate run",
  },
  {
    name: 'the zero-downtime unit',
    match: (b) => b.heading === 'Zero-downtime upgrades and worker pools' && b.lang === 'ini',
    notRun: 'examples/zero-downtime/zero-downtime.service holds every line of it (checked below), and examples.test.ts runs that unit under systemd',
  },
  {
    name: 'worker pools',
    match: (b) => b.heading === 'Zero-downtime upgrades and worker pools' && b.lang === 'js' && b.text.includes('workerPool'),
    notRun: "two files in one block (`// worker.js`) and the reader's `handler`: examples/zero-downtime with WORKERS=4 is this program, run by test/e2e/upgrade.test.ts",
  },
  {
    name: 'sd-activate/ws',
    match: (b) => b.heading === 'WebSockets across upgrades: `sd-activate/ws`' && b.lang === 'js',
    notRun:
      "a fragment (`listen`, `handler` and `serve` are the reader's): test/fixtures/upgrade-service.ts hands its WebSockets over this way, run by test/adapters/ws-upgrade.test.ts and by test/e2e/handover.test.ts under systemd and sd-activate run",
  },
  { name: 'sd-activate run', match: (b) => b.heading === 'Without systemd: `sd-activate run`' && b.lang === 'sh' },
  {
    name: 'sd-activate doctor',
    match: (b) => b.heading === '`sd-activate doctor UNIT`' && b.lang === 'sh',
    notRun: "the output for units of the reader's (under /home/me, `...` for lines left out); every finding is produced from real units under systemd by test/e2e/systemd-doctor.test.ts",
  },
  { name: 'sd-activate units', match: (b) => b.heading === '`sd-activate units`: the unit files for what `run` does' && b.lang === 'sh' && b.text.startsWith('$ ') },
  {
    name: 'sd-activate units --write',
    match: (b) => b.heading === '`sd-activate units`: the unit files for what `run` does' && b.lang === 'sh' && b.text.includes('--write'),
    notRun: "it writes into the reader's ~/.config and enables units in their user manager; test/e2e/systemd-units.test.ts writes units with --write into a real user manager's unit directory and starts them",
  },
  {
    name: 'sd-activate/testing',
    match: (b) => b.heading === 'In tests: `sd-activate/testing`' && b.lang === 'js',
    notRun: "a mocha test of the reader's (`dir`, `server.js` and the test runner are theirs); startService() is tested by test/testing.test.ts and through the installed package by exports.test.ts",
  },
];

/** The one block a claim names. */
function blockOf(name: string): CodeBlock {
  const claim = CLAIMS.find((c) => c.name === name)!;
  const found = codeBlocks(README).filter((b) => claim.match(b));
  expect(found, `README.md blocks for "${name}"`).to.have.length(1);
  return found[0]!;
}

/**
 * A developer's shell in a clone: this environment without npm's script variables and with npm's
 * own user config (node-gyp finds Node's headers through it), PATH without what `npm test` put first.
 */
function developerEnv(): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? '').split(':').filter((dir) => !/node_modules[/\\]|node-gyp-bin/.test(dir));
  return userEnv({ npm_config_userconfig: undefined, PATH: path.join(':') });
}

describe('README: every code block is run, or listed with the reason it cannot be', function () {
  it('each block is claimed once, and each claim finds its block', function () {
    const blocks = codeBlocks(README);
    expect(blocks.length).to.be.above(10);
    for (const block of blocks) {
      const claims = CLAIMS.filter((c) => c.match(block)).map((c) => c.name);
      expect(claims, `README.md:${block.line} (${block.lang}, under "${block.heading}"):\n${block.text}is run by no test and listed as not runnable by none`).to.not.deep.equal([]);
      expect(claims, `README.md:${block.line}: claimed more than once`).to.have.length(1);
    }
    for (const claim of CLAIMS) blockOf(claim.name);
    for (const claim of CLAIMS.filter((c) => c.notRun)) expect(claim.notRun!.length, claim.name).to.be.above(20);
  });

  it('the opening example is server.mjs of the first example (which is run below)', function () {
    expect(blockOf('the opening example').text).to.equal(blockOf('server.mjs').text);
  });

  it('the zero-downtime unit of the README is in examples/zero-downtime/zero-downtime.service, line for line (but the folder in /opt)', function () {
    const folder = (text: string): string => text.replace(/\/opt\/[^/\s]+\//g, '/opt/APP/');
    const unit = folder(readFileSync(join(root, 'examples', 'zero-downtime', 'zero-downtime.service'), 'utf8')).split('\n');
    const lines = folder(blockOf('the zero-downtime unit').text).split('\n').filter((line) => line.trim() !== '');
    expect(lines.filter((line) => !unit.includes(line)), 'README lines not in the unit').to.deep.equal([]);
  });
});

for (const ignoreScripts of [false, true]) {
  describe(`README, from the installed tarball (npm install${ignoreScripts ? ' --ignore-scripts' : ''})`, function () {
    this.timeout(120_000);
    const start = useBackground();
    /** The user's project: a new directory where the README's `npm install` line was run. */
    let dir: string;
    let env: NodeJS.ProcessEnv;

    before(async function () {
      const [line, ...more] = commandLines(blockOf('npm install'));
      expect(more, 'the Install block is one command').to.deep.equal([]);
      expect(shellWords(line!)).to.deep.equal(['npm', 'install', 'sd-activate']);
      dir = tempDir('readme-user-');
      // The package name stands for the tarball, which is what this tree would publish.
      const install = `${line!.replace(/ sd-activate$/, ` ${pack().tarball}`)}${ignoreScripts ? ' --ignore-scripts' : ''}`;
      // On the PATH with no compiler: installing must not need one.
      const result = await sh(install, { cwd: dir, env: userEnv(), timeoutMs: 110_000 });
      expect(result.code, `${install}\n${result.stdout}${result.stderr}`).to.equal(0);
      expect(existsSync(join(dir, 'node_modules', 'sd-activate', 'package.json'))).to.equal(true);
      expect(existsSync(join(dir, 'node_modules', 'sd-activate', 'build')), 'something was compiled').to.equal(false);
      env = shellEnv();
    });

    it('the first example, three ways: `node server.mjs`, `npx sd-activate run ...`, `systemd-socket-activate ...`: each answers hello', async function () {
      const ways = commandLines(blockOf('three ways'));
      const clients = ways.filter((line) => line.startsWith('curl '));
      const servers = ways.filter((line) => !line.startsWith('curl '));
      // systemd's own tool is named in the text after the block.
      servers.push(inlineCommand(README, 'systemd-socket-activate '));
      expect(servers.map((line) => shellWords(line)[0])).to.deep.equal(['node', 'npx', 'systemd-socket-activate']);
      expect(clients).to.have.length(1);
      const ports = await freePorts(blockOf('server.mjs').text, ...ways);
      expect([...ports.keys()]).to.deep.equal([8080]);
      const port = ports.get(8080)!;
      writeFileSync(join(dir, 'server.mjs'), swapPorts(blockOf('server.mjs').text, ports));

      for (const server of servers) {
        const command = start(swapPorts(server, ports), { cwd: dir, env });
        await accepting(port, command);
        for (const client of clients) {
          const reply = await sh(swapPorts(client, ports), { cwd: dir, env });
          expect(reply.stdout, `${client} with ${server} running:\n${reply.stderr}\n${command.output}`).to.equal('hello\n');
        }
        const how = shellWords(server)[0];
        if (how === 'npx') {
          // Activated: the tool passed the socket as fd 3 "http", and started node with it.
          expect(command.stderr).to.match(new RegExp(`^sd-activate: fd 3 "http": tcp \\[::\\]:${port} \\(ipv6 stream, listening\\)$`, 'm'));
          expect(command.stderr).to.match(/^sd-activate: started node \(pid \d+\)$/m);
        } else if (how === 'systemd-socket-activate') {
          expect(command.stderr).to.match(new RegExp(`Listening on \\[::\\]:${port} as 3\\.`));
          expect(command.stderr).to.match(/Execing node/);
        } else {
          expect(command.stderr, command.output).to.equal('');
        }
        await command.stop();
      }
    });

    it("the first example under a real systemd user manager, with the README's hello.socket and hello.service", async function () {
      // Adapted to a private user manager: the units go where it reads them (not /etc/systemd/system),
      // systemctl is `systemctl --user` against it, /opt/hello is the user's project directory,
      // and the port a free one.
      const manager = await SystemdManager.start();
      try {
        const names = [inlineCommand(README, '/etc/systemd/system/hello.socket'), inlineCommand(README, '/etc/systemd/system/hello.service')];
        const units = [blockOf('hello.socket'), blockOf('hello.service')];
        const commands = commandLines(blockOf('systemctl'));
        const ports = await freePorts(...units.map((u) => u.text), ...commands);
        expect([...ports.keys()]).to.deep.equal([8080]);
        writeFileSync(join(dir, 'server.mjs'), swapPorts(blockOf('server.mjs').text, ports));
        names.forEach((path, i) => {
          let text = swapPorts(units[i]!.text, ports).split('/opt/hello').join(dir);
          // The README's node is /usr/bin/node; this suite's may be another (Node 22 and 24 in CI).
          if (process.execPath !== '/usr/bin/node') text = text.split('/usr/bin/node').join(process.execPath);
          writeFileSync(join(manager.unitDir, path.split('/').pop()!), text);
        });
        const systemdEnv = systemctlUser(manager, env);
        for (const line of commands) {
          if (line.startsWith('curl ')) {
            expect(await manager.show('hello.service', 'ActiveState')).to.equal('inactive');
            const reply = await sh(swapPorts(line, ports), { cwd: dir, env: systemdEnv });
            expect(reply.stdout, `${line}\n${reply.stderr}${manager.logExcerpt()}`).to.equal('hello\n');
            // The first connection started hello.service, which serves the socket systemd passed.
            expect(await manager.show('hello.service', 'ActiveState')).to.equal('active');
            expect(await manager.showList('hello.socket', 'Listen')).to.deep.equal([`[::]:${ports.get(8080)} (Stream)`]);
          } else {
            const result = await sh(line, { cwd: dir, env: systemdEnv });
            expect(result.code, `${line}\n${result.stderr}${manager.logExcerpt()}`).to.equal(0);
          }
        }
      } finally {
        await manager.stop();
      }
    });

    it('the ListenFd loop, as a program under `npx sd-activate run` with a TCP socket, a unix socket and a FIFO', async function () {
      // The block with the import it needs, and nothing else.
      writeFileSync(join(dir, 'fds.mjs'), `import { listenFds } from 'sd-activate';\n${blockOf('the ListenFd loop').text}`);
      const result = await sh('npx sd-activate run -l http=tcp:127.0.0.1:0 -l admin=unix:./fds-admin.sock -l in=fifo:./fds.fifo -- node fds.mjs', { cwd: dir, env });
      expect(result.code, result.stderr).to.equal(0);
      const port = /^sd-activate: fd 3 "http": tcp 127\.0\.0\.1:(\d+) /m.exec(result.stderr)?.[1];
      expect(port, result.stderr).to.be.a('string');
      expect(result.stdout).to.equal(`http tcp 127.0.0.1 ${port} true\nadmin stream path ${join(dir, 'fds-admin.sock')}\nin fifo\n`);
    });

    it('each `npx sd-activate run` example of the CLI section, with programs of the kinds they name', async function () {
      const lines = commandLines(blockOf('sd-activate run'));
      const ports = await freePorts(...lines);
      const port = (line: string): number => {
        const spec = shellWords(line)[shellWords(line).indexOf('-l') + 1]!;
        return Number(/(\d+)(?=,|$)/.exec(spec)![1]);
      };
      // The programs are the reader's: CommonJS, as `npm install` left the project (no "type").
      writeFileSync(
        join(dir, 'server.js'),
        "const http = require('node:http');\nconst { notify, systemdFd } = require('sd-activate');\n" +
          "http.createServer((req, res) => res.end('hello\\n')).listen(systemdFd('web'), () => notify.ready());\n",
      );
      writeFileSync(join(dir, 'admin.js'), "const net = require('node:net');\nconst { systemdFd } = require('sd-activate');\nnet.createServer((socket) => socket.end('admin\\n')).listen(systemdFd('admin'));\n");
      writeFileSync(
        join(dir, 'handle-one-connection'),
        "#!/usr/bin/env node\nconst { connection } = require('sd-activate/net');\nconnection().end(`one connection, pid ${process.pid}\\n`);\n",
      );
      chmodSync(join(dir, 'handle-one-connection'), 0o755);

      const checked: string[] = [];
      for (const line of lines) {
        const words = shellWords(line);
        expect(words.slice(0, 3), line).to.deep.equal(['npx', 'sd-activate', 'run']);
        const program = words.slice(words.indexOf('--') + 1).join(' ');
        const swapped = swapPorts(line, ports);
        if (program === 'sd-activate ls') {
          // Runs to its end: the tool starts `sd-activate ls`, which lists the socket it got.
          const result = await sh(swapped, { cwd: dir, env });
          expect(result.code, result.stderr).to.equal(0);
          const opened = new RegExp(`^sd-activate: fd 3 "web": tcp 127\\.0\\.0\\.1:(\\d+) \\(ipv4 stream, listening\\)$`, 'm').exec(result.stderr);
          expect(opened, result.stderr).to.not.equal(null);
          expect(result.stdout).to.match(/^NAME +FD +KIND +FAMILY +TYPE +ADDRESS +LISTENING\n/);
          expect(result.stdout).to.match(new RegExp(`^web +3 +socket +ipv4/tcp +stream +127\\.0\\.0\\.1:${opened![1]} +yes$`, 'm'));
          checked.push(line);
          continue;
        }
        const command = start(swapped, { cwd: dir, env });
        const servedPort = ports.get(port(line));
        if (program === 'node server.js') {
          if (words.includes('--type')) await command.waitFor(/node \(pid \d+\) is ready after/);
          await accepting(servedPort!, command);
          expect((await httpGet({ host: '127.0.0.1', port: servedPort! }, '/')).body).to.equal('hello\n');
          if (words.includes('--restart')) {
            // --restart always: a killed service is started again, on the same socket.
            const first = Number((await command.waitFor(/started node \(pid (\d+)\)/))[1]);
            process.kill(first, 'SIGKILL');
            await command.waitFor(new RegExp(`started node \\(pid (?!${first}\\))\\d+\\)`));
            expect((await httpGet({ host: '127.0.0.1', port: servedPort! }, '/')).body).to.equal('hello\n');
          }
        } else if (program === 'node admin.js') {
          // --lazy: nothing runs until the first connection; the socket is there, mode 0600.
          await command.waitFor(/waiting for a connection to start node/);
          const path = join(dir, 'admin.sock');
          expect(statSync(path).mode & 0o777).to.equal(0o600);
          expect(command.stderr).to.not.match(/started node/);
          expect((await readUntilEnd({ path })).text).to.equal('admin\n');
        } else if (program === './handle-one-connection') {
          // --accept: one process per connection, each with its connection at fd 3.
          await command.waitFor(/fd 3 "echo"/);
          const replies = [await readUntilEnd({ host: '127.0.0.1', port: servedPort! }), await readUntilEnd({ host: '127.0.0.1', port: servedPort! })];
          const pids = replies.map((reply) => /^one connection, pid (\d+)\n$/.exec(reply.text)?.[1]);
          expect(pids[0], command.output).to.be.a('string');
          expect(pids[1], command.output).to.be.a('string');
          expect(pids[0]).to.not.equal(pids[1]);
        } else if (program === 'cat') {
          // --standard-input socket: inetd style, the connection at fds 0 and 1: cat echoes it.
          await command.waitFor(/tcp 127\.0\.0\.1:\d+ \(ipv4 stream, listening\)/);
          const echoed = await new Promise<string>((resolve, reject) => {
            let text = '';
            const socket = connect({ host: '127.0.0.1', port: servedPort! }, () => socket.end('echo me\n'));
            socket.setEncoding('utf8').on('data', (d: string) => (text += d));
            socket.on('end', () => resolve(text));
            socket.on('error', reject);
          });
          expect(echoed, command.output).to.equal('echo me\n');
        } else {
          expect.fail(`README.md: no check for \`${line}\`: add one to this test`);
        }
        await command.stop();
        checked.push(line);
      }
      expect(checked).to.deep.equal(lines);
    });

    it('`sd-activate ls --json`, `sd-activate ls` with nothing inherited, and behind npx (which LISTEN_PID then names), through npx', async function () {
      const json = await sh('npx sd-activate run -l web=tcp:127.0.0.1:0 -- sd-activate ls --json', { cwd: dir, env });
      expect(json.code, json.stderr).to.equal(0);
      const rows = JSON.parse(json.stdout) as Array<{ name: string; fd: number; kind: string; listening: boolean }>;
      expect(rows).to.have.length(1);
      expect(rows[0]).to.include({ name: 'web', fd: 3, kind: 'socket', listening: true });
      const alone = await sh('npx sd-activate ls', { cwd: dir, env });
      expect(alone.code).to.equal(0);
      expect(alone.stderr).to.equal('sd-activate: no inherited fds: LISTEN_PID is not set\n');
      // What the README says of `-- npx sd-activate ls`: npx is the process LISTEN_PID names, and
      // the `sd-activate ls` it starts says so.
      const wrapped = await sh('npx sd-activate run -l web=tcp:127.0.0.1:0 -- npx sd-activate ls', { cwd: dir, env });
      expect(wrapped.code, wrapped.stderr).to.equal(0);
      expect(wrapped.stdout).to.equal('');
      const npx = /^sd-activate: started npx \(pid (\d+)\)$/m.exec(wrapped.stderr)?.[1];
      expect(npx, wrapped.stderr).to.be.a('string');
      expect(wrapped.stderr).to.match(new RegExp(`^sd-activate: no inherited fds: LISTEN_PID=${npx} names another process than this one \\(pid \\d+\\): a wrapper`, 'm'));
    });

    it('`sd-activate units`: the files the README shows, for a server.js of the project, through npx', async function () {
      const [first, ...output] = blockOf('sd-activate units').text.replace(/\n$/, '').split('\n');
      expect(first).to.match(/^\$ sd-activate units /);
      if (!existsSync(join(dir, 'server.js'))) writeFileSync(join(dir, 'server.js'), '');
      // The README's paths are the reader's: their project's folder and the node on their PATH.
      const node = (await sh('command -v node', { cwd: dir, env })).stdout.trim();
      const result = await sh(`npx ${first!.slice(2)}`, { cwd: dir, env });
      expect(result.code, result.stderr).to.equal(0);
      const printed = result.stdout.replace(/\n$/, '').split('\n').filter((line) => !line.startsWith('# Written by sd-activate units'));
      expect(printed.join('\n')).to.equal(output.join('\n').replaceAll('/home/me/app', realpathSync(dir)).replaceAll('/usr/bin/node', node));
    });

    it('`--help` of every command, `help COMMAND` and `--version`, through npx', async function () {
      const main = await sh('npx sd-activate --help', { cwd: dir, env });
      expect(main.code, main.stderr).to.equal(0);
      expect(main.stdout).to.match(/^usage: sd-activate /);
      const section = /\nCommands:\n((?: {2}\S.*\n)+)/.exec(main.stdout);
      expect(section, main.stdout).to.not.equal(null);
      const commands = section![1]!.trim().split('\n').map((line) => line.trim().split(' ')[0]!);
      expect(commands).to.include.members(['run', 'ls', 'help']);
      // npx costs a second a call here: `help COMMAND` and --version go to the bin npx runs, directly.
      const bin = join(dir, 'node_modules', '.bin', 'sd-activate');
      for (const name of commands) {
        const help = await sh(`npx sd-activate ${name} --help`, { cwd: dir, env });
        expect(help.code, `sd-activate ${name} --help: ${help.stderr}`).to.equal(0);
        expect(help.stderr).to.equal('');
        if (name === 'help') {
          expect(help.stdout, 'help --help').to.equal(main.stdout);
          continue;
        }
        expect(help.stdout).to.match(new RegExp(`^usage: sd-activate ${name}`));
        expect((await sh(`${bin} help ${name}`, { cwd: dir, env })).stdout).to.equal(help.stdout);
      }
      const version = await sh(`${bin} --version`, { cwd: dir, env });
      expect(version.stdout).to.equal(`sd-activate ${manifest(join(dir, 'node_modules', 'sd-activate')).version}\n`);
    });
  });
}

describe('README: the set-up of a clone', function () {
  this.timeout(600_000);

  it('the test command is what .ci/run runs, with the set-up before it', function () {
    const lines = commandLines(blockOf('the set-up of a clone'));
    expect(lines[lines.length - 1]).to.equal('npm test');
    const ci = readFileSync(join(root, '.ci', 'run'), 'utf8').split('\n');
    const at = lines.map((line) => ci.findIndex((l) => l === line || l.startsWith(`${line} `)));
    for (const [i, line] of lines.entries()) expect(at[i], `.ci/run runs \`${line}\``).to.be.above(-1);
    expect(at, 'in the order of the README').to.deep.equal([...at].sort((a, b) => a - b));
  });

  it('in a fresh copy of the repository, the set-up runs the demo and leaves `git status` clean', async function () {
    // `npm test` is this suite; it runs on a fresh machine in .ci/run (checked above).
    const lines = commandLines(blockOf('the set-up of a clone')).filter((line) => line !== 'npm test');
    expect(lines.length).to.be.above(0);
    // A clone of this tree as it is now: what git tracks and what it would track, committed.
    const copy = tempDir('clone-');
    const files = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root }).stdout.split('\0');
    for (const file of files.filter((f) => f !== '' && existsSync(join(root, f)))) {
      mkdirSync(dirname(join(copy, file)), { recursive: true });
      copyFileSync(join(root, file), join(copy, file));
    }
    const git = { ...process.env, GIT_AUTHOR_NAME: 'test', GIT_AUTHOR_EMAIL: 'test@localhost', GIT_COMMITTER_NAME: 'test', GIT_COMMITTER_EMAIL: 'test@localhost' };
    run('sh', ['-c', 'git init -q && git add -A && git commit -qm clone'], { cwd: copy, env: git });
    const env = developerEnv();
    let output = '';
    for (const line of lines) {
      const result = await sh(line, { cwd: copy, env, timeoutMs: 500_000 });
      output += result.stdout + result.stderr;
      expect(result.code, `${line}\n${result.stdout}${result.stderr}`).to.equal(0);
    }
    // The demo's last line: every socket answered, and the tool stopped the daemon cleanly.
    expect(output).to.match(/^stopped \(sd-activate exit status 0\)$/m);
    expect(run('git', ['status', '--porcelain'], { cwd: copy }).stdout, 'files the set-up changed').to.equal('');
  });
});
