/*
 * The names of the environment variables the library reads and sets: constants only, no imports
 * and no state, so that the lazily loaded upgrade and worker-pool files may carry a copy of their
 * own (scripts/bundle.mjs allows this module, and no other, in both them and the index).
 */

/** The environment variables of the socket activation protocol, removed together. */
export const LISTEN_VARIABLES = ['LISTEN_PID', 'LISTEN_PIDFDID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

/**
 * Everything a service manager sets for one process (socket activation, notify, watchdog): a
 * process that starts another must not pass these on, or the child takes them for its own.
 */
export const MANAGER_VARIABLES = [...LISTEN_VARIABLES, 'NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

/** The variable naming the channel's fd in a process started by an upgrade. @internal */
export const UPGRADE_FD_VARIABLE = 'SD_ACTIVATE_UPGRADE_FD';
/** The pid the channel is meant for (and the hand-over channel too). @internal */
export const UPGRADE_PID_VARIABLE = 'SD_ACTIVATE_UPGRADE_PID';
/** The variable naming the connection hand-over channel's fd (a seqpacket socket) in a process started by an upgrade. @internal */
export const HANDOVER_FD_VARIABLE = 'SD_ACTIVATE_HANDOVER_FD';
/** The pid of the process that started this one for an upgrade (not its parent: the manager adopts it). @internal */
export const UPGRADE_FROM_VARIABLE = 'SD_ACTIVATE_UPGRADE_FROM';
/** The variable naming, in a worker of a pool, the fd whose end of file says the primary is gone. @internal */
export const LIFELINE_FD_VARIABLE = 'SD_ACTIVATE_WORKER_FD';
/** The pid the lifeline is meant for. @internal */
export const LIFELINE_PID_VARIABLE = 'SD_ACTIVATE_WORKER_PID';
/** Set by workerPool() in each worker: its index. @internal */
export const WORKER_VARIABLE = 'SD_ACTIVATE_WORKER';
/** The variable naming, in a worker of a pool, its seqpacket channel to the primary, for the connection hand-over of an upgrade (meant for the lifeline's pid). @internal */
export const POOL_FD_VARIABLE = 'SD_ACTIVATE_POOL_FD';
/** Set to 1 in a worker started while its pool's primary is being handed connections by an upgrade: connections come to it too. @internal */
export const POOL_HANDOVER_VARIABLE = 'SD_ACTIVATE_POOL_HANDOVER';

/**
 * The library's own variables between a process and the processes it starts: never inherited by
 * a process started as activated, which gets its own or none.
 */
export const PRIVATE_VARIABLES = [UPGRADE_FD_VARIABLE, UPGRADE_PID_VARIABLE, HANDOVER_FD_VARIABLE, UPGRADE_FROM_VARIABLE, LIFELINE_FD_VARIABLE, LIFELINE_PID_VARIABLE, WORKER_VARIABLE, POOL_FD_VARIABLE, POOL_HANDOVER_VARIABLE] as const;
