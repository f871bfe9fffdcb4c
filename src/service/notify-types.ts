/* The public types of notify(): its options, the fields of a message, and the helpers. */

/**
 * Options every notify call takes.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface NotifyOptions {
  /**
   * Send on behalf of this process (sd_pid_notify(3)): the datagram carries SCM_CREDENTIALS naming
   * it. 0 or `process.pid` is this process, which needs no credentials: the kernel supplies them.
   * Claiming another pid needs CAP_SYS_ADMIN; without it the message is sent again with this
   * process's own credentials, as libsystemd does.
   */
  pid?: number;
  /**
   * Remove NOTIFY_SOCKET from `process.env` once read, whatever the outcome (sd_notify's
   * `unset_environment`), so that child processes do not talk to the service manager by mistake.
   */
  unsetEnvironment?: boolean;
  /**
   * The socket to send to, in NOTIFY_SOCKET's form (an absolute path or `@abstract`), instead of
   * the NOTIFY_SOCKET of `process.env`: for code that captured the variable once and must keep
   * using it after the environment changed (an upgrade's old process, which removed it so that
   * the processes it starts do not inherit it).
   */
  socket?: string;
}

/**
 * Options of {@link notify} itself.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface NotifySendOptions extends NotifyOptions {
  /** fds to pass with SCM_RIGHTS (sd_pid_notify_with_fds(3)); at most 253 (SCM_MAX_FD), or E2BIG. */
  fds?: readonly number[];
}

/**
 * Options of {@link Notify.fdStore}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface FdStoreOptions extends NotifyOptions {
  /**
   * false sends FDPOLL=0: systemd then does not watch the fds for POLLHUP/POLLERR, which would
   * otherwise drop them from the store (needed for fds that are not sockets or pipes; systemd 246+).
   */
  poll?: boolean;
}

/**
 * Options of {@link Notify.reloading}.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface ReloadingOptions extends NotifyOptions {
  /** A STATUS= to send in the same message, as systemd's own notify_reloading_full() does. */
  status?: string;
}

/**
 * `1`, as systemd's boolean fields are written; true and '1' say the same.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export type NotifyFlag = 1 | '1' | true;

/**
 * A value of a field: written in decimal (numbers must be integers), as text, or `1` for true.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export type NotifyValue = string | number | bigint | boolean;

/**
 * The fields of one notify message, by systemd's own names, sent in the object's order as
 * `KEY=VALUE` lines. Fields set to `undefined`, `null` or `false` are left out. Durations are
 * in microseconds here, as on the wire; the helpers on {@link notify} take milliseconds.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#Well-known%20assignments
 */
export interface NotifyFields {
  /** Start-up is finished (Type=notify). */
  READY?: NotifyFlag;
  /** Reloading its configuration; Type=notify-reload (systemd 253+) needs MONOTONIC_USEC with it. */
  RELOADING?: NotifyFlag;
  /** Shutting down. */
  STOPPING?: NotifyFlag;
  /** CLOCK_MONOTONIC in microseconds, when RELOADING=1 was decided. */
  MONOTONIC_USEC?: number | bigint;
  /** One line of UTF-8 shown by `systemctl status`. */
  STATUS?: string;
  /** Changes NotifyAccess= at runtime (systemd 254+). */
  NOTIFYACCESS?: 'none' | 'main' | 'exec' | 'all';
  /** An errno describing the failure: `2` for ENOENT. */
  ERRNO?: number;
  /** A D-Bus error name describing the failure. */
  BUSERROR?: string;
  /** The exit status to report (systemd 254+). */
  EXIT_STATUS?: number | string;
  /** The main pid of the service, when it is not the sender. */
  MAINPID?: number;
  /** `1` pings the watchdog; `'trigger'` fails the service as if it had timed out. */
  WATCHDOG?: NotifyFlag | 'trigger';
  /** Resets WatchdogSec= at runtime, in microseconds. */
  WATCHDOG_USEC?: number | bigint;
  /** Extends the current start, runtime or stop timeout by this many microseconds from now. */
  EXTEND_TIMEOUT_USEC?: number | bigint;
  /** Store the fds sent with this message (FileDescriptorStoreMax= must be above 0). */
  FDSTORE?: NotifyFlag;
  /** Remove the stored fds named by FDNAME. */
  FDSTOREREMOVE?: NotifyFlag;
  /** The name of the fds of FDSTORE=1 or FDSTOREREMOVE=1: printable ASCII, no ':', at most 255 chars. */
  FDNAME?: string;
  /** `0`: do not poll the stored fds for hang-ups. */
  FDPOLL?: 0 | '0';
  /** Synchronization; use {@link Notify.barrier}, which also sends the fd this needs. */
  BARRIER?: NotifyFlag;
  /** Private fields: systemd ignores them, other receivers may not. */
  [key: `X_${string}`]: NotifyValue | null | undefined;
}

