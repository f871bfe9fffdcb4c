/*
 * The rules of a notify message's text, pure: each value checked so that none can add a field of
 * its own, fields objects encoded as libsystemd's users write them.
 */
import { os } from '../core/builtins.js';
import { checkFdName } from '../core/fd-name.js';
import { QUOTE_MAX, quote, show } from '../core/quote.js';
import type { NotifyFields } from './notify-types.js';

/** A value may hold neither a newline (it would start a field of its own) nor NUL (systemd stops reading there). */
export function checkValue(key: string, value: string): string {
  if (/[\n\0]/.test(value)) throw new TypeError(`${fieldName(key)} must not contain a newline or NUL: ${quote(value)}`);
  return value;
}

/**
 * Whether `text` has a lone surrogate, which has no UTF-8 form. A loop, not /\p{Cs}/u: building that
 * regexp cost every service 0.2 ms of start-up (ICU's property tables).
 */
export function hasLoneSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    // A high surrogate followed by a low one is a pair; anything else is alone.
    if (unit > 0xdbff) return true;
    const next = text.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return true;
    i++;
  }
  return false;
}

/**
 * STATUS is shown as one line: CR is refused with LF. A lone UTF-16 surrogate has no UTF-8 form
 * (it would be sent as U+FFFD), so it is refused rather than changed behind the caller's back.
 */
export function checkStatus(text: unknown): string {
  if (typeof text !== 'string') throw new TypeError(`STATUS must be a string, got ${typeof text}`);
  if (/[\r\n\0]/.test(text)) throw new TypeError(`STATUS must be a single line without NUL: ${quote(text)}`);
  if (hasLoneSurrogate(text)) throw new TypeError(`STATUS must be valid Unicode (it has a lone surrogate): ${quote(text)}`);
  return text;
}

export function checkFds(fds: unknown, atLeastOne: boolean): readonly number[] | null {
  if (fds === undefined || fds === null) {
    if (atLeastOne) throw new TypeError('fds must be a non-empty array of fds');
    return null;
  }
  if (!Array.isArray(fds) || fds.some((fd) => !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff)) {
    throw new TypeError('fds must be an array of fds (non-negative integers)');
  }
  if (atLeastOne && fds.length === 0) throw new TypeError('fds must be a non-empty array of fds');
  return fds.length === 0 ? null : (fds as number[]);
}

/** Milliseconds to whole microseconds, for the *_USEC fields. */
export function usec(what: string, ms: unknown): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new TypeError(`${what} must be a finite number of milliseconds >= 0, got ${show(ms)}`);
  return BigInt(Math.round(ms * 1000)).toString();
}

export function checkPid(what: string, pid: unknown): number {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0 || pid > 0x7fffffff) throw new TypeError(`${what} must be a pid (a positive integer), got ${show(pid)}`);
  return pid;
}

const KEY = /^[A-Z0-9_]+$/;

/** What messages call a field: `KEY=`, unless the key is long enough to drown them. */
function fieldName(key: string): string {
  return key.length <= QUOTE_MAX ? `${key}=` : `the field ${quote(key)}`;
}

/** A fields object to its message: `KEY=VALUE` lines joined by '\n', no trailing newline (as libsystemd users write it). */
export function encodeFields(fields: NotifyFields): string {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) throw new TypeError('message must be a string or a fields object');
  const lines: string[] = [];
  for (const key of Object.keys(fields)) {
    const value: unknown = (fields as Record<string, unknown>)[key];
    if (value === undefined || value === null || value === false) continue;
    if (!KEY.test(key)) throw new TypeError(`field names are upper-case letters, digits and '_': ${quote(key)}`);
    let text: string;
    if (value === true) text = '1';
    else if (typeof value === 'bigint') text = value.toString();
    else if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new TypeError(`${fieldName(key)} must be an integer, got ${value}`);
      text = value.toString();
    } else if (typeof value === 'string') {
      text = key === 'STATUS' ? checkStatus(value) : key === 'FDNAME' ? checkFdName(value, 'FDNAME') : checkValue(key, value);
      // checkStatus() has looked already.
      if (key !== 'STATUS' && hasLoneSurrogate(text)) throw new TypeError(`${fieldName(key)} must be valid Unicode (it has a lone surrogate)`);
    } else {
      throw new TypeError(`${fieldName(key)} must be a string, number, bigint or boolean, got ${typeof value}`);
    }
    lines.push(`${key}=${text}`);
  }
  return lines.join('\n');
}

/** ERRNO= from a number or an errno name. */
export function errnoNumber(error: unknown): number {
  if (typeof error === 'string') {
    const n = (os().constants.errno as Record<string, number | undefined>)[error];
    if (n === undefined) throw new TypeError(`not an errno name: ${quote(error)}`);
    return n;
  }
  if (typeof error !== 'number' || !Number.isInteger(error) || error < 0) throw new TypeError(`errno must be a non-negative integer or an errno name, got ${show(error)}`);
  return error;
}
