// A Fastify app served on every socket named "web" (here IPv4 and IPv6); port 3001 without systemd.
import Fastify from 'fastify';
import { listen } from 'sd-activate/fastify';

const fastify = Fastify();
fastify.get('/', async () => ({ hello: 'fastify', pid: process.pid }));

const addresses = await listen('web', fastify, { fallback: { host: '127.0.0.1', port: 3001 } });
console.log('listening on', addresses.join(', '));
