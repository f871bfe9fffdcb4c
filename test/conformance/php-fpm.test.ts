import { expect } from 'chai';
import { readdirSync, writeFileSync } from 'node:fs';
import { bothManagers, execStart } from './harness.js';
import { freePort } from './clients.js';

/*
 * PHP's FastCGI process manager (Debian's php-fpm): Type=notify, and a STATUS= every
 * `systemd_interval` with its process counts, as php8.2-fpm.service runs it.
 */

/** php-fpm8.2 on Debian 12: the php-fpm package depends on the distribution's PHP version. */
const PHP_FPM = `/usr/sbin/${readdirSync('/usr/sbin').find((name) => /^php-fpm\d+\.\d+$/.test(name)) ?? 'php-fpm (not installed)'}`;
/** The STATUS= php-fpm sends (fpm_systemd.c). */
const STATUS = /^Processes active: \d+, idle: \d+, Requests: \d+, slow: \d+, Traffic: [\d.]+req\/sec$/;

/** The rate reads 0req/sec at first, 0.00req/sec later: the number is what compares. */
const rate = (status: string): string => status.replace(/Traffic: ([\d.]+)req\/sec$/, (_, n: string) => `Traffic: ${Number(n)}req/sec`);

/** One static pool of two children on 127.0.0.1:port; a STATUS= every second. */
function config(dir: string, port: number): string {
  const path = `${dir}/php-fpm.conf`;
  writeFileSync(
    path,
    [
      '[global]',
      `error_log = ${dir}/php-fpm.log`,
      'systemd_interval = 1',
      '[pool]',
      `listen = 127.0.0.1:${port}`,
      'pm = static',
      'pm.max_children = 2',
      '',
    ].join('\n'),
  );
  return path;
}

/** In the foreground; -R: it runs as root here, as the test does. */
const argv = (conf: string): string[] => [PHP_FPM, '--nodaemonize', '--fpm-config', conf, '-R'];

describe('conformance: php-fpm under systemd and under sd-activate run', function () {
  this.timeout(90_000);
  const bench = bothManagers('php');

  it('Type=notify: READY=1, then a STATUS= every systemd_interval', async () => {
    const [systemdPort, toolPort] = [await freePort(), await freePort()];
    const service = bench.unit('fpm.service');
    await bench.install({ [service]: ['[Service]', 'Type=notify', execStart(argv(config(bench.subdir('systemd'), systemdPort)))].join('\n') });
    await bench.manager.systemctlOk('start', service);
    const underSystemd = await bench.waitProps(service, ['ActiveState', 'StatusText'], (p) => STATUS.test(p.StatusText ?? ''), 'a STATUS= with process counts');

    const tool = bench.tool(['run', '--type', 'notify', '--', ...argv(config(bench.subdir('tool'), toolPort))]);
    await tool.waitFor(/is ready after/);
    // Two of them: the periodic one comes back.
    await tool.waitFor(/(STATUS="Processes active[^]*){2}/);
    const statuses = [...tool.stderr.matchAll(/STATUS="(Processes active[^"]*)"/g)].map((m) => rate(m[1]!));

    // Both idle: the same counts.
    expect({ ...underSystemd, StatusText: rate(underSystemd.StatusText!) }).to.deep.equal({
      ActiveState: 'active',
      StatusText: 'Processes active: 0, idle: 2, Requests: 0, slow: 0, Traffic: 0req/sec',
    });
    expect(statuses.slice(0, 2)).to.deep.equal([rate(underSystemd.StatusText!), rate(underSystemd.StatusText!)]);
    expect(tool.running).to.equal(true);
    await bench.manager.systemctlOk('stop', service);
    expect(await bench.props(service, 'Result', 'ExecMainStatus')).to.deep.equal({ Result: 'success', ExecMainStatus: '0' });
    expect(await tool.stop()).to.deep.equal({ code: 0, signal: null });
  });
});
