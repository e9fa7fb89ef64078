/**
 * Property-based tests of every parser in this library (CONNECT request heads, ClientHello/SNI, PROXY
 * protocol v1/v2), with fast-check:
 *   - no exception escapes except the documented coded errors, whatever the bytes and however they are split;
 *   - bounded input gives bounded state (the scanners hold a fixed or limit-bounded number of bytes; readPrefix
 *     never gives a scanner more than maxBytes);
 *   - round trips through the encoders, invariant under any split into reads (and, for TLS, into records).
 */
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ClientHelloScanner, HeadScanner, ProxyHeaderScanner, encodeProxyV1, encodeProxyV2, parseProxyHeader, parseRequestHead, readClientHello, readPrefix, readProxyHeader,
  readRequestHead, serverNameOfBody, type PrefixScanner,
} from './index.js';
import { encodeClientHello, encodeRequestHead, toRecords } from './testing/index.js';

const HEAD_CODES = ['RVPN_ERR_PROXY_HEAD_TIMEOUT', 'RVPN_ERR_PROXY_HEAD_TOO_LARGE', 'RVPN_ERR_PROXY_HEAD_MALFORMED'];
const HELLO_CODES = ['RVPN_ERR_PROXY_CLIENTHELLO', 'RVPN_ERR_PROXY_HEAD_TOO_LARGE', 'RVPN_ERR_PROXY_HEAD_TIMEOUT'];
const PROXY_CODES = ['RVPN_ERR_PROXY_PROXYPROTO', 'RVPN_ERR_PROXY_HEAD_TOO_LARGE', 'RVPN_ERR_PROXY_HEAD_TIMEOUT'];

/** Runs `fn`; a thrown error must carry one of `codes`. */
function onlyCoded<T>(codes: string[], fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    expect(codes, String((err as Error).stack)).toContain((err as { code?: string }).code);
    return undefined;
  }
}

/** `bytes` cut into pieces of the given sizes (cycled). */
function split(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = sizes.length ? sizes[i % sizes.length]! : bytes.length;
    out.push(bytes.subarray(off, off + n));
    off += n;
  }
  return out;
}

/** A stream that delivers the pieces as separate reads, then ends. */
function stream(pieces: Buffer[]): PassThrough {
  const s = new PassThrough();
  for (const p of pieces) s.write(p);
  s.end();
  return s;
}

/** What is left in the stream after a parser stopped reading (the parser's `rest` comes before it). */
function remaining(s: PassThrough): Promise<Buffer> {
  const out: Buffer[] = [];
  return new Promise((resolve) => {
    if (s.readableEnded) return resolve(Buffer.alloc(0));
    s.on('data', (d: Buffer) => out.push(d));
    s.once('end', () => resolve(Buffer.concat(out)));
    s.resume();
  });
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const sizes = fc.array(fc.integer({ min: 1, max: 97 }), { maxLength: 8 });

/** Pushes the pieces into a fresh scanner until it answers; errors must be coded. */
function scan(make: () => PrefixScanner, pieces: Buffer[], codes: string[]): number | undefined {
  const s = make();
  return onlyCoded(codes, () => {
    for (const p of pieces) {
      const n = s.push(p);
      if (n !== undefined) return n;
    }
    return undefined;
  });
}

describe('CONNECT request heads (property)', () => {
  const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,20}$/);
  const value = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,40}[\x21-\x7e])?$/);
  const head = fc.record({
    method: fc.stringMatching(/^[A-Z]{1,12}$/),
    target: fc.stringMatching(/^[\x21-\x7e]{1,60}$/),
    version: fc.constantFrom('1.0' as const, '1.1' as const),
    headers: fc.array(fc.tuple(token, value), { maxLength: 12 }),
  });

  it('round trip: what the encoder writes parses back, however it is split, and the bytes after it are kept', async () => {
    await fc.assert(fc.asyncProperty(head, bytes(64), sizes, async (h, extra, cut) => {
      const wire = Buffer.concat([Buffer.from(encodeRequestHead(h), 'latin1'), extra]);
      const input = stream(split(wire, cut));
      const got = await readRequestHead(input, { maxBytes: 64 * 1024, timeoutMs: 1000 });
      expect({ method: got.method, target: got.target, version: got.version }).toEqual({ method: h.method, target: h.target, version: h.version });
      const expected = new Map<string, string[]>();
      for (const [k, v] of h.headers) expected.set(k.toLowerCase(), [...(expected.get(k.toLowerCase()) ?? []), v]);
      expect(got.headers).toEqual(expected);
      expect(Buffer.concat([got.rest, await remaining(input)]).equals(extra)).toBe(true);
    }), { numRuns: 150 });
  });

  it('arbitrary bytes, split anyhow: a head or a coded error (400/408/431), and the scanner holds at most 16 bytes', async () => {
    const noise = fc.oneof(bytes(300), fc.tuple(fc.constantFrom('CONNECT ', 'GET ', 'C', ''), bytes(300)).map(([p, b]) => Buffer.concat([Buffer.from(p), b])));
    await fc.assert(fc.asyncProperty(noise, sizes, async (input, cut) => {
      const s = new HeadScanner();
      scan(() => s, split(input, cut), HEAD_CODES);
      expect(s.retainedBytes).toBeLessThanOrEqual(16);
      await readRequestHead(stream(split(input, cut)), { maxBytes: 256, timeoutMs: 1000 }).catch((err: { code?: string }) => expect(HEAD_CODES).toContain(err.code));
      onlyCoded(HEAD_CODES, () => parseRequestHead(input.toString('latin1')));
    }), { numRuns: 300 });
  });
});

