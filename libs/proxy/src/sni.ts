/**
 * Reads a TLS ClientHello (which may span several records, and arrive in any number of reads) and
 * extracts the server_name (SNI) without terminating TLS, for passthrough routing. The bytes read are
 * replayed upstream unchanged.
 *
 * Parsing is incremental and linear: ClientHelloScanner walks the record headers as bytes arrive and
 * copies each handshake byte once into a buffer sized from the handshake header (refused at once when
 * that size exceeds the limit). Post-quantum ClientHellos (X25519MLKEM768 key shares, ~1.5 KB from Go
 * >= 1.24, more with several shares) pass like any other: only the byte limit bounds them.
 */
import type { Duplex } from 'node:stream';
import { ClientHelloError, HeadTooLargeError } from './errors.js';
import { readPrefix, type PrefixScanner } from './read-prefix.js';

/** TLSPlaintext.length may not exceed 2^14 (RFC 8446 5.1); a little slack for old clients. */
const MAX_RECORD = 16384 + 2048;

export class ClientHelloScanner implements PrefixScanner {
  /** Bytes pushed so far. */
  private seen = 0;
  /** The current record's header, while incomplete. */
  private readonly header = Buffer.alloc(5);
  private headerFill = 0;
  /** Payload bytes of the current record still to come. */
  private recordLeft = 0;
  private records = 0;
  /** The handshake message: its 4-byte header first, then the body (allocated once its length is known). */
  private readonly hsHeader = Buffer.alloc(4);
  private hsHeaderFill = 0;
  private hsBody: Buffer | undefined;
  private hsBodyFill = 0;

  /** `maxBytes` bounds the handshake message (and so what this allocates). */
  constructor(private readonly maxBytes: number) {}

  /** The ClientHello body (after type and length) once complete. */
  get body(): Buffer | undefined {
    return this.hsBody && this.hsBodyFill === this.hsBody.length ? this.hsBody : undefined;
  }

  /** Bytes this scanner holds (bounded by maxBytes + 9). */
  get retainedBytes(): number {
    return 9 + (this.hsBody?.length ?? 0);
  }

  push(chunk: Buffer): number | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.recordLeft === 0) {
        // record header
        const b = chunk[i++]!;
        this.header[this.headerFill++] = b;
        if (this.headerFill === 1 && b !== 0x16) throw new ClientHelloError(this.records === 0 ? 'not a TLS handshake record' : 'ClientHello interrupted by a non-handshake record');
        if (this.headerFill === 2 && b !== 0x03) throw new ClientHelloError('not a TLS record (version)');
        if (this.headerFill < 5) continue;
        this.headerFill = 0;
        const len = this.header.readUInt16BE(3);
        if (len === 0 || len > MAX_RECORD) throw new ClientHelloError('bad TLS record length');
        this.recordLeft = len;
        this.records++;
        continue;
      }
      // record payload: handshake bytes, of which only the ClientHello's are kept
      const n = Math.min(this.recordLeft, chunk.length - i);
      this.take(chunk, i, n);
      i += n;
      this.recordLeft -= n;
      if (this.recordLeft === 0 && this.body) {
        // complete records only: the prefix ends with the record that ends the ClientHello
        return this.seen + i;
      }
    }
    this.seen += chunk.length;
    return undefined;
  }

  private take(chunk: Buffer, from: number, n: number) {
    let i = from;
    const end = from + n;
    while (i < end && this.hsHeaderFill < 4) {
      this.hsHeader[this.hsHeaderFill++] = chunk[i++]!;
      if (this.hsHeaderFill === 1 && this.hsHeader[0] !== 0x01) throw new ClientHelloError('first handshake message is not a ClientHello');
      if (this.hsHeaderFill === 4) {
        const need = this.hsHeader.readUIntBE(1, 3);
        // decided before allocating: a peer cannot make this hold more than the limit
        if (4 + need > this.maxBytes) throw new HeadTooLargeError(`TLS ClientHello of ${4 + need} bytes exceeds ${this.maxBytes} bytes`);
        this.hsBody = Buffer.allocUnsafe(need);
      }
    }
    if (!this.hsBody || i >= end) return;
    const k = Math.min(end - i, this.hsBody.length - this.hsBodyFill);
    chunk.copy(this.hsBody, this.hsBodyFill, i, i + k);
    this.hsBodyFill += k;
  }
}

/**
 * Given the bytes so far, returns how many bytes of complete records hold the whole ClientHello,
 * or undefined when more are needed; throws when the bytes are not a ClientHello.
 */
export function clientHelloLength(buf: Buffer, maxBytes = 16 * 1024 * 1024): number | undefined {
  return new ClientHelloScanner(maxBytes).push(buf);
}

/**
 * The SNI host name in a ClientHello body (after the handshake type and length), or undefined when
 * there is none. Throws ClientHelloError on a body whose fields run past its end.
 */
export function serverNameOfBody(body: Buffer): string | undefined {
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
  const extEnd = Math.min(p + 2 + body.readUInt16BE(p), body.length);
  p += 2;
  while (p + 4 <= extEnd) {
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
        if (q + 3 + nameLen > p + len) throw new ClientHelloError('truncated server_name');
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

/** The SNI host name from complete ClientHello records, or undefined when there is none. */
export function parseServerName(records: Buffer): string | undefined {
  const scanner = new ClientHelloScanner(records.length);
  if (scanner.push(records) === undefined || !scanner.body) throw new ClientHelloError('incomplete ClientHello');
  return serverNameOfBody(scanner.body);
}

export async function readClientHello(socket: Duplex, opts: { maxBytes: number; timeoutMs: number; signal?: AbortSignal; initial?: Buffer }): Promise<{ serverName: string | undefined; buffered: Buffer }> {
  const scanner = new ClientHelloScanner(opts.maxBytes);
  const { bytes } = await readPrefix(socket, scanner, { ...opts, what: 'TLS ClientHello' });
  return { serverName: serverNameOfBody(scanner.body!), buffered: bytes };
}
