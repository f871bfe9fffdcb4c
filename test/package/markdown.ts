/**
 * The commands and code of the documentation, read from the Markdown files themselves: a test
 * that runs them runs what the README says today, and fails when it says something new.
 */
import { readFileSync } from 'node:fs';

/** One fenced code block. */
export interface CodeBlock {
  /** The info string: `sh`, `js`, `ini`, ... */
  lang: string;
  /** What is between the fences, with a final newline. */
  text: string;
  /** The line of the opening fence (1-based), for messages. */
  line: number;
  /** The closest heading above it, without the #s. */
  heading: string;
}

/** Every fenced block of `file`, in order. */
export function codeBlocks(file: string): CodeBlock[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks: CodeBlock[] = [];
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = /^```(\S*)\s*$/.exec(line);
    if (!fence) {
      const title = /^#+\s+(.*)$/.exec(line);
      if (title) heading = title[1]!;
      continue;
    }
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (i === lines.length) throw new Error(`${file}:${start + 1}: a code block that never closes`);
    blocks.push({ lang: fence[1]!, text: body.join('\n') + '\n', line: start + 1, heading });
  }
  return blocks;
}

/** The inline code spans of `file` outside code blocks, in order: `` `like this` ``. */
export function inlineCode(file: string): string[] {
  const text = readFileSync(file, 'utf8').replace(/^```[^]*?^```\s*$/gm, '');
  return [...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
}

/** The one inline code span of `file` that starts with `prefix`; throws unless there is exactly one. */
export function inlineCommand(file: string, prefix: string): string {
  const found = inlineCode(file).filter((span) => span.startsWith(prefix));
  if (found.length !== 1) throw new Error(`${file}: ${found.length} inline commands start with "${prefix}": ${JSON.stringify(found)}`);
  return found[0]!;
}

/**
 * The command lines of a shell block: one per line, a backslash-newline joining two lines, blank
 * lines dropped. Comments stay (sh ignores them; a test may read what they promise).
 */
export function commandLines(block: Pick<CodeBlock, 'text'>): string[] {
  return block.text
    .split(/(?<!\\)\n/)
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== '');
}

/** The words of a shell command line: quotes and backslash-newlines as sh reads them, a trailing comment dropped. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'" || ch === '"') {
      const end = line.indexOf(ch, i + 1);
      if (end === -1) throw new Error(`an unclosed ${ch} in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (ch === '\\' && line[i + 1] === '\n') {
      i++;
    } else if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (ch === '#' && word === undefined) {
      break;
    } else {
      word = (word ?? '') + ch;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** The comment at the end of a command line (after a `#` that starts a word), or ''. */
export function commentOf(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(i + 1).trim();
    }
  }
  return '';
}

/**
 * `text` with each port of `ports` replaced by its free stand-in, wherever it stands as a number
 * of its own (`8080`, `:8080`, `port: 8080`; not `18080`).
 */
export function swapPorts(text: string, ports: ReadonlyMap<number, number>): string {
  let out = text;
  for (const [from, to] of ports) out = out.replace(new RegExp(`(?<![\\d.])${from}(?!\\d)`, 'g'), String(to));
  return out;
}
