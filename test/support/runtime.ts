/**
 * The runtime the service side of a test runs on. The test process itself is always Node (it
 * plays the service manager, with sd-activate/testing's receivers); the programs it starts as
 * services run on Node by default, or on Deno or Bun when `npm run test:runtimes` sets
 * SD_ACTIVATE_TEST_RUNTIME (and SD_ACTIVATE_TEST_RUNTIME_PATH, the binary from its npm package).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export type Runtime = 'node' | 'deno' | 'bun';

function pick(): Runtime {
  const name = process.env.SD_ACTIVATE_TEST_RUNTIME ?? 'node';
  if (name !== 'node' && name !== 'deno' && name !== 'bun') throw new Error(`SD_ACTIVATE_TEST_RUNTIME must be node, deno or bun, not ${name}`);
  return name;
}

let servicesStarted = 0;

/** How many services this process has started so far (runtime-hooks.ts tells each test's share). */
export function startedServices(): number {
  return servicesStarted;
}

/** The runtime of the services this test run starts. */
export const RUNTIME: Runtime = pick();

/** Its binary: this Node, or the one the runtime script names. */
export const RUNTIME_BINARY = RUNTIME === 'node' ? process.execPath : (process.env.SD_ACTIVATE_TEST_RUNTIME_PATH ?? RUNTIME);

/**
 * The command line that runs `script` with `args` as a service on the runtime. Deno is given
 * every permission (`-A`): sd-activate needs --allow-env, --allow-read and --allow-ffi (the
 * addon), and the fixtures listen, spawn and write files too.
 */
export function serviceCommand(script: string, args: readonly string[] = []): { command: string; args: string[] } {
  servicesStarted++;
  if (RUNTIME === 'deno') return { command: RUNTIME_BINARY, args: ['run', '-A', script, ...args] };
  return { command: RUNTIME_BINARY, args: [script, ...args] };
}

/** The command line that evaluates `code` (an ES module body) on the runtime. */
export function evalCommand(code: string): { command: string; args: string[] } {
  servicesStarted++;
  if (RUNTIME === 'deno') return { command: RUNTIME_BINARY, args: ['eval', code] };
  return { command: RUNTIME_BINARY, args: ['-e', code] };
}

/** spawn() of `script` as a service on the runtime. */
export function spawnService(script: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const { command, args: all } = serviceCommand(script, args);
  return spawn(command, all, options);
}
