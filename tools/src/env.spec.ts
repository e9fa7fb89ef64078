import { describe, expect, it } from 'vitest';
import { envNumber, EnvSettingError } from './env.js';

describe('envNumber', () => {
  it('unset or empty gives the default', () => {
    expect(envNumber('X', 7, {}, {})).toBe(7);
    expect(envNumber('X', 7, {}, { X: '' })).toBe(7);
    expect(envNumber('X', 7, {}, { X: '  ' })).toBe(7);
  });
  it('takes whole numbers, and fractions where allowed', () => {
    expect(envNumber('X', 7, {}, { X: '12' })).toBe(12);
    expect(envNumber('X', 7, {}, { X: ' 3 ' })).toBe(3);
    expect(envNumber('X', 7, { integer: false }, { X: '1.5' })).toBe(1.5);
    expect(envNumber('X', 7, { min: 0 }, { X: '0' })).toBe(0);
  });
  it('refuses what is not a number, a fraction where whole numbers are asked, and values below min', () => {
    for (const [value, opts] of [['abc', {}], ['1.5', {}], ['0', {}], ['-3', {}], ['Infinity', {}], ['NaN', { integer: false }], ['0.05', { integer: false, min: 0.1 }]] as const) {
      expect(() => envNumber('BENCH_ROUNDS', 3, opts, { BENCH_ROUNDS: value })).toThrow(EnvSettingError);
    }
    expect(() => envNumber('BENCH_ROUNDS', 3, {}, { BENCH_ROUNDS: 'three' })).toThrow('BENCH_ROUNDS must be a whole number >= 1, not "three"');
  });
});
