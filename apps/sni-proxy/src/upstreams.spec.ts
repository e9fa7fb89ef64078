import dns from 'node:dns';
import { writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadSniProxyConfig } from '@rvpn/config';
import { cleanup, connectReq, exchange, metric, onCleanup, startProxy, tagServer, VALUE, VALUE_B, waitFor } from './harness.test-helper.js';
import { SniProxy } from './sni-proxy.js';
import { UpstreamResolver, type ResolvedAddress } from './upstreams.js';

afterEach(async () => {
  vi.restoreAllMocks();
  await cleanup();
});

/** Counts the system resolver's lookups of one name (net.connect and our resolver both go through dns.lookup). */
function countLookups(host: string): () => number {
  const spy = vi.spyOn(dns, 'lookup');
  return () => spy.mock.calls.filter((c) => c[0] === host).length;
}

describe('sni-proxy upstream names', () => {
  it('looks an upstream name up when the routes load, not once per CONNECT', async () => {
    const lookups = countLookups('localhost');
    const a = await tagServer('seed-server-a');
    const { proxy } = await startProxy({ connect: { [VALUE]: `localhost:${a}` } });
    expect(lookups()).toBe(1);
    for (let i = 0; i < 5; i++) {
      expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true })).toMatch(/\r\n\r\nseed-server-a\n/);
    }
    expect(lookups()).toBe(1);
  });

  it('looks the names up again when the routes reload', async () => {
    const lookups = countLookups('localhost');
    const a = await tagServer('a');
    const b = await tagServer('b');
    const { proxy, file } = await startProxy({ connect: { [VALUE]: `localhost:${a}` } });
    writeFileSync(file, JSON.stringify({ connect: { [VALUE]: `localhost:${a}`, [VALUE_B]: `localhost:${b}` } }));
    expect(await proxy.reload()).toBe(true);
    await waitFor('the reload\'s lookup', () => lookups() === 2);
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE_B), { untilLine: true })).toMatch(/\r\n\r\nb\n/);
    expect(lookups()).toBe(2);
  });

  it('refuses a route whose name does not resolve (502, counted) and serves it once a retry resolves it', async () => {
    const a = await tagServer('a');
    let resolvable = false;
    const lookup = vi.fn(async (host: string): Promise<ResolvedAddress[]> => {
      if (!resolvable) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return [{ address: '127.0.0.1', family: 4 }];
    });
    const { file } = await startProxy({}); // only for a route file in a cleaned-up directory
    writeFileSync(file, JSON.stringify({ connect: { [VALUE]: `seed.example:${a}` } }));
    const registry = new Registry();
    const proxy = new SniProxy(loadSniProxyConfig({ ROUTES_FILE: file, LISTEN_TLS: '127.0.0.1:0', LISTEN_CONNECT: '127.0.0.1:0', LISTEN_CONNECT_LEGACY: '127.0.0.1:0', STATUS_LISTEN: '127.0.0.1:0' }),
      { logger: pino({ level: 'silent' }), registry, lookup });
    await proxy.start();
    onCleanup(() => proxy.stop());
    expect(metric(await registry.metrics(), 'rvpn_sni_proxy_upstreams_unresolved')).toBe(1);
    expect(metric(await registry.metrics(), 'rvpn_sni_proxy_upstream_lookups_total', { result: 'error', cause: 'routes' })).toBe(1);
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE))).toMatch(/^HTTP\/1\.1 502/);
    expect(metric(await registry.metrics(), 'rvpn_sni_proxy_refused_total', { reason: 'upstream_unresolved' })).toBe(1);
    // refused at once within the retry interval: the connection did not cost a lookup
    expect(lookup).toHaveBeenCalledTimes(1);
    resolvable = true;
    await waitFor('the background retry', async () => metric(await registry.metrics(), 'rvpn_sni_proxy_upstreams_unresolved') === 0, 5000);
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true })).toMatch(/\r\n\r\na\n/);
  });
});

