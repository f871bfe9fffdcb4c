/*
 * Whether a process runs, as /proc says: what a manager without a waitid() on it (the process is
 * not its child, or not yet) and an upgrade's old process (the new one is the service manager's
 * child) can know of it.
 */
import { fs } from '../core/builtins.js';

/** Whether `pid` runs. A zombie does not: it has exited, and only its parent's wait is left. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // The state follows the command name in parentheses, which may itself hold spaces or ')'.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
