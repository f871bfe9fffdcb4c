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

/**
 * A distribution-free 95% confidence interval of the median: the order statistics whose ranks the
 * binomial distribution of "how many values fall below the median" puts 1.96 standard deviations
 * either side of n/2 (normal approximation; fine from about 20 values on).
 */
export function medianInterval(values: readonly number[]): { low: number; high: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const spread = 1.96 * Math.sqrt(n) / 2;
  const low = Math.max(0, Math.floor(n / 2 - spread) - 1);
  const high = Math.min(n - 1, Math.ceil(n / 2 + spread));
  return { low: sorted[low]!, high: sorted[high]! };
}

export function fmt(ms: number, digits = 2): string {
  return `${ms.toFixed(digits)} ms`;
}
