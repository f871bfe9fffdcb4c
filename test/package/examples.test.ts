/**
 * Each example of examples/ as its README says, with the packed tarball installed in a project of
 * its own (not this repository's dist/): the commands of its README run by sh in that project
 * (the example copied to examples/NAME there, as the READMEs' paths say), under `sd-activate run`
 * through npx, plain, under `systemd-socket-activate`, and under a real systemd user manager with
 * its own units. Ports are swapped for free ones, in the commands and in the example's files alike
 * (a fallback port in server.js, a ListenStream= in a unit).
 */
import { expect } from 'chai';
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpGet, readUntilEnd, udpRequest } from '../support/network.js';
import { SystemdManager } from '../support/systemd-manager.js';
import { codeBlocks, commandLines, commentOf, inlineCode, inlineCommand, shellWords, swapPorts } from './markdown.js';
import { accepting, freePorts, sh, shellEnv, systemctlUser, useBackground, type Background, type ShellResult } from './shell.js';
import { install, root } from './support.js';

const EXAMPLES = join(root, 'examples');
const readme = (name: string): string => join(EXAMPLES, name, 'README.md');

/** The command lines of the `index`th shell block of an example's README. */
function block(name: string, index = 0): string[] {
  const blocks = codeBlocks(readme(name)).filter((b) => b.lang === 'sh');
  expect(blocks.length, `examples/${name}/README.md: shell blocks`).to.be.above(index);
  return commandLines(blocks[index]!);
}

/** The version of a package installed here (the lockfile's), for the examples' project. */
function pinned(name: string): string {
  return `${name}@${(JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version}`;
}

/** Every file of an example and the lines given, for the ports they use. */
function portsOf(name: string, ...lines: string[]): Promise<Map<number, number>> {
  const files = readdirSync(join(EXAMPLES, name)).filter((f) => f !== 'README.md');
  return freePorts(...lines, ...files.map((f) => readFileSync(join(EXAMPLES, name, f), 'utf8')));
}

type Kind = 'node' | 'npx' | 'systemd-socket-activate';

/** How a README line starts the example: plain, through `npx sd-activate run`, or systemd's tool; undefined for a client. */
function kindOf(line: string): Kind | undefined {
  const first = shellWords(line)[0];
  return first === 'node' || first === 'npx' || first === 'systemd-socket-activate' ? first : undefined;
}

/** The pid `sd-activate run` printed for the `nth` start of node (1-based). */
async function startedPid(command: Background, nth = 1): Promise<number> {
  const match = await command.waitFor(new RegExp(`(?:started node \\(pid \\d+\\)[^]*?){${nth - 1}}started node \\(pid (\\d+)\\)`));
  return Number(match[1]);
}

