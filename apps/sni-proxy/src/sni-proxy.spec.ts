import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { loadSniProxyConfig } from '@rvpn/config';
import { receiveBuffers } from '@rvpn/tunnel/testing';
import { encodeProxyV1, encodeProxyV2 } from '@rvpn/proxy';
import { createCa, issueCertificate } from '@rvpn/pki';
import { cleanup, connectReq, exchange, metric, onCleanup, server, startProxy, tagServer, VALUE, VALUE_B, waitFor } from './harness.test-helper.js';
import { SniProxy } from './sni-proxy.js';

afterEach(cleanup);

describe('sni-proxy CONNECT routing', () => {
  it('routes by X-Gardener-Destination on 8443 and Reversed-VPN on 8132, ignoring the request target', async () => {
    const a = await tagServer('seed-server-a');
    const { proxy } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${a}` } });
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true })).toMatch(/^HTTP\/1\.1 200 .*\r\n\r\nseed-server-a\n/s);
    expect(await exchange(proxy.ports['connect-legacy']!, connectReq('Reversed-VPN', VALUE, '10.0.0.1:22'), { untilLine: true })).toMatch(/\r\n\r\nseed-server-a\n/);
    // HTTP/1.0 CONNECT
    expect(await exchange(proxy.ports.connect!, `CONNECT x:1 HTTP/1.0\r\nX-Gardener-Destination: ${VALUE}\r\n\r\n`, { untilLine: true })).toMatch(/seed-server-a/);
  });

  it('refuses with a clear status for each mistake and keeps serving', async () => {
    const a = await tagServer('a');
    const closed = await server((s) => s.destroy());
    const { proxy, registry } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${a}`, [VALUE_B]: '127.0.0.1:1' } }, { HEADER_TIMEOUT: '300ms', MAX_HEADER_BYTES: '512' });
    void closed;
    const p = proxy.ports.connect!;
    expect(await exchange(p, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(/^HTTP\/1\.1 405/);
    expect(await exchange(p, 'CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
    expect(await exchange(p, connectReq('Reversed-VPN', VALUE))).toMatch(/^HTTP\/1\.1 400/); // wrong header for this port
    expect(await exchange(p, connectReq('X-Gardener-Destination', 'outbound|22||evil.example.com'))).toMatch(/^HTTP\/1\.1 403/);
    expect(await exchange(p, connectReq('X-Gardener-Destination', 'outbound|1194||vpn-seed-server.shoot--p--zz.svc.cluster.local'))).toMatch(/^HTTP\/1\.1 404/);
    expect(await exchange(p, connectReq('X-Gardener-Destination', VALUE_B))).toMatch(/^HTTP\/1\.1 502/);
    expect(await exchange(p, 'CONNECT x:1 HTTP/1.1\r\n')).toMatch(/^HTTP\/1\.1 408/);
    expect(await exchange(p, `CONNECT x:1 HTTP/1.1\r\n${'X-Pad: 0123456789\r\n'.repeat(60)}\r\n`)).toMatch(/^HTTP\/1\.1 431/);
    for (const port of Object.values(proxy.ports).slice(0, 3)) {
      await exchange(port, Buffer.from([0, 1, 2, 255, 254, 0x16, 3, 3, 0, 1, 9]));
    }
    expect(await exchange(p, connectReq('X-Gardener-Destination', VALUE), { untilLine: true })).toMatch(/\r\n\r\na\n/);
    const metrics = await registry.metrics();
    for (const reason of ['method', 'missing_header', 'forbidden', 'no_route', 'upstream_unreachable', 'timeout', 'head_too_large', 'not_tls']) {
      expect(metrics).toMatch(new RegExp(`rvpn_sni_proxy_refused_total\\{listener="[a-z-]+",reason="${reason}"\\} [1-9]`));
    }
  });

  it('accepts PROXY protocol v1 and v2 when configured', async () => {
    const a = await tagServer('a');
    const { proxy } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${a}` } }, { PROXY_PROTOCOL: 'required' });
    const src = { address: '203.0.113.9', port: 5555 };
    const dst = { address: '198.18.0.10', port: 8443 };
    for (const prefix of [encodeProxyV1(src, dst), encodeProxyV2(src, dst)]) {
      expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true, prefix })).toMatch(/\r\n\r\na\n/);
    }
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE))).toBe('');
  });
});

describe('sni-proxy TLS passthrough', () => {
  it('routes by SNI to the right upstream and answers unknown names with an alert', async () => {
    const ca = await createCa({ commonName: 'ca' });
    const mk = async (name: string) => {
      const c = await issueCertificate(ca, { commonName: name, usage: 'server', dnsNames: [name] });
      const srv = tls.createServer({ cert: c.certPem, key: c.keyPem }, (s) => s.end(`hello from ${name}\n`));
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      onCleanup(() => new Promise<void>((r) => srv.close(() => r())));
      return (srv.address() as net.AddressInfo).port;
    };
    const one = await mk('api.one.example');
    const two = await mk('api.two.example');
    const { proxy } = await startProxy({ sni: { 'api.one.example': `127.0.0.1:${one}`, 'API.two.example': `127.0.0.1:${two}` } });
    const get = (servername: string) => new Promise<string>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: proxy.ports.tls!, servername, ca: ca.certPem });
      let out = '';
      c.on('data', (d) => (out += d));
      c.on('end', () => resolve(out));
      c.on('error', reject);
    });
    expect(await get('api.one.example')).toBe('hello from api.one.example\n');
    expect(await get('api.two.example')).toBe('hello from api.two.example\n');
    await expect(get('api.unknown.example')).rejects.toThrow(/unrecognized name/i);
  });
});

describe('sni-proxy route reloads', () => {
  it('reloads without resetting a streaming connection; a bad file keeps the old routes', async () => {
    const sink = await server((s) => {
      const h = createHash('sha256');
      s.on('data', (d) => h.update(d));
      s.on('end', () => s.end(h.digest('hex')));
    });
    const other = await tagServer('other');
    const { proxy, file } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${sink}` } });
    const c = net.connect(proxy.ports.connect!, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    c.write(connectReq('X-Gardener-Destination', VALUE));
    await new Promise((r) => c.once('data', r));
    const sent = createHash('sha256');
    let answer = '';
    c.on('data', (d) => (answer += d));
    const chunk = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 160; i++) {
      if (i === 40) {
        writeFileSync(file, JSON.stringify({ connect: { [VALUE]: `127.0.0.1:${other}` } }));
        await proxy.reload();
      }
      if (i === 80) {
        writeFileSync(file, '{ not json');
        expect(await proxy.reload()).toBe(false);
      }
      sent.update(chunk);
      if (!c.write(chunk)) await new Promise((r) => c.once('drain', r));
    }
    c.end();
    await new Promise((r) => c.once('close', r));
    expect(answer).toBe(sent.digest('hex'));
    // The reload took effect for new connections; the invalid file did not replace it.
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true })).toMatch(/\r\n\r\nother\n/);
  });

  it('follows a ConfigMap-style ..data symlink swap', async () => {
    const a = await tagServer('a');
    const b = await tagServer('b');
    const base = mkdtempSync(join(tmpdir(), 'rvpn-cm-'));
    onCleanup(() => rmSync(base, { recursive: true, force: true }));
    const v1 = join(base, '..v1');
    mkdirSync(v1);
    writeFileSync(join(v1, 'routes.json'), JSON.stringify({ connect: { [VALUE]: `127.0.0.1:${a}` } }));
    symlinkSync('..v1', join(base, '..data'));
    symlinkSync('..data/routes.json', join(base, 'routes.json'));
    const cfg = loadSniProxyConfig({ ROUTES_FILE: join(base, 'routes.json'), LISTEN_TLS: '127.0.0.1:0', LISTEN_CONNECT: '127.0.0.1:0', LISTEN_CONNECT_LEGACY: '127.0.0.1:0', STATUS_LISTEN: '127.0.0.1:0' });
    const proxy = new SniProxy(cfg, { logger: pino({ level: 'silent' }), registry: new Registry() });
    await proxy.start();
    onCleanup(() => proxy.stop());
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true })).toMatch(/\r\n\r\na\n/);
    const v2 = join(base, '..v2');
    mkdirSync(v2);
    writeFileSync(join(v2, 'routes.json'), JSON.stringify({ connect: { [VALUE]: `127.0.0.1:${b}` } }));
    symlinkSync('..v2', join(base, '..data_tmp'));
    renameSync(join(base, '..data_tmp'), join(base, '..data'));
    const t0 = Date.now();
    while (Date.now() - t0 < 5000) {
      if (/\r\n\r\nb\n/.test(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true }))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the symlink swap was not picked up');
  });

  it('merges two route files (the chart\'s static one and the operator\'s): a missing second file counts as empty until it appears, and the first file wins a key both define', async () => {
    const a = await tagServer('a');
    const b = await tagServer('b');
    const c = await tagServer('c');
    const base = mkdtempSync(join(tmpdir(), 'rvpn-two-'));
    onCleanup(() => rmSync(base, { recursive: true, force: true }));
    const OTHER = 'outbound|1194||vpn-seed-server.shoot--p--other.svc.cluster.local';
    mkdirSync(join(base, 'static'));
    mkdirSync(join(base, 'operator'));
    writeFileSync(join(base, 'static', 'routes.json'), JSON.stringify({ connect: { [VALUE]: `127.0.0.1:${a}` } }));
    const files = [join(base, 'static', 'routes.json'), join(base, 'operator', 'routes.json')];
    const cfg = loadSniProxyConfig({ ROUTES_FILE: files.join(','), LISTEN_TLS: '127.0.0.1:0', LISTEN_CONNECT: '127.0.0.1:0', LISTEN_CONNECT_LEGACY: '127.0.0.1:0', STATUS_LISTEN: '127.0.0.1:0' });
    const proxy = new SniProxy(cfg, { logger: pino({ level: 'silent' }), registry: new Registry() });
    await proxy.start();
    onCleanup(() => proxy.stop());
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true })).toMatch(/\r\n\r\na\n/);
    expect(proxy.routes?.connect.has(OTHER)).toBe(false);
    // the operator's file appears: it adds a route and cannot override the static one
    writeFileSync(join(base, 'operator', 'routes.json'), JSON.stringify({ connect: { [OTHER]: `127.0.0.1:${b}`, [VALUE]: `127.0.0.1:${c}` } }));
    const t0 = Date.now();
    while (!proxy.routes?.connect.has(OTHER) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', OTHER), { untilLine: true })).toMatch(/\r\n\r\nb\n/);
    expect(await exchange(proxy.ports.connect!, connectReq('X-Gardener-Destination', VALUE), { untilLine: true })).toMatch(/\r\n\r\na\n/);
  });

  it('refuses to start when the first route file is missing', () => {
    expect(() => loadSniProxyConfig({ ROUTES_FILE: '/nonexistent/routes.json,/tmp/x.json' })).toThrow(/first file/);
  });

  it('refuses an invalid route file at start with every problem listed', async () => {
    await expect(startProxy({ connect: { 'outbound|22||evil': 'nohost', x: 5 }, extra: 1 })).rejects.toMatchObject({ code: 'RVPN_ERR_SNI_ROUTES_INVALID' });
  });
});

