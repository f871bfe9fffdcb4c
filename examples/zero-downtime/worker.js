// A worker of server.js's pool: an ordinary socket-activated program. Its READY=1 goes to the
// pool, it finishes its requests when the pool stops it, and it exits if the pool's process dies.
import { upgrader } from 'sd-activate';
import { bind } from 'sd-activate/dgram';
import { listen } from 'sd-activate/http';
import { handler, onMessage } from './app.js';

await upgrader({ servers: async () => [...(await listen('web', handler)), ...(await bind('udp', { onMessage }))] });
