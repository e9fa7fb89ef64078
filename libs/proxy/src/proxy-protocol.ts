/**
 * PROXY protocol v1 (text) and v2 (binary), as load balancers put it in front of a connection to
 * pass on the client's address. Parsing is bounded; TLVs of v2 are skipped.
 */
import type { Duplex } from 'node:stream';
import { ProxyProtocolHeaderError } from './errors.js';
import { readPrefix } from './read-prefix.js';

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

export interface ProxyHeader {
  version: 1 | 2;
  command: 'PROXY' | 'LOCAL';
  source?: { address: string; port: number };
  destination?: { address: string; port: number };
}

/** True when `buf` could still become a PROXY header (used by the 'optional' mode). */
export function looksLikeProxyHeader(buf: Buffer): boolean {
  const n = Math.min(buf.length, 12);
  return buf.subarray(0, Math.min(n, 6)).equals(Buffer.from('PROXY ').subarray(0, Math.min(n, 6))) || buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n));
}

/** Length of a complete header at the start of `buf`, undefined when more bytes are needed. */
export function proxyHeaderLength(buf: Buffer): number | undefined {
  if (buf.length >= 1 && buf[0] === 0x50) {
    const end = buf.indexOf('\r\n');
    if (end < 0) {
      if (buf.length > 107) throw new ProxyProtocolHeaderError('PROXY v1 line longer than 107 bytes');
      return undefined;
    }
    return end + 2;
  }
  if (buf.length < 16) return buf.subarray(0, Math.min(buf.length, 12)).equals(V2_SIGNATURE.subarray(0, Math.min(buf.length, 12))) ? undefined : bad('no PROXY header');
  if (!buf.subarray(0, 12).equals(V2_SIGNATURE)) bad('no PROXY header');
  return 16 + buf.readUInt16BE(14) <= buf.length ? 16 + buf.readUInt16BE(14) : undefined;
}

function bad(msg: string): never {
  throw new ProxyProtocolHeaderError(msg);
}

export function parseProxyHeader(h: Buffer): ProxyHeader {
  if (h[0] === 0x50) {
    const line = h.subarray(0, h.length - 2).toString('latin1');
    const parts = line.split(' ');
    if (parts[0] !== 'PROXY') bad('PROXY v1 line does not start with PROXY');
    if (parts[1] === 'UNKNOWN') return { version: 1, command: 'LOCAL' };
    if ((parts[1] !== 'TCP4' && parts[1] !== 'TCP6') || parts.length !== 6) bad(`bad PROXY v1 line ${JSON.stringify(line)}`);
    const sp = Number(parts[4]);
    const dp = Number(parts[5]);
    if (!(sp >= 0 && sp <= 65535 && dp >= 0 && dp <= 65535)) bad('bad port in PROXY v1 line');
    return { version: 1, command: 'PROXY', source: { address: parts[2]!, port: sp }, destination: { address: parts[3]!, port: dp } };
  }
  const verCmd = h[12]!;
  if (verCmd >> 4 !== 2) bad('PROXY v2 with a wrong version');
  const command = (verCmd & 0xf) === 0 ? 'LOCAL' : (verCmd & 0xf) === 1 ? 'PROXY' : bad('PROXY v2 with an unknown command');
  if (command === 'LOCAL') return { version: 2, command };
  const fam = h[13]!;
  const body = h.subarray(16);
  if (fam === 0x11 && body.length >= 12) {
    return {
      version: 2, command,
      source: { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) },
      destination: { address: [...body.subarray(4, 8)].join('.'), port: body.readUInt16BE(10) },
    };
  }
  if (fam === 0x21 && body.length >= 36) {
    const v6 = (b: Buffer) => Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':');
    return {
      version: 2, command,
      source: { address: v6(body.subarray(0, 16)), port: body.readUInt16BE(32) },
      destination: { address: v6(body.subarray(16, 32)), port: body.readUInt16BE(34) },
    };
  }
  return { version: 2, command };
}

/**
 * Reads a PROXY header. In 'optional' mode a connection that does not start with one is passed
 * through untouched (header undefined; all bytes returned in `rest`).
 */
export async function readProxyHeader(socket: Duplex, opts: { mode: 'optional' | 'required'; timeoutMs: number; signal?: AbortSignal }): Promise<{ header: ProxyHeader | undefined; rest: Buffer }> {
  let absent = false;
  const { prefix, rest } = await readPrefix(
    socket,
    (buf) => {
      if (opts.mode === 'optional' && buf.length > 0 && !looksLikeProxyHeader(buf)) {
        absent = true;
        return 0;
      }
      return proxyHeaderLength(buf);
    },
    { maxBytes: 16 + 65535, timeoutMs: opts.timeoutMs, what: 'PROXY protocol header', ...(opts.signal ? { signal: opts.signal } : {}) },
  );
  if (absent) return { header: undefined, rest: Buffer.concat([prefix, rest]) };
  return { header: parseProxyHeader(prefix), rest };
}

export function encodeProxyV1(src: { address: string; port: number }, dst: { address: string; port: number }): Buffer {
  const fam = src.address.includes(':') ? 'TCP6' : 'TCP4';
  return Buffer.from(`PROXY ${fam} ${src.address} ${dst.address} ${src.port} ${dst.port}\r\n`, 'latin1');
}

export function encodeProxyV2(src: { address: string; port: number }, dst: { address: string; port: number }): Buffer {
  if (src.address.includes(':')) throw new ProxyProtocolHeaderError('encodeProxyV2 supports IPv4 here');
  const b = Buffer.alloc(16 + 12);
  V2_SIGNATURE.copy(b, 0);
  b[12] = 0x21;
  b[13] = 0x11;
  b.writeUInt16BE(12, 14);
  Buffer.from(src.address.split('.').map(Number)).copy(b, 16);
  Buffer.from(dst.address.split('.').map(Number)).copy(b, 20);
  b.writeUInt16BE(src.port, 24);
  b.writeUInt16BE(dst.port, 26);
  return b;
}
