/*
 * Fault injection for tests of the upgrade: with SD_ACTIVATE_FAULT=<phase> in its environment, a
 * process kills itself (SIGKILL) when it reaches that phase of an upgrade, as a crash or an OOM
 * kill would, at the worst moment. The phases, in order:
 *
 *   old:launched   the old process started the new one          new:started    upgrader() runs in the new process
 *   old:ready      the new one's READY=1 came                    new:ready      READY=1 is sent to the old process
 *   old:handing    the first batch of connections is sent        new:holding    a batch came, `held` is not sent yet
 *                  to the new process, not held yet             new:held       `held` is sent, the release not come yet
 *                                                                new:adopted    the first connections released are adopted,
 *                                                                               `adopted` not sent yet
 *   old:handed     what was ready is handed over (MAINPID= next)
 *   old:mainpid    MAINPID=<new> was sent to the manager         new:confirmed  the old process said: you are the main process
 *   old:barrier    the manager processed it (BARRIER=1)          new:acked      ACK=1 is sent back
 *   old:confirmed  the new process was told
 *   old:acked      the new process answered; the old one drains, handing over what becomes ready
 *
 * The connection hand-over's phases (handing .. adopted, connection-handover.ts) come once per
 * upgrade that hands connections over, the first time each is reached. In a pool's upgrade
 * (pool-handover.ts) the workers hand connections over: old:handing is reached in an old worker,
 * new:holding .. new:adopted in a new worker, and the new primary has two phases of its own:
 *
 *                                                                new:forwarding an old worker's hand-over socket came,
 *                                                                               not given to a worker yet
 *                                                                new:forwarded  the first one is given to a worker
 * Read once, by the lazily loaded upgrade code: a service that never upgrades never reads it.
 */

const FAULT = process.env.SD_ACTIVATE_FAULT;

/** The phases a fault can be injected at. */
export type FaultPhase =
  | 'old:launched'
  | 'old:ready'
  | 'old:handing'
  | 'old:handed'
  | 'old:mainpid'
  | 'old:barrier'
  | 'old:confirmed'
  | 'old:acked'
  | 'new:started'
  | 'new:ready'
  | 'new:holding'
  | 'new:held'
  | 'new:adopted'
  | 'new:forwarding'
  | 'new:forwarded'
  | 'new:confirmed'
  | 'new:acked';

/** Dies here when SD_ACTIVATE_FAULT names this phase. */
export function faultPoint(phase: FaultPhase): void {
  if (FAULT === phase) process.kill(process.pid, 'SIGKILL');
}
