/**
 * TLS ClientHellos built by hand: a well-formed TLS 1.3 hello of any size (the post-quantum one Go >=
 * 1.24 sends carries an X25519MLKEM768 key share, ~1.5 KB), cut into records of any size, and a
 * catalogue of malformed ones. sni-proxy must route the first (even split into 1-byte records) and
 * refuse the others quickly, without re-parsing everything per byte.
 */
import { randomBytes } from 'node:crypto';

const u8 = (n: number) => Buffer.from([n & 0xff]);
const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u24 = (n: number) => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
const vec16 = (b: Buffer) => Buffer.concat([u16(b.length), b]);
const ext = (type: number, body: Buffer) => Buffer.concat([u16(type), vec16(body)]);

export const GROUP_X25519 = 0x001d;
export const GROUP_SECP256R1 = 0x0017;
export const GROUP_X25519MLKEM768 = 0x11ec;

export interface ClientHelloOptions {
  /** SNI host name; omitted: no server_name extension. A raw Buffer is put in as it is (malformed names). */
  serverName?: string | Buffer;
  /** Add an X25519MLKEM768 key share (1216 bytes) like Go >= 1.24 clients: about 1.5 KB in all. */
  postQuantum?: boolean;
  /** Pad (extension 21) to reach at least this many handshake bytes. */
  padTo?: number;
}

/** The handshake message (type 1, u24 length, body) of a TLS 1.3 ClientHello. */
export function clientHelloMessage(opts: ClientHelloOptions = {}): Buffer {
  const exts: Buffer[] = [];
  if (opts.serverName !== undefined) {
    const name = typeof opts.serverName === 'string' ? Buffer.from(opts.serverName, 'latin1') : opts.serverName;
    exts.push(ext(0, vec16(Buffer.concat([u8(0), vec16(name)]))));
  }
  const groups = [...(opts.postQuantum ? [GROUP_X25519MLKEM768] : []), GROUP_X25519, GROUP_SECP256R1];
  exts.push(ext(10, vec16(Buffer.concat(groups.map(u16)))));
  exts.push(ext(13, vec16(Buffer.concat([0x0403, 0x0804, 0x0401, 0x0503, 0x0805].map(u16)))));
  exts.push(ext(43, Buffer.concat([u8(2), u16(0x0304)])));
  exts.push(ext(45, Buffer.from([1, 1])));
  const shares = [
    ...(opts.postQuantum ? [Buffer.concat([u16(GROUP_X25519MLKEM768), vec16(x25519Mlkem768Share())])] : []),
    Buffer.concat([u16(GROUP_X25519), vec16(randomBytes(32))]),
  ];
  exts.push(ext(51, vec16(Buffer.concat(shares))));
  const fixed = Buffer.concat([
    u16(0x0303), randomBytes(32),
    u8(32), randomBytes(32),
    vec16(Buffer.concat([0x1301, 0x1302, 0x1303].map(u16))),
    Buffer.from([1, 0]),
  ]);
  let extBytes = Buffer.concat(exts);
  const size = 4 + fixed.length + 2 + extBytes.length;
  if (opts.padTo && size + 4 < opts.padTo) extBytes = Buffer.concat([extBytes, ext(21, Buffer.alloc(opts.padTo - size - 4))]);
  const body = Buffer.concat([fixed, vec16(extBytes)]);
  return Buffer.concat([u8(1), u24(body.length), body]);
}

/** Wraps handshake bytes into TLS records (type 22, version 3.1) of at most `perRecord` bytes each. */
export function toRecords(handshake: Buffer, perRecord = 16384, type = 0x16): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < handshake.length; off += perRecord) {
    const frag = handshake.subarray(off, Math.min(handshake.length, off + perRecord));
    out.push(Buffer.concat([u8(type), u16(0x0301), u16(frag.length), frag]));
  }
  return out;
}

/** A whole ClientHello in one record. */
export function clientHello(opts: ClientHelloOptions = {}): Buffer {
  return Buffer.concat(toRecords(clientHelloMessage(opts)));
}

export interface MalformedHello {
  name: string;
  /** Bytes to send; the attacker then waits without closing its side. */
  bytes: Buffer;
  /** What a correct server does: refuse at once (alert/close), or wait for more until its timeout. */
  expect: 'refuse' | 'timeout';
}