describe('examples/, from the installed tarball, as their READMEs say', function () {
  this.timeout(120_000);
  const start = useBackground();
  let project: string;
  let env: NodeJS.ProcessEnv;

  before(function () {
    this.timeout(300_000);
    // express and fastify are optional peers: the examples' project installs the ones they use.
    project = install({ ignoreScripts: false, purpose: 'examples', also: [pinned('express'), pinned('fastify')] }).dir;
    env = shellEnv();
  });

  /** examples/NAME copied to `at` in the project (examples/NAME: the READMEs' paths), its ports swapped. */
  function copyExample(name: string, ports: ReadonlyMap<number, number>, at = join('examples', name)): string {
    const to = join(project, at);
    rmSync(to, { recursive: true, force: true });
    cpSync(join(EXAMPLES, name), to, { recursive: true });
    for (const file of readdirSync(to)) {
      if (file === 'README.md') continue;
      const path = join(to, file);
      writeFileSync(path, swapPorts(readFileSync(path, 'utf8'), ports));
    }
    return to;
  }

  /**
   * The example copied (ports swapped: those of `lines`, and its files') and its README's
   * `npx sd-activate run --type notify ...` line started: once node is ready, the first pid.
   */
  async function ready(name: string, run: string, lines: readonly string[] = [run]): Promise<{ command: Background; ports: Map<number, number>; pid: number }> {
    const ports = await portsOf(name, ...lines);
    copyExample(name, ports);
    const command = start(swapPorts(run, ports), { cwd: project, env });
    const pid = await startedPid(command);
    await command.waitFor(new RegExp(`node \\(pid ${pid}\\) is ready after`));
    return { command, ports, pid };
  }

  /**
   * Each line of the README's block that starts the example (plain, activated), with every other
   * line run against it as a client, checked by `check`.
   */
  async function serversThenClients(
    name: string,
    ready: (kind: Kind, command: Background, ports: ReadonlyMap<number, number>) => Promise<void>,
    check: (kind: Kind, client: string, result: ShellResult, command: Background) => Promise<void> | void,
  ): Promise<Kind[]> {
    const lines = block(name);
    const ports = await portsOf(name, ...lines);
    copyExample(name, ports);
    const kinds: Kind[] = [];
    for (const server of lines.filter((line) => kindOf(line))) {
      const kind = kindOf(server)!;
      const command = start(swapPorts(server, ports), { cwd: project, env });
      await ready(kind, command, ports);
      for (const client of lines.filter((line) => !kindOf(line))) {
        const result = await sh(swapPorts(client, ports), { cwd: project, env });
        await check(kind, client, result, command);
      }
      await command.stop();
      kinds.push(kind);
    }
    return kinds;
  }

  it('express-app: plain, under systemd-socket-activate and under sd-activate run, it serves on the socket it was given', async function () {
    let port = 0;
    const kinds = await serversThenClients(
      'express-app',
      async (kind, command, ports) => {
        port = ports.get(3000)!;
        await accepting(port, command);
      },
      async (kind, client, result, command) => {
        const pid = /^hello from express \(pid (\d+)\)\n$/.exec(result.stdout)?.[1];
        expect(pid, `${client} (${kind}):\n${result.stderr}${command.output}`).to.be.a('string');
        if (kind === 'npx') expect(Number(pid)).to.equal(await startedPid(command));
        // It serves the socket it was given, or its fallback: 127.0.0.1 and the (swapped) port either way.
        const listening = await command.waitFor(/listening on \{ address: '127\.0\.0\.1', family: 'IPv4', port: (\d+) \}/);
        expect(Number(listening[1])).to.equal(port);
      },
    );
    expect(kinds).to.deep.equal(['node', 'systemd-socket-activate', 'npx']);
  });

  it('fastify-app: one instance, on IPv4 only when plain, on IPv4 and IPv6 under one name when activated', async function () {
    const kinds = await serversThenClients(
      'fastify-app',
      async (kind, command, ports) => accepting(ports.get(3001)!, command),
      async (kind, client, result, command) => {
        const replies = result.stdout.split(/(?<=\})/).filter((part) => part !== '');
        const bodies = replies.map((reply) => JSON.parse(reply) as { hello: string; pid: number });
        // Plain, the fallback is 127.0.0.1 alone (the README's comment says so): the [::1] curl fails.
        expect(bodies, `${client} (${kind}):\n${result.stderr}${command.output}`).to.have.length(kind === 'node' ? 1 : 2);
        for (const body of bodies) expect(body).to.deep.equal({ hello: 'fastify', pid: bodies[0]!.pid });
        if (kind === 'npx') expect(bodies[0]!.pid).to.equal(await startedPid(command));
      },
    );
    expect(kinds).to.deep.equal(['node', 'systemd-socket-activate', 'npx']);
  });

  it('udp-responder: plain; and with systemd-socket-activate -d and sd-activate run --lazy, the first datagram starts it and is answered', async function () {
    const kinds = await serversThenClients(
      'udp-responder',
      async (kind, command, ports) => {
        const port = ports.get(5300)!;
        if (kind === 'node') {
          await command.waitFor(/answering on/);
          return;
        }
        await command.waitFor(kind === 'npx' ? /waiting for a connection to start node/ : /Listening on 127\.0\.0\.1:\d+ as 3/);
        expect(command.stdout + command.stderr).to.not.match(/answering on|started node/);
        // The first datagram, sent once: it waits in the queue while the program starts, and is answered.
        expect(await udpRequest('127.0.0.1', port, 'first', 15_000, 15_000)).to.equal('echo first');
        if (kind === 'npx') {
          expect(command.stderr).to.match(/activity on fd 3 "echo-udp": starting node/);
          expect(await udpRequest('::1', port, 'second')).to.equal('echo second');
        }
      },
      (kind, client, result, command) => {
        expect(result.stdout, `${client} (${kind}):\n${result.stderr}${command.output}`).to.equal('echo hi\n');
      },
    );
    expect(kinds).to.deep.equal(['node', 'systemd-socket-activate', 'npx']);
  });

  it('multi-role: plain on its fallbacks; under sd-activate run, Type=notify with HTTP on two sockets, UDP, and the admin socket with mode 0600', async function () {
    const kinds = await serversThenClients(
      'multi-role',
      async (kind, command) => {
        await command.waitFor(kind === 'npx' ? /node \(pid \d+\) is ready after/ : /^serving: 1 http, 1 udp, 1 admin$/m);
        if (kind === 'npx') expect(statSync(join(project, 'multi-role-admin.sock')).mode & 0o777).to.equal(0o600);
      },
      (kind, client, result, command) => {
        const why = `${client} (${kind}):\n${result.stderr}${command.output}`;
        if (client.includes('/fds')) {
          const fds = JSON.parse(result.stdout) as Array<{ fd: number; name: string }>;
          expect(fds.map((f) => [f.fd, f.name]), why).to.deep.equal(
            kind === 'npx' ? [[3, 'http'], [4, 'http'], [5, 'dns-udp'], [6, 'admin']] : [],
          );
        } else if (client.includes('UDP:')) {
          expect(result.stdout, why).to.equal('pong ping\n');
        } else if (client.includes('UNIX-CONNECT:')) {
          expect(JSON.parse(result.stdout), why).to.have.property('pid');
        } else {
          expect.fail(`examples/multi-role/README.md: no check for \`${client}\``);
        }
      },
    );
    expect(kinds).to.deep.equal(['node', 'npx']);
  });

  it('notify-reload: under sd-activate run, `kill -HUP` sends RELOADING=1 and READY=1 around the reload, and the new greeting is served', async function () {
    const [run, hup] = block('notify-reload', 1);
    expect(hup).to.match(/^kill -HUP </);
    // The systemd block's edit of the greeting, on the copy the command runs.
    const edit = block('notify-reload', 0).find((line) => line.startsWith('echo '))!;
    const { command, ports, pid } = await ready('notify-reload', run!);
    const port = ports.get(8082)!;
    expect((await httpGet({ host: '127.0.0.1', port }, '/')).body).to.equal('hello\n');
    expect((await sh(edit.replace('/opt/notify-reload/', 'examples/notify-reload/'), { cwd: project, env })).code).to.equal(0);
    const signal = await sh(hup!.replace(/<[^>]*>/, String(pid)), { cwd: project, env });
    expect(signal.code, signal.stderr).to.equal(0);
    await command.waitFor(new RegExp(`\\[${pid}\\] RELOADING=1 MONOTONIC_USEC=\\d+[^\\n]*\\n[^]*\\[${pid}\\] READY=1`));
    expect((await httpGet({ host: '127.0.0.1', port }, '/')).body).to.equal('bonjour\n');
  });

  it('watchdog: under sd-activate run, `curl .../sick` stops the pings; the tool kills it with SIGABRT and starts a new one on the same socket', async function () {
    const [run] = block('watchdog', 1);
    const sick = inlineCommand(readme('watchdog'), 'curl ');
    const { command, ports, pid: first } = await ready('watchdog', run!);
    const port = ports.get(8081)!;
    expect((await httpGet({ host: '127.0.0.1', port }, '/')).body).to.equal(`pid ${first}, healthy: true\n`);
    expect((await sh(swapPorts(sick, ports), { cwd: project, env })).code).to.equal(0);
    const second = await startedPid(command, 2);
    expect(command.stderr).to.match(/watchdog/i);
    expect(command.stderr).to.match(/SIGABRT/);
    await command.waitFor(new RegExp(`node \\(pid ${second}\\) is ready after`));
    expect((await httpGet({ host: '127.0.0.1', port }, '/')).body).to.equal(`pid ${second}, healthy: true\n`);
  });

  it('zero-downtime: under sd-activate run, `kill -HUP` of the pid that answered starts v2, which then serves HTTP and UDP', async function () {
    const lines = block('zero-downtime');
    const [run, ...rest] = lines;
    expect(kindOf(run!)).to.equal('npx');
    const { command, ports } = await ready('zero-downtime', run!, lines);
    let answered = 0;
    for (const line of rest) {
      // The README's comment on each line says what it prints: `v1 4242`, `ping v2 4250`.
      const expected = commentOf(line);
      const result = await sh(swapPorts(line, ports).replace(/\b4242\b/, String(answered)), { cwd: project, env });
      expect(result.code, `${line}\n${result.stderr}${command.output}`).to.equal(0);
      const printed = /^(\w+ )?(v\d) (\d+)\n$/.exec(result.stdout);
      if (/^(ping )?v\d \d+$/.test(expected)) {
        expect(printed, `${line}: ${result.stdout}\n${command.output}`).to.not.equal(null);
        expect(printed![2]).to.equal(/v\d/.exec(expected)![0]);
        const pid = Number(printed![3]);
        if (expected.startsWith('v1')) answered = pid;
        else expect(pid).to.not.equal(answered);
      } else if (line.startsWith('kill -HUP')) {
        // The old process hands over: the tool reports the new main pid, ready.
        await command.waitFor(new RegExp(`\\[${answered}\\] [^\\n]*MAINPID=\\d+`));
      }
    }
    expect(answered).to.be.above(0);
  });
});

