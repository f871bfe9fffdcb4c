/*
 * `--watch`: restart the service when a file or a directory under it changes (for development;
 * systemd has no such setting). The sockets stay open across the restart.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';

/**
 * Watches `path` (recursively for a directory) and calls `onChange` once for a burst of changes:
 * editors write a file in several steps.
 *
 * @throws TypeError when `path` cannot be watched (missing, unreadable)
 */
export function watchPath(path: string, onChange: (changed: string) => void, onError: (error: Error) => void): FSWatcher {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch (error) {
    throw new TypeError(`cannot watch ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (error as Error).message}`);
  }
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(path, { recursive: isDirectory }, (_event, file) => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => onChange(isDirectory && file ? join(path, file) : path), 100);
  });
  watcher.on('error', (error) => onError(new Error(`watching ${path}: ${error.message}`)));
  watcher.on('close', () => clearTimeout(timer));
  return watcher;
}
