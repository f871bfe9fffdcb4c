// What the service serves, shared by server.js (one process) and worker.js (a pool's workers).
import { readFileSync } from 'node:fs';

/** The version "on disk": a deploy changes the file, then `systemctl reload` starts it. */
export const version = readFileSync(process.env.VERSION_FILE ?? new URL('./VERSION', import.meta.url), 'utf8').trim();

/** HTTP: which version and which process answered. */
export function handler(req, res) {
  res.end(`${version} ${process.pid}\n`);
}

/** UDP: the datagram back (one line: `echo ping | socat ...` sends "ping\n"), with the process that read it. */
export function onMessage(message, remote) {
  this.send(`${String(message).trimEnd()} ${version} ${process.pid}\n`, remote.port, remote.address);
}
