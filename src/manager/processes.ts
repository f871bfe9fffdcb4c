/*
 * The process table as a manager without cgroups sees it: this process's children, whether a pid
 * or a process group still runs, and signals to the groups a service left behind.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';

export { isAlive } from '../shared/process-state.js';

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

/** The process group of `pid`, from /proc; undefined when it is gone. */
export function pgidOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid pgrp ...: the fields after the command name, which may hold ')'.
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    return Number.isInteger(pgrp) && pgrp > 0 ? pgrp : undefined;
  } catch {
    return undefined;
  }
}

/** Every descendant of `pid` (its children, theirs, ...), from /proc's children lists. */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      let children: string;
      try {
        children = readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const child of children.split(' ')) {
        if (child === '' || found.includes(Number(child))) continue;
        found.push(Number(child));
        queue.push(Number(child));
      }
    }
  }
  return found;
}
