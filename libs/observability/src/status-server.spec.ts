import { describe, expect, it } from 'vitest';
import { connect } from 'node:net';
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

  it('answers as fastify did: HEAD beside GET, a JSON 404 for other methods and paths, a JSON 500 when a check throws, keep-alive 72 s', async () => {
    const registry = new Registry();
    const s = createStatusServer({
      host: '127.0.0.1', port: 0, registry,
      live: () => ({ ok: true }),
      ready: () => {
        throw new Error('check failed');
      },
    });
    const { port } = await s.start();
    try {
      const base = `http://127.0.0.1:${port}`;
      const get = await fetch(`${base}/healthz`);
      expect(get.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(get.headers.get('keep-alive')).toBe('timeout=72');
      expect(await get.text()).toBe('{"ok":true}');
      const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
      expect([head.status, head.headers.get('content-length'), await head.text()]).toEqual([200, '11', '']);
      const metrics = await fetch(`${base}/metrics?debug=1`);
      expect([metrics.status, metrics.headers.get('content-type')]).toEqual([200, registry.contentType]);
      for (const [method, path] of [['GET', '/nope'], ['POST', '/healthz'], ['GET', '/healthz/'], ['GET', '/HEALTHZ']] as const) {
        const r = await fetch(`${base}${path}`, { method });
        expect(r.status, `${method} ${path}`).toBe(404);
        expect(await r.json()).toEqual({ message: `Route ${method}:${path} not found`, error: 'Not Found', statusCode: 404 });
      }
      const failed = await fetch(`${base}/readyz`);
      expect(failed.status).toBe(500);
      expect(await failed.json()).toEqual({ statusCode: 500, error: 'Internal Server Error', message: 'check failed' });
    } finally {
      await s.stop();
    }
  });

  it('fails start() on a port in use, and stop() closes the listener (also before any start)', async () => {
    const opts = { host: '127.0.0.1', port: 0, registry: new Registry(), live: () => ({ ok: true }), ready: () => ({ ok: true }) };
    const a = createStatusServer(opts);
    await createStatusServer(opts).stop();
    const { port } = await a.start();
    await expect(createStatusServer({ ...opts, port }).start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await a.stop();
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('speaks HTTP/1.1 on a raw socket as node:http did: pipelining in order, Connection: close, HTTP/1.0, 400, 431, a body closes the connection, stop() closes idle and half-sent requests', async () => {
    const s = createStatusServer({ host: '127.0.0.1', port: 0, registry: new Registry(), live: () => ({ ok: true }), ready: async () => ({ ok: false }) });
    const { port } = await s.start();
    /** Sends raw bytes and collects everything until the server closes (or `untilMs` passes). */
    const exchange = (data: string, untilMs = 2000) => new Promise<{ text: string; closed: boolean }>((resolve) => {
      const c = connect(port, '127.0.0.1', () => c.write(data));
      let text = '';
      c.setEncoding('latin1');
      c.on('data', (d: string) => (text += d));
      const t = setTimeout(() => { c.destroy(); resolve({ text, closed: false }); }, untilMs);
      c.on('close', () => { clearTimeout(t); resolve({ text, closed: true }); });
      c.on('error', () => undefined);
    });
    const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    try {
      const piped = await exchange('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(statuses(piped.text)).toEqual([200, 503, 404]);
      expect(piped.closed).toBe(true);
      const old = await exchange('GET /healthz HTTP/1.0\r\n\r\n');
      expect([statuses(old.text), old.closed]).toEqual([[200], true]);
      expect(old.text).toMatch(/\r\n\r\n\{"ok":true\}$/);
      const keep = await exchange('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 300);
      expect([statuses(keep.text), keep.closed]).toEqual([[200], false]);
      const withBody = await exchange('POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n');
      expect([statuses(withBody.text), withBody.closed]).toEqual([[404], true]);
      expect(statuses((await exchange('NOT HTTP\r\n\r\n')).text)).toEqual([400]);
      expect(statuses((await exchange(`GET /healthz HTTP/1.1\r\nX-Big: ${'a'.repeat(20_000)}`)).text)).toEqual([431]);
      // stop() does not wait for a client that sent half a request or sits idle on keep-alive
      const half = exchange('GET /heal', 5000);
      const idle = exchange('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 5000);
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      await s.stop();
      expect(Date.now() - t0).toBeLessThan(1000);
      expect((await half).closed).toBe(true);
      expect(statuses((await idle).text)).toEqual([200]);
    } finally {
      await s.stop();
    }
  });
});
