/*
 * What the subcommands share about their command lines: util.parseArgs with errors a person can
 * read, and the split between our options and the command to run.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { clip, quote } from '../core/quote.js';
import { UsageError } from './usage-error.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** What parseArgs found: values by long option name, and the positionals. */
export interface ParsedOptions {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Splits `[options] [--] COMMAND [ARGS...]` at the first argument that is not an option (or at
 * `--`), as systemd-socket-activate and env(1) do: the command's own options stay its own.
 */
export function splitCommand(args: readonly string[], options: Options): { own: string[]; command: string[] } {
  const takesValue = new Set<string>();
  for (const [name, option] of Object.entries(options)) {
    if (option.type !== 'string') continue;
    takesValue.add(`--${name}`);
    if (option.short) takesValue.add(`-${option.short}`);
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return { own: args.slice(0, i), command: args.slice(i + 1) };
    if (!arg.startsWith('-') || arg === '-') return { own: args.slice(0, i), command: args.slice(i) };
    // `--listen=x` and `-lx` carry their value; `--listen x` and `-l x` take the next argument.
    if (takesValue.has(arg)) i++;
  }
  return { own: [...args], command: [] };
}

/** util.parseArgs, its errors turned into one line that names the option. */
export function parseOptions(args: string[], options: Options, command: string): ParsedOptions {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true }) as ParsedOptions;
  } catch (error) {
    const code = (error as { code?: string }).code;
    const message = (error as Error).message;
    const quoted = /'(-[^']*)'/.exec(message)?.[1];
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option ${clip(quoted ?? message)}; see 'sd-activate ${command} --help'`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const name = /--([a-z-]+)/.exec(message)?.[1];
      if (message.includes('argument missing')) throw new UsageError(`option --${name} needs a value`);
      if (message.includes('ambiguous')) throw new UsageError(`option --${name} needs a value; for one that starts with '-', write --${name}=VALUE`);
      throw new UsageError(`option --${name} does not take a value; see 'sd-activate ${command} --help'`);
    }
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new UsageError(`unexpected argument ${clip(quoted ?? '')}; see 'sd-activate ${command} --help'`);
    throw error;
  }
}

/** A whole number option, or a UsageError naming it. */
export function countOption(name: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > 2 ** 31 - 1) {
    throw new UsageError(`--${name} takes a whole number${min ? ` from ${min}` : ''}, got ${quote(value)}`);
  }
  return Number(value);
}
