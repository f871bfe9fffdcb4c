import { expect } from 'chai';
import * as dgram from 'node:dgram';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { join } from 'node:path';
import { CLI, ROOT, useClis, type Cli } from './helpers.js';

/** The words of a shell command line: quotes and backslash-newlines as sh reads them, a trailing comment dropped. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'" || ch === '"') {
      const end = line.indexOf(ch, i + 1);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (ch === '\\' && line[i + 1] === '\n') {
      i++;
    } else if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (ch === '#' && word === undefined) {
      break;
    } else {
      word = (word ?? '') + ch;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * The `npx sd-activate run ...` line of an example's README, as argv for the built CLI. Ports
 * become 0 (fixed ports collide with whatever else runs on the machine: the tool prints the ones
 * it got), and `examples/...` paths absolute (the test runs in a temporary directory).
 */
function readmeCommand(example: string): string[] {
  const readme = readFileSync(join(ROOT, 'examples', example, 'README.md'), 'utf8');
  const match = /^npx sd-activate run (?:[^\n]*\\\n)*[^\n]*$/m.exec(readme);
  expect(match, `examples/${example}/README.md shows an \`npx sd-activate run\` line`).to.not.equal(null);
  const words = shellWords(match![0]).slice(2);
  return words.map((word, i) => {
    if (words[i - 1] === '-l' || words[i - 1] === '--listen') return word.replace(/:\d+(?=(,|$))/, ':0');
    if (word.startsWith('examples/')) return join(ROOT, word);
    return word;
  });
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function udpAsk(family: 'udp4' | 'udp6', host: string, port: number, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(family);
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no UDP answer from ${host}:${port}`));
    }, 10_000);
    socket.on('message', (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply.toString());
    });
    socket.send(message, port, host);
  });
}

function unixAsk(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    net
      .connect({ path })
      .setEncoding('utf8')
      .on('data', (d: string) => (data += d))
      .on('end', () => resolve(data))
      .on('error', reject);
  });
}

/** `fd N "name": tcp|udp ADDRESS` lines the tool printed, in fd order. */
async function printed(cli: Cli, count: number): Promise<Array<{ fd: number; name: string; proto: string; host: string; port: number }>> {
  await cli.waitFor(new RegExp(`(^sd-activate: fd \\d+ .*\\n[^]*){${count}}`, 'm'));
  return [...cli.stderr.matchAll(/^sd-activate: fd (\d+) "([^"]+)": (tcp|udp) \[?([\d.:a-f]+?)\]?:(\d+) /gm)].map((m) => ({
    fd: Number(m[1]),
    name: m[2]!,
    proto: m[3]!,
    host: m[4]!,
    port: Number(m[5]),
  }));
}

describe('examples under sd-activate run, with the flags their READMEs show', function () {
  this.timeout(30_000);
  const clis = useClis();

  it('shellWords reads the README lines as sh does', () => {
    expect(shellWords(`npx a -l 'web=tcp:[::1]:1' "b c" \\\n  d # comment`)).to.deep.equal(['npx', 'a', '-l', 'web=tcp:[::1]:1', 'b c', 'd']);
  });

  it('express-app: serves on the socket it was given, binds nothing of its own', async () => {
    const args = readmeCommand('express-app');
    expect(args).to.include('web=tcp:127.0.0.1:0');
    const cli = clis.start([...args], { cwd: clis.tempDir() });
    const [web] = await printed(cli, 1);
    expect(web).to.include({ fd: 3, name: 'web', proto: 'tcp', host: '127.0.0.1' });
    const pid = (await cli.waitFor(/started node \(pid (\d+)\)/))[1];
    expect(await get(`http://127.0.0.1:${web!.port}/`)).to.equal(`hello from express (pid ${pid})\n`);
    const listening = await cli.waitFor(/listening on \{ address: '127\.0\.0\.1', family: 'IPv4', port: (\d+) \}/, { stream: 'stdout' });
    expect(Number(listening[1])).to.equal(web!.port);
  });

  it('fastify-app: one instance on IPv4 and IPv6 under one name', async () => {
    const cli = clis.start(readmeCommand('fastify-app'), { cwd: clis.tempDir() });
    const sockets = await printed(cli, 2);
    expect(sockets.map((s) => [s.fd, s.name, s.host])).to.deep.equal([
      [3, 'web', '127.0.0.1'],
      [4, 'web', '::1'],
    ]);
    const pid = Number((await cli.waitFor(/started node \(pid (\d+)\)/))[1]);
    for (const url of [`http://127.0.0.1:${sockets[0]!.port}/`, `http://[::1]:${sockets[1]!.port}/`]) {
      expect(JSON.parse(await get(url))).to.deep.equal({ hello: 'fastify', pid });
    }
  });

  it('udp-responder: --lazy, the first datagram starts it and is answered, as with a .socket unit', async () => {
    const args = readmeCommand('udp-responder');
    expect(args).to.include('--lazy');
    const cli = clis.start(args, { cwd: clis.tempDir() });
    const sockets = await printed(cli, 2);
    expect(sockets.map((s) => [s.name, s.proto, s.host])).to.deep.equal([
      ['echo-udp', 'udp', '127.0.0.1'],
      ['echo-udp', 'udp', '::1'],
    ]);
    await cli.waitFor(/waiting for a connection to start node/);
    expect(cli.stderr).not.to.match(/started node/);
    expect(await udpAsk('udp4', '127.0.0.1', sockets[0]!.port, 'first')).to.equal('echo first');
    expect(cli.stderr).to.match(/activity on fd 3 "echo-udp": starting node/);
    expect(await udpAsk('udp6', '::1', sockets[1]!.port, 'second')).to.equal('echo second');
  });

  it('multi-role: Type=notify, HTTP on two sockets, UDP, and the admin socket with mode 0600', async () => {
    const dir = clis.tempDir();
    const args = readmeCommand('multi-role');
    expect(args.slice(0, 3)).to.deep.equal(['run', '--type', 'notify']);
    const cli = clis.start(args, { cwd: dir });
    const sockets = await printed(cli, 3);
    expect(sockets.map((s) => [s.fd, s.name, s.proto])).to.deep.equal([
      [3, 'http', 'tcp'],
      [4, 'http', 'tcp'],
      [5, 'dns-udp', 'udp'],
    ]);
    await cli.waitFor(/^sd-activate: fd 6 "admin": unix .*multi-role-admin\.sock \(stream, listening\)$/m);
    await cli.waitFor(/node \(pid \d+\) is ready after/);
    const fds = JSON.parse(await get(`http://127.0.0.1:${sockets[0]!.port}/fds`)) as Array<{ fd: number; name: string }>;
    expect(fds.map((f) => [f.fd, f.name])).to.deep.equal([
      [3, 'http'],
      [4, 'http'],
      [5, 'dns-udp'],
      [6, 'admin'],
    ]);
    expect(await get(`http://[::1]:${sockets[1]!.port}/`)).to.match(/^hello from multi-role/);
    expect(await udpAsk('udp4', '127.0.0.1', sockets[2]!.port, 'ping')).to.equal('pong ping');
    const path = join(dir, 'multi-role-admin.sock');
    expect(statSync(path).mode & 0o777).to.equal(0o600);
    expect(JSON.parse(await unixAsk(path))).to.have.property('pid');
  });

  it('the CLI the READMEs call is the package bin', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    // The bin is the bundle of the CLI the tests run.
    expect(pkg.bin['sd-activate']).to.equal('./dist/pkg/cli/main.js');
    expect(CLI).to.equal(join(ROOT, 'dist/src/cli/main.js'));
    expect(readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n')).to.equal(true);
  });
});

