import net from 'node:net';
import tls from 'node:tls';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { encodeProxyV1, encodeProxyV2, readClientHello, readProxyHeader, readRequestHead } from './index.js';
import { GO_MLKEM_CLIENTHELLO, GO_MLKEM_CLIENTHELLO_SNI, X25519MLKEM768, encodeClientHello, fromRecords, toRecords } from './testing/index.js';

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

/** Bytes copied by Buffer.concat and Buffer#copy while `fn` runs (the parsers' copying work). */
async function bytesCopied(fn: () => Promise<unknown>): Promise<number> {
  let copied = 0;
  const concat = Buffer.concat;
  const copy = Buffer.prototype.copy;
  const c = vi.spyOn(Buffer, 'concat').mockImplementation((list, len) => {
    const r = concat(list, len);
    copied += r.length;
    return r;
  });
  const k = vi.spyOn(Buffer.prototype, 'copy').mockImplementation(function (this: Buffer, ...args: unknown[]) {
    const n = copy.apply(this, args as Parameters<Buffer['copy']>);
    copied += n;
    return n;
  });
  try {
    await fn();
  } finally {
    c.mockRestore();
    k.mockRestore();
  }
  return copied;
}

/** A stream that delivers `bytes` one byte per 'data' event. */
function trickle(bytes: Buffer) {
  const s = new PassThrough();
  for (let i = 0; i < bytes.length; i++) s.write(bytes.subarray(i, i + 1));
  return s;
}

describe('incremental parsing (a trickling client costs work linear in its bytes)', () => {
  afterEach(() => vi.restoreAllMocks());
  it('reads a ClientHello sent as 1-byte records, one byte per read, with linear copying', async () => {
    const wire = toRecords(fromRecords(GO_MLKEM_CLIENTHELLO), 1); // 1,502 records, 9,036 bytes
    let r: Awaited<ReturnType<typeof readClientHello>> | undefined;
    const copied = await bytesCopied(async () => {
      r = await readClientHello(trickle(wire), { maxBytes: 16 * 1024 + 5, timeoutMs: 5000 });
    });
    expect(r!.serverName).toBe(GO_MLKEM_CLIENTHELLO_SNI);
    expect(r!.buffered.equals(wire)).toBe(true);
    // one copy into the handshake buffer and one into the replay buffer; re-concatenating per read would be ~n²/2 (40 MB)
    expect(copied).toBeLessThanOrEqual(4 * wire.length);
  });
  it('reads a request head one byte per read with linear copying', async () => {
    const head = `CONNECT a:1 HTTP/1.1\r\n${'X-Pad: 0123456789abcdef\r\n'.repeat(300)}\r\n`;
    let got: Awaited<ReturnType<typeof readRequestHead>> | undefined;
    const copied = await bytesCopied(async () => {
      got = await readRequestHead(trickle(Buffer.from(head)), { maxBytes: 16 * 1024, timeoutMs: 5000 });
    });
    expect(got!.headers.get('x-pad')).toHaveLength(300);
    expect(copied).toBeLessThanOrEqual(4 * head.length);
  });
});

describe('post-quantum ClientHellos (X25519MLKEM768, Go >= 1.24)', () => {
  it('admits the real Go ClientHello (1,506 bytes), whole, over several reads and over several records', async () => {
    expect(GO_MLKEM_CLIENTHELLO.length).toBe(1506);
    const hs = fromRecords(GO_MLKEM_CLIENTHELLO);
    for (const wire of [GO_MLKEM_CLIENTHELLO, toRecords(hs, [500, 700]), toRecords(hs, 100)]) {
      const s = new PassThrough();
      const p = readClientHello(s, { maxBytes: 16 * 1024 + 5, timeoutMs: 2000 });
      for (let off = 0; off < wire.length; off += 536) { // TCP segments of a small MSS
        s.write(wire.subarray(off, off + 536));
        await new Promise((r) => setImmediate(r));
      }
      const r = await p;
      expect(r.serverName).toBe(GO_MLKEM_CLIENTHELLO_SNI);
      expect(r.buffered.equals(wire)).toBe(true);
    }
  });
  it('admits a larger one (two hybrid shares and padding, 4 KB) split into records', async () => {
    const hs = encodeClientHello({ serverName: 'api.big.example', keyShares: [X25519MLKEM768, X25519MLKEM768, { group: 0x1d, length: 32 }], extensions: [{ type: 21, data: Buffer.alloc(1500) }] });
    expect(hs.length).toBeGreaterThan(4000);
    const wire = toRecords(hs, [1000, 3]);
    expect((await readClientHello(feed(wire), { maxBytes: 16 * 1024 + 5, timeoutMs: 2000 })).serverName).toBe('api.big.example');
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
