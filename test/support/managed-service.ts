import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './cli-bin.js';
import { SystemdManager } from './systemd-manager.js';
import { alive, serviceOutput, serviceUnit, sleep, UPGRADE_SERVICE, type ServiceDir } from './upgrade-harness.js';

/*
 * The service of test/fixtures/upgrade-service.ts run by a service manager, as the upgrade tests
 * drive it: under a real systemd 252 user manager (test/support/systemd-manager.ts), or under
 * `sd-activate run` (the package's bin), with the same questions asked of both.
 */

/** One service under one manager. */
export interface Managed {
  /** The pid the manager has as the main process now. */
  mainPid(): Promise<number>;
  /** What the reload of the unit does: SIGHUP to the main process. */
  reload(): Promise<void>;
  /** Whether the manager has the service running. */
  active(): Promise<boolean>;
  stop(): Promise<void>;
  explain(): string;
}

/** How the service is started. */
export interface ManagedOptions {
  /** A name for the unit, unique in the manager. */
  name: string;
  /** Restart= (default no). */
  restart?: string;
  /** More environment for the service. */
  env?: Readonly<Record<string, string>>;
  /** The sockets `sd-activate run` opens (`name=tcp:host:port`, ...), as a .socket unit would; under systemd the service opens and stores its own. */
  listen: readonly string[];
}

/** Waits for `check` to hold, polling; throws with `what` after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(25);
  }
}

/** Starts `service` under `systemd`'s user manager and waits until it is active. */
export async function underSystemd(systemd: SystemdManager, service: ServiceDir, options: ManagedOptions): Promise<Managed> {
  const unit = `${options.name}.service`;
  const extra = [
    ...(options.restart ? [`Restart=${options.restart}`, 'RestartSec=100ms'] : []),
    ...Object.entries(options.env ?? {}).map(([key, value]) => `Environment=${key}=${value}`),
  ];
  await systemd.installUnit(unit, serviceUnit(service, extra));
  await systemd.systemctlOk('start', unit);
  return {
    mainPid: async () => Number(await systemd.show(unit, 'MainPID')),
    reload: async () => void (await systemd.systemctlOk('reload', '--no-block', unit)),
    active: async () => (await systemd.show(unit, 'ActiveState')) === 'active',
    stop: async () => void (await systemd.systemctl('stop', unit)),
    explain: () => serviceOutput(service) + systemd.logExcerpt(30),
  };
}

/** The service under `sd-activate run`: the tool's process, and what it printed. */
export interface RunManaged extends Managed {
  cli: ChildProcess;
  output(): string;
}

/** Starts `service` under `sd-activate run` and waits until it is ready. */
export async function underRun(service: ServiceDir, options: ManagedOptions): Promise<RunManaged> {
  let stderr = '';
  const cli: ChildProcess = spawn(
    process.execPath,
    [
      CLI,
      'run',
      ...options.listen.flatMap((spec) => ['-l', spec]),
      '--type',
      'notify',
      ...(options.restart ? ['--restart', options.restart, '--restart-sec', '100ms'] : []),
      '--timeout-stop',
      '10s',
      ...Object.entries(options.env ?? {}).flatMap(([key, value]) => ['-E', `${key}=${value}`]),
      '--',
      process.execPath,
      UPGRADE_SERVICE,
      service.dir,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  cli.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const mainPid = async (): Promise<number> => {
    // The last of: a start, or a MAINPID= the tool followed.
    const events = [...stderr.matchAll(/started \S+ \(pid (\d+)\)|main pid is now (\d+)/g)];
    const last = events.pop();
    return Number(last?.[1] ?? last?.[2] ?? 0);
  };
  await until(() => /is ready after/.test(stderr) || cli.exitCode !== null, 15_000, () => `the service to be ready\n${stderr}`);
  return {
    cli,
    output: () => stderr,
    mainPid,
    reload: async () => void process.kill(await mainPid(), 'SIGHUP'),
    active: async () => cli.exitCode === null && alive(await mainPid()),
    stop: async () => {
      if (cli.exitCode !== null || cli.signalCode !== null) return;
      cli.kill('SIGINT');
      await Promise.race([new Promise((resolve) => cli.once('close', resolve)), sleep(15_000)]);
      if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
    },
    explain: () => `\n--- sd-activate:\n${stderr}${serviceOutput(service)}`,
  };
}

/** The pids the service's processes logged at start, alive now. */
export function serving(service: ServiceDir): number[] {
  const pids = new Set(service.events().filter((e) => e.startsWith('start ')).map((e) => Number(e.split(' ')[1])));
  return [...pids].filter(alive);
}

/** The client ports the processes `pids` reported passed (their 'passed' events, logged by the service). */
export function passedBy(service: ServiceDir, pids: readonly number[]): Set<number> {
  return new Set(
    service
      .events()
      .filter((e) => e.startsWith('passed-') && pids.includes(Number(e.split(' ')[1])))
      .map((e) => Number(e.split(' ')[0]!.split('-')[2])),
  );
}

/** What the tests of one describe() share: its manager, a temp dir, and each test's service and clients. */
export interface ManagedSuite {
  /** The suite's temp dir (from its before() on). */
  readonly dir: string;
  /** Starts `service` under the suite's manager; it is stopped after the test. */
  start(service: ServiceDir, options: ManagedOptions): Promise<Managed>;
  /** Runs `release` after the test, before its service is stopped (closes clients, kills a load). */
  afterTest(release: () => void): void;
}

/**
 * Registers the hooks of a describe() whose tests each start a service under `manager`: a real
 * systemd user manager for the whole suite (none for `sd-activate run`), a temp dir named after
 * `prefix`, and after each test its clients released and its service stopped.
 */
export function managedSuite(manager: 'systemd' | 'run', prefix: string): ManagedSuite {
  let systemd: SystemdManager | undefined;
  let dir: string | undefined;
  let managed: Managed | undefined;
  const releases: Array<() => void> = [];
  before(async function () {
    this.timeout(60_000);
    dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
    if (manager === 'systemd') systemd = await SystemdManager.start();
  });
  afterEach(async function () {
    this.timeout(30_000);
    for (const release of releases.splice(0)) release();
    await managed?.stop();
    managed = undefined;
  });
  after(async function () {
    this.timeout(30_000);
    await systemd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      if (!dir) throw new Error('no temp dir yet (used outside a test?)');
      return dir;
    },
    async start(service, options) {
      managed = manager === 'systemd' ? await underSystemd(systemd!, service, options) : await underRun(service, options);
      return managed;
    },
    afterTest(release) {
      releases.push(release);
    },
  };
}
