// A UDP responder on every socket named "echo-udp": udp4 or udp6 as each socket requires.
import { bind } from 'sd-activate/dgram';

const sockets = await bind('echo-udp', {
  fallback: { host: '127.0.0.1', port: 5300 },
  // Attached before reading starts, so datagrams that queued while systemd started us are answered.
  onMessage(message, remote) {
    this.send(`echo ${message}`, remote.port, remote.address);
  },
});
for (const socket of sockets) console.log('answering on', socket.address());
