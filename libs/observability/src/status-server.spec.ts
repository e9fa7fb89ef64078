import { describe, expect, it } from 'vitest';
import { Counter, Registry } from 'prom-client';
import { createStatusServer } from './status-server.js';

describe('status server', () => {
  it('serves liveness, readiness with checks, and metrics', async () => {
    const registry = new Registry();
    new Counter({ name: 'rvpn_test_things_total', help: 'things', registers: [registry] }).inc(3);
    let ready = false;
    const s = createStatusServer({
      host: '127.0.0.1', port: 0, registry,
      live: () => ({ ok: true }),
      ready: () => ({ ok: ready, checks: { tunnel: { ok: ready, detail: ready ? 'up' : 'no client' } } }),
    });
    const { port } = await s.start();
    try {
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const r1 = await fetch(`${base}/readyz`);
      expect(r1.status).toBe(503);
      expect(await r1.json()).toEqual({ ok: false, checks: { tunnel: { ok: false, detail: 'no client' } } });
      ready = true;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/rvpn_test_things_total 3/);
    } finally {
      await s.stop();
    }
  });
});