/** Malformed and unroutable ClientHellos, each with what a correct sni-proxy does with it. */
export function malformedHellos(routedName: string): MalformedHello[] {
  const good = clientHelloMessage({ serverName: routedName });
  const rec = (b: Buffer, type = 0x16, version = 0x0301, len = b.length) => Buffer.concat([u8(type), u16(version), u16(len), b]);
  // body offsets: 4 (header) + 2 (version) + 32 (random) + 33 (session id) = 71: the cipher suites' length
  const truncated = Buffer.from(good.subarray(0, 90));
  truncated.writeUIntBE(90 - 4, 1, 3);
  const suitesLie = Buffer.from(good);
  suitesLie.writeUInt16BE(0xfff0, 71);
  const extLie = clientHelloMessage({ serverName: routedName });
  // the server_name extension's own length claims far more than the message holds
  const sniAt = extLie.indexOf(Buffer.from(routedName, 'latin1'));
  extLie.writeUInt16BE(0xff00, sniAt - 7);
  return [
    { name: 'unknown-sni', bytes: rec(clientHelloMessage({ serverName: 'no-route.invalid.example' })), expect: 'refuse' },
    { name: 'no-sni', bytes: rec(clientHelloMessage({})), expect: 'refuse' },
    { name: 'sni-not-a-hostname', bytes: rec(clientHelloMessage({ serverName: Buffer.from('evil\x00name\r\n', 'latin1') })), expect: 'refuse' },
    { name: 'sni-ip-literal-overlong', bytes: rec(clientHelloMessage({ serverName: 'a'.repeat(300) })), expect: 'refuse' },
    { name: 'not-tls', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), expect: 'refuse' },
    { name: 'application-data-record', bytes: rec(Buffer.alloc(64), 0x17), expect: 'refuse' },
    { name: 'bad-record-version', bytes: rec(good, 0x16, 0x0903), expect: 'refuse' },
    { name: 'record-length-zero', bytes: rec(Buffer.alloc(0)), expect: 'refuse' },
    { name: 'record-length-over-limit', bytes: Buffer.concat([u8(0x16), u16(0x0301), u16(0xffff), randomBytes(512)]), expect: 'refuse' },
    { name: 'server-hello-instead', bytes: rec(Buffer.concat([u8(2), good.subarray(1)])), expect: 'refuse' },
    { name: 'alert-inside-hello', bytes: Buffer.concat([rec(good.subarray(0, 40)), rec(Buffer.from([2, 40]), 0x15)]), expect: 'refuse' },
    { name: 'truncated-body', bytes: rec(truncated), expect: 'refuse' },
    { name: 'cipher-suites-length-lie', bytes: rec(suitesLie), expect: 'refuse' },
    { name: 'extension-length-lie', bytes: rec(extLie), expect: 'refuse' },
    // a handshake message that claims 16 MiB: a correct reader stops at its byte limit, not at 16 MiB
    { name: 'handshake-length-16MiB', bytes: Buffer.concat([rec(Buffer.concat([u8(1), u24(0xffffff), randomBytes(200)])), ...toRecords(randomBytes(4 * 16384), 16384).map((r) => Buffer.from(r))]), expect: 'refuse' },
    // half a hello, then silence: only the header timeout ends it
    { name: 'half-then-silence', bytes: rec(good).subarray(0, 60), expect: 'timeout' },
    { name: 'hundred-1-byte-records-then-silence', bytes: Buffer.concat(toRecords(good.subarray(0, 100), 1)), expect: 'timeout' },
  ];
}

/**
 * A well-formed X25519MLKEM768 key share: an ML-KEM-768 encapsulation key (384 × 3 twelve-bit
 * coefficients below q = 3329, packed two per three bytes, then a 32-byte seed) and an X25519 key.
 * Random bytes will not do: a server with ML-KEM (OpenSSL 3.5, Node 24) checks the coefficients and
 * answers an out-of-range key with an illegal_parameter alert.
 */
export function x25519Mlkem768Share(): Buffer {
  const Q = 3329;
  const ek = Buffer.alloc(1184);
  const r = randomBytes(768 * 2);
  for (let i = 0; i < 384; i++) {
    const a = r.readUInt16LE(4 * i) % Q;
    const b = r.readUInt16LE(4 * i + 2) % Q;
    ek[3 * i] = a & 0xff;
    ek[3 * i + 1] = (a >> 8) | ((b & 0x0f) << 4);
    ek[3 * i + 2] = b >> 4;
  }
  randomBytes(32).copy(ek, 1152);
  return Buffer.concat([ek, randomBytes(32)]);
}