describe('ClientHello / SNI (property)', () => {
  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
  const host = fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join('.'));
  const hello = fc.record({
    serverName: fc.option(host.chain((h) => fc.constantFrom(h, h.toUpperCase())), { nil: undefined }),
    keyShares: fc.array(fc.record({ group: fc.constantFrom(0x1d, 0x17, 0x11ec, 0x6399), length: fc.integer({ min: 1, max: 1300 }) }), { minLength: 1, maxLength: 3 }),
    extensions: fc.array(fc.record({ type: fc.integer({ min: 1, max: 0xfffe }).filter((t) => t !== 0 && t !== 51 && t !== 43), data: bytes(200) }), { maxLength: 6 }),
  });

  it('round trip: any ClientHello, in records of any sizes, split into reads anyhow, gives its SNI and its length', async () => {
    await fc.assert(fc.asyncProperty(hello, fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 4 }), sizes, bytes(40), async (spec, recordSizes, cut, after) => {
      const records = toRecords(encodeClientHello(spec), recordSizes);
      expect(scan(() => new ClientHelloScanner(64 * 1024), split(records, cut), [])).toBe(records.length);
      const wire = Buffer.concat([records, after]);
      const input = stream(split(wire, cut));
      const r = await readClientHello(input, { maxBytes: 64 * 1024, timeoutMs: 1000 });
      expect(r.serverName).toBe(spec.serverName?.toLowerCase());
      expect(Buffer.concat([r.buffered, await remaining(input)]).equals(wire)).toBe(true);
    }), { numRuns: 150 });
  });

  it('arbitrary or corrupted bytes: a length, "more", or a coded error; state bounded by the limit whatever the declared lengths', async () => {
    const corrupted = fc.tuple(hello, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 600 }))
      .map(([spec, flips, rs]) => {
        const b = Buffer.from(toRecords(encodeClientHello(spec), rs));
        for (const [at, v] of flips) b[at % b.length] = v;
        return b;
      });
    const handshakeish = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffffff }), bytes(200))
      .map(([recLen, hsLen, tail]) => Buffer.concat([Buffer.from([0x16, 3, 1, recLen >> 8, recLen & 255, 1, hsLen >> 16, (hsLen >> 8) & 255, hsLen & 255]), tail]));
    await fc.assert(fc.asyncProperty(fc.oneof(bytes(400), corrupted, handshakeish), sizes, async (input, cut) => {
      const maxBytes = 4096;
      const s = new ClientHelloScanner(maxBytes);
      const n = scan(() => s, split(input, cut), HELLO_CODES);
      if (n !== undefined) expect(n).toBeLessThanOrEqual(input.length);
      expect(s.retainedBytes).toBeLessThanOrEqual(maxBytes + 9);
      if (s.body) onlyCoded(HELLO_CODES, () => serverNameOfBody(s.body!));
      await readClientHello(stream(split(input, cut)), { maxBytes, timeoutMs: 1000 }).catch((err: { code?: string }) => expect(HELLO_CODES).toContain(err.code));
    }), { numRuns: 400 });
  });

  it('serverNameOfBody on arbitrary bodies: a name, none, or RVPN_ERR_PROXY_CLIENTHELLO', () => {
    fc.assert(fc.property(bytes(600), (body) => {
      const name = onlyCoded(['RVPN_ERR_PROXY_CLIENTHELLO'], () => serverNameOfBody(body));
      if (name !== undefined) expect(name).toMatch(/^[a-z0-9.-]{1,253}$/);
    }), { numRuns: 500 });
  });
});

