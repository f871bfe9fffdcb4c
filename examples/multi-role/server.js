// A multi-role daemon: HTTP on every socket named "http" (IPv4 and IPv6), a UDP responder on
// "dns-udp" and an admin socket on "admin". Under systemd the sockets come from the .socket
// units beside this file; without it, from the fallbacks, so `node server.js` works as is.
import { lifecycle, listenFds } from 'sd-activate';
import { listen as listenHttp } from 'sd-activate/http';
import { bind } from 'sd-activate/dgram';
import { listen as listenNet } from 'sd-activate/net';

const fds = listenFds();
const report = () => JSON.stringify({ pid: process.pid, fds });

for (const fd of fds) console.log(`fd ${fd.fd} "${fd.name}": ${fd.describe()}`);
if (fds.length === 0) console.log('not socket-activated: listening on the fallbacks');

const http = await listenHttp(
  'http',
  (req, res) => {
    if (req.url === '/fds') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(fds));
    } else {
      res.end(`hello from multi-role (pid ${process.pid})\n`);
    }
  },
  { fallback: { host: '127.0.0.1', port: 8080 } },
);

const udp = await bind('dns-udp', {
  fallback: { host: '127.0.0.1', port: 5353 },
  onMessage(message, remote) {
    this.send(`pong ${message}`, remote.port, remote.address);
  },
});

const admin = await listenNet('admin', (socket) => socket.end(report() + '\n'), {
  fallback: `${process.env.RUNTIME_DIRECTORY ?? '.'}/multi-role-admin.sock`,
});

console.log(`serving: ${http.length} http, ${udp.length} udp, ${admin.length} admin`);

// READY=1 once everything listens (Type=notify); on SIGTERM, STOPPING=1 and a graceful stop.
await lifecycle({ servers: [...http, ...udp, ...admin], status: `Serving ${fds.length} inherited sockets` });