/**
 * {@link notify}: a function, plus one helper per field of sd_notify(3).
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */
export interface Notify {
  /**
   * Sends one notify datagram to the service manager, as sd_notify(3) does.
   *
   * @param message - the message as systemd reads it (`'READY=1\nSTATUS=Up'`, sent as-is; NUL is
   *   refused) or a {@link NotifyFields} object, whose values are checked so that no value can add
   *   a field of its own
   * @returns false when NOTIFY_SOCKET is unset (not running under a service manager is not an
   *   error), true once the datagram is sent
   * @throws SystemdError `ERR_SD_NOTIFY_SOCKET_INVALID` when NOTIFY_SOCKET is neither an absolute
   *   path nor an `@abstract` name of at most 107 bytes
   * @throws SystemError (`code`, `errno`, `syscall: 'sendmsg'`, `path`) when the send fails:
   *   ECONNREFUSED or ENOENT when the receiver is gone, E2BIG for more than 253 fds
   * @throws TypeError for a field that cannot be sent as given
   * @see https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
   */
  (message: string | NotifyFields, options?: NotifySendOptions): boolean;
  /** READY=1: start-up is finished. */
  ready(options?: NotifyOptions): boolean;
  /** STATUS=: one line of UTF-8 for `systemctl status`. @throws TypeError for a line break, a NUL or a lone surrogate. */
  status(text: string, options?: NotifyOptions): boolean;
  /** STOPPING=1: shutting down. */
  stopping(options?: NotifyOptions): boolean;
  /**
   * RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC now), as Type=notify-reload (systemd 253+)
   * requires; send {@link Notify.ready} when the reload is done.
   */
  reloading(options?: ReloadingOptions): boolean;
  /** WATCHDOG=1: keeps the service's watchdog from firing. See {@link startWatchdog}. */
  watchdog(options?: NotifyOptions): boolean;
  /** WATCHDOG=trigger: fails the service as if its watchdog had timed out. */
  watchdogTrigger(options?: NotifyOptions): boolean;
  /** WATCHDOG_USEC=: sets the watchdog timeout at runtime. @param ms - milliseconds, sent as microseconds */
  watchdogUsec(ms: number, options?: NotifyOptions): boolean;
  /** MAINPID=: the service's main process, when it is not the sender. */
  mainPid(pid: number, options?: NotifyOptions): boolean;
  /** EXTEND_TIMEOUT_USEC=: asks for `ms` more from now on the current start/runtime/stop timeout. */
  extendTimeout(ms: number, options?: NotifyOptions): boolean;
  /** ERRNO=: why the service failed, as a number (`2`) or a name (`'ENOENT'`). */
  errno(error: number | string, options?: NotifyOptions): boolean;
  /** BUSERROR=: why the service failed, as a D-Bus error name. */
  busError(name: string, options?: NotifyOptions): boolean;
  /**
   * FDSTORE=1 with FDNAME=: keeps `fds` in the service manager across restarts; they come back in
   * LISTEN_FDS with this name. Needs FileDescriptorStoreMax= above 0, or systemd drops them silently.
   * The fds stay open here too: close them when they are no longer needed.
   */
  fdStore(name: string, fds: readonly number[], options?: FdStoreOptions): boolean;
  /** FDSTOREREMOVE=1 with FDNAME=: drops the stored fds of that name. */
  fdStoreRemove(name: string, options?: NotifyOptions): boolean;
  /**
   * BARRIER=1 (sd_notify_barrier(3)): resolves once the service manager has processed every
   * message sent before it. Waits on a pipe in the event loop, never blocking it.
   *
   * @param timeoutMs - how long to wait (default 5000, as `systemd-notify`; Infinity to wait forever)
   * @returns false when NOTIFY_SOCKET is unset, true once the manager answered
   * @throws SystemError `ETIMEDOUT` (rejects) when it did not answer in time
   */
  barrier(timeoutMs?: number, options?: NotifyOptions): Promise<boolean>;
}
