/*
 * What an error message or a warning repeats of an input. An input can be as long as an
 * environment variable, a datagram or an argument (megabytes): a message that repeats it whole
 * multiplies whoever sent it, in every log line and on every terminal it reaches, and hides what
 * the message says. Every message that shows an input shows it through here.
 */
import { util } from './builtins.js';

/**
 * The most characters of an input a message repeats: a path, an address or a line of a unit file
 * stays whole, and a message stays on a screen.
 */
export const QUOTE_MAX = 120;

/**
 * `text` JSON-quoted (control characters escaped, so that none reaches a terminal), whole when it
 * has at most {@link QUOTE_MAX} characters, else its first ones and its length:
 * `"aaaa…aaa"... (10240 bytes)`.
 */
export function quote(text: string): string {
  if (text.length <= QUOTE_MAX) return JSON.stringify(text);
  return `${JSON.stringify(head(text, QUOTE_MAX))}... (${Buffer.byteLength(text)} bytes)`;
}

/**
 * `text` as it is, for what is shown raw (a line a service wrote), whole when it has at most `max`
 * characters, else its first ones and its length: `aaaa…aaa... (10240 bytes)`.
 */
export function clip(text: string, max = 2 * QUOTE_MAX): string {
  return text.length <= max ? text : `${head(text, max)}... (${Buffer.byteLength(text)} bytes)`;
}

/** The first `max` UTF-16 units of `text`, one less rather than half a surrogate pair. */
function head(text: string, max: number): string {
  const last = text.charCodeAt(max - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/**
 * Any value for a message: a string as {@link quote} shows it, anything else as util.inspect()
 * does on one line, cut as {@link clip} cuts.
 */
export function show(value: unknown): string {
  if (typeof value === 'string') return quote(value);
  return clip(util.inspect(value, { depth: 2, maxArrayLength: 10, maxStringLength: QUOTE_MAX, breakLength: Infinity }));
}

/** The most items of a list a message names: `"a", "b", ... and 990 more`. */
const LIST_MAX = 10;

/** `items` joined with ", ", at most {@link LIST_MAX} of them and how many more there are. */
export function list(items: readonly string[]): string {
  if (items.length <= LIST_MAX) return items.join(', ');
  return `${items.slice(0, LIST_MAX).join(', ')} and ${items.length - LIST_MAX} more`;
}
