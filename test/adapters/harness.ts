import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnActivated, waitForLine } from '../support/activated-child.js';
import { SocketSet } from '../support/sockets.js';
import { serviceCommand } from '../support/runtime.js';

export const ADAPTER_APP = fileURLToPath(new URL('../fixtures/adapter-app.js', import.meta.url));

export interface AppRun {
  child: ChildProcess;
  /** The `LISTENING` JSON, or undefined when the adapter refused. */
  result?: unknown;
  /** The `ERROR` line's code and message. */
  error?: { code: string; message: string };
}

/** Starts the adapter fixture with `fds` at 3+ named `names` (or not activated when fds is null). */
export async function startApp(
  adapter: string,
  name: string,
  activation: { fds: number[]; names: string[] } | null,
  fallback?: unknown,
  env: Record<string, string | undefined> = {},
): Promise<AppRun> {
  const args = [adapter, name, ...(fallback === undefined ? [] : [JSON.stringify(fallback)])];
  const child = activation
    ? spawnActivated({ fds: activation.fds, names: activation.names, ...serviceCommand(ADAPTER_APP, args), env })
    : spawnActivated({ fds: [], listenPid: 'none', ...serviceCommand(ADAPTER_APP, args), env: { ...env, LISTEN_FDS: undefined } });
  const line = await waitForLine(child, (l) => l.startsWith('LISTENING ') || l.startsWith('ERROR ')).catch(async (error: unknown) => {
    await stop(child);
    throw error;
  });
  if (line.startsWith('LISTENING ')) return { child, result: JSON.parse(line.slice('LISTENING '.length)) };
  const [, code = '', ...rest] = line.split(' ');
  return { child, error: { code, message: rest.join(' ') } };
}

/** Kills the child and waits for it to be gone. */
export function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/**
 * Sockets and adapter apps for one describe(): every app started is killed and every socket
 * closed after each test, passed or failed.
 */
export function withApps(): { sockets: SocketSet; start: typeof startApp } {
  const sockets = new SocketSet();
  let runs: AppRun[] = [];
  afterEach(async () => {
    await Promise.all(runs.map((run) => stop(run.child)));
    runs = [];
    sockets.closeAll();
  });
  const start: typeof startApp = async (...args) => {
    const run = await startApp(...args);
    runs.push(run);
    return run;
  };
  return { sockets, start };
}
