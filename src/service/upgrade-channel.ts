/*
 * The little protocol on an upgrade's channel, the socketpair between the old process and the new
 * one: messages of `KEY=VALUE` lines, each ended by an empty line. "go" alone on a line (to a
 * process started ahead of time) is read by its shell, not by this code. The messages, in order:
 *
 *   launcher -> old   PID=<new>          the new process's pid, from the shell that started it
 *   new -> old        READY=1, STATUS=,  the new process serves; HANDOVER=1: it takes established
 *                     HANDOVER=1         connections on the hand-over socket, where its hello is
 *                                        waiting (connection-handover.ts, handover-sender.ts)
 *                     (the old process hands over what is ready there, before it goes on)
 *   old -> new        MAINPID=<new>      the service manager has processed MAINPID=<new>
 *   new -> old        ACK=1              the new process knows it is the main process
 *   old -> new        UPGRADE=1          an upgrade was asked for meanwhile: the new process does it
 *   old -> new        ROLLBACK=1         the old process serves on: the new one stops
 *
 * The end of the channel means the other process is gone (or gave up). The hand-over socket is a
 * seqpacket socket of its own: the launcher shell's `read` takes this channel byte by byte, which
 * a seqpacket socket cannot give (each read(2) takes a whole message).
 */
import type { Socket } from 'node:net';

/** One message: its fields, the first of each key counting. */
export type Message = Map<string, string>;

/** `KEY=VALUE` lines; the first of each key counts. */
export function parseMessage(text: string): Message {
  const fields: Message = new Map();
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

/** The longest a message may be: a peer that sends more is not one of ours. */
const MAX_MESSAGE = 4096;

/** Reads the messages of one channel in order, none lost between two reads. */
export class ChannelReader {
  readonly #socket: Socket;
  readonly #messages: Message[] = [];
  #text = '';
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#text += chunk;
      for (let end = this.#text.indexOf('\n\n'); end !== -1; end = this.#text.indexOf('\n\n')) {
        this.#messages.push(parseMessage(this.#text.slice(0, end)));
        this.#text = this.#text.slice(end + 2);
      }
      if (this.#text.length > MAX_MESSAGE) this.#end();
      this.#wake?.();
    });
    const onEnd = (): void => this.#end();
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onEnd);
  }

  /** True once the other end is gone: no message will come. */
  get ended(): boolean {
    return this.#ended && this.#messages.length === 0;
  }

  #end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  /**
   * The next message; null when the channel ended first, 'timeout' after `timeoutMs` (default:
   * no limit).
   */
  async next(timeoutMs = Infinity): Promise<Message | null | 'timeout'> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = this.#messages.shift();
      if (message) return message;
      if (this.#ended) return null;
      const left = deadline - Date.now();
      if (left <= 0) return 'timeout';
      await new Promise<void>((resolve) => {
        const timer = Number.isFinite(left) ? setTimeout(done, left) : undefined;
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#wake = done;
      });
      this.#wake = undefined;
    }
  }

  /** Lets the channel keep the process alive (a channel in use), or not (one that waits for ever). */
  ref(): void {
    this.#socket.ref();
  }

  unref(): void {
    this.#socket.unref();
  }

  /** Closes this end. */
  destroy(): void {
    this.#socket.destroy();
  }

  /** Writes a message; false when the channel is gone. */
  send(fields: Readonly<Record<string, string | number>>): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.#socket.destroyed || !this.#socket.writable) {
        resolve(false);
        return;
      }
      this.#socket.write(formatMessage(fields), (error) => resolve(!error));
    });
  }
}
