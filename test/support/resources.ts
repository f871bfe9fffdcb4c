import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import type * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { native } from '../../src/native/addon.js';

/** The fds this process has open now, by number (the directory's own fd, gone by then, left out). */
export function openFds(): Set<number> {
  const out = new Set<number>();
  for (const entry of readdirSync('/proc/self/fd')) {
    try {
      readlinkSync(`/proc/self/fd/${entry}`);
      out.add(Number(entry));
    } catch {
      // the fd readdir itself used: closed by now
    }
  }
  return out;
}

/** A name no other test run uses at the same time: for abstract sockets and message queues. */
export function uniqueName(prefix = 'sd-activate-test'): string {
  return `${prefix}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * The fd of a Node net.Server, net.Socket or dgram.Socket. Node keeps it private; tests read it
 * to inspect what Node made, and only tests may.
 */
export function handleFd(owner: net.Server | net.Socket | dgram.Socket): number {
  const o = owner as unknown as Record<string | symbol, unknown>;
  let handle: unknown;
  if (owner instanceof dgram.Socket) {
    const state = Object.getOwnPropertySymbols(o).find((s) => s.description === 'state symbol');
    handle = state ? (o[state] as { handle?: unknown }).handle : undefined;
  } else {
    handle = o._handle;
  }
  const fd = (handle as { fd?: unknown } | undefined)?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('no fd on this Node handle');
  return fd;
}

/**
 * Everything a test opens, released after it in reverse order; then a check that the test
 * left no fd open and closed none it did not own.
 */
export class Resources {
  private cleanups: Array<() => unknown> = [];

  /** An fd to close with the addon after the test. */
  fd(fd: number): number {
    this.defer(() => native().close(fd));
    return fd;
  }

  /** A temporary directory, removed after the test. */
  dir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'sd-activate-'));
    this.defer(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** A Node server or socket, closed (and waited for) after the test. */
  node<T extends net.Server | net.Socket | dgram.Socket>(owner: T): T {
    this.defer(async () => {
      if ('destroy' in owner) {
        if (owner.destroyed) return;
        const closed = once(owner, 'close');
        owner.destroy();
        await closed;
        return;
      }
      const closed = once(owner, 'close');
      try {
        owner.close();
      } catch {
        return; // never bound or already closed
      }
      await closed;
    });
    return owner;
  }

  defer(cleanup: () => unknown): void {
    this.cleanups.push(cleanup);
  }

  async release(): Promise<void> {
    const errors: unknown[] = [];
    for (const cleanup of this.cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        errors.push(error);
      }
    }
    this.cleanups = [];
    if (errors.length > 0) throw errors[0];
  }
}

/** Registers mocha hooks around each test of the calling suite; returns the test's resources. */
export function useResources(): Resources {
  const resources = new Resources();
  let before = new Set<number>();
  beforeEach(() => {
    before = openFds();
  });
  afterEach(async () => {
    await resources.release();
    const after = openFds();
    expect([...after].filter((fd) => !before.has(fd)), 'fds the test left open').to.deep.equal([]);
    expect([...before].filter((fd) => !after.has(fd)), 'fds the test closed but did not open').to.deep.equal([]);
  });
  return resources;
}
