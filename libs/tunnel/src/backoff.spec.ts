import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

describe('backoffDelay', () => {
  const opts = { minMs: 100, maxMs: 5000 };
  it('grows exponentially and is capped', () => {
    expect(backoffDelay(0, { ...opts, random: () => 1 })).toBe(100);
    expect(backoffDelay(3, { ...opts, random: () => 1 })).toBe(800);
    expect(backoffDelay(50, { ...opts, random: () => 1 })).toBe(5000);
  });
  it('jitters between half the minimum and the ceiling', () => {
    expect(backoffDelay(4, { ...opts, random: () => 0 })).toBe(50);
    const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(6, opts)));
    expect(seen.size).toBeGreaterThan(10);
    for (const d of seen) expect(d).toBeLessThanOrEqual(5000);
  });
});
