import { spawn, type ChildProcess } from 'node:child_process';

/** How to start a child the way a service manager would, with fds at 3, 4, ... */
export interface ActivatedChildOptions {
  /** fds of this process to pass, in order; the child sees them at 3, 4, ... */
  fds: readonly number[];
  /** LISTEN_FDNAMES as a list (joined with ':'); omitted: LISTEN_FDNAMES is not set. */
  names?: readonly string[];
  /** Extra environment, or overrides of LISTEN_FDS/LISTEN_FDNAMES (undefined removes a variable). */
  env?: Record<string, string | undefined>;
  /** 'self' (default): LISTEN_PID is the child's own pid; 'none': unset; any other string: used as-is. */
  listenPid?: 'self' | 'none' | string;
  command: string;
  args?: readonly string[];
}

/**
 * Spawns `command` with the fds at 3+ and LISTEN_PID set to the child's own pid. Node has no
 * fork, so `sh -c 'LISTEN_PID=$$ exec ...'` gives the child its pid before exec keeps it.
 */
export function spawnActivated(options: ActivatedChildOptions): ChildProcess {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const key of ['LISTEN_PID', 'LISTEN_PIDFDID', 'LISTEN_FDS', 'LISTEN_FDNAMES', 'NOTIFY_SOCKET']) delete env[key];
  env.LISTEN_FDS = String(options.fds.length);
  if (options.names) env.LISTEN_FDNAMES = options.names.join(':');
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const pid = options.listenPid ?? 'self';
  const script =
    pid === 'self' ? 'LISTEN_PID=$$ exec "$0" "$@"' : pid === 'none' ? 'unset LISTEN_PID; exec "$0" "$@"' : `LISTEN_PID='${pid}' exec "$0" "$@"`;
  return spawn('sh', ['-c', script, options.command, ...(options.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe', ...options.fds],
    env: env as NodeJS.ProcessEnv,
  });
}

/** Resolves with everything the child wrote and its exit code, once it exits. */
export function outputOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Resolves with the first stdout line that satisfies `match` (rejects if the child exits first). */
export function waitForLine(child: ChildProcess, match: (line: string) => boolean, timeoutMs = 10000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    let stderr = '';
    const timer = setTimeout(() => done(new Error(`no matching line within ${timeoutMs} ms; stdout so far: ${buffer}; stderr: ${stderr}`)), timeoutMs);
    const onData = (d: Buffer): void => {
      buffer += d.toString('utf8');
      for (const line of buffer.split('\n').slice(0, -1)) if (match(line)) return done(null, line);
    };
    const onErr = (d: Buffer): void => {
      stderr += d.toString('utf8');
    };
    const onExit = (code: number | null): void => done(new Error(`child exited (${code}) before a matching line; stdout: ${buffer}; stderr: ${stderr}`));
    function done(error: Error | null, line?: string): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(line!);
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.on('exit', onExit);
  });
}
