// An HTTP and UDP service that upgrades without refusing a connection or losing a datagram.
//
// It opens its own sockets once and keeps them in systemd's fd store (FileDescriptorStoreMax=),
// so a crash, a restart or an upgrade never closes them. On SIGHUP (`systemctl reload`) it starts
// the new version with every socket, lets it get ready while it keeps serving, tells systemd
// MAINPID=<new> and READY=1, then finishes its requests and exits. With WORKERS=N, N worker
// processes serve the sockets, and the pool is upgraded as a whole.
import { fileURLToPath } from 'node:url';
import { fdStoreRemoveUnused, openStoredSocket, upgrader, workerPool } from 'sd-activate';
import { bind } from 'sd-activate/dgram';
import { listen } from 'sd-activate/http';
import { handler, onMessage, version } from './app.js';

const address = process.env.ADDRESS ?? '127.0.0.1';
const workers = Number(process.env.WORKERS ?? 0);

// Inherited when there is one of that name (the fd store after a restart, the old process of an
// upgrade, or a .socket unit); opened and stored otherwise.
openStoredSocket('web', { type: 'stream', address: { family: 'ipv4', address, port: Number(process.env.HTTP_PORT ?? 8090) } });
openStoredSocket('udp', { type: 'dgram', address: { family: 'ipv4', address, port: Number(process.env.UDP_PORT ?? 8090) } });

await upgrader({
  status: `Serving ${version}${workers ? ` with ${workers} workers` : ''}`,
  // A function: the servers start once the upgrader is loaded, and READY=1 follows at once.
  servers: async () =>
    workers > 0
      ? [await workerPool({ size: workers, args: [fileURLToPath(new URL('./worker.js', import.meta.url))] })]
      : [...(await listen('web', handler)), ...(await bind('udp', { onMessage }))],
  readyTimeoutMs: 30_000,
  stopTimeoutMs: 10_000,
});
// A socket the previous version stored and this one no longer uses leaves the store.
fdStoreRemoveUnused();
console.log(`${version} serving as pid ${process.pid}`);
