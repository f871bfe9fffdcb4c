// An Express app served on every socket named "web"; on port 3000 when not socket-activated.
import express from 'express';
import { listen } from 'sd-activate/express';

const app = express();
app.get('/', (req, res) => res.send(`hello from express (pid ${process.pid})\n`));

const servers = await listen('web', app, { fallback: { host: '127.0.0.1', port: 3000 } });
for (const server of servers) console.log('listening on', server.address() ?? 'an inherited unix socket');
