/**
 * sni-proxy under hostile input: every cap (across listeners, per source with IPv4-mapped addresses
 * and IPv6 /64s, per route, pending in total and per source), one deadline before routing, a refused
 * TLS client released, PROXY protocol claims believed only from trusted peers, 502/504 bodies that name
 * no upstream, refusals logged once per interval, post-quantum ClientHellos admitted.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeProxyV1, encodeProxyV2 } from '@rvpn/proxy';
import { GO_MLKEM_CLIENTHELLO, GO_MLKEM_CLIENTHELLO_SNI, encodeClientHello, fromRecords, toRecords } from '@rvpn/proxy/testing';
import { cleanup, connectReq, exchange, metric, onCleanup, server, sleep, startProxy, tagServer, VALUE, VALUE_B, waitFor } from './harness.test-helper.js';

afterEach(cleanup);

/** A client socket kept open by the test (closed in cleanup); resolves once connected. */
async function open(port: number, opts: { localAddress?: string; host?: string; allowHalfOpen?: boolean } = {}) {
  const s = net.connect({ port, host: opts.host ?? '127.0.0.1', allowHalfOpen: opts.allowHalfOpen ?? false, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
  s.on('error', () => undefined);
  onCleanup(() => s.destroy());
  await new Promise<void>((r, j) => { s.once('connect', r); s.once('error', j); });
  let got = '';
  s.on('data', (d) => (got += d.toString('latin1')));
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  return { s, got: () => got, closed };
}

/** A CONNECT that stays piped (the upstream echoes); resolves once the 200 and the tag arrived. */
async function piped(port: number, header: string, value: string, opts: { localAddress?: string; prefix?: Buffer } = {}) {
  const c = await open(port, opts);
  c.s.write(Buffer.concat([opts.prefix ?? Buffer.alloc(0), Buffer.from(connectReq(header, value))]));
  await waitFor('the tunnel', () => /\r\n\r\n.+\n/.test(c.got()) || c.s.destroyed, 3000);
  return c;
}

const isOpen = async (c: { s: net.Socket }) => {
  await sleep(100);
  return !c.s.destroyed && c.s.readyState === 'open';
};

describe('sni-proxy caps', () => {
  it('MAX_CONNECTIONS holds across the three listeners (it was per listener)', async () => {
    const a = await tagServer('a');
    const { proxy, registry } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${a}` } }, { MAX_CONNECTIONS: '4' });
    await piped(proxy.ports.connect!, 'X-Gardener-Destination', VALUE);
    await piped(proxy.ports.connect!, 'X-Gardener-Destination', VALUE);
    await piped(proxy.ports['connect-legacy']!, 'Reversed-VPN', VALUE);
    await piped(proxy.ports['connect-legacy']!, 'Reversed-VPN', VALUE);
    expect(proxy.connections).toBe(4);
    const fifth = await open(proxy.ports.tls!);
    await fifth.closed;
    expect(metric(await registry.metrics(), 'rvpn_sni_proxy_refused_total', { listener: 'tls', reason: 'max_connections' })).toBe(1);
    expect(metric(await registry.metrics(), 'rvpn_sni_proxy_connection_limit_connections', { limit: 'total' })).toBe(4);
  });

  it('caps connections per source; another source is still served', async () => {
    const a = await tagServer('a');
    const { proxy, registry } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${a}` } }, { MAX_CONNECTIONS_PER_SOURCE: '3' });
    for (let i = 0; i < 3; i++) await piped(proxy.ports.connect!, 'X-Gardener-Destination', VALUE);
    const fourth = await open(proxy.ports.connect!);
    await fourth.closed;
    expect(fourth.got()).toBe('');
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true, localAddress: '127.0.0.2' })).toMatch(/\r\n\r\na\n/);
    const m = await registry.metrics();
    expect(metric(m, 'rvpn_sni_proxy_refused_total', { reason: 'per_source' })).toBe(1);
    expect(metric(m, 'rvpn_sni_proxy_connection_limit_connections', { limit: 'per_source' })).toBe(3);
  });

  it('counts IPv4-mapped IPv6 as IPv4 and IPv6 per /64 (sources named by a trusted PROXY header)', async () => {
    const a = await tagServer('a');
    const { proxy, registry } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${a}` } }, { MAX_CONNECTIONS_PER_SOURCE: '2', PROXY_PROTOCOL: 'required', PROXY_PROTOCOL_TRUSTED_NETWORKS: '127.0.0.0/8' });
    const dst = { address: '198.18.0.10', port: 8443 };
    const via = (address: string, v2 = false) => {
      const src = { address, port: 40000 };
      return v2 ? encodeProxyV2(src, address.includes(':') ? { address: '2001:db8:ffff::1', port: 8443 } : dst) : encodeProxyV1(src, address.includes(':') ? { address: '2001:db8:ffff::1', port: 8443 } : dst);
    };
    const p = proxy.ports.connect!;
    const ok = (c: { got: () => string }) => /\r\n\r\na\n/.test(c.got());
    // one IPv4 source, spelt three ways
    expect(ok(await piped(p, 'X-Gardener-Destination', VALUE, { prefix: via('203.0.113.9') }))).toBe(true);
    expect(ok(await piped(p, 'X-Gardener-Destination', VALUE, { prefix: via('::ffff:203.0.113.9', true) }))).toBe(true);
    expect(ok(await piped(p, 'X-Gardener-Destination', VALUE, { prefix: via('::ffff:cb00:7109') }))).toBe(false);
    // one IPv6 /64, two hosts in it, a third refused; the next /64 is another source
    expect(ok(await piped(p, 'X-Gardener-Destination', VALUE, { prefix: via('2001:db8:0:1::1', true) }))).toBe(true);
    expect(ok(await piped(p, 'X-Gardener-Destination', VALUE, { prefix: via('2001:db8:0:1:ffff::2') }))).toBe(true);
    expect(ok(await piped(p, 'X-Gardener-Destination', VALUE, { prefix: via('2001:db8:0:1:8000::3', true) }))).toBe(false);
    expect(ok(await piped(p, 'X-Gardener-Destination', VALUE, { prefix: via('2001:db8:0:2::1') }))).toBe(true);
    expect(metric(await registry.metrics(), 'rvpn_sni_proxy_refused_total', { reason: 'per_source' })).toBe(2);
    expect(metric(await registry.metrics(), 'rvpn_sni_proxy_sources')).toBe(3);
  });

  it('caps piped connections per route with 503; other routes go on', async () => {
    const a = await tagServer('a');
    const b = await tagServer('b');
    const { proxy, registry } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${a}`, [VALUE_B]: `127.0.0.1:${b}` } }, { MAX_CONNECTIONS_PER_ROUTE: '2' });
    await piped(proxy.ports.connect!, 'X-Gardener-Destination', VALUE);
    await piped(proxy.ports['connect-legacy']!, 'Reversed-VPN', VALUE);
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE))).toMatch(/^HTTP\/1\.1 503 /);
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE_B), { untilLine: true })).toMatch(/\r\n\r\nb\n/);
    expect(metric(await registry.metrics(), 'rvpn_sni_proxy_refused_total', { reason: 'per_route' })).toBe(1);
  });

  it('caps connections that have not named their route, per source and in total', async () => {
    const a = await tagServer('a');
    const { proxy, registry } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${a}` } }, { MAX_PENDING_CONNECTIONS_PER_SOURCE: '3', MAX_PENDING_CONNECTIONS: '5' });
    const idle = [];
    for (let i = 0; i < 3; i++) idle.push(await open(proxy.ports.tls!));
    await waitFor('three pending', () => metric2(registry, 'rvpn_sni_proxy_pending_connections', 3));
    const fourth = await open(proxy.ports.connect!);
    await fourth.closed;
    // another source takes the two pending slots left, then the total is reached for everyone
    idle.push(await open(proxy.ports.connect!, { localAddress: '127.0.0.2' }), await open(proxy.ports.connect!, { localAddress: '127.0.0.2' }));
    await waitFor('five pending', () => metric2(registry, 'rvpn_sni_proxy_pending_connections', 5));
    const sixth = await open(proxy.ports.connect!, { localAddress: '127.0.0.3' });
    await sixth.closed;
    const m = await registry.metrics();
    expect(metric(m, 'rvpn_sni_proxy_refused_total', { reason: 'pending_per_source' })).toBe(1);
    expect(metric(m, 'rvpn_sni_proxy_refused_total', { reason: 'pending' })).toBe(1);
    // a routed connection is no longer pending: it frees its slot
    idle[0]!.s.destroy();
    await waitFor('a free slot', () => metric2(registry, 'rvpn_sni_proxy_pending_connections', 4));
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true })).toMatch(/\r\n\r\na\n/);
    expect(await isOpen(idle[1]!)).toBe(true);
  });

  it('gives a client one deadline for PROXY header and request head together', async () => {
    const a = await tagServer('a');
    const { proxy } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${a}` } }, { PROXY_PROTOCOL: 'required', HEADER_TIMEOUT: '400ms' });
    const c = await open(proxy.ports.connect!);
    await sleep(250);
    c.s.write(encodeProxyV1({ address: '203.0.113.9', port: 1 }, { address: '198.18.0.10', port: 8443 }));
    await sleep(250); // 500 ms after connecting: past the deadline, though each phase took less than 400 ms
    c.s.write(connectReq('X-Gardener-Destination', VALUE));
    await c.closed;
    expect(c.got()).toMatch(/^HTTP\/1\.1 408 /);
  });
});

