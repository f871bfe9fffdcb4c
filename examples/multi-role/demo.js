// npm run demo: the multi-role daemon under `sd-activate run`, the stand-in for systemd. The
// tool opens four named sockets (HTTP on IPv4 and IPv6, UDP, a unix admin socket), starts the
// daemon with them as Type=notify, and this script talks to each socket, then stops it all.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The command `npx sd-activate` runs: the package's bin, as package.json names it.
const packageJson = new URL('../../package.json', import.meta.url);
const cli = fileURLToPath(new URL(JSON.parse(readFileSync(packageJson, 'utf8')).bin['sd-activate'], packageJson));
const server = fileURLToPath(new URL('./server.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'multi-role-'));
const args = [
  cli, 'run', '--type', 'notify',
  '-l', 'http=tcp:127.0.0.1:0', '-l', 'http=tcp:[::1]:0', '-l', 'dns-udp=udp:127.0.0.1:0',
  '-l', `admin=unix:${join(dir, 'admin.sock')}`,
  '--', process.execPath, server,
];
console.log(`$ sd-activate ${args.slice(1).join(' ').replace(process.execPath, 'node')}\n`);
const tool = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'pipe'] });

// The tool reports each socket it opened (port 0 lets the kernel pick free ones) and READY=1.
const sockets = [];
await new Promise((resolve, reject) => {
  let text = '';
  tool.once('exit', (code) => reject(new Error(`sd-activate exited (${code}) before the daemon was ready`)));
  tool.stderr.setEncoding('utf8').on('data', (chunk) => {
    process.stderr.write(chunk);
    text += chunk;
    for (const m of text.matchAll(/fd (\d+) "([^"]+)": (\w+) (\S+)/g)) {
      if (!sockets.some((s) => s.fd === m[1])) sockets.push({ fd: m[1], name: m[2], kind: m[3], address: m[4] });
    }
    if (/is ready after/.test(text)) resolve();
  });
});

const ask = (address, message) =>
  new Promise((resolve, reject) => {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const udp = createSocket('udp4');
    const timer = setTimeout(() => reject(new Error('no UDP answer')), 3000);
    udp.on('message', (reply) => (clearTimeout(timer), udp.close(), resolve(String(reply))));
    udp.send(message, port, host);
  });
const admin = (path) =>
  new Promise((resolve, reject) => {
    let text = '';
    connect(path).setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve(text)).on('error', reject);
  });

console.log('\ntalking to each socket:');
for (const s of sockets) {
  let answer;
  if (s.name === 'http') answer = (await (await fetch(`http://${s.address}/`)).text()).trim();
  else if (s.name === 'dns-udp') answer = await ask(s.address, 'ping');
  else answer = `${JSON.parse(await admin(s.address)).fds.length} fds reported on the admin socket`;
  console.log(`  ${s.name.padEnd(8)} ${s.address.padEnd(28)} -> ${answer}`);
}

tool.kill('SIGTERM');
const code = await new Promise((resolve) => tool.once('exit', resolve));
rmSync(dir, { recursive: true, force: true });
console.log(`\nstopped (sd-activate exit status ${code})`);
process.exitCode = code === 0 ? 0 : 1;
