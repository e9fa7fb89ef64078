import { describe, expect, it } from 'vitest';
import { distribution, evaluateTargets, nearestRank, runMisses, summarize, type FailoverRun, type ScenarioSummary } from './bench-failover-stats.js';

const run = (scenario: string, i: number, over: Partial<FailoverRun> = {}): FailoverRun => ({
  scenario, run: i, gap_ms: 100, gap_measured_on: 'stream', stream_gap_ms: 100, short_request_gap_ms: 200,
  broken_connections: 0, short_requests: 60, short_requests_failed: 0, ...over,
});

/** Five runs of a scenario with these gaps (and detection times, when given). */
const runs = (scenario: string, gaps: number[], over: (i: number) => Partial<FailoverRun> = () => ({})) =>
  gaps.map((g, i) => run(scenario, i + 1, { gap_ms: g, ...over(i) }));

describe('nearest-rank percentiles', () => {
  it('with 5 runs p95 is the largest and p50 the third smallest, whatever the order', () => {
    expect(nearestRank([900, 120, 130, 110, 140], 95)).toBe(900);
    expect(nearestRank([900, 120, 130, 110, 140], 50)).toBe(130);
    expect(distribution([900, 120, 130, 110, 140])).toEqual({ n: 5, min: 110, p50: 130, p95: 900, max: 900 });
  });

  it('p95 stays the max up to 19 runs and drops below it from 20', () => {
    const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
    expect(nearestRank(upTo(19), 95)).toBe(19);
    expect(nearestRank(upTo(20), 95)).toBe(19);
    expect(nearestRank(upTo(100), 95)).toBe(95);
  });

  it('a single run is every percentile; no runs give NaN, a distribution of none is refused', () => {
    expect(distribution([42])).toEqual({ n: 1, min: 42, p50: 42, p95: 42, max: 42 });
    expect(nearestRank([], 95)).toBeNaN();
    expect(() => distribution([])).toThrow(RangeError);
    expect(() => nearestRank([1], 0)).toThrow(RangeError);
  });
});

describe('summarize', () => {
  it('sums broken connections and short requests over the runs and counts where each gap was measured', () => {
    const s = summarize([
      ...runs('shoot_pod_kill', [130, 120], () => ({ gap_measured_on: 'short_requests', broken_connections: 1, short_requests_failed: 2, detection_ms: 80 })),
      run('shoot_pod_kill', 3, { gap_ms: 40, broken_connections: 0, detection_ms: 70 }),
    ]);
    expect(s).toEqual({
      n: 3,
      gap_ms: { n: 3, min: 40, p50: 120, p95: 130, max: 130 },
      gap_measured_on: { stream: 1, short_requests: 2 },
      detection_ms: { n: 3, min: 70, p50: 80, p95: 80, max: 80 },
      broken_connections_total: 2,
      short_requests_total: 180,
      short_requests_failed_total: 4,
    });
  });

  it('has no detection distribution when no run measured one, and refuses runs of two scenarios', () => {
    expect(summarize(runs('server_kill', [27, 30])).detection_ms).toBeUndefined();
    expect(() => summarize([run('server_kill', 1), run('server_silent', 1)])).toThrow(/several scenarios/);
    expect(() => summarize([])).toThrow(RangeError);
  });
});

describe('targets (issue 11)', () => {
  const passing = (): Record<string, ScenarioSummary> => ({
    server_kill: summarize(runs('server_kill', [27, 30, 25, 28, 31])),
    server_silent: summarize(runs('server_silent', [600, 611, 590, 620, 605])),
    shoot_pod_kill: summarize(runs('shoot_pod_kill', [131, 120, 150, 140, 999], () => ({ broken_connections: 1 }))),
    shoot_pod_frozen: summarize(runs('shoot_pod_frozen', [922, 900, 1100, 1000, 1499], () => ({ broken_connections: 1 }))),
  });

  it('are met when every limit holds, with the limits and each measured value in the result', () => {
    const t = evaluateTargets(passing());
    expect(t.met).toBe(true);
    expect(t).toMatchObject({
      killed_shoot_pod_gap_p95_ms_lt: 1000, frozen_shoot_pod_gap_p95_ms_lt: 1500,
      server_kill_broken_connections_total_eq: 0, server_silent_broken_connections_total_eq: 0,
    });
    expect(t.checks.map((c) => [c.target, c.value, c.met])).toEqual([
      ['killed_shoot_pod_gap_p95_ms_lt', 999, true],
      ['frozen_shoot_pod_gap_p95_ms_lt', 1499, true],
      ['server_kill_broken_connections_total_eq', 0, true],
      ['server_silent_broken_connections_total_eq', 0, true],
    ]);
  });

  it('one slow run of five misses a p95 target (nearest rank: the max), and the limit itself is a miss', () => {
    const s = passing();
    s.shoot_pod_kill = summarize(runs('shoot_pod_kill', [131, 120, 150, 140, 1000]));
    const t = evaluateTargets(s);
    expect(t.met).toBe(false);
    expect(t.checks.filter((c) => !c.met).map((c) => c.target)).toEqual(['killed_shoot_pod_gap_p95_ms_lt']);
  });

  it('one broken connection in any seed-server run misses its target', () => {
    const s = passing();
    s.server_silent = summarize(runs('server_silent', [600, 611, 590, 620, 605], (i) => ({ broken_connections: i === 3 ? 1 : 0 })));
    const t = evaluateTargets(s);
    expect(t.met).toBe(false);
    expect(t.checks.find((c) => c.target === 'server_silent_broken_connections_total_eq')).toMatchObject({ value: 1, met: false });
  });

  it('a scenario without runs is a miss, not a pass', () => {
    const s: Record<string, ScenarioSummary | undefined> = passing();
    delete s.shoot_pod_frozen;
    const t = evaluateTargets(s);
    expect(t.met).toBe(false);
    expect(t.checks.find((c) => c.scenario === 'shoot_pod_frozen')).toMatchObject({ value: null, met: false });
  });
});

describe('runMisses: the targets a single run misses on its own', () => {
  it('names the gap target of a slow shoot-pod run and the broken-connection target of a seed-server run', () => {
    expect(runMisses(run('shoot_pod_kill', 1, { gap_ms: 999 }))).toEqual([]);
    expect(runMisses(run('shoot_pod_kill', 2, { gap_ms: 1000 }))).toEqual(['killed_shoot_pod_gap_p95_ms_lt']);
    expect(runMisses(run('shoot_pod_frozen', 1, { gap_ms: 3249 }))).toEqual(['frozen_shoot_pod_gap_p95_ms_lt']);
    expect(runMisses(run('server_kill', 1, { gap_ms: 4508, broken_connections: 1 }))).toEqual(['server_kill_broken_connections_total_eq']);
    expect(runMisses(run('server_silent', 1, { broken_connections: 0 }))).toEqual([]);
  });

  it('a scenario without targets has nothing to miss, and a broken flow of a killed shoot pod is allowed', () => {
    expect(runMisses(run('rolling_restart', 1, { gap_ms: 9000, broken_connections: 2 }))).toEqual([]);
    expect(runMisses(run('shoot_pod_kill', 1, { gap_ms: 300, broken_connections: 1 }))).toEqual([]);
  });
});