/**
 * A port whose SYNs go unanswered: a child process listens with a backlog of 1 and never accepts (its
 * event loop is blocked), and the accept queue is filled first, so a further dial hangs.
 */
async function blackhole(): Promise<number> {
  const child = spawn(process.execPath, ['-e', `
    const srv = require('node:net').createServer();
    srv.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(String(srv.address().port) + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0));
    });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  onCleanup(() => child.kill('SIGKILL'));
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  for (let i = 0; i < 4; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    onCleanup(() => s.destroy());
  }
  await sleep(200);
  return port;
}

/** Reads a metric until it equals `want`. */
async function metric2(registry: { metrics(): Promise<string> }, name: string, want: number): Promise<boolean> {
  return metric(await registry.metrics(), name) === want;
}

describe('sni-proxy refusals on 443', () => {
  it('releases a client with an unknown or no SNI after the alert, even one that never closes its side', async () => {
    const { proxy, registry } = await startProxy({ sni: {} });
    const hellos = [toRecords(encodeClientHello({ serverName: 'api.unknown.example' }), 16384), toRecords(encodeClientHello({}), 16384)];
    for (const hello of hellos) {
      const c = await open(proxy.ports.tls!, { allowHalfOpen: true }); // a client that never ends its side
      c.s.write(hello);
      await waitFor('the alert', () => c.got().length >= 7);
      expect(Buffer.from(c.got(), 'latin1').subarray(0, 7).toString('hex')).toBe('15030300020270'); // fatal unrecognized_name
      // the proxy lets go after a short linger although the client keeps its side open
      await waitFor('the proxy to let go', async () => metric(await registry.metrics(), 'rvpn_sni_proxy_active_connections') === 0, 3000);
    }
    const m = await registry.metrics();
    expect(metric(m, 'rvpn_sni_proxy_refused_total', { reason: 'unknown_sni' })).toBe(1);
    expect(metric(m, 'rvpn_sni_proxy_refused_total', { reason: 'no_sni' })).toBe(1);
  });

  it('admits post-quantum ClientHellos (Go\'s X25519MLKEM768, 1.5 KB) split over TCP segments and TLS records', async () => {
    let received = Buffer.alloc(0);
    const up = await server((s) => {
      received = Buffer.alloc(0);
      s.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    });
    const { proxy } = await startProxy({ sni: { [GO_MLKEM_CLIENTHELLO_SNI]: `127.0.0.1:${up}` } }, { MAX_HEADER_BYTES: '1024' });
    const hs = fromRecords(GO_MLKEM_CLIENTHELLO);
    for (const wire of [GO_MLKEM_CLIENTHELLO, toRecords(hs, [400, 600]), toRecords(hs, 64)]) {
      const c = await open(proxy.ports.tls!);
      c.s.setNoDelay(true);
      for (let off = 0; off < wire.length; off += 300) { // separate segments
        c.s.write(wire.subarray(off, off + 300));
        await sleep(5);
      }
      await waitFor('the ClientHello upstream', () => received.length === wire.length);
      expect(received.equals(wire)).toBe(true);
      c.s.destroy();
      await c.closed;
    }
  });
});

describe('sni-proxy upstream failures and logs', () => {
  it('answers 502/504 with a generic reason and a correlation id the log line carries, never the upstream', async () => {
    const silent = await blackhole();
    const { proxy, logs } = await startProxy({ connect: { [VALUE]: '127.0.0.1:1', [VALUE_B]: `127.0.0.1:${silent}` } }, { UPSTREAM_DIAL_TIMEOUT: '300ms' }, { captureLogs: true });
    const bad = await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE));
    expect(bad).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    const slow = await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE_B));
    expect(slow).toMatch(/^HTTP\/1\.1 504 Gateway Timeout\r\n/);
    for (const [body, upstream] of [[bad, '127.0.0.1:1'], [slow, `127.0.0.1:${silent}`]] as const) {
      expect(body).not.toContain('127.0.0.1');
      expect(body.slice(body.indexOf('\r\n\r\n'))).not.toMatch(/ECONNREFUSED|refused|:\d+/i);
      const id = /\(id ([0-9a-f]{12})\)/.exec(body)![1];
      expect(logs.find((l) => l.id === id)).toMatchObject({ upstream, msg: 'connection refused' });
    }
  });

  it('logs the peer and the claimed source of an untrusted PROXY header, and counts the peer', async () => {
    const a = await tagServer('a');
    const { proxy, logs } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${a}` } }, { PROXY_PROTOCOL: 'optional', MAX_CONNECTIONS_PER_SOURCE: '2' }, { captureLogs: true });
    const claim = (n: number) => encodeProxyV1({ address: `203.0.113.${n}`, port: 5555 }, { address: '198.18.0.10', port: 8443 });
    // three different claimed sources from one peer: the peer is what counts
    await piped(proxy.ports.connect!, 'X-Gardener-Destination', VALUE, { prefix: claim(1) });
    await piped(proxy.ports.connect!, 'X-Gardener-Destination', VALUE, { prefix: claim(2) });
    expect(await exchange(proxy.ports.connect!, 'CONNECT x:1 HTTP/1.1\r\n\r\n', { prefix: claim(3) })).toBe('');
    // a refusal after the header names both
    expect(await exchange(proxy.ports.connect!, 'GET / HTTP/1.1\r\n\r\n', { prefix: claim(4), localAddress: '127.0.0.2' })).toMatch(/^HTTP\/1\.1 405/);
    const line = logs.find((l) => l.reason === 'method')!;
    expect(line.remote).toMatch(/^127\.0\.0\.2:\d+$/);
    expect(line.claimed).toBe('203.0.113.4:5555');
    expect(line.source).toBe('127.0.0.2');
    expect(logs.find((l) => l.reason === 'per_source')).toMatchObject({ source: '127.0.0.1' });
  });

  it('logs a flood of refusals once per interval with the count (the metrics count each one)', async () => {
    const { proxy, registry, logs } = await startProxy({ connect: {} }, { REFUSAL_LOG_INTERVAL: '300ms' }, { captureLogs: true });
    await Promise.all(Array.from({ length: 50 }, () => exchange(proxy.ports.connect!, 'GET / HTTP/1.1\r\n\r\n')));
    expect(metric(await registry.metrics(), 'rvpn_sni_proxy_refused_total', { reason: 'method' })).toBe(50);
    await sleep(700);
    const lines = logs.filter((l) => l.reason === 'method' && l.msg === 'connection refused');
    expect(lines).toHaveLength(2);
    expect(lines[1]!.suppressed).toBe(49);
  });
});
