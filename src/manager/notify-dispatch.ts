/*
 * What one notify message does to a service, as systemd's manager_dispatch_notify_fd() and
 * service_notify_message() do it: nothing from a user other than this process's (or root); a
 * barrier answered whoever else sent it; anything else only from a process NotifyAccess= allows;
 * FDSTORE=1/FDSTOREREMOVE=1, MAINPID= (to a running process of the service only),
 * EXTEND_TIMEOUT_USEC=, WATCHDOG_USEC=, READY=1, WATCHDOG=1 and WATCHDOG=trigger acted on; every fd
 * not kept, closed.
 */
import { quote } from '../core/quote.js';
import { native } from '../native/addon.js';
import type { NotifyMessage } from '../shared/notify-receiver.js';
import type { FdStore } from './fd-store.js';
import type { Membership } from './membership.js';
import { isAlive } from './processes.js';
import type { NotifyAccess, SupervisorEvents } from './supervisor-options.js';

/** What a message can act on. */
export interface NotifyTarget {
  /** Whose messages count for which instance (instanceOf()), and which processes are the service's (owns()): MAINPID= may name no other. */
  readonly members: Pick<Membership, 'instanceOf' | 'owns'>;
  readonly store: FdStore;
  readonly notifyAccess: NotifyAccess;
  emit<K extends keyof SupervisorEvents>(event: K, ...args: SupervisorEvents[K]): boolean;
}

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      native().close(fd);
    } catch {
      // already closed
    }
  }
}

/** The sender's uid may steer the service: this process's own (the service runs as it) or root's. */
function trustedSender(uid: number): boolean {
  return uid === 0 || uid === process.getuid?.();
}

/** Acts on one message; its fds end up stored or closed. */
export function dispatchNotify(message: NotifyMessage, target: NotifyTarget): void {
  const fds = [...message.fds];
  const warn = (text: string): void => void target.emit('warning', new Error(text));
  // The socket is out of other users' reach (notify-socket.ts); a message from one all the same
  // (through an fd passed on, a socket connected before a setuid()) is not even read.
  if (!trustedSender(message.uid)) {
    warn(`ignored a notify message from pid ${message.pid} of uid ${message.uid}: only the service's own user (uid ${process.getuid?.()}) and root are heard`);
    closeAll(fds);
    return;
  }
  // A barrier is answered before the sender's unit is looked for, whoever sent it: its fds are
  // closed and nothing else in the message is used (manager_process_barrier_fd() in systemd's
  // manager.c). An old process of an upgrade waits on one after MAINPID= moved away from it.
  const tags = message.text.split('\n');
  if (tags.at(-1) === '') tags.pop();
  if (tags.includes('BARRIER=1')) {
    if (tags.length !== 1) warn(`extra notification messages sent with BARRIER=1, ignoring everything: ${quote(message.text)}`);
    else if (fds.length !== 1) warn(`got ${fds.length} fds with BARRIER=1 (it takes one), closing them`);
    closeAll(fds);
    return;
  }
  const instance = target.members.instanceOf(message.pid);
  if (!instance) {
    warn(`ignored a notify message from pid ${message.pid}, not the service's main process (NotifyAccess=${target.notifyAccess}): ${quote(message.text)}`);
    closeAll(fds);
    return;
  }
  const fields = message.fields;
  if (fields.get('FDSTORE') === '1' && fds.length > 0) target.store.store(fds.splice(0), fields.get('FDNAME'), fields.get('FDPOLL') !== '0');
  if (fields.get('FDSTOREREMOVE') === '1') target.store.remove(fields.get('FDNAME'));
  // Every other fd (BARRIER=1's pipe among them) is closed, as systemd closes what it does not keep.
  closeAll(fds);
  target.emit('notify', { pid: message.pid, message });
  const mainpid = fields.get('MAINPID');
  if (mainpid !== undefined) {
    const to = Number(mainpid);
    if (!/^[1-9]\d*$/.test(mainpid)) {
      warn(`ignored MAINPID=${quote(mainpid)}: not a pid`);
    } else if (to !== instance.mainPid) {
      // As service_is_suitable_main_pid(): a process that runs, not the manager itself, and one of
      // the service's. systemd takes a process outside the cgroup when root asks; this never
      // does, so that nothing outside the service is ever signalled for it.
      if (to === process.pid || !isAlive(to)) {
        warn(`ignored MAINPID=${to}: ${to === process.pid ? 'the manager itself' : 'the new main pid does not exist or is a zombie'}`);
      } else if (!target.members.owns(to)) {
        warn(`ignored MAINPID=${to}: not a process of the service (neither started by it nor in its process groups)`);
      } else {
        const from = instance.mainPid;
        instance.moveMain(to);
        target.emit('mainpid', { from, to });
      }
    }
  }
  const extend = fields.get('EXTEND_TIMEOUT_USEC');
  if (extend !== undefined && /^\d+$/.test(extend)) instance.extendTimeouts(Number(extend) / 1000);
  const watchdogUsec = fields.get('WATCHDOG_USEC');
  if (watchdogUsec !== undefined && /^[1-9]\d*$/.test(watchdogUsec)) {
    instance.watchdogMs = Number(watchdogUsec) / 1000;
    if (instance.ready) instance.armWatchdog();
  }
  if (fields.get('READY') === '1') instance.becomeReady();
  const watchdog = fields.get('WATCHDOG');
  if (watchdog === '1' && instance.ready) instance.armWatchdog();
  if (watchdog === 'trigger') instance.watchdogExpired();
}
