import type { LongLivedClient } from './long-lived.js';
import type { ServiceDir } from './upgrade-harness.js';

/*
 * The workers of the upgrade service's pools (test/fixtures/upgrade-service.ts with `workers`):
 * each generation of the pool runs one version, and each worker logs `ready PID VERSION worker`.
 */

/** The pids of the workers of `version` that got ready. */
export function poolOf(service: ServiceDir, version: string): number[] {
  return service
    .events()
    .filter((e) => e.startsWith('ready ') && e.endsWith(` ${version} worker`))
    .map((e) => Number(e.split(' ')[1]));
}

/** Whether every client has had an answer from a worker of `version`'s pool. */
export function answeredByPool(clients: readonly LongLivedClient[], service: ServiceDir, version: string): boolean {
  const workers = new Set(poolOf(service, version));
  return clients.every((c) => c.answers.some((a) => a.version === version && workers.has(a.pid)));
}