describe('sni-proxy relay (RELAY_MODE native and stream)', () => {
  /** An upstream that answers each connection with the sha256 of what it got, after the client's end, then closes. */
  const hashServer = () => server((s) => {
    const h = createHash('sha256');
    s.on('data', (d) => h.update(d));
    s.on('end', () => s.end(h.digest('hex')));
  });

  for (const mode of ['native', 'stream'] as const) {
    it(`${mode}: relays a stream both ways with bytes pipelined behind the head, counts bytes, and holds the connection's admission until the end`, async () => {
      const sink = await hashServer();
      const { proxy, registry } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${sink}` } }, { RELAY_MODE: mode });
      const c = net.connect(proxy.ports.connect!, '127.0.0.1');
      await new Promise((r) => c.once('connect', r));
      const body = Buffer.alloc(3 * 1024 * 1024 + 17, 9);
      const head = Buffer.from(connectReq('X-Gardener-Destination', VALUE));
      // the head and the first bytes in one write: the proxy must forward what it read past the head
      c.write(Buffer.concat([head, body.subarray(0, 1000)]));
      let got = '';
      c.on('data', (d) => (got += d.toString('latin1')));
      c.write(body.subarray(1000));
      await new Promise((r) => setTimeout(r, 100));
      expect(proxy.connections).toBe(1);
      c.end();
      await new Promise((r) => c.once('close', r));
      expect(got).toBe(`HTTP/1.1 200 Connection established\r\n\r\n${createHash('sha256').update(body).digest('hex')}`);
      await waitFor('the admission released', () => proxy.connections === 0);
      const m = await registry.metrics();
      expect(metric(m, 'rvpn_sni_proxy_bytes_total', { direction: 'upstream' })).toBe(body.length);
      expect(metric(m, 'rvpn_sni_proxy_bytes_total', { direction: 'downstream' })).toBe(64);
      expect(metric(m, 'rvpn_sni_proxy_relay_ends_total', { reason: 'closed' })).toBe(mode === 'native' ? 1 : 0);
      expect(metric(m, 'rvpn_sni_proxy_relay_fallbacks_total')).toBe(0);
    });

    it(`${mode}: caps the kernel receive buffer of both piped sockets (RELAY_RECEIVE_BUFFER), and leaves it to the kernel with 0`, async () => {
      // ss reports each socket's receive buffer (rb; the kernel doubles SO_RCVBUF). The proxy's own two sockets
      // are the one accepted on the CONNECT port (sport) and the one it dialed to the upstream (dport); the
      // client's socket (dport = the CONNECT port) has the kernel's default.
      for (const cap of [16384, 0]) {
        const sink = await tagServer('sink');
        const { proxy } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${sink}` } }, { RELAY_MODE: mode, RELAY_RECEIVE_BUFFER: String(cap) });
        const port = proxy.ports.connect!;
        const c = net.connect(port, '127.0.0.1');
        c.on('error', () => undefined);
        onCleanup(() => { c.destroy(); });
        c.write(connectReq('X-Gardener-Destination', VALUE));
        let got = '';
        await new Promise<void>((r) => c.on('data', (d) => { got += d.toString('latin1'); if (got.endsWith('sink\n')) r(); }));
        const [down, up, client] = [receiveBuffers(`sport = :${port}`), receiveBuffers(`dport = :${sink}`), receiveBuffers(`dport = :${port}`)];
        expect([down.length, up.length, client.length]).toEqual([1, 1, 1]);
        expect(client[0]).not.toBe(2 * 16384);
        expect([down[0], up[0]]).toEqual(cap ? [2 * cap, 2 * cap] : [client[0], client[0]]);
        await proxy.stop();
      }
    });

    it(`${mode}: closes a relayed connection after IDLE_TIMEOUT without a byte, and on stop()`, async () => {
      const sink = await hashServer();
      const { proxy, registry } = await startProxy({ connect: { [VALUE]: `127.0.0.1:${sink}` } }, { RELAY_MODE: mode, IDLE_TIMEOUT: '1s' });
      const open = async () => {
        const c = net.connect(proxy.ports.connect!, '127.0.0.1');
        c.on('error', () => undefined);
        c.write(connectReq('X-Gardener-Destination', VALUE));
        await new Promise((r) => c.once('data', r));
        return c;
      };
      const idle = await open();
      const t0 = Date.now();
      await new Promise((r) => { idle.once('close', r); idle.resume(); });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      await waitFor('the admission released', () => proxy.connections === 0);
      if (mode === 'native') expect(metric(await registry.metrics(), 'rvpn_sni_proxy_relay_ends_total', { reason: 'idle' })).toBe(1);
      const busy = await open();
      const closed = new Promise((r) => { busy.once('end', r); busy.once('close', r); busy.resume(); });
      await proxy.stop();
      await closed;
      expect(proxy.connections).toBe(0);
    });
  }
});
