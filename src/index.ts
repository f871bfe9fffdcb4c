export {
  ListenFd,
  isActivated,
  listenFds,
  systemdFd,
  systemdFds,
  type FallbackListenOptions,
  type ListenFallback,
  type ListenFdsOptions,
} from './service/activation.js';
export { LISTEN_FDS_START, parseListenEnvironment, type ListenEnvironment, type ProcessIdentity } from './core/env.js';
export { SystemdError, type SystemError, type SystemdErrorCode } from './core/errors.js';
export { type SystemdWarningCode } from './service/warnings.js';
export { InetAddress, type NetlinkAddress, type OtherAddress, type SocketAddress, type UnixAddress, type VsockAddress } from './core/sockaddr.js';
export {
  describeFdInfo,
  formatAddress,
  type CharacterDeviceInfo,
  type FdInfo,
  type FifoInfo,
  type FileInfo,
  type InetSocketInfo,
  type MessageQueueInfo,
  type NetlinkSocketInfo,
  type OtherFdInfo,
  type OtherSocketInfo,
  type SocketInfo,
  type SocketType,
  type UnixSocketInfo,
  type VsockSocketInfo,
} from './core/socket-info.js';
export {
  notify,
  type FdStoreOptions,
  type Notify,
  type NotifyFields,
  type NotifyFlag,
  type NotifyOptions,
  type NotifySendOptions,
  type NotifyValue,
  type ReloadingOptions,
} from './service/notify.js';
export {
  MIN_PING_INTERVAL_MS,
  parseWatchdogEnvironment,
  startWatchdog,
  watchdogEnabled,
  type StartWatchdogOptions,
  type Watchdog,
  type WatchdogEnabledOptions,
} from './service/watchdog.js';
export { extendTimeoutWhile, lifecycle, type Closable, type Lifecycle, type LifecycleOptions, type StopOptions } from './service/lifecycle.js';
export { fdStoreRemoveUnused, openStoredSocket, type FdStoreRemoveUnusedOptions, type OpenStoredSocketOptions } from './service/fd-store.js';
export { closeFd, openSocket, type SocketDescription } from './shared/open-socket.js';
export { type BindAddress } from './core/sockaddr.js';
export {
  upgrader,
  type HandedOverConnection,
  type HandoverEvent,
  type PassedEvent,
  type PassOptions,
  type PassOutcome,
  type Upgrader,
  type UpgradeResult,
  type UpgraderEvents,
  type UpgraderOptions,
} from './service/upgrade.js';
export { workerPool, type WorkerPool, type WorkerInfo, type WorkerPoolEvents, type WorkerPoolOptions } from './service/worker-pool.js';
