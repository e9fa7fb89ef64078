import { describe, expect, it } from 'vitest';
import { mean, median, nearestRank, round } from './stats.js';

describe('stats', () => {
  it('median of odd and even counts, unsorted input left as it was', () => {
    const xs = [5, 1, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
  it('mean, round and nearest-rank percentiles', () => {
    expect(mean([1, 2, 6])).toBe(3);
    expect(mean([])).toBeNaN();
    expect(round(1.23456, 2)).toBe(1.23);
    expect(round(2.0005)).toBe(2.001);
    const runs = [10, 50, 20, 40, 30];
    expect(nearestRank(runs, 50)).toBe(30);
    expect(nearestRank(runs, 95)).toBe(50);
    expect(nearestRank(Array.from({ length: 100 }, (_, i) => i + 1), 99)).toBe(99);
    expect(nearestRank([], 99)).toBeNaN();
    expect(() => nearestRank(runs, 0)).toThrow(RangeError);
  });
});
