import { describe, expect, it } from 'vitest';
import { lazyComponent } from './run-main.js';

describe('lazyComponent', () => {
  it('loads its component on the first start only, and a stop before any start loads nothing', async () => {
    const calls: string[] = [];
    const c = lazyComponent(async () => {
      calls.push('load');
      return { start: async () => void calls.push('start'), stop: async () => void calls.push('stop') };
    });
    await c.stop();
    expect(calls).toEqual([]);
    await c.start();
    await c.stop();
    expect(calls).toEqual(['load', 'start', 'stop']);
  });

  it('a failed load fails start(), as a constructor error would', async () => {
    const c = lazyComponent(() => Promise.reject(Object.assign(new Error('bad'), { code: 'RVPN_ERR_X' })));
    await expect(c.start()).rejects.toMatchObject({ code: 'RVPN_ERR_X' });
  });
});
