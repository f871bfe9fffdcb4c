/*
 * A main process that is not the process started: MAINPID= moved the service to it (the new
 * process of an upgrade). systemd's manager is a child subreaper (PR_SET_CHILD_SUBREAPER), so such
 * a process becomes its child when its parent exits, and its exit status is known. With
 * `subreaper`, so is it here; without, its end is only seen, its status unknown.
 */
import { native, type NativeBinding } from '../native/addon.js';
import type { ServiceInstance } from './instance.js';
import { childPids, isAlive, signalName } from './processes.js';

/** How a main process ended, for its instance. */
export type MainExitHandler = (instance: ServiceInstance, code: number | null, signal: NodeJS.Signals | null) => void;

/** Adopts, reaps and follows the main processes of a supervisor's instances. */
export class Subreaper {
  /** The processes child_process started and waits for: never reaped here (it would wait for ever). */
  readonly spawned = new Set<number>();
  readonly #enabled: boolean;
  readonly #ended: MainExitHandler;
  readonly #warn: (error: Error) => void;
  #instances: () => Iterable<ServiceInstance> = () => [];
  readonly #onSigchld = (): void => this.reap();

  constructor(enabled: boolean, ended: MainExitHandler, warn: (error: Error) => void) {
    this.#enabled = enabled;
    this.#ended = ended;
    this.#warn = warn;
  }

  /** Becomes a child subreaper (when enabled) and reaps on SIGCHLD from now on. */
  enable(instances: () => Iterable<ServiceInstance>): void {
    this.#instances = instances;
    if (!this.#enabled) return;
    native().setChildSubreaper(true);
    process.on('SIGCHLD', this.#onSigchld);
  }

  /** Stops being a subreaper: whatever is left is adopted by init from now on. Never throws. */
  disable(): void {
    if (!this.#enabled) return;
    process.off('SIGCHLD', this.#onSigchld);
    try {
      native().setChildSubreaper(false);
      this.reap();
    } catch {
      // The addon did not load: nothing was set.
    }
  }

  /**
   * The process started has exited and MAINPID= named another: end the instance when that one
   * ends. Adopted (a child now, as a subreaper), it is reaped with its own exit status; otherwise
   * it is followed until it is gone, its status unknown and taken as success.
   */
  mainOutlived(instance: ServiceInstance, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#enabled && this.#adopt(instance)) return;
    else if (isAlive(instance.mainPid)) this.#follow(instance);
    else this.#ended(instance, code, signal);
  }

  /** Whether the main process is a child now; reaped at once if it has exited already. */
  #adopt(instance: ServiceInstance): boolean {
    let status: ReturnType<NativeBinding['reapChild']>;
    try {
      status = native().reapChild(instance.mainPid);
    } catch {
      return false; // ECHILD: not a child, nor a descendant of one
    }
    // Still running: reap() ends the instance when it exits.
    if (status) this.#ended(instance, status.code, signalName(status.signal));
    return true;
  }

  /** Sees a main process that is not a child end, without its status. */
  #follow(instance: ServiceInstance): void {
    const timer = setInterval(() => {
      if (isAlive(instance.mainPid)) return;
      clearInterval(timer);
      this.#warn(new Error(`main pid ${instance.mainPid} is gone; its exit status is unknown (not a child of sd-activate)`));
      this.#ended(instance, 0, null);
    }, 50);
  }

  /**
   * Reaps every adopted child that has exited (never one that child_process waits for), as
   * systemd reaps what a service leaves behind; an adopted main process's exit ends its instance.
   */
  reap(): void {
    const instances = [...this.#instances()];
    const candidates = new Set(childPids());
    for (const instance of instances) if (instance.mainPid !== instance.pid) candidates.add(instance.mainPid);
    for (const pid of candidates) {
      if (this.spawned.has(pid)) continue;
      let status: ReturnType<NativeBinding['reapChild']>;
      try {
        status = native().reapChild(pid);
      } catch {
        continue; // not (or no longer) a child
      }
      if (!status) continue;
      const instance = instances.find((i) => i.mainPid === pid && i.pid !== pid);
      if (!instance) continue;
      // The main process is gone: the service has ended, as for systemd, whatever else of it
      // still runs (the process first started, when MAINPID= moved away from it, is a leftover).
      this.#ended(instance, status.code, signalName(status.signal));
    }
  }
}
