import { describe, expect, it } from 'vitest';
import { PathSelector } from './path-selector.js';

describe('PathSelector (fake clock)', () => {
  it('takes the first path that passes, switches after N misses, and holds none when all fail', () => {
    const s = new PathSelector(2, { misses: 3, healthyPeriodMs: 1000 });
    expect(s.current).toBeUndefined();
    expect(s.record(1, true, 0)).toMatchObject({ from: undefined, to: 1 });
    expect(s.record(0, true, 0)).toBeUndefined(); // usable, but the current path is kept
    expect(s.current).toBe(1);
    expect(s.record(1, false, 200)).toBeUndefined();
    expect(s.record(1, false, 400)).toBeUndefined();
    expect(s.record(1, false, 600)).toMatchObject({ from: 1, to: 0, reason: 'path 1 failed 3 probes in a row' });
    for (let t = 800; t <= 1200; t += 200) s.record(0, false, t);
    expect(s.current).toBeUndefined();
  });

  it('uses a recovered path only after the healthy period (a flapping path causes no flapping)', () => {
    const s = new PathSelector(2, { misses: 3, healthyPeriodMs: 1000 });
    s.record(0, true, 0);
    s.record(1, true, 0);
    let t = 0;
    const tick = (i: number, ok: boolean) => s.record(i, ok, (t += 200));
    for (let i = 0; i < 3; i++) tick(0, false);
    expect(s.current).toBe(1);
    // path 0 flaps: passes for 600 ms, fails once, ...: never usable again, no switch
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 3; i++) tick(0, true);
      tick(0, false);
    }
    expect(s.state(0).usable).toBe(false);
    expect(s.switches).toBe(2);
    // then path 1 dies while path 0 is steady for long enough
    for (let i = 0; i < 6; i++) tick(0, true);
    expect(s.state(0).usable).toBe(true);
    expect(s.current).toBe(1); // no fail-back while path 1 is fine
    for (let i = 0; i < 3; i++) tick(1, false);
    expect(s.current).toBe(0);
  });

  it('does not move the routes when every path fails at once (a bond outage), unless it lasts', () => {
    const s = new PathSelector(2, { misses: 3, healthyPeriodMs: 3000, allFailGraceMs: 2000 });
    s.recordRound([{ ok: true }, { ok: true }], 0);
    expect(s.current).toBe(0);
    let t = 0;
    for (let i = 0; i < 6; i++) expect(s.recordRound([{ ok: false }, { ok: false }], (t += 200))).toBeUndefined();
    s.recordRound([{ ok: true }, { ok: true }], (t += 200));
    expect(s.current).toBe(0);
    expect(s.state(0).usable && s.state(1).usable).toBe(true); // no healthy period owed: they never went down
    // a common outage longer than the grace period is real: hold everything
    for (let i = 0; i < 14; i++) s.recordRound([{ ok: false }, { ok: false }], (t += 200));
    expect(s.current).toBeUndefined();
    // a failure of one path only is still acted on at once
    const s2 = new PathSelector(2, { misses: 3, healthyPeriodMs: 3000 });
    s2.recordRound([{ ok: true }, { ok: true }], 0);
    let c;
    for (let i = 1; i <= 3; i++) c = s2.recordRound([{ ok: false }, { ok: true }], i * 200);
    expect(c).toMatchObject({ from: 0, to: 1 });
  });

  it('takes a path down at once when it is known to be gone (its pod left every server)', () => {
    const s = new PathSelector(2, { misses: 3, healthyPeriodMs: 3000 });
    s.recordRound([{ ok: true }, { ok: true }], 0);
    expect(s.markDown(0, 'shoot pod 0 left every seed server')).toMatchObject({ from: 0, to: 1 });
    expect(s.markDown(0, 'again')).toBeUndefined();
    // it comes back only after the healthy period
    s.recordRound([{ ok: true }, { ok: true }], 100);
    expect(s.state(0).usable).toBe(false);
    s.recordRound([{ ok: true }, { ok: true }], 3200);
    expect(s.state(0).usable).toBe(true);
  });
});
