/*
 * The little protocol on an upgrade's channel, the socketpair between the old process and the new
 * one: messages of `KEY=VALUE` lines, each ended by an empty line. "go" alone on a line (to a
 * process started ahead of time) is read by its shell, not by this code.
 */
import type { Socket } from 'node:net';

/** `KEY=VALUE` lines; the first of each key counts. */
export function parseMessage(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && !fields.has(line.slice(0, eq))) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return fields;
}

/** A message as written on the channel. */
export function formatMessage(fields: Readonly<Record<string, string | number>>): string {
  return `${Object.entries(fields)
    .map(([key, value]) => `${key}=${value}`)
    .join('\n')}\n\n`;
}

/** Resolves with the first message read from `socket`, or null at its end, on an error or after `timeoutMs`. */
export function readMessage(socket: Socket, timeoutMs: number): Promise<Map<string, string> | null> {
  return new Promise((resolve) => {
    let text = '';
    const done = (value: Map<string, string> | null): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onEnd);
      resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\n\n');
      if (end !== -1) done(parseMessage(text.slice(0, end)));
    };
    const onEnd = (): void => done(null);
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onEnd);
  });
}