describe('examples under sd-activate run: watchdog and notify-reload', function () {
  this.timeout(60_000);
  const clis = useClis();

  it('watchdog: a failing health check stops the pings; the tool kills it and starts a new one on the same socket', async () => {
    const args = readmeCommand('watchdog');
    expect(args).to.include.members(['--watchdog', '--restart']);
    const cli = clis.start(args, { cwd: clis.tempDir() });
    const [web] = await printed(cli, 1);
    const first = (await cli.waitFor(/started node \(pid (\d+)\)/))[1];
    await cli.waitFor(/is ready after/);
    expect(await get(`http://127.0.0.1:${web!.port}/`)).to.equal(`pid ${first}, healthy: true\n`);
    await get(`http://127.0.0.1:${web!.port}/sick`);
    const restarted = await cli.waitFor(new RegExp(`started node \\(pid (?!${first}\\))(\\d+)\\)`), { timeoutMs: 20_000 });
    expect(cli.stderr).to.match(/watchdog/i);
    expect(await get(`http://127.0.0.1:${web!.port}/`)).to.equal(`pid ${restarted[1]}, healthy: true\n`);
  });

  it('notify-reload: SIGHUP sends RELOADING=1 and READY=1 around the reload, and the new greeting is served', async () => {
    const dir = clis.tempDir();
    const greeting = join(dir, 'greeting.txt');
    writeFileSync(greeting, 'hello\n');
    const cli = clis.start(readmeCommand('notify-reload'), { cwd: dir, env: { ...process.env, GREETING_FILE: greeting } });
    const [web] = await printed(cli, 1);
    const pid = Number((await cli.waitFor(/started node \(pid (\d+)\)/))[1]);
    await cli.waitFor(/is ready after/);
    expect(await get(`http://127.0.0.1:${web!.port}/`)).to.equal('hello\n');
    writeFileSync(greeting, 'bonjour\n');
    process.kill(pid, 'SIGHUP');
    await cli.waitFor(new RegExp(`\\[${pid}\\] RELOADING=1 MONOTONIC_USEC=\\d+[^\\n]*\\n[^]*\\[${pid}\\] READY=1`));
    expect(await get(`http://127.0.0.1:${web!.port}/`)).to.equal('bonjour\n');
  });
});
