/*
 * Fault injection for tests of the upgrade: with SD_ACTIVATE_FAULT=<phase> in its environment, a
 * process kills itself (SIGKILL) when it reaches that phase of an upgrade, as a crash or an OOM
 * kill would, at the worst moment. The phases, in order:
 *
 *   old:launched   the old process started the new one          new:started    upgrader() runs in the new process
 *   old:ready      the new one's READY=1 came                    new:ready      READY=1 is sent to the old process
 *   old:mainpid    MAINPID=<new> was sent to the manager         new:confirmed  the old process said: you are the main process
 *   old:barrier    the manager processed it (BARRIER=1)          new:acked      ACK=1 is sent back
 *   old:confirmed  the new process was told
 *   old:acked      the new process answered; the old one drains
 *
 * Read once, by the lazily loaded upgrade code: a service that never upgrades never reads it.
 */

const FAULT = process.env.SD_ACTIVATE_FAULT;

/** The phases a fault can be injected at. */
export type FaultPhase =
  | 'old:launched'
  | 'old:ready'
  | 'old:mainpid'
  | 'old:barrier'
  | 'old:confirmed'
  | 'old:acked'
  | 'new:started'
  | 'new:ready'
  | 'new:confirmed'
  | 'new:acked';

/** Dies here when SD_ACTIVATE_FAULT names this phase. */
export function faultPoint(phase: FaultPhase): void {
  if (FAULT === phase) process.kill(process.pid, 'SIGKILL');
}
