/*
 * The process table as a manager without cgroups sees it: this process's children, whether a pid
 * or a process group still runs, and signals to the groups a service left behind.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';

/** The pids of this process's children, from every thread's /proc children list (empty if the kernel has none). */
export function childPids(): number[] {
  const pids: number[] = [];
  try {
    for (const task of readdirSync('/proc/self/task')) {
      try {
        for (const pid of readFileSync(`/proc/self/task/${task}/children`, 'utf8').split(' ')) if (pid !== '') pids.push(Number(pid));
      } catch {
        // The thread is gone.
      }
    }
  } catch {
    // No /proc: only the awaited main processes are reaped.
  }
  return pids;
}

/** A signal's name from its number, as waitid(2) reports it. */
export function signalName(signal: number | null): NodeJS.Signals | null {
  if (signal === null) return null;
  for (const [name, number] of Object.entries(osConstants.signals)) if (number === signal) return name as NodeJS.Signals;
  return null;
}

/** Whether a process of group `pgid` is left (a zombie counts until it is reaped, which is soon). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends `signal` to each process group (what a service left running); a group that is gone is skipped. */
export function signalGroups(pgids: Iterable<number>, signal: NodeJS.Signals): void {
  for (const pgid of pgids) {
    try {
      process.kill(-pgid, signal);
    } catch {
      // gone meanwhile
    }
  }
}

/** Whether `pid` runs. A zombie does not: nobody may reap a process that is not our child soon. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // The state follows the command name in parentheses, which may itself hold spaces or ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Ends what is left of process groups: SIGTERM, then SIGKILL if any still runs after `graceMs`.
 * Resolves once they are gone (or 5 s after the SIGKILL): true when SIGKILL was needed.
 * `announce` hears each signal before it is sent.
 */
export async function endGroups(pgids: readonly number[], graceMs: number, announce: (signal: NodeJS.Signals) => void): Promise<boolean> {
  const send = (signal: NodeJS.Signals): void => {
    announce(signal);
    signalGroups(pgids, signal);
  };
  const gone = async (ms: number): Promise<boolean> => {
    const deadline = performance.now() + ms;
    for (;;) {
      if (!pgids.some(groupAlive)) return true;
      if (performance.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  send('SIGTERM');
  if (await gone(graceMs)) return false;
  send('SIGKILL');
  await gone(5000);
  return true;
}
