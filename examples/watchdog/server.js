// A Type=notify service with a watchdog: pings every half WatchdogSec while its health check
// passes. GET /sick fails the check (systemd restarts the service within WatchdogSec); GET /block
// blocks the event loop, which stops the pings too: a stuck process is restarted, not kept alive.
import { lifecycle, startWatchdog } from 'sd-activate';
import { listen } from 'sd-activate/http';

let healthy = true;
const servers = await listen(
  'http',
  (req, res) => {
    if (req.url === '/sick') healthy = false;
    if (req.url === '/block') {
      res.end('blocking the event loop for 30 s\n');
      const until = Date.now() + 30_000;
      setImmediate(() => {
        while (Date.now() < until);
      });
      return;
    }
    res.end(`pid ${process.pid}, healthy: ${healthy}\n`);
  },
  { fallback: { host: '127.0.0.1', port: 8081 } },
);

const watchdog = startWatchdog({ healthCheck: () => healthy });
console.log(watchdog.enabled ? `watchdog: ping every ${watchdog.intervalMs} ms` : 'no watchdog asked for (WATCHDOG_USEC unset)');
await lifecycle({ servers, status: 'Serving', watchdog });
