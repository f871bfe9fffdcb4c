/*
 * Which processes are a service's, and whose notify messages count for which of its instances:
 * what systemd learns from a unit's cgroup, learnt here from the process tree (processes.ts
 * belongsTo()). A notify message from another process is ignored, and MAINPID= may name no other,
 * so that a stop never signals a process outside the service.
 */
import type { ServiceInstance } from './instance.js';
import { belongsTo } from './processes.js';
import type { NotifyAccess, SupervisorOptions } from './supervisor-options.js';

/**
 * What a supervisor knows of its processes, read when asked.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#NotifyAccess=
 */
export interface MembershipState {
  /** The instances that run or whose leftovers are being ended. */
  readonly instances: ReadonlySet<ServiceInstance>;
  /** Instances that ended a moment ago: their last messages may still be queued. */
  readonly recent: readonly ServiceInstance[];
  /** The processes started for the service that have not exited. */
  readonly spawned: ReadonlySet<number>;
  /** The main service (Accept=no), if one runs. */
  main(): ServiceInstance | undefined;
  /** NotifyAccess= as it applies. */
  readonly notifyAccess: NotifyAccess;
  /** `accept`, and `subreaper`: a child subreaper that starts nothing but the service, so that what it adopted is the service's. */
  readonly options: Pick<SupervisorOptions, 'accept' | 'subreaper'>;
}

/**
 * The service's processes, as far as a manager without cgroups can tell them.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#NotifyAccess=
 */
export class Membership {
  readonly #state: MembershipState;

  constructor(state: MembershipState) {
    this.#state = state;
  }

  /** The instance whose messages `pid`'s count as, under NotifyAccess=; undefined when none. */
  instanceOf(pid: number): ServiceInstance | undefined {
    const { instances, recent, notifyAccess, options } = this.#state;
    for (const instance of instances) if (instance.mainPid === pid) return instance;
    for (const instance of recent) if (instance.mainPid === pid) return instance;
    if (notifyAccess !== 'all') return undefined;
    // NotifyAccess=all: any process of the instance's, never one outside the service.
    for (const instance of instances) {
      const own = new Set([instance.pid, instance.mainPid]);
      if (!instance.ended && belongsTo(pid, { roots: own, groups: own })) return instance;
    }
    // What the service left behind and this process adopted is the main service's.
    const main = this.#state.main();
    return main && !options.accept && this.owns(pid) ? main : undefined;
  }

  /**
   * Whether `pid` is a process of the service: one started for it, a main process MAINPID= moved
   * to, what descends from them or runs in their process groups, and, for a child subreaper, what
   * it adopted.
   */
  owns(pid: number): boolean {
    const { instances, spawned, options } = this.#state;
    const roots = new Set(spawned);
    const groups = new Set(spawned);
    for (const instance of instances) {
      groups.add(instance.pid);
      if (instance.ended) continue;
      roots.add(instance.mainPid);
      groups.add(instance.mainPid);
    }
    if (options.subreaper) roots.add(process.pid);
    return belongsTo(pid, { roots, groups });
  }
}
