import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as prom from 'prom-client';
import { describe, expect, it } from 'vitest';
import { collectDefaultMetrics, Counter, Registry } from './metrics.js';

async function shape(r: prom.Registry | Registry) {
  const metrics = await r.getMetricsAsJSON();
  return metrics.map((m) => ({ name: m.name, help: m.help, type: m.type, labels: [...new Set(m.values.flatMap((v) => Object.keys(v.labels)))].sort() }));
}

describe('metrics without prom-client\'s index', () => {
  it('collectDefaultMetrics registers what prom-client\'s registers: names, help, types and labels, in order', async () => {
    const ours = new Registry();
    collectDefaultMetrics({ register: ours, prefix: 'x_' });
    const theirs = new prom.Registry();
    prom.collectDefaultMetrics({ register: theirs, prefix: 'x_' });
    expect(await shape(ours)).toEqual(await shape(theirs));
  });

  it('counts process CPU seconds from process.cpuUsage(), user + system = total', async () => {
    const r = new Registry();
    collectDefaultMetrics({ register: r });
    // 30 ms of this process's own CPU time, however busy the machine is
    const u0 = process.cpuUsage().user;
    while (process.cpuUsage().user - u0 < 30_000) Math.sqrt(Math.random());
    const text = await r.metrics();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    const user = value('process_cpu_user_seconds_total');
    const system = value('process_cpu_system_seconds_total');
    expect(user).toBeGreaterThanOrEqual(0.03);
    expect(value('process_cpu_seconds_total')).toBeCloseTo(user + system, 6);
  });

  it('gives the classes prom-client\'s index gives (one code, one behaviour)', () => {
    expect(Counter).toBe(prom.Counter);
    expect(Registry).toBe(prom.Registry);
  });

  it('loads neither @opentelemetry/api nor node:http (the memory the index costs)', () => {
    // the built module (the test target builds first), in a process of its own
    const dist = fileURLToPath(new URL('../dist/metrics.js', import.meta.url));
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
      const m = await import(${JSON.stringify(dist)});
      m.collectDefaultMetrics({ register: new m.Registry() });
      const { createRequire } = await import('node:module');
      const cache = Object.keys(createRequire(import.meta.url).cache);
      console.log(JSON.stringify({ otel: cache.some((k) => k.includes('@opentelemetry')), prom: cache.filter((k) => k.includes('prom-client')).length, http: process.moduleLoadList.includes('NativeModule http') }));
    `]).toString();
    expect(JSON.parse(out)).toEqual({ otel: false, prom: expect.any(Number), http: false });
    expect(JSON.parse(out).prom).toBeGreaterThan(5);
  });
});
