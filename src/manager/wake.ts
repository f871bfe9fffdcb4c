/*
 * A sleep that something else can cut short: how the supervisor's loops wait for RestartSec=, for
 * an instance to end, or for ever, and are woken by a stop, a restart or a change.
 */

/** One sleeper at a time; wake() ends its sleep at once. */
export class Wakeable {
  #wake: (() => void) | undefined;

  /** Resolves after `ms` (Infinity: only when woken), or as soon as {@link wake} is called. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        if (timer) clearTimeout(timer);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      this.#wake = done;
    });
  }

  /** Ends the current sleep, if any. */
  wake(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
