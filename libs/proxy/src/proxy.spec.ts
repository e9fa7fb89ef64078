import net from 'node:net';
import tls from 'node:tls';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { encodeProxyV1, encodeProxyV2, readClientHello, readProxyHeader, readRequestHead } from './index.js';

function feed(...chunks: Array<Buffer | string>) {
  const s = new PassThrough();
  for (const c of chunks) s.write(c);
  return s;
}

/** A real ClientHello as Node sends it, captured by a raw TCP server. */
async function captureClientHello(servername?: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => {
      s.once('data', (d) => {
        resolve(d);
        s.destroy();
        srv.close();
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port, ...(servername ? { servername } : {}) });
      c.on('error', () => undefined);
    });
  });
}

describe('readRequestHead', () => {
  it('parses CONNECT heads and keeps the bytes after them', async () => {
    const h = await readRequestHead(feed('CONNECT a:1 HTTP/1.0\r\nReversed-VPN: v1\r\nX-Y: 1\r\nx-y: 2\r\n\r\nEXTRA'), { maxBytes: 1024, timeoutMs: 1000 });
    expect(h).toMatchObject({ method: 'CONNECT', target: 'a:1', version: '1.0' });
    expect(h.headers.get('reversed-vpn')).toEqual(['v1']);
    expect(h.headers.get('x-y')).toEqual(['1', '2']);
    expect(h.rest.toString()).toBe('EXTRA');
  });
  it('fails with codes for oversize, slow and malformed input', async () => {
    await expect(readRequestHead(feed('CONNECT a:1 HTTP/1.1\r\n' + 'X: y\r\n'.repeat(100)), { maxBytes: 256, timeoutMs: 1000 })).rejects.toMatchObject({ code: 'RVPN_ERR_PROXY_HEAD_TOO_LARGE' });
    await expect(readRequestHead(feed('CONNECT a:1 HTTP/1.1\r\n'), { maxBytes: 256, timeoutMs: 50 })).rejects.toMatchObject({ code: 'RVPN_ERR_PROXY_HEAD_TIMEOUT' });
    await expect(readRequestHead(feed(Buffer.from([0x16, 3, 1, 0, 1, 0])), { maxBytes: 256, timeoutMs: 1000 })).rejects.toMatchObject({ code: 'RVPN_ERR_PROXY_HEAD_MALFORMED' });
    await expect(readRequestHead(feed('CONNECT a:1 HTTP/2\r\n\r\n'), { maxBytes: 256, timeoutMs: 1000 })).rejects.toMatchObject({ code: 'RVPN_ERR_PROXY_HEAD_MALFORMED' });
    await expect(readRequestHead(feed('CONNECT a:1 HTTP/1.1\r\nbad header\r\n\r\n'), { maxBytes: 256, timeoutMs: 1000 })).rejects.toMatchObject({ code: 'RVPN_ERR_PROXY_HEAD_MALFORMED' });
  });
});

describe('readClientHello', () => {
  it('extracts SNI from a real ClientHello, also split into pieces', async () => {
    const hello = await captureClientHello('api.demo.example');
    expect((await readClientHello(feed(hello), { maxBytes: 16384, timeoutMs: 1000 })).serverName).toBe('api.demo.example');
    const pieces = [hello.subarray(0, 3), hello.subarray(3, 50), hello.subarray(50)];
    const s = new PassThrough();
    const p = readClientHello(s, { maxBytes: 16384, timeoutMs: 1000 });
    for (const piece of pieces) { s.write(piece); await new Promise((r) => setImmediate(r)); }
    const r = await p;
    expect(r.serverName).toBe('api.demo.example');
    expect(r.buffered.equals(hello)).toBe(true);
  });
  it('reports no SNI when the client sends none', async () => {
    expect((await readClientHello(feed(await captureClientHello()), { maxBytes: 16384, timeoutMs: 1000 })).serverName).toBeUndefined();
  });
  it('refuses non-TLS bytes and never throws outside the promise', async () => {
    for (const junk of ['GET / HTTP/1.1\r\n\r\n', Buffer.from([0x16, 3, 3, 0, 0]), Buffer.from([0x16, 3, 3, 0, 5, 2, 0, 0, 1, 0])]) {
      await expect(readClientHello(feed(junk), { maxBytes: 16384, timeoutMs: 200 })).rejects.toHaveProperty('code');
    }
    const rnd = Buffer.alloc(64);
    for (let i = 0; i < 200; i++) {
      for (let j = 0; j < rnd.length; j++) rnd[j] = (Math.random() * 256) | 0;
      rnd[0] = 0x16; rnd[1] = 3; rnd.writeUInt16BE(59, 3);
      await readClientHello(feed(rnd), { maxBytes: 16384, timeoutMs: 50 }).catch((e: { code?: string }) => expect(e.code).toMatch(/^RVPN_ERR_/));
    }
  });
});

describe('PROXY protocol', () => {
  const src = { address: '203.0.113.7', port: 40000 };
  const dst = { address: '198.18.0.10', port: 8443 };
  it('parses v1 and v2 and keeps the payload', async () => {
    for (const enc of [encodeProxyV1, encodeProxyV2]) {
      const r = await readProxyHeader(feed(Buffer.concat([enc(src, dst), Buffer.from('CONNECT')])), { mode: 'required', timeoutMs: 1000 });
      expect(r.header).toMatchObject({ command: 'PROXY', source: src, destination: dst });
      expect(r.rest.toString()).toBe('CONNECT');
    }
  });
  it('passes through without a header in optional mode and refuses in required mode', async () => {
    const r = await readProxyHeader(feed('CONNECT x HTTP/1.1\r\n'), { mode: 'optional', timeoutMs: 1000 });
    expect(r.header).toBeUndefined();
    expect(r.rest.toString()).toBe('CONNECT x HTTP/1.1\r\n');
    await expect(readProxyHeader(feed('CONNECT x HTTP/1.1\r\n\r\n'), { mode: 'required', timeoutMs: 1000 })).rejects.toMatchObject({ code: 'RVPN_ERR_PROXY_PROXYPROTO' });
    await expect(readProxyHeader(feed('PROXY TCP4 a b c\r\n'), { mode: 'required', timeoutMs: 1000 })).rejects.toMatchObject({ code: 'RVPN_ERR_PROXY_PROXYPROTO' });
  });
});
