import { closeSync, fstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NotifyReceiver, type NotifyReceiverOptions } from '../../src/shared/notify-receiver.js';
import { uniqueName } from './resources.js';

/** A receiver at a path in a fresh temp dir, or at a fresh abstract name; `close()` removes both. */
export function openReceiver(kind: 'path' | 'abstract' = 'path', options: NotifyReceiverOptions = {}): { receiver: NotifyReceiver; close: () => void } {
  if (kind === 'abstract') {
    const receiver = new NotifyReceiver(`@${uniqueName('sd-activate-notify')}`, options);
    return { receiver, close: () => receiver.close() };
  }
  const dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
  const receiver = new NotifyReceiver(join(dir, 'notify'), options);
  return {
    receiver,
    close: () => {
      receiver.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Saves the named environment variables; the returned function puts them back as they were. */
export function saveEnv(...names: string[]): () => void {
  const saved = names.map((name) => [name, process.env[name]] as const);
  return () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

/** What an fd refers to (device and inode), to tell that a received fd is the one sent. */
export function fdIdentity(fd: number): string {
  const st = fstatSync(fd);
  return `${st.dev}:${st.ino}`;
}

/** Closes every fd in the list. */
export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) closeSync(fd);
}