describe('sni-proxy upstream names, slow resolver', () => {
  it('answers 504 when a lookup the connection waits for outlasts UPSTREAM_DIAL_TIMEOUT', async () => {
    let calls = 0;
    // the load fails; the retry after a second never answers
    const lookup = (host: string) => (calls++ === 0 ? Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })) : new Promise<ResolvedAddress[]>(() => undefined));
    const { file } = await startProxy({});
    writeFileSync(file, JSON.stringify({ connect: { [VALUE]: 'seed.example:1194' } }));
    const registry = new Registry();
    const proxy = new SniProxy(loadSniProxyConfig({ ROUTES_FILE: file, LISTEN_TLS: '127.0.0.1:0', LISTEN_CONNECT: '127.0.0.1:0', LISTEN_CONNECT_LEGACY: '127.0.0.1:0', STATUS_LISTEN: '127.0.0.1:0', UPSTREAM_DIAL_TIMEOUT: '300ms' }),
      { logger: pino({ level: 'silent' }), registry, lookup });
    await proxy.start();
    onCleanup(() => proxy.stop());
    await new Promise((r) => setTimeout(r, 1100));
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE))).toMatch(/^HTTP\/1\.1 504/);
    expect(metric(await registry.metrics(), 'rvpn_sni_proxy_refused_total', { reason: 'upstream_timeout' })).toBe(1);
  });
});

describe('UpstreamResolver', () => {
  const A: ResolvedAddress[] = [{ address: '10.0.0.1', family: 4 }];
  const B: ResolvedAddress[] = [{ address: '10.0.0.2', family: 4 }];
  function setup() {
    let t = 0;
    let answer: ResolvedAddress[] | Error = A;
    const lookup = vi.fn(async () => {
      if (answer instanceof Error) throw answer;
      return answer;
    });
    const r = new UpstreamResolver({ lookup, ttlMs: 30_000, retryMs: 1000, now: () => t });
    onCleanup(() => r.stop());
    return { r, lookup, advance: (ms: number) => { t += ms; }, answer: (a: ResolvedAddress[] | Error) => { answer = a; } };
  }

  it('never looks up an IP literal', async () => {
    const { r, lookup } = setup();
    await r.load(['10.1.0.20', 'fd00::1']);
    expect(await r.resolve('10.1.0.20')).toBeUndefined();
    expect(lookup).not.toHaveBeenCalled();
  });

  it('serves the cached addresses until the TTL, then refreshes beside the connection that found them expired', async () => {
    const { r, lookup, advance, answer } = setup();
    await r.load(['seed.example']);
    expect(await r.resolve('seed.example')).toEqual(A);
    advance(29_000);
    expect(await r.resolve('seed.example')).toEqual(A);
    expect(lookup).toHaveBeenCalledTimes(1);
    answer(B);
    advance(2000);
    expect(await r.resolve('seed.example')).toEqual(A); // stale, while the refresh runs
    await vi.waitFor(() => expect(lookup).toHaveBeenCalledTimes(2));
    expect(await r.resolve('seed.example')).toEqual(B);
  });

  it('after a failed dial the next connection waits for a fresh lookup, at most once per retry interval', async () => {
    const { r, lookup, advance, answer } = setup();
    await r.load(['seed.example']);
    answer(B);
    r.dialFailed('seed.example'); // just resolved: an upstream that is down costs no lookup per connection
    expect(await r.resolve('seed.example')).toEqual(A);
    advance(1000);
    r.dialFailed('seed.example');
    expect(await r.resolve('seed.example')).toEqual(B);
    expect(lookup).toHaveBeenCalledTimes(2);
  });

  it('keeps the old addresses when a refresh fails, and refuses a name that never resolved without a lookup per connection', async () => {
    const { r, lookup, advance, answer } = setup();
    answer(Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' }));
    expect((await r.load(['gone.example'])).map((f) => f.host)).toEqual(['gone.example']);
    await expect(r.resolve('gone.example')).rejects.toThrow('ENOTFOUND');
    await expect(r.resolve('gone.example')).rejects.toThrow('ENOTFOUND');
    expect(lookup).toHaveBeenCalledTimes(1);
    advance(1000);
    answer(A);
    expect(await r.resolve('gone.example')).toEqual(A);
    answer(new Error('SERVFAIL'));
    advance(31_000);
    expect(await r.resolve('gone.example')).toEqual(A);
    await vi.waitFor(() => expect(lookup).toHaveBeenCalledTimes(3));
    expect(await r.resolve('gone.example')).toEqual(A);
    expect(r.unresolved).toEqual([]);
  });
});
