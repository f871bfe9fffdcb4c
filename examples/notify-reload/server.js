// Reloads its configuration on SIGHUP (`systemctl reload`), telling systemd RELOADING=1 with
// MONOTONIC_USEC, then READY=1, as Type=notify-reload (systemd 253+) expects; on older systemd,
// Type=notify with ExecReload=kill -HUP $MAINPID gives the same sequence.
import { readFile } from 'node:fs/promises';
import { lifecycle } from 'sd-activate';
import { listen } from 'sd-activate/http';

const configPath = process.env.GREETING_FILE ?? new URL('./greeting.txt', import.meta.url);
let greeting = (await readFile(configPath, 'utf8')).trim();

const servers = await listen('http', (req, res) => res.end(`${greeting}\n`), {
  fallback: { host: '127.0.0.1', port: 8082 },
});

await lifecycle({
  servers,
  status: 'Serving',
  async reload() {
    greeting = (await readFile(configPath, 'utf8')).trim();
    console.log(`reloaded: ${greeting}`);
  },
});
