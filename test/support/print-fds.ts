import { fileURLToPath } from 'node:url';
import { InetAddress, type FdInfo } from 'sd-activate';

/** The compiled fixture test/fixtures/print-fds.ts, next to this file in dist/. */
export const PRINT_FDS = fileURLToPath(new URL('../fixtures/print-fds.js', import.meta.url));

/** One fd as the fixture reports it: ListenFd.toJSON() back from JSON, addresses revived. */
export interface FdReport {
  fd: number;
  name: string;
  description: string;
  info: FdInfo;
}

function reviveAddress(value: unknown): unknown {
  if (value && typeof value === 'object' && 'family' in value && (value.family === 'ipv4' || value.family === 'ipv6')) {
    return new InetAddress(value as ConstructorParameters<typeof InetAddress>[0]);
  }
  return value;
}

/**
 * The fds in the fixture's JSON (`FDS <json>` line or a network reply), with InetAddress objects
 * back in `local` and `peer` so that formatAddress() sees what the fixture saw.
 *
 * @throws Error when the text is not such a JSON array
 */
export function parseFds(text: string): FdReport[] {
  const json = text.trim().replace(/^FDS /, '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw new Error(`not the fixture's JSON: ${JSON.stringify(text.slice(0, 500))} (${(error as Error).message})`);
  }
  if (!Array.isArray(parsed)) throw new Error(`expected an array of fds, got ${json.slice(0, 500)}`);
  return parsed.map((entry: FdReport) => {
    const info = { ...entry.info } as FdInfo & { local?: unknown; peer?: unknown };
    if ('local' in info) info.local = reviveAddress(info.local);
    if ('peer' in info) info.peer = reviveAddress(info.peer);
    return { ...entry, info: info as FdInfo };
  });
}
