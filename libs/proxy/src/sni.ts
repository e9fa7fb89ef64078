/**
 * Reads a TLS ClientHello (which may span several records) and extracts the server_name (SNI)
 * without terminating TLS, for passthrough routing. The buffered bytes are replayed upstream.
 */
import type { Duplex } from 'node:stream';
import { ClientHelloError } from './errors.js';
import { readPrefix } from './read-prefix.js';

/**
 * Given the bytes so far, returns how many bytes of complete records hold the whole ClientHello,
 * or undefined when more are needed; throws when the bytes are not a ClientHello.
 */
export function clientHelloLength(buf: Buffer): number | undefined {
  if (buf.length >= 1 && buf[0] !== 0x16) throw new ClientHelloError('not a TLS handshake record');
  // Concatenate record payloads until the handshake message is complete.
  let off = 0;
  let hs = Buffer.alloc(0);
  while (off + 5 <= buf.length) {
    if (buf[off] !== 0x16) throw new ClientHelloError('ClientHello interrupted by a non-handshake record');
    if (buf[off + 1] !== 0x03) throw new ClientHelloError('not a TLS record (version)');
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384 + 2048) throw new ClientHelloError('bad TLS record length');
    if (off + 5 + len > buf.length) return undefined;
    hs = Buffer.concat([hs, buf.subarray(off + 5, off + 5 + len)]);
    off += 5 + len;
    if (hs.length >= 4) {
      if (hs[0] !== 0x01) throw new ClientHelloError('first handshake message is not a ClientHello');
      const need = (hs[1]! << 16) | (hs[2]! << 8) | hs[3]!;
      if (hs.length >= 4 + need) return off;
    }
  }
  return undefined;
}

/** The SNI host name from complete ClientHello records, or undefined when there is none. */
export function parseServerName(records: Buffer): string | undefined {
  let hs = Buffer.alloc(0);
  for (let off = 0; off + 5 <= records.length; ) {
    const len = records.readUInt16BE(off + 3);
    hs = Buffer.concat([hs, records.subarray(off + 5, off + 5 + len)]);
    off += 5 + len;
  }
  const body = hs.subarray(4, 4 + ((hs[1]! << 16) | (hs[2]! << 8) | hs[3]!));
  const need = (p: number, n: number) => {
    if (p + n > body.length) throw new ClientHelloError('truncated ClientHello');
  };
  let p = 2 + 32; // version, random
  need(p, 1);
  p += 1 + body[p]!; // session id
  need(p, 2);
  p += 2 + body.readUInt16BE(p); // cipher suites
  need(p, 1);
  p += 1 + body[p]!; // compression methods
  if (p + 2 > body.length) return undefined; // no extensions
  const extEnd = p + 2 + body.readUInt16BE(p);
  p += 2;
  while (p + 4 <= Math.min(extEnd, body.length)) {
    const type = body.readUInt16BE(p);
    const len = body.readUInt16BE(p + 2);
    p += 4;
    need(p, len);
    if (type === 0) {
      // server_name_list: u16 length, then (u8 type, u16 len, name)*
      let q = p + 2;
      while (q + 3 <= p + len) {
        const nameType = body[q]!;
        const nameLen = body.readUInt16BE(q + 1);
        need(q + 3, nameLen);
        if (nameType === 0) {
          const name = body.subarray(q + 3, q + 3 + nameLen).toString('latin1');
          if (!/^[A-Za-z0-9.-]{1,253}$/.test(name)) throw new ClientHelloError('SNI is not a host name');
          return name.toLowerCase();
        }
        q += 3 + nameLen;
      }
      return undefined;
    }
    p += len;
  }
  return undefined;
}

export async function readClientHello(socket: Duplex, opts: { maxBytes: number; timeoutMs: number; signal?: AbortSignal; initial?: Buffer }): Promise<{ serverName: string | undefined; buffered: Buffer }> {
  const { prefix, rest } = await readPrefix(socket, clientHelloLength, { ...opts, what: 'TLS ClientHello' });
  return { serverName: parseServerName(prefix), buffered: Buffer.concat([prefix, rest]) };
}
