import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createIntervalLog, OVERFLOW_KEY, type LevelLogger } from './interval-log.js';

function recorder() {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  const logger: LevelLogger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { lines, logger };
}

describe('createIntervalLog', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('logs the first event at once and a flood as one summary line per interval', () => {
    const { lines, logger } = recorder();
    const l = createIntervalLog({ logger, intervalMs: 1000 });
    l.log('refused:per_source', { reason: 'per_source', n: 0 }, 'connection refused');
    expect(lines).toEqual([{ level: 'warn', obj: { reason: 'per_source', n: 0 }, msg: 'connection refused' }]);
    // 10 s of 1,000 events per second
    for (let s = 0; s < 10; s++) {
      for (let i = 1; i <= 1000; i++) l.log('refused:per_source', { reason: 'per_source', n: s * 1000 + i }, 'connection refused');
      vi.advanceTimersByTime(1000);
    }
    expect(lines).toHaveLength(11);
    expect(lines[1]).toEqual({ level: 'warn', obj: { reason: 'per_source', n: 1000, suppressed: 1000, intervalMs: 1000 }, msg: 'connection refused' });
    expect(lines.slice(1).reduce((sum, x) => sum + (x.obj.suppressed as number), 0)).toBe(10_000);
    // a quiet interval closes the key: the next event is logged at once again
    vi.advanceTimersByTime(2000);
    l.log('refused:per_source', { reason: 'per_source' }, 'connection refused');
    expect(lines).toHaveLength(12);
    expect(lines[11]!.obj).toEqual({ reason: 'per_source' });
    l.stop();
  });

  it('keeps keys apart, uses the given level, and emits pending summaries on stop', () => {
    const { lines, logger } = recorder();
    const l = createIntervalLog({ logger, level: 'info', intervalMs: 60_000 });
    l.log('a', {}, 'A');
    l.log('b', {}, 'B');
    l.log('a', {}, 'A');
    l.log('a', {}, 'A');
    expect(lines.map((x) => x.msg)).toEqual(['A', 'B']);
    l.stop();
    expect(lines.map((x) => [x.level, x.msg, x.obj.suppressed])).toEqual([['info', 'A', undefined], ['info', 'B', undefined], ['info', 'A', 2]]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('holds bounded state when keys are many (they share one overflow key)', () => {
    const { lines, logger } = recorder();
    const l = createIntervalLog({ logger, intervalMs: 1000, maxKeys: 4 });
    for (let i = 0; i < 10_000; i++) l.log(`k${i}`, { i }, 'event');
    expect(lines).toHaveLength(5); // k0..k3 and the first overflow
    expect(lines[4]!.obj).toEqual({ i: 4, overflow: true });
    vi.advanceTimersByTime(1000);
    expect(lines).toHaveLength(6);
    expect(lines[5]!.obj).toMatchObject({ overflow: true, suppressed: 10_000 - 5 });
    void OVERFLOW_KEY;
    l.stop();
  });

  it('stops its timer when every key went quiet (nothing keeps the process alive)', () => {
    const { logger } = recorder();
    const l = createIntervalLog({ logger, intervalMs: 1000 });
    l.log('a', {}, 'A');
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(1000);
    expect(vi.getTimerCount()).toBe(0);
  });
});
