import { controlWindows, type LatencyFigures, type LoadResult, type LoadSummary } from '../../test/support/load.js';
import type { UpgradeStep } from '../../test/support/upgrade-harness.js';

export const ms = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)} ms` : '-');

/** A load run's summary, with what the client recorded (for the control windows). */
export type Finished = LoadSummary & { result: LoadResult };

/**
 * The latency lines of a run of upgrades: each switch against the steady state, all switches
 * together, and the control. Returns the ratio the verdict is on, all switch windows together: a
 * switch window holds about 160 requests, so its own p99 is its second-slowest request, and the
 * control shows steady-state windows of that size over 2x in a few percent of cases. Over ten
 * switches, a switch that changed nothing would fail an every-switch rule a quarter of the time.
 * `what` names what was timed (requests, messages); `perSwitch` false leaves out the line of each switch.
 */
export function latencyReport(summary: Finished, steps: readonly UpgradeStep[], what = 'requests', perSwitch = true): { pooled: number; worst: number } {
  const steady = summary.steady;
  console.log(`  steady state: ${steady.count} ${what}, p50 ${ms(steady.p50)}, p99 ${ms(steady.p99)}, max ${ms(steady.max)}`);
  let worst = 0;
  summary.switches.forEach((s: LatencyFigures, i) => {
    const step = steps[i]!;
    const ratio = s.p99 / steady.p99;
    worst = Math.max(worst, ratio);
    if (!perSwitch) return;
    console.log(
      `  switch ${String(i + 1).padStart(2)}: MainPID ${step.from} -> ${step.to} in ${step.window.end - step.window.start} ms; ` +
        `${s.count} ${what}, p50 ${ms(s.p50)}, p99 ${ms(s.p99)} (${ratio.toFixed(2)}x steady), max ${ms(s.max)}`,
    );
  });
  const pooled = summary.pooled;
  console.log(
    `  all switches together: ${pooled.count} ${what}, p50 ${ms(pooled.p50)}, p99 ${ms(pooled.p99)} (${(pooled.p99 / steady.p99).toFixed(2)}x steady), max ${ms(pooled.max)}; ` +
      `worst single switch p99 ${worst.toFixed(2)}x`,
  );
  const control = controlWindows(summary.result, steps.map((s) => s.window));
  const over = control.filter((c) => c.p99 > 2 * steady.p99).length;
  const chance = control.length ? 1 - (1 - over / control.length) ** summary.switches.length : NaN;
  console.log(
    `  control: ${control.length} windows of the steady state as long as a switch's, none near one: p99 over 2x steady in ${over} ` +
      `(${control.length ? ((100 * over) / control.length).toFixed(0) : '-'}%); switches over 2x: ${summary.switches.filter((s) => s.p99 > 2 * steady.p99).length} of ${summary.switches.length} ` +
      `(at the control's rate, ${summary.switches.length} windows would have at least one over 2x with probability ${Number.isFinite(chance) ? chance.toFixed(2) : '-'})`,
  );
  return { pooled: pooled.p99 / steady.p99, worst };
}
