/*
 * fds this process inherited must not reach the services it starts: systemd's exec closes every
 * fd it does not pass. A shell's `exec 200<file`, a CI runner's pipes and the like come in without
 * FD_CLOEXEC, and Node's spawn() keeps every such fd open across the exec. Marking them
 * close-on-exec, once and before any service is started, keeps them here for this process (which
 * may still use them) and out of every child. What this process opens itself is close-on-exec
 * already (Node, libuv and the addon open everything so), and what it passes goes through spawn()'s
 * stdio, which dup2()s the fd into place and so clears the flag on the child's copy.
 */
import { readdirSync } from 'node:fs';
import { native } from '../native/addon.js';

/**
 * Sets FD_CLOEXEC on every fd from 3 up that lacks it. For a process that starts services and
 * nothing else that needs them (`sd-activate run`). Returns the fds it marked.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html
 */
export function closeInheritedOnExec(): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc/self/fd');
  } catch {
    return []; // no /proc: nothing to go by
  }
  const n = native();
  const marked: number[] = [];
  for (const entry of entries) {
    const fd = Number(entry);
    if (!Number.isInteger(fd) || fd < 3) continue;
    try {
      if (n.getCloexec(fd)) continue;
      n.setCloexec(fd, true);
      marked.push(fd);
    } catch {
      // The directory's own fd, closed once listed.
    }
  }
  return marked;
}
