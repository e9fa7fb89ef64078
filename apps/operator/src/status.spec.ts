/** Status semantics (apimachinery's SetStatusCondition) and the no-write rule, table by table. */
import { describe, expect, it } from 'vitest';
import { nextStatus, setCondition, statusPatch, type Condition } from './status.js';

const t0 = new Date('2026-01-01T00:00:00.123Z');
const t1 = new Date('2026-01-01T00:05:00.456Z');

describe('setCondition', () => {
  it('moves lastTransitionTime only when the status moves; reason, message and observedGeneration follow every time', () => {
    const c1 = setCondition([], { type: 'Ready', status: 'True', reason: 'Applied', message: 'a' }, 1, t0);
    expect(c1).toEqual([{ type: 'Ready', status: 'True', reason: 'Applied', message: 'a', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 }]);
    const same = setCondition(c1, { type: 'Ready', status: 'True', reason: 'Applied', message: 'b' }, 2, t1);
    expect(same[0]).toMatchObject({ message: 'b', observedGeneration: 2, lastTransitionTime: '2026-01-01T00:00:00Z' });
    const moved = setCondition(same, { type: 'Ready', status: 'False', reason: 'SpecInvalid', message: 'c' }, 3, t1);
    expect(moved[0]).toMatchObject({ status: 'False', lastTransitionTime: '2026-01-01T00:05:00Z' });
  });
});

describe('status writes', () => {
  const ready: Condition = { type: 'Ready', status: 'True', reason: 'Applied', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 };
  it('an unchanged status is no patch at all, whatever the clock says', () => {
    const current = { observedGeneration: 1, reversed: true, conditions: [ready] };
    const next = nextStatus(current, { generation: 1, fields: { reversed: true }, conditions: [{ type: 'Ready', status: 'True', reason: 'Applied', message: 'm' }] }, t1);
    expect(statusPatch(current, next)).toBeUndefined();
  });
  it('a change is a merge patch with the whole status; removed fields and dropped conditions go', () => {
    const current = { observedGeneration: 1, reversed: true, ha: false, conditions: [ready, { ...ready, type: 'ShootApplied' as const }] };
    const next = nextStatus(current, { generation: 2, fields: { ha: undefined }, conditions: [{ type: 'TunnelConnected', status: 'Unknown', reason: 'NoServerStatus', message: 'x' }], drop: ['ShootApplied'] }, t1);
    expect(statusPatch(current, next)).toEqual({
      observedGeneration: 2, reversed: true, ha: null,
      conditions: [ready, { type: 'TunnelConnected', status: 'Unknown', reason: 'NoServerStatus', message: 'x', lastTransitionTime: '2026-01-01T00:05:00Z', observedGeneration: 2 }],
    });
  });
});
