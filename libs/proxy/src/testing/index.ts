/**
 * @rvpn/proxy/testing: encoders for tests and for the hostile-peer toolkit — ClientHellos of any shape
 * (any SNI, a post-quantum key share, junk extensions), the same handshake cut into TLS records of any
 * sizes, CONNECT request heads — and a real Go ClientHello with X25519MLKEM768.
 *
 *   import { encodeClientHello, toRecords } from '@rvpn/proxy/testing';
 *   const wire = toRecords(encodeClientHello({ serverName: 'api.x.example', keyShares: [{ group: 0x11ec, length: 1216 }] }), 1);
 *   // 1-byte records: a legal but hostile way to send it
 */
export { GO_MLKEM_CLIENTHELLO, GO_MLKEM_CLIENTHELLO_SNI } from './go-clienthello.js';

export interface ClientHelloSpec {
  /** host_name entry of server_name; absent: no server_name extension. */
  serverName?: string;
  /** key_share entries (group id, key length); default one X25519 share. */
  keyShares?: Array<{ group: number; length: number }>;
  /** Further extensions, written before key_share. */
  extensions?: Array<{ type: number; data: Buffer }>;
  cipherSuites?: number[];
  sessionId?: Buffer;
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 255, n & 255]);
const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), u16(data.length), data]);

/** X25519MLKEM768's group id and key share length (a client's share: ML-KEM-768 key 1184 + X25519 32). */
export const X25519MLKEM768 = { group: 0x11ec, length: 1216 } as const;

/** The handshake message (type 1, u24 length, body) of a TLS 1.3-style ClientHello. */
export function encodeClientHello(spec: ClientHelloSpec = {}): Buffer {
  const exts: Buffer[] = [];
  if (spec.serverName !== undefined) {
    const name = Buffer.from(spec.serverName, 'latin1');
    const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
    exts.push(ext(0, Buffer.concat([u16(entry.length), entry])));
  }
  exts.push(ext(43, Buffer.from([2, 3, 4]))); // supported_versions: TLS 1.3
  for (const e of spec.extensions ?? []) exts.push(ext(e.type, e.data));
  const shares = (spec.keyShares ?? [{ group: 0x1d, length: 32 }]).map((s) => Buffer.concat([u16(s.group), u16(s.length), Buffer.alloc(s.length, 0x5a)]));
  const shareList = Buffer.concat(shares);
  exts.push(ext(51, Buffer.concat([u16(shareList.length), shareList])));
  const extBytes = Buffer.concat(exts);
  const suites = spec.cipherSuites ?? [0x1301, 0x1302, 0x1303];
  const sid = spec.sessionId ?? Buffer.alloc(32, 7);
  const body = Buffer.concat([
    Buffer.from([3, 3]), Buffer.alloc(32, 0x42), Buffer.from([sid.length]), sid,
    u16(suites.length * 2), ...suites.map(u16), Buffer.from([1, 0]),
    u16(extBytes.length), extBytes,
  ]);
  return Buffer.concat([Buffer.from([1]), u24(body.length), body]);
}

/** The handshake bytes as TLS handshake records (type 22, version 3.1) of the given payload sizes (the last size repeats). */
export function toRecords(handshake: Buffer, sizes: number | readonly number[]): Buffer {
  const list = typeof sizes === 'number' ? [sizes] : sizes;
  const out: Buffer[] = [];
  for (let off = 0, i = 0; off < handshake.length; i++) {
    const n = Math.max(1, Math.min(list[Math.min(i, list.length - 1)]!, handshake.length - off, 16384));
    out.push(Buffer.from([0x16, 3, 1, n >> 8, n & 255]), handshake.subarray(off, off + n));
    off += n;
  }
  return Buffer.concat(out);
}

/** The handshake message inside TLS records (the inverse of toRecords, for complete records). */
export function fromRecords(records: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let off = 0; off + 5 <= records.length; ) {
    const len = records.readUInt16BE(off + 3);
    out.push(records.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  return Buffer.concat(out);
}

/** An HTTP/1.x request head (`\r\n\r\n` included). */
export function encodeRequestHead(head: { method: string; target: string; version?: '1.0' | '1.1'; headers?: Array<[string, string]> }): string {
  const lines = [`${head.method} ${head.target} HTTP/${head.version ?? '1.1'}`, ...(head.headers ?? []).map(([k, v]) => `${k}: ${v}`)];
  return `${lines.join('\r\n')}\r\n\r\n`;
}
