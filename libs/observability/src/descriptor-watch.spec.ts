import { describe, expect, it } from 'vitest';
import { watchDescriptors } from './descriptor-watch.js';

describe('watchDescriptors', () => {
  it('reports exhaustion on every failing probe and recovery once', async () => {
    let failing = false;
    const events: string[] = [];
    const w = watchDescriptors({
      intervalMs: 10,
      probe: () => {
        if (failing) throw Object.assign(new Error('too many open files'), { code: 'EMFILE' });
      },
      onExhausted: (code) => events.push(code),
      onRecovered: () => events.push('recovered'),
    });
    await new Promise((r) => setTimeout(r, 35));
    failing = true;
    await new Promise((r) => setTimeout(r, 35));
    expect(w.exhausted).toBe(true);
    failing = false;
    await new Promise((r) => setTimeout(r, 35));
    w.stop();
    expect(w.exhausted).toBe(false);
    expect(events.filter((e) => e === 'EMFILE').length).toBeGreaterThan(0);
    expect(events.filter((e) => e === 'recovered')).toHaveLength(1);
    expect(events[events.length - 1]).toBe('recovered');
  });
});
