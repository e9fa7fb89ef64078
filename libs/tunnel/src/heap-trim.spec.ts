import { describe, expect, it } from 'vitest';
import { HeapTrimmer, nativeMallocTrim, withHeapTrim, type HeapTrimDeps } from './heap-trim.js';

const MiB = 1024 * 1024;

/** A process whose clock, CPU time and RSS the test moves; trim() drops RSS to `afterTrim`. */
function fakeProcess(rss = 40 * MiB) {
  const p = { t: 0, cpu: 0, rss, afterTrim: rss, trims: 0 };
  const deps: HeapTrimDeps = {
    now: () => p.t,
    cpuMicros: () => p.cpu,
    rss: () => p.rss,
    trim: () => {
      p.trims++;
      const released = p.rss > p.afterTrim;
      p.rss = p.afterTrim;
      return released;
    },
  };
  /** `ms` pass, `cpuMs` of them on the CPU. */
  const pass = (ms: number, cpuMs: number) => {
    p.t += ms;
    p.cpu += cpuMs * 1000;
  };
  return { p, deps, pass };
}

describe('HeapTrimmer', () => {
  it('trims once after a busy spell that grew the heap, not during it, and not again while idle', () => {
    const { p, deps, pass } = fakeProcess();
    const events: number[] = [];
    const t = new HeapTrimmer({ intervalMs: 10_000, onTrim: (e) => events.push(e.rssBefore - e.rssAfter) }, deps);
    // traffic: 60 % of a CPU, the heap grows by 30 MiB
    pass(10_000, 6000);
    p.rss += 30 * MiB;
    expect(t.check()).toBeUndefined();
    expect(p.trims).toBe(0);
    // the burst is over: the next quiet interval trims
    p.afterTrim = 41 * MiB;
    pass(10_000, 50);
    const ev = t.check();
    expect(ev).toMatchObject({ rssBefore: 70 * MiB, rssAfter: 41 * MiB, released: true });
    expect(p.trims).toBe(1);
    // idle and no growth: nothing more
    for (let i = 0; i < 5; i++) {
      pass(10_000, 50);
      expect(t.check()).toBeUndefined();
    }
    expect(p.trims).toBe(1);
    expect(t.trims).toBe(1);
    expect(t.freedBytes).toBe(29 * MiB);
    expect(events).toEqual([29 * MiB]);
  });

  it('leaves a quiet process that grew less than minGrowthBytes alone, and counts growth from its lowest RSS', () => {
    const { p, deps, pass } = fakeProcess();
    const t = new HeapTrimmer({ minGrowthBytes: 4 * MiB }, deps);
    p.rss += 3 * MiB;
    pass(10_000, 10);
    expect(t.check()).toBeUndefined();
    // it shrank on its own below where it started: growth counts from there
    p.rss = 30 * MiB;
    pass(10_000, 10);
    expect(t.check()).toBeUndefined();
    p.rss = 35 * MiB;
    p.afterTrim = 31 * MiB;
    pass(10_000, 10);
    expect(t.check()?.rssAfter).toBe(31 * MiB);
  });

  it('a trim that releases nothing (no glibc) still moves the mark, so it is not retried every tick', () => {
    const { p, deps, pass } = fakeProcess();
    const t = new HeapTrimmer({}, { ...deps, trim: () => (p.trims++, false) });
    p.rss += 10 * MiB;
    pass(10_000, 10);
    expect(t.check()?.released).toBe(false);
    pass(10_000, 10);
    expect(t.check()).toBeUndefined();
    expect(p.trims).toBe(1);
  });

  it('a tick that cannot read RSS (out of descriptors: EMFILE on /proc/self/stat) is skipped, never thrown', () => {
    const { p, deps, pass } = fakeProcess();
    let emfile = false;
    const t = new HeapTrimmer({}, { ...deps, rss: () => { if (emfile) throw Object.assign(new Error('EMFILE: too many open files, uv_resident_set_memory'), { code: 'EMFILE' }); return p.rss; } });
    emfile = true;
    p.rss += 10 * MiB;
    pass(10_000, 10);
    expect(() => t.check()).not.toThrow();
    expect(p.trims).toBe(0);
    // descriptors are back: the next quiet tick trims
    emfile = false;
    pass(10_000, 10);
    expect(t.check()?.released).toBe(true);
    // unreadable from the start: no throw, and the first read sets the mark
    emfile = true;
    const t2 = new HeapTrimmer({}, { ...deps, rss: () => { if (emfile) throw new Error('EMFILE'); return p.rss; } });
    emfile = false;
    pass(10_000, 10);
    expect(t2.check()).toBeUndefined();
  });

  it('withHeapTrim starts the trimmer after the component and stops it before', async () => {
    const order: string[] = [];
    const c = withHeapTrim({ start: async () => void order.push('start'), stop: async () => void order.push('stop') }, { debug: () => undefined }, { intervalMs: 60_000 });
    await c.start();
    await c.stop();
    expect(order).toEqual(['start', 'stop']);
  });

  it('the addon calls malloc_trim (glibc: true or false, never a throw)', () => {
    expect(typeof nativeMallocTrim()).toBe('boolean');
  });
});
