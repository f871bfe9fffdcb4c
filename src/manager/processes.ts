/*
 * The process table as a manager without cgroups sees it: this process's children, whether a pid
 * or a process group still runs, which processes belong to a service, and signals to the groups a
 * service left behind.
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

/** What /proc/PID/stat says of a process that concerns a manager. */
interface ProcStat {
  /** R, S, T, Z, ... */
  state: string;
  ppid: number;
  pgid: number;
  /** Clock ticks after boot: with the pid, what tells this process from a later one with its pid. */
  startTime: string;
}

function procStat(pid: number): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The fields follow the command name in parentheses, which may itself hold spaces or ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', ppid: Number(fields[1]), pgid: Number(fields[2]), startTime: fields[19] ?? '' };
}


/**
 * When `pid` started (undefined when there is no such process): compared later, it tells whether a pid was reused.
 *
 * @see https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
 */
export function startTimeOf(pid: number): string | undefined {
  return procStat(pid)?.startTime;
}

/**
 * Whether `pid` belongs to a service, as far as a manager without cgroups can tell: it is one of
 * `roots` or descends from one (the processes started for the service and its main processes;
 * this process too when it is a child subreaper, which adopts what the service leaves behind), or
 * it is in one of the process `groups` the service's processes lead. systemd asks the unit's
 * cgroup instead.
 *
 * @see https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
 */
export function belongsTo(pid: number, service: { roots: ReadonlySet<number>; groups: ReadonlySet<number> }): boolean {
  let current = pid;
  // A chain longer than this is no process tree a service makes.
  for (let depth = 0; depth < 4096 && current > 1; depth++) {
    if (service.roots.has(current)) return true;
    const stat = procStat(current);
    if (!stat) return false;
    if (service.groups.has(stat.pgid)) return true;
    current = stat.ppid;
  }
  return false;
}

/**
 * Ends what is left of process groups: SIGTERM (and SIGCONT after it, as systemd's cgroup kill
 * sends, so that a stopped process gets it), then SIGKILL if any still runs after `graceMs`.
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
  signalGroups(pgids, 'SIGCONT');
  if (await gone(graceMs)) return false;
  send('SIGKILL');
  await gone(5000);
  return true;
}

/** The process group of `pid`, from /proc; undefined when it is gone. */
export function pgidOf(pid: number): number | undefined {
  const pgid = procStat(pid)?.pgid;
  return pgid !== undefined && Number.isInteger(pgid) && pgid > 0 ? pgid : undefined;
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

/**
 * The process groups of what is left of a service whose main process ended: those of every
 * process below this one (`wholeTree`: a subreaper running one service at a time, which adopts
 * what it leaves behind, an upgrade's new process among them), or those of the tree of the process
 * started and of the main process. Never this process's own group; only groups still there.
 */
export function leftoverGroups(pid: number, mainPid: number, wholeTree: boolean): number[] {
  const tree = wholeTree ? descendants(process.pid) : [pid, mainPid, ...descendants(pid), ...descendants(mainPid)];
  const own = pgidOf(process.pid);
  return [...new Set([pid, ...tree.map(pgidOf)])].filter((g): g is number => g !== undefined && g > 0 && g !== own && groupAlive(g));
}
