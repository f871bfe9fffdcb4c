import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { httpGet } from './network.js';
import { SystemdManager } from './systemd-manager.js';

/*
 * What the tests of the warnings and of `sd-activate doctor` share: a systemd user manager and a
 * temp dir for one describe(), and the probe service both start in their units.
 */

/** test/fixtures/warnings-probe.ts, built. */
export const PROBE = fileURLToPath(new URL('../fixtures/warnings-probe.js', import.meta.url));

/** The body of GET / on 127.0.0.1:`port`. */
export async function bodyAt(port: number): Promise<string> {
  return (await httpGet({ host: '127.0.0.1', port }, '/')).body;
}

/** A manager started before the suite's tests and stopped after them, with a temp dir removed then. */
export function useSystemdManager(): { readonly manager: SystemdManager; readonly dir: string } {
  let manager: SystemdManager | undefined;
  let dir: string | undefined;
  before(async function () {
    expect(existsSync(PROBE), `${PROBE} must be built`).to.equal(true);
    dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    manager = await SystemdManager.start();
  });
  after(async function () {
    await manager?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get manager() {
      if (!manager) throw new Error('the manager is not started (used outside a test?)');
      return manager;
    },
    get dir() {
      if (!dir) throw new Error('no temp dir yet (used outside a test?)');
      return dir;
    },
  };
}
