/**
 * Server side of HTTP/1.x CONNECT: read a request head from a raw socket (bounded in size and time)
 * and answer with a minimal status response.
 */
import type { Duplex } from 'node:stream';
import { HeadMalformedError } from './errors.js';
import { readPrefix, type PrefixScanner } from './read-prefix.js';

export interface RequestHead {
  method: string;
  target: string;
  version: '1.0' | '1.1';
  /** Header values by lower-case name. */
  headers: Map<string, string[]>;
  /** Bytes received after the head (to be forwarded upstream). */
  rest: Buffer;
}

export interface ReadHeadOptions {
  maxBytes: number;
  timeoutMs: number;
  signal?: AbortSignal;
  initial?: Buffer;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function parseRequestHead(head: string): Omit<RequestHead, 'rest'> {
  const lines = head.split('\r\n');
  const m = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0] ?? '');
  if (!m) throw new HeadMalformedError(`bad request line ${JSON.stringify((lines[0] ?? '').slice(0, 100))}`);
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    const name = i > 0 ? line.slice(0, i) : '';
    if (!TOKEN.test(name)) throw new HeadMalformedError(`bad header line ${JSON.stringify(line.slice(0, 100))}`);
    const key = name.toLowerCase();
    const v = line.slice(i + 1).trim();
    headers.set(key, [...(headers.get(key) ?? []), v]);
  }
  return { method: m[1]!, target: m[2]!, version: m[3] === '0' ? '1.0' : '1.1', headers };
}

const PROBE_BYTES = 16;
const CR = 13;
const LF = 10;

/**
 * Finds the end of an HTTP/1.x head (`\r\n\r\n`) incrementally, byte by byte with a 4-state matcher, so a
 * match split across reads is found without looking back; it also keeps the first 16 bytes to refuse what
 * can never be HTTP (TLS, binary junk) early. `probe: false` only looks for the end (a response head).
 */
export class HeadScanner implements PrefixScanner {
  private seen = 0;
  /** How many bytes of \r\n\r\n end what was seen. */
  private matched = 0;
  private probe = '';
  constructor(private readonly opts: { probe?: boolean } = {}) {}

  /** Characters this scanner holds (at most 16, whatever it was given). */
  get retainedBytes(): number {
    return this.probe.length;
  }

  push(chunk: Buffer): number | undefined {
    if (this.opts.probe !== false && this.seen < PROBE_BYTES) {
      this.probe += chunk.subarray(0, PROBE_BYTES - this.seen).toString('latin1');
      if (!/^[A-Z]{0,16}( |$)/.test(this.probe)) throw new HeadMalformedError('not an HTTP request');
    }
    let m = this.matched;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === (m % 2 === 0 ? CR : LF)) {
        if (++m === 4) return this.seen + i + 1;
      } else m = b === CR ? 1 : 0;
    }
    this.matched = m;
    this.seen += chunk.length;
    return undefined;
  }
}

/** Reads one request head. Errors: RVPN_ERR_PROXY_HEAD_TIMEOUT (408), _TOO_LARGE (431), _MALFORMED (400). */
export async function readRequestHead(socket: Duplex, opts: ReadHeadOptions): Promise<RequestHead> {
  const { prefix, rest } = await readPrefix(socket, new HeadScanner(), { ...opts, what: 'request head' });
  return { ...parseRequestHead(prefix.subarray(0, prefix.length - 4).toString('latin1')), rest };
}

/** Writes `HTTP/1.1 <code> <reason>` with a short text body and closes the connection. */
export function writeStatus(socket: Duplex, code: number, reason: string, body: string): void {
  if (socket.destroyed) return;
  const text = body ? `${body}\n` : '';
  socket.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** Maps a head-reading error to the status a client should get. */
export function statusForHeadError(code: string | undefined): { status: number; reason: string } {
  switch (code) {
    case 'RVPN_ERR_PROXY_HEAD_TIMEOUT':
      return { status: 408, reason: 'Request Timeout' };
    case 'RVPN_ERR_PROXY_HEAD_TOO_LARGE':
      return { status: 431, reason: 'Request Header Fields Too Large' };
    default:
      return { status: 400, reason: 'Bad Request' };
  }
}
