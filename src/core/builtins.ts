/*
 * Node's built-in modules as their CommonJS objects, for the modules a service loads at start-up.
 * An ES `import` of node:fs, node:util or node:module builds a namespace of every export, and
 * reading them all loads fs/promises, readline, streams, the file watchers, parse_args and source
 * maps on the way: about 2 ms of start-up for nothing (`npm run bench:startup` shows it).
 * process.getBuiltinModule() returns the object Node has already loaded. Even for a module that is
 * loaded (node:events), the first ES import of it builds its namespace: about 0.35 ms. node:module
 * and node:os are not loaded at start-up at all, so they are fetched only when first needed.
 */
export const fs = process.getBuiltinModule('node:fs');
export const util = process.getBuiltinModule('node:util');
export const url = process.getBuiltinModule('node:url');
export const events = process.getBuiltinModule('node:events');

/** node:module, on first use (loading it loads source-map support too). */
export function nodeModule(): typeof import('node:module') {
  return process.getBuiltinModule('node:module');
}

/** node:os, on first use. */
export function os(): typeof import('node:os') {
  return process.getBuiltinModule('node:os');
}

/**
 * The errno values used in the library's own checks. Linux's (asm-generic/errno-base.h and
 * errno.h): fixed numbers, and the library only runs on Linux; node:os need not load for them.
 */
export const errno = { EINVAL: 22, ERANGE: 34, ENAMETOOLONG: 36, ETIMEDOUT: 110 } as const;
