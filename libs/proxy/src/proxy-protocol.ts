/**
 * PROXY protocol v1 (text) and v2 (binary), as load balancers put it in front of a connection to
 * pass on the client's address. Parsing is incremental and bounded (v1: 107 bytes; v2: 16 + its
 * length field); addresses are validated and returned in canonical form (RFC 5952 for IPv6); TLVs of
 * v2 are skipped. Whether a claimed address is believed is the caller's decision (see sni-proxy's
 * PROXY_PROTOCOL_TRUSTED_NETWORKS): anyone can send a header.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatIp, parseIp } from '@rvpn/config';
import { ProxyProtocolHeaderError } from './errors.js';
import { readPrefix, type PrefixScanner } from './read-prefix.js';

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_SIGNATURE = Buffer.from('PROXY ', 'latin1');
/** The longest v1 line, CRLF included (the specification's bound). */
export const V1_MAX_BYTES = 107;
/** The longest v2 header: 16 bytes and a 16-bit length. */
export const V2_MAX_BYTES = 16 + 65535;

export interface ProxyHeader {
  version: 1 | 2;
  command: 'PROXY' | 'LOCAL';
  source?: { address: string; port: number };
  destination?: { address: string; port: number };
}

function bad(msg: string): never {
  throw new ProxyProtocolHeaderError(msg);
}

/** Whether the first n bytes of `buf` equal those of `sig` (n = the shorter length). */
const prefixOf = (buf: Buffer, sig: Buffer) => {
  const n = Math.min(buf.length, sig.length);
  return buf.subarray(0, n).equals(sig.subarray(0, n));
};

/** True when `buf` could still become a PROXY header (used by the 'optional' mode). */
export function looksLikeProxyHeader(buf: Buffer): boolean {
  return prefixOf(buf, V1_SIGNATURE) || prefixOf(buf, V2_SIGNATURE);
}

/**
 * Finds the end of a PROXY header incrementally. In 'optional' mode bytes that cannot start one make
 * it report a prefix of length 0 (`absent`). Holds at most 16 bytes and a counter.
 */
export class ProxyHeaderScanner implements PrefixScanner {
  absent = false;
  private seen = 0;
  private readonly first = Buffer.alloc(16);
  private v1Cr = false;
  constructor(private readonly mode: 'optional' | 'required') {}

  /** Bytes this scanner holds (16, whatever it was given). */
  get retainedBytes(): number {
    return this.first.length;
  }

  push(chunk: Buffer): number | undefined {
    const start = this.seen;
    if (start < 16) chunk.copy(this.first, start, 0, Math.min(chunk.length, 16 - start));
    this.seen += chunk.length;
    const known = this.first.subarray(0, Math.min(this.seen, 16));
    if (!looksLikeProxyHeader(known)) {
      if (this.mode === 'optional') {
        this.absent = true;
        return 0;
      }
      bad('no PROXY header');
    }
    if (known[0] === 0x50) {
      // v1: a line ending in CRLF within 107 bytes
      for (let i = 0; i < chunk.length && start + i < V1_MAX_BYTES; i++) {
        const b = chunk[i]!;
        if (this.v1Cr && b === 0x0a) return start + i + 1;
        this.v1Cr = b === 0x0d;
      }
      if (this.seen >= V1_MAX_BYTES) bad(`PROXY v1 line longer than ${V1_MAX_BYTES} bytes`);
      return undefined;
    }
    if (this.seen < 16) return undefined;
    const total = 16 + this.first.readUInt16BE(14);
    return this.seen >= total ? total : undefined;
  }
}

/** Length of a complete header at the start of `buf`, undefined when more bytes are needed. */
export function proxyHeaderLength(buf: Buffer): number | undefined {
  return new ProxyHeaderScanner('required').push(buf);
}

const port = (s: string | undefined) => (s !== undefined && /^\d{1,5}$/.test(s) && Number(s) <= 65535 ? Number(s) : bad('bad port in PROXY v1 line'));
const canonical = (a: string) => formatIp(parseIp(a)!);

