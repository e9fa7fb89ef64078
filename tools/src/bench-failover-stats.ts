/**
 * The failover bench's arithmetic, apart from the lab so that a unit test pins it: per scenario the
 * distribution of its runs' figures, and issue 11's targets evaluated on those distributions.
 *
 * Percentiles are nearest-rank: pP is the ⌈P/100 · n⌉-th smallest sample, always a value that was
 * measured, never an interpolation between two. For n ≤ 19 runs ⌈0.95 · n⌉ = n, so p95 is the largest
 * sample: with the default 5 runs "p95 < 1 s" means "every run < 1 s", and the JSON says so.
 */

import { nearestRank } from './stats.js';

export type GapSource = 'stream' | 'short_requests';

/** One run of one scenario, as measured (bench-failover.ts). */
export interface FailoverRun {
  scenario: string;
  /** 1-based, in the order the runs happened. */
  run: number;
  gap_ms: number;
  /** stream: the long-lived stream survived and its longest gap is reported; short_requests: it was
   * lost (flows NATed by a lost shoot pod are), so the gap is the longest time without a successful new request. */
  gap_measured_on: GapSource;
  stream_gap_ms: number;
  short_request_gap_ms: number;
  broken_connections: number;
  short_requests: number;
  short_requests_failed: number;
  /** Shoot-pod scenarios: how long the path-controller took to move the routes. */
  detection_ms?: number;
  /** The targets this run misses on its own (runMisses), and when its failure was injected (for the kept logs). */
  missed?: string[];
  failure_at?: string;
}

export interface Distribution {
  n: number;
  min: number;
  p50: number;
  p95: number;
  max: number;
}

export const PERCENTILE_METHOD =
  'nearest-rank: pP is the ceil(P/100 * n)-th smallest run (a measured value, no interpolation); for n <= 19 runs p95 is the largest run (the max), so with 5 runs p95 = max; p50 is the 3rd of 5';

export { nearestRank };

export function distribution(samples: readonly number[]): Distribution {
  if (samples.length === 0) throw new RangeError('a distribution needs at least one sample');
  return {
    n: samples.length,
    min: Math.min(...samples),
    p50: nearestRank(samples, 50),
    p95: nearestRank(samples, 95),
    max: Math.max(...samples),
  };
}

export interface ScenarioSummary {
  /** How many runs the figures summarize. */
  n: number;
  gap_ms: Distribution;
  /** How many runs measured their gap on the stream and how many on the short requests. */
  gap_measured_on: Record<GapSource, number>;
  /** Over the runs that measured it (the shoot-pod scenarios). */
  detection_ms?: Distribution;
  broken_connections_total: number;
  short_requests_total: number;
  short_requests_failed_total: number;
}

/** The distribution of one scenario's runs (all of the same scenario, at least one). */
export function summarize(runs: readonly FailoverRun[]): ScenarioSummary {
  if (runs.length === 0) throw new RangeError('no runs to summarize');
  const names = new Set(runs.map((r) => r.scenario));
  if (names.size !== 1) throw new RangeError(`runs of several scenarios: ${[...names].join(', ')}`);
  const detections = runs.flatMap((r) => (r.detection_ms === undefined ? [] : [r.detection_ms]));
  const sum = (f: (r: FailoverRun) => number) => runs.reduce((a, r) => a + f(r), 0);
  return {
    n: runs.length,
    gap_ms: distribution(runs.map((r) => r.gap_ms)),
    gap_measured_on: {
      stream: runs.filter((r) => r.gap_measured_on === 'stream').length,
      short_requests: runs.filter((r) => r.gap_measured_on === 'short_requests').length,
    },
    ...(detections.length ? { detection_ms: distribution(detections) } : {}),
    broken_connections_total: sum((r) => r.broken_connections),
    short_requests_total: sum((r) => r.short_requests),
    short_requests_failed_total: sum((r) => r.short_requests_failed),
  };
}

interface TargetDef {
  name: string;
  scenario: string;
  /** What is compared, as the JSON names it. */
  measured: string;
  limit: number;
  op: '<' | '==';
  value: (s: ScenarioSummary) => number;
}

/** Issue 11 ("Performance"): the HA failover targets. */
export const FAILOVER_TARGETS: readonly TargetDef[] = [
  { name: 'killed_shoot_pod_gap_p95_ms_lt', scenario: 'shoot_pod_kill', measured: 'gap_ms.p95', op: '<', limit: 1000, value: (s) => s.gap_ms.p95 },
  { name: 'frozen_shoot_pod_gap_p95_ms_lt', scenario: 'shoot_pod_frozen', measured: 'gap_ms.p95', op: '<', limit: 1500, value: (s) => s.gap_ms.p95 },
  { name: 'server_kill_broken_connections_total_eq', scenario: 'server_kill', measured: 'broken_connections_total', op: '==', limit: 0, value: (s) => s.broken_connections_total },
  { name: 'server_silent_broken_connections_total_eq', scenario: 'server_silent', measured: 'broken_connections_total', op: '==', limit: 0, value: (s) => s.broken_connections_total },
];

export interface TargetCheck {
  target: string;
  scenario: string;
  measured: string;
  /** null: the scenario has no runs, so the target counts as missed. */
  value: number | null;
  met: boolean;
}

export type TargetsResult = Record<string, number | boolean | TargetCheck[]> & { checks: TargetCheck[]; met: boolean };

/** The targets with their limits, each checked against the summaries, and whether all were met. */
export function evaluateTargets(summaries: Readonly<Record<string, ScenarioSummary | undefined>>, targets: readonly TargetDef[] = FAILOVER_TARGETS): TargetsResult {
  const checks = targets.map((t): TargetCheck => {
    const s = summaries[t.scenario];
    const value = s ? t.value(s) : null;
    const met = value !== null && (t.op === '<' ? value < t.limit : value === t.limit);
    return { target: t.name, scenario: t.scenario, measured: t.measured, value, met };
  });
  return {
    ...Object.fromEntries(targets.map((t) => [t.name, t.limit])),
    checks,
    met: checks.every((c) => c.met),
  };
}

/**
 * The targets one run misses on its own (a target's limit applied to that run's figure): with
 * nearest-rank p95 over ≤ 19 runs any such run misses the target for the whole scenario, so the bench
 * marks the run and keeps the lab's logs for it.
 */
export function runMisses(run: FailoverRun, targets: readonly TargetDef[] = FAILOVER_TARGETS): string[] {
  const mine = targets.filter((t) => t.scenario === run.scenario);
  return evaluateTargets({ [run.scenario]: summarize([run]) }, mine).checks.filter((c) => !c.met).map((c) => c.target);
}
