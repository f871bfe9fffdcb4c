/** Median and quartiles of a sample: these machines are shared and noisy, so no means. */
export function summary(values: readonly number[]): { median: number; p25: number; p75: number; n: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => {
    const i = (sorted.length - 1) * q;
    const lo = Math.floor(i);
    const hi = Math.ceil(i);
    return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (i - lo);
  };
  return { median: at(0.5), p25: at(0.25), p75: at(0.75), n: sorted.length };
}

export function fmt(ms: number, digits = 2): string {
  return `${ms.toFixed(digits)} ms`;
}
