import type { Closable } from './lifecycle.js';

/**
 * Resolves once `server` listens: at once for one that already does or cannot say (no
 * `listening` property or no `once`), else on its 'listening' event. Used by lifecycle() and by
 * the lazily loaded upgrade code, which may copy this file (it holds no state).
 */
export function waitListening(server: Closable): Promise<void> {
  const s = server as { listening?: boolean; once?: (event: string, listener: () => void) => unknown };
  if (s.listening !== false || typeof s.once !== 'function') return Promise.resolve();
  return new Promise((resolve) => s.once!('listening', resolve));
}
