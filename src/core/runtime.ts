/*
 * What Bun and Deno cannot do of what sd-activate does on Node, checked where it is needed (never
 * at start-up: a Node service pays nothing for it). Each refusal says what does not work, why, and
 * what to do; the README's runtime table lists them.
 */
import { SystemdError } from './errors.js';

/**
 * On Bun, an error for `what`, which cannot work there because of `why`; undefined elsewhere.
 *
 * @internal
 */
export function unsupportedOnBun(what: string, why: string): SystemdError | undefined {
  const bun = process.versions.bun;
  if (bun === undefined) return undefined;
  return new SystemdError('ERR_SD_UNSUPPORTED_RUNTIME', `${what} does not work on Bun (${bun}): ${why}`);
}

/**
 * On Deno, an error for `what`, which does not work there because of `why`; undefined elsewhere.
 *
 * @internal
 */
export function unsupportedOnDeno(what: string, why: string): SystemdError | undefined {
  const deno = process.versions.deno;
  if (deno === undefined) return undefined;
  return new SystemdError('ERR_SD_UNSUPPORTED_RUNTIME', `${what} does not work on Deno (${deno}): ${why}`);
}

interface DenoPermissions {
  querySync(descriptor: { name: string }): { state: string };
}

/** Deno's permissions, each of which `-A` grants. */
const DENO_PERMISSIONS = ['read', 'write', 'net', 'env', 'sys', 'run', 'ffi'];

/**
 * The arguments that start this program again, for an upgrade or a worker: the runtime's options,
 * then the script and its arguments. Deno reports no options (`process.execArgv` is empty), and
 * `deno script.js` alone runs without any permission: there, `run -A script.js ...` when this
 * process has every permission too, else an error saying to give the arguments.
 *
 * @throws SystemdError `ERR_SD_UNSUPPORTED_RUNTIME` on Deno without every permission
 * @internal
 */
export function ownArguments(what: string): string[] {
  const rest = process.argv.slice(1);
  if (process.versions.deno === undefined) return [...process.execArgv, ...rest];
  const permissions = (globalThis as { Deno?: { permissions?: DenoPermissions } }).Deno?.permissions;
  const missing = DENO_PERMISSIONS.filter((name) => {
    try {
      return permissions?.querySync({ name }).state !== 'granted';
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return ['run', '-A', ...rest];
  throw new SystemdError(
    'ERR_SD_UNSUPPORTED_RUNTIME',
    `${what}: Deno does not tell the permissions this process was started with, and it lacks some of -A (${missing.join(', ')}): ` +
      `give the command line yourself, as { command: process.execPath, args: ['run', '--allow-...', script, ...] }`,
  );
}
