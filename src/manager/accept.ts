/*
 * Accept=yes: the manager accepts each connection itself and starts one service instance for it,
 * with the connection at fd 3 named "connection", at most MaxConnections= at once.
 */
import { native } from '../native/addon.js';
import type { ServiceInstance } from './instance.js';
import { acceptConnection } from './readiness.js';
import type { SupervisorEvents } from './supervisor-options.js';

/** What the accept loop needs of its supervisor. */
export interface AcceptHost {
  /** True once the supervisor is stopping: the loop ends. */
  readonly stopping: boolean;
  /** How many instances run now. */
  running(): number;
  /** Waits until woken (an instance ended, a stop). */
  sleepUntilWoken(): Promise<void>;
  /** The listening fds that are readable, or [] when woken for another reason. */
  readable(fds: readonly number[]): Promise<number[]>;
  /** Starts an instance for an accepted connection; the caller closes its own copy of the fd afterwards. */
  startFor(connection: number): ServiceInstance;
  /** Wakes the loop's sleep. */
  wakeUp(): void;
  emit<K extends keyof SupervisorEvents>(event: K, ...args: SupervisorEvents[K]): boolean;
}

/** Accepts on `fds` until the supervisor stops, one instance per connection. */
export async function acceptLoop(fds: readonly number[], maxConnections: number, host: AcceptHost): Promise<void> {
  let announced = false;
  for (;;) {
    if (host.stopping) return;
    if (host.running() >= maxConnections) {
      // Connections past MaxConnections= wait in the backlog until an instance ends.
      await host.sleepUntilWoken();
      continue;
    }
    if (!announced) host.emit('waiting');
    announced = true;
    for (const fd of await host.readable(fds)) {
      if (host.stopping) return;
      let connection: number;
      try {
        connection = acceptConnection(fd);
      } catch (error) {
        host.emit('warning', new Error(`accept on fd ${fd}: ${(error as Error).message}`, { cause: error }));
        continue;
      }
      try {
        void host.startFor(connection).exited.then(() => host.wakeUp());
      } finally {
        // The service has its own copy at fd 3 now.
        native().close(connection);
      }
    }
  }
}