describe('PROXY protocol v1/v2 (property)', () => {
  const port = fc.integer({ min: 0, max: 65535 });
  const v4 = fc.ipV4();
  const v6 = fc.ipV6();
  const canonicalV6 = (a: string) => new URL(`http://[${a}]/`).hostname.slice(1, -1);

  it('round trip v1 and v2 (IPv4, IPv6, v2 with TLVs), split anyhow; addresses come back canonical', async () => {
    const pair = fc.oneof(fc.tuple(v4, v4, fc.constant(4)), fc.tuple(v6, v6, fc.constant(6)));
    await fc.assert(fc.asyncProperty(pair, port, port, fc.boolean(), bytes(100), bytes(30), sizes, async ([a, b, fam], sp, dp, useV2, tlvs, after, cut) => {
      const src = { address: a, port: sp };
      const dst = { address: b, port: dp };
      const hdr = useV2 ? encodeProxyV2(src, dst, { tlvs }) : encodeProxyV1(src, dst);
      const canon = (x: string) => (fam === 4 ? x : canonicalV6(x));
      for (const mode of ['required', 'optional'] as const) {
        const input = stream(split(Buffer.concat([hdr, after]), cut));
        const r = await readProxyHeader(input, { mode, timeoutMs: 1000 });
        expect(r.header).toEqual({ version: useV2 ? 2 : 1, command: 'PROXY', source: { address: canon(a), port: sp }, destination: { address: canon(b), port: dp } });
        expect(Buffer.concat([r.rest, await remaining(input)]).equals(after)).toBe(true);
      }
    }), { numRuns: 200 });
  });

  it('arbitrary bytes: a header, "no header" (optional), or RVPN_ERR_PROXY_PROXYPROTO; 16 bytes of state', async () => {
    const v1ish = fc.tuple(fc.constantFrom('PROXY ', 'PROXY TCP4 ', 'PROXY TCP6 ', 'PROXY UNKNOWN'), fc.stringMatching(/^[\x20-\x7e]{0,120}$/), fc.boolean())
      .map(([p, rest, crlf]) => Buffer.from(`${p}${rest}${crlf ? '\r\n' : ''}`, 'latin1'));
    const v2ish = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 300 }), bytes(300))
      .map(([vc, fam, len, body]) => Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, vc, fam, len >> 8, len & 255]), body]));
    await fc.assert(fc.asyncProperty(fc.oneof(bytes(200), v1ish, v2ish), sizes, fc.constantFrom('optional' as const, 'required' as const), async (input, cut, mode) => {
      const s = new ProxyHeaderScanner(mode);
      const n = scan(() => s, split(input, cut), PROXY_CODES);
      expect(s.retainedBytes).toBe(16);
      if (n !== undefined && !s.absent) onlyCoded(PROXY_CODES, () => parseProxyHeader(input.subarray(0, n)));
      onlyCoded(PROXY_CODES, () => parseProxyHeader(input));
      const r = await readProxyHeader(stream(split(input, cut)), { mode, timeoutMs: 1000 }).catch((err: { code?: string }) => void expect(PROXY_CODES).toContain(err.code));
      if (r?.header?.source) expect(r.header.source.address).toMatch(/^[0-9a-f.:]+$/);
    }), { numRuns: 400 });
  });
});

describe('readPrefix (property)', () => {
  it('never gives a scanner more than maxBytes, whatever the peer sends', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 512 }), bytes(2048), sizes, async (maxBytes, input, cut) => {
      let pushed = 0;
      const never: PrefixScanner = { push: (c) => void (pushed += c.length) };
      await readPrefix(stream(split(input, cut)), never, { maxBytes, timeoutMs: 1000, what: 'test' }).then(
        () => expect.unreachable(),
        (err: { code?: string }) => expect(['RVPN_ERR_PROXY_HEAD_TOO_LARGE', 'RVPN_ERR_PROXY_HEAD_TIMEOUT']).toContain(err.code),
      );
      expect(pushed).toBeLessThanOrEqual(maxBytes);
    }), { numRuns: 200 });
  });
});
