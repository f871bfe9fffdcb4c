/*
 * The new process's side of an upgrade's switch (see upgrader-process.ts): READY=1 to the old
 * process, then it waits to be told it is the main process, and answers. It never gives up
 * because the old process is gone: if the old one died after the manager took MAINPID=, this one
 * is the main process; if before, the manager saw its main process die and will stop this one as
 * what is left of it. Only an explicit ROLLBACK=1 (or no word at all from an old process that
 * still runs) ends it.
 */
import type { Internals } from './internals.js';
import { faultPoint } from './fault.js';
import { ChannelReader } from './upgrade-channel.js';
import type { UpgraderProcess } from './upgrader-process.js';

/** How long a new process waits for the old one to confirm the switch after its READY=1. */
const CONFIRM_TIMEOUT_MS = 30_000;

/**
 * Runs the new process's side of the switch on the channel `fd`.
 *
 * @throws SystemdError `ERR_SD_UPGRADE_FAILED` when the old process rolled back (this process has stopped then)
 */
export async function takeOver(up: UpgraderProcess, core: Internals, fd: number, status: string | undefined, receiving: boolean): Promise<void> {
  const { Socket } = process.getBuiltinModule('node:net');
  const socket = new Socket({ fd, readable: true, writable: true });
  socket.on('error', () => undefined);
  const channel = new ChannelReader(socket);
  faultPoint('new:started');
  // HANDOVER=1: this process takes connections on the hand-over socket (handover-receiver.ts).
  const ready = { READY: 1, PID: process.pid, ...(receiving ? { HANDOVER: 1 } : {}) };
  await channel.send(status === undefined ? ready : { ...ready, STATUS: status });
  faultPoint('new:ready');
  const reply = await channel.next(CONFIRM_TIMEOUT_MS);
  if (reply instanceof Map && reply.get('MAINPID') === String(process.pid)) {
    faultPoint('new:confirmed');
    await channel.send({ ACK: 1 });
    faultPoint('new:acked');
    up.becameMain();
    void forwarded(up, channel);
    return;
  }
  if (reply === null) {
    up.emit('warning', new Error(`the process that started this one for an upgrade (pid ${up.previousPid}) is gone before the switch was confirmed; serving on`));
    up.becameMain();
    return;
  }
  channel.destroy();
  const error = new core.SystemdError(
    'ERR_SD_UPGRADE_FAILED',
    reply === 'timeout'
      ? `the process that started this one for an upgrade (pid ${up.previousPid}) did not confirm the switch within ${CONFIRM_TIMEOUT_MS} ms`
      : `the process that started this one for an upgrade (pid ${up.previousPid}) rolled back`,
  );
  await up.rolledBack();
  throw error;
}

/** What the old process passes on after the switch (an upgrade asked for meanwhile), until it is gone. */
async function forwarded(up: UpgraderProcess, channel: ChannelReader): Promise<void> {
  channel.unref();
  for (;;) {
    const message = await channel.next();
    if (!(message instanceof Map)) break;
    if (message.get('UPGRADE') === '1') void up.upgrade();
  }
  channel.destroy();
}
