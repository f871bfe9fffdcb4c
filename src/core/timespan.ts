/*
 * Durations as systemd writes them in unit files (`90`, `5s`, `500ms`, `1min 30s`, `infinity`),
 * so that a value copied from a unit means the same here. Pure.
 */

const UNITS: Record<string, number> = {
  us: 0.001,
  usec: 0.001,
  ms: 1,
  msec: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
};

/**
 * Milliseconds of a systemd time span; a bare number is seconds, as in TimeoutStartSec=.
 * `infinity` is `Infinity`. Returns undefined for text that is not one.
 *
 * @see https://www.freedesktop.org/software/systemd/man/latest/systemd.time.html
 */
export function parseTimespan(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === 'infinity') return Infinity;
  if (trimmed === '') return undefined;
  let total = 0;
  const re = /(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*/gy;
  let match: RegExpExecArray | null;
  let consumed = 0;
  while ((match = re.exec(trimmed)) !== null) {
    const factor = match[2] === '' ? 1000 : UNITS[match[2]!];
    if (factor === undefined) return undefined;
    total += Number(match[1]) * factor;
    consumed = re.lastIndex;
  }
  return consumed === trimmed.length ? total : undefined;
}

/** `1.5s`, `250ms`, `2min`: a duration for a person. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return 'infinity';
  if (ms < 1000) return `${Math.round(ms * 10) / 10}ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`;
  return `${Math.round(ms / 6000) / 10}min`;
}
