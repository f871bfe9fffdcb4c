/*
 * What the upgrade and worker-pool code, loaded with import() on first use, takes from the rest of
 * the library: handed to it as an argument instead of imported. A module that both the package's
 * index and a lazily loaded file import goes to a shared file of its own, and every service would
 * load one file more at start-up for code that most never run (each file costs about half a
 * millisecond: `npm run bench:startup`). scripts/bundle.mjs checks that those files import
 * nothing of the index that holds state; what they may copy is listed there.
 */
import { heldFds, listenFds } from './activation.js';
import { SystemdError } from '../core/errors.js';
import { becameMain, handoverPending, poolChannel, upgradeChannel, workerLifeline } from './handover.js';
import { native } from '../native/addon.js';
import { notify } from './notify.js';

/** The one copy of the library's state and classes, for upgrade-impl.ts and worker-pool-impl.ts. @internal */
export const internals = { heldFds, listenFds, SystemdError, becameMain, handoverPending, upgradeChannel, workerLifeline, poolChannel, native, notify } as const;

/** @internal */
export type Internals = typeof internals;