/** Parses one complete header (as delimited by ProxyHeaderScanner). Throws RVPN_ERR_PROXY_PROXYPROTO. */
export function parseProxyHeader(h: Buffer): ProxyHeader {
  if (h[0] === 0x50) {
    if (h.length < 8 || h.length > V1_MAX_BYTES || h[h.length - 2] !== 0x0d || h[h.length - 1] !== 0x0a) bad('PROXY v1 line does not end in CRLF');
    const line = h.subarray(0, h.length - 2).toString('latin1');
    const parts = line.split(' ');
    if (parts[0] !== 'PROXY') bad('PROXY v1 line does not start with PROXY');
    if (parts[1] === 'UNKNOWN') return { version: 1, command: 'LOCAL' };
    const v4 = parts[1] === 'TCP4';
    if ((!v4 && parts[1] !== 'TCP6') || parts.length !== 6) bad(`bad PROXY v1 line ${JSON.stringify(line)}`);
    const isFamily = v4 ? isIPv4 : (a: string) => isIPv6(a) && !a.includes('%');
    if (!isFamily(parts[2]!) || !isFamily(parts[3]!)) bad(`bad ${parts[1]} address in PROXY v1 line`);
    return { version: 1, command: 'PROXY', source: { address: canonical(parts[2]!), port: port(parts[4]) }, destination: { address: canonical(parts[3]!), port: port(parts[5]) } };
  }
  if (h.length < 16 || !h.subarray(0, 12).equals(V2_SIGNATURE)) bad('no PROXY header');
  if (16 + h.readUInt16BE(14) !== h.length) bad('PROXY v2 length does not match');
  const verCmd = h[12]!;
  if (verCmd >> 4 !== 2) bad('PROXY v2 with a wrong version');
  const command = (verCmd & 0xf) === 0 ? 'LOCAL' : (verCmd & 0xf) === 1 ? 'PROXY' : bad('PROXY v2 with an unknown command');
  if (command === 'LOCAL') return { version: 2, command };
  const fam = h[13]! >> 4;
  const body = h.subarray(16);
  if (fam === 1) {
    if (body.length < 12) bad('PROXY v2 IPv4 address block is short');
    return {
      version: 2, command,
      source: { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) },
      destination: { address: [...body.subarray(4, 8)].join('.'), port: body.readUInt16BE(10) },
    };
  }
  if (fam === 2) {
    if (body.length < 36) bad('PROXY v2 IPv6 address block is short');
    const v6 = (b: Buffer) => formatIp({ family: 6, value: BigInt(`0x${b.toString('hex')}`) });
    return {
      version: 2, command,
      source: { address: v6(body.subarray(0, 16)), port: body.readUInt16BE(32) },
      destination: { address: v6(body.subarray(16, 32)), port: body.readUInt16BE(34) },
    };
  }
  // AF_UNSPEC or AF_UNIX: no address to pass on
  return { version: 2, command };
}

/**
 * Reads a PROXY header. In 'optional' mode a connection that does not start with one is passed
 * through untouched (header undefined; all bytes returned in `rest`).
 */
export async function readProxyHeader(socket: Duplex, opts: { mode: 'optional' | 'required'; timeoutMs: number; signal?: AbortSignal }): Promise<{ header: ProxyHeader | undefined; rest: Buffer }> {
  const scanner = new ProxyHeaderScanner(opts.mode);
  const { prefix, rest } = await readPrefix(socket, scanner, { maxBytes: V2_MAX_BYTES, timeoutMs: opts.timeoutMs, what: 'PROXY protocol header', ...(opts.signal ? { signal: opts.signal } : {}) });
  if (scanner.absent) return { header: undefined, rest };
  return { header: parseProxyHeader(prefix), rest };
}

type Endpoint = { address: string; port: number };

export function encodeProxyV1(src: Endpoint, dst: Endpoint): Buffer {
  const fam = src.address.includes(':') ? 'TCP6' : 'TCP4';
  return Buffer.from(`PROXY ${fam} ${src.address} ${dst.address} ${src.port} ${dst.port}\r\n`, 'latin1');
}

/** A v2 PROXY header for a TCP connection (IPv4 or IPv6; both ends of one family), optionally with TLVs. */
export function encodeProxyV2(src: Endpoint, dst: Endpoint, opts: { tlvs?: Buffer } = {}): Buffer {
  const s = parseIp(src.address);
  const d = parseIp(dst.address);
  if (!s || !d || s.family !== d.family) throw new ProxyProtocolHeaderError('encodeProxyV2 needs two addresses of one family');
  const width = s.family === 4 ? 4 : 16;
  const tlvs = opts.tlvs ?? Buffer.alloc(0);
  const len = 2 * width + 4 + tlvs.length;
  const b = Buffer.alloc(16 + len);
  V2_SIGNATURE.copy(b, 0);
  b[12] = 0x21;
  b[13] = s.family === 4 ? 0x11 : 0x21;
  b.writeUInt16BE(len, 14);
  const put = (v: bigint, at: number) => Buffer.from(v.toString(16).padStart(width * 2, '0'), 'hex').copy(b, at);
  put(s.value, 16);
  put(d.value, 16 + width);
  b.writeUInt16BE(src.port, 16 + 2 * width);
  b.writeUInt16BE(dst.port, 18 + 2 * width);
  tlvs.copy(b, 20 + 2 * width);
  return b;
}
