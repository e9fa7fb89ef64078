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
});