describe('examples/, from the installed tarball, under a systemd user manager with their own units', function () {
  this.timeout(120_000);
  let project: string;
  let manager: SystemdManager;
  let env: NodeJS.ProcessEnv;

  before(async function () {
    this.timeout(300_000);
    project = install({ ignoreScripts: false, purpose: 'examples', also: [pinned('express'), pinned('fastify')] }).dir;
    manager = await SystemdManager.start();
    env = systemctlUser(manager, shellEnv());
  });

  after(async function () {
    await manager?.stop();
  });

  /**
   * Installed as the README says, adapted to a private user manager: the example copied to
   * opt/NAME in the project (for /opt/NAME: the installed package is found above it), each
   * /opt/NAME in the units pointing there, the units where the manager reads them (for
   * /etc/systemd/system), free ports, and this process's node for /usr/bin/node when it is another.
   */
  async function installExample(name: string): Promise<{ dir: string; ports: Map<number, number> }> {
    const ports = await portsOf(name, ...block(name));
    const dir = join(project, 'opt', name);
    rmSync(dir, { recursive: true, force: true });
    cpSync(join(EXAMPLES, name), dir, { recursive: true });
    for (const file of readdirSync(dir)) {
      if (file === 'README.md') continue;
      const text = swapPorts(readFileSync(join(dir, file), 'utf8'), ports);
      if (!/\.(socket|service)$/.test(file)) {
        writeFileSync(join(dir, file), text);
        continue;
      }
      let unit = text.split(`/opt/${name}/`).join(`${dir}/`);
      if (process.execPath !== '/usr/bin/node') unit = unit.split('/usr/bin/node').join(process.execPath);
      writeFileSync(join(manager.unitDir, file), unit);
    }
    return { dir, ports };
  }

  /** The README's `systemctl ...` commands (inline, after "Under systemd"), run as written. */
  async function systemctl(lines: string[]): Promise<void> {
    for (const line of lines) {
      const result = await sh(line, { cwd: project, env });
      expect(result.code, `${line}\n${result.stderr}${manager.logExcerpt()}`).to.equal(0);
    }
  }

  /** The inline `systemctl` commands of a README, in order. */
  const systemctlLines = (name: string): string[] => inlineCode(readme(name)).filter((span) => span.startsWith('systemctl '));

  /**
   * installExample(), then the README's commands that start it (`systemctl daemon-reload`,
   * `systemctl start ...`), which must be `expected`; a daemon-reload first when they have none
   * (their "install as in the Express example").
   */
  async function installAndStart(name: string, expected: readonly string[]): Promise<{ dir: string; ports: Map<number, number> }> {
    const installed = await installExample(name);
    const commands = systemctlLines(name).filter((line) => /^systemctl (daemon-reload|start )/.test(line));
    expect(commands, `examples/${name}/README.md`).to.deep.equal(expected);
    if (!commands.some((line) => line.includes('daemon-reload'))) await manager.systemctlOk('daemon-reload');
    await systemctl(commands);
    return installed;
  }

  /** Runs a client line of the README; its output. */
  async function client(line: string, ports: ReadonlyMap<number, number>): Promise<string> {
    const result = await sh(swapPorts(line, ports), { cwd: project, env });
    expect(result.code, `${line}\n${result.stderr}${manager.logExcerpt()}`).to.equal(0);
    return result.stdout;
  }

  const mainPid = async (service: string): Promise<number> => Number(await manager.show(service, 'MainPID'));

  it('express-app: the first connection starts it, and it serves the socket it was given', async function () {
    const { ports } = await installAndStart('express-app', ['systemctl daemon-reload && systemctl start express-app.socket']);
    expect(await manager.show('express-app.service', 'ActiveState')).to.equal('inactive');
    const curl = block('express-app').find((line) => line.startsWith('curl '))!;
    expect(await client(curl, ports)).to.equal(`hello from express (pid ${await mainPid('express-app.service')})\n`);
  });

  it('fastify-app: one instance serves IPv4 and IPv6 under one name', async function () {
    const { ports } = await installAndStart('fastify-app', ['systemctl start fastify-app.socket']);
    const curl = block('fastify-app').find((line) => line.startsWith('curl '))!;
    const pid = await client(curl, ports).then((out) => out.split(/(?<=\})/).map((part) => (JSON.parse(part) as { pid: number }).pid));
    const main = await mainPid('fastify-app.service');
    expect(pid).to.deep.equal([main, main]);
  });

  it('udp-responder: a datagram starts it and is answered, on IPv4 and IPv6', async function () {
    const { ports } = await installAndStart('udp-responder', ['systemctl start udp-responder.socket']);
    expect(await manager.show('udp-responder.service', 'ActiveState')).to.equal('inactive');
    const port = ports.get(5300)!;
    // The first datagram, sent once, starts the service and is answered.
    expect(await udpRequest('127.0.0.1', port, 'first', 15_000, 15_000)).to.equal('echo first');
    expect(await udpRequest('::1', port, 'second')).to.equal('echo second');
    const socat = block('udp-responder').find((line) => line.startsWith('echo '))!;
    expect(await client(socat, ports)).to.equal('echo hi\n');
    expect(await manager.show('udp-responder.service', 'ActiveState')).to.equal('active');
  });

  it('multi-role: the three sockets start it; each is served, and systemctl status lists the addresses it prints', async function () {
    const { ports } = await installAndStart('multi-role', ['systemctl daemon-reload', 'systemctl start multi-role-http.socket multi-role-dns.socket multi-role-admin.socket']);
    const lines = block('multi-role').filter((line) => !kindOf(line));
    for (const line of lines) {
      // The admin socket is %t/multi-role/admin.sock under systemd (%t: the manager's runtime dir).
      const out = await client(line.replace('./multi-role-admin.sock', `${manager.dir}/multi-role/admin.sock`), ports);
      if (line.includes('/fds')) {
        const fds = JSON.parse(out) as Array<{ fd: number; name: string }>;
        expect(fds.map((f) => f.name).sort()).to.deep.equal(['admin', 'dns-udp', 'http', 'http']);
      } else if (line.includes('UDP:')) {
        expect(out).to.equal('pong ping\n');
      } else {
        expect((JSON.parse(out) as { pid: number }).pid).to.equal(await mainPid('multi-role.service'));
      }
    }
    const status = await client(inlineCommand(readme('multi-role'), 'systemctl status '), ports);
    const port = ports.get(8080)!;
    expect(status).to.include(`127.0.0.1:${port}`);
    expect(status).to.include(`[::1]:${port}`);
    expect(await manager.show('multi-role.service', 'StatusText')).to.equal('Serving 4 inherited sockets');
  });

  it('notify-reload: systemctl reload runs ExecReload=; the same process serves the new greeting and is active again', async function () {
    const { ports, dir } = await installExample('notify-reload');
    // Its README says no more than the Express example's: reload, start the socket.
    await systemctl(['systemctl daemon-reload && systemctl start notify-reload.socket']);
    let pid = 0;
    for (const line of block('notify-reload', 0)) {
      const out = await client(line.split('/opt/notify-reload/').join(`${dir}/`), ports);
      if (line.startsWith('curl ')) {
        // The README's comment is what it prints.
        expect(out).to.equal(`${commentOf(line)}\n`);
        if (pid === 0) pid = await mainPid('notify-reload.service');
      }
    }
    expect(pid).to.be.above(0);
    expect(await manager.show('notify-reload.service', 'ActiveState')).to.equal('active');
    expect(await manager.show('notify-reload.service', 'StatusText')).to.equal('Serving');
    // Reloaded in place: the same process, not a restart.
    expect(await mainPid('notify-reload.service')).to.equal(pid);
    expect(await manager.show('notify-reload.service', 'NRestarts')).to.equal('0');
  });

  it('watchdog: a failing health check, and then a blocked event loop, each end in a watchdog timeout and a restart on the same socket', async function () {
    const { ports } = await installAndStart('watchdog', ['systemctl start watchdog-demo.socket']);
    const service = 'watchdog-demo.service';
    let first = 0;
    for (const line of block('watchdog')) {
      const expected = commentOf(line);
      if (line.startsWith('sleep ')) {
        // `sleep 3` is the README's guess at how long systemd takes; on a loaded machine it may take
        // longer, so the line runs again until it prints what the comment says (or 20 s pass).
        const want = `${expected}\n`;
        let out = await client(line, ports);
        const deadline = Date.now() + 20_000;
        while (out !== want && Date.now() < deadline) out = await client(line.replace(/^sleep \d+; /, 'sleep 0.5; '), ports);
        expect(out).to.equal(want);
        // What the README says the log says.
        expect(manager.log()).to.include('watchdog-demo.service: Watchdog timeout (limit 2s)!');
        expect(manager.log()).to.include("watchdog-demo.service: Failed with result 'watchdog'.");
        continue;
      }
      const out = await client(line, ports);
      if (line.endsWith('/block') || line.includes('/block ')) {
        expect(out).to.equal('blocking the event loop for 30 s\n');
        // "same outcome": a second watchdog restart.
        await manager.waitFor(async () => (await manager.show(service, 'NRestarts')) === '2', 20_000, `${service} restarted again`);
      } else if (line.includes('/sick')) {
        expect(out).to.equal(`pid ${first}, healthy: false\n`);
      } else {
        expect(out).to.match(/^pid \d+, healthy: true\n$/);
        first = Number(/\d+/.exec(out)![0]);
        expect(await mainPid(service)).to.equal(first);
        expect(await manager.show(service, 'WatchdogUSec')).to.equal('2s');
        expect(await manager.show(service, 'StatusText')).to.equal('Serving');
      }
    }
    const again = await manager.waitFor(
      async () => ((await manager.show(service, 'ActiveState')) === 'active' ? mainPid(service) : 0),
      20_000,
      `${service} active again`,
    );
    expect(again).to.not.equal(first);
    expect(await client(`curl http://127.0.0.1:${ports.get(8081)}/`, new Map())).to.equal(`pid ${again}, healthy: true\n`);
  });

  it('zero-downtime: started as a service, upgraded by `systemctl reload` after a deploy, serving HTTP and UDP throughout', async function () {
    const { ports, dir } = await installAndStart('zero-downtime', ['systemctl daemon-reload && systemctl start zero-downtime.service']);
    const service = 'zero-downtime.service';
    const curl = block('zero-downtime').find((line) => line.startsWith('curl '))!;
    const socat = block('zero-downtime').find((line) => line.includes('socat'))!;
    const v1 = await mainPid(service);
    expect(await client(curl, ports)).to.equal(`v1 ${v1}\n`);
    // "Deploy a new version by changing the files, then systemctl reload".
    writeFileSync(join(dir, 'VERSION'), 'v2\n');
    await systemctl([systemctlLines('zero-downtime').find((line) => line.startsWith('systemctl reload '))!]);
    const v2 = await manager.waitFor(async () => {
      const pid = await mainPid(service);
      return pid !== v1 && pid !== 0 ? pid : 0;
    }, 30_000, 'the new main pid');
    await manager.waitFor(async () => (await client(curl, ports)) === `v2 ${v2}\n`, 30_000, 'v2 answering');
    expect(await client(socat, ports)).to.equal(`ping v2 ${v2}\n`);
    expect(await manager.show(service, 'StatusText')).to.equal('Serving v2');
  });
});
