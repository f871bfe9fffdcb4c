/*
 * `sdBooted` (`--sd-booted`): sd_booted() true in the service where PID 1 is not systemd (a
 * container, CI). sd_booted() tests whether /run/systemd/system exists, and some daemons (unbound)
 * take LISTEN_FDS only when it does, binding the address themselves otherwise. The service then
 * runs in a mount namespace of its own with a tmpfs over /run/systemd that holds an empty system/:
 * the host's /run/systemd is left as it was (only the mount point is made, when missing). unshare(1)
 * and mount(8), from util-linux, do it between the shell that sets LISTEN_PID and the service: each
 * execs the next, so the pid the variables name stays the service's.
 */
import { existsSync } from 'node:fs';
import { SystemdError } from '../core/errors.js';
import { resolveCommand } from './service-process.js';

/** What sd_booted() looks for. */
const BOOTED_FLAG = '/run/systemd/system';

/**
 * The exit status when the namespace cannot be set up: systemd's EXIT_NAMESPACE.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#Process%20Exit%20Codes
 */
export const EXIT_NAMESPACE = 226;

/**
 * Run by sh in the new mount namespace, before it execs the service ($0 "$@"). The mount stays in
 * that namespace: unshare(1) makes every mount private to it first (--propagation private).
 */
const SCRIPT = [
  `mkdir -p /run/systemd && mount -t tmpfs -o mode=0755,nosuid,nodev sd-activate /run/systemd && mkdir ${BOOTED_FLAG} ||`,
  `{ echo "sd-activate: --sd-booted: cannot mount a tmpfs over /run/systemd in the service's mount namespace" >&2; exit ${EXIT_NAMESPACE}; }`,
  'exec "$0" "$@"',
].join('\n');

/**
 * Whether sd_booted() is true here already: the namespace is not needed then.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_booted.html
 */
export function hostIsBooted(): boolean {
  return existsSync(BOOTED_FLAG);
}

/**
 * Why `sdBooted` cannot be done by this process, or undefined when it can: a mount namespace
 * needs root (CAP_SYS_ADMIN).
 *
 * @see https://man7.org/linux/man-pages/man1/unshare.1.html
 */
export function sdBootedRefusal(): string | undefined {
  if (hostIsBooted()) return undefined;
  if (process.getuid?.() !== 0) return `needs root: it mounts a tmpfs over /run/systemd in a mount namespace of the service's own (this process runs as uid ${process.getuid?.()})`;
  return undefined;
}

/**
 * The command line that runs `command` with `args` in a mount namespace where sd_booted() is true.
 *
 * @throws SystemdError `ERR_SD_COMMAND_NOT_FOUND` when unshare(1) is not on `path`
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_booted.html
 */
export function sdBootedCommand(command: string, args: readonly string[], path: string | undefined): { command: string; args: string[] } {
  let unshare: string;
  try {
    unshare = resolveCommand('unshare', path);
  } catch (cause) {
    throw new SystemdError('ERR_SD_COMMAND_NOT_FOUND', `sd_booted() in the service needs unshare(1) (util-linux), which is not on PATH`, { cause });
  }
  return { command: unshare, args: ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', SCRIPT, command, ...args] };
}
