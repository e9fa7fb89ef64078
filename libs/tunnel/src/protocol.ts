/**
 * The reversed-vpn tunnel protocol, version 1.2. Everything on the wire is declared here.
 *
 * TRANSPORT
 *   One TCP connection (directly, or inside an HTTP CONNECT tunnel through sni-proxy), then TLS 1.3
 *   with mutual certificate authentication. Everything below runs inside TLS.
 *
 * FRAME (all integers big-endian)
 *   +--------+--------+--------+--------+------------------------------+
 *   | type   | payload length (u24)     | payload (0..MAX_FRAME_PAYLOAD) |
 *   +--------+--------+--------+--------+------------------------------+
 *   A frame larger than MAX_FRAME_PAYLOAD (MAX_HELLO_PAYLOAD before the handshake completed) is a
 *   protocol error (RVPN_ERR_PROTO_FRAME_TOO_LARGE): the receiver sends ERROR and closes at once,
 *   without reading (or allocating) the payload. Senders split batches to stay below it.
 *
 * FRAME TYPES
 *   0x01 HELLO       "RVPN" (4 bytes) | major u8 | minor u8 | UTF-8 JSON (HelloBody)
 *   0x02 DATA        one packet (IP, or Ethernet for TAP). The only data frame of version 1.0.
 *   0x03 DATA_BATCH  a packed batch: ([u16 length][packet bytes])* — since 1.1, sent only when both
 *                    sides negotiated minor >= 1. The layout is the one the TUN addon produces.
 *   0x04 PING        seq u32 | sender timestamp u64 (ns, sender's monotonic clock)
 *   0x05 PONG        the PING payload echoed unchanged (the sender computes the RTT). A receiver whose
 *                    write buffer is over its cap does not echo (the peer is not reading): PINGs
 *                    are then dropped, never queued.
 *   0x06 CLOSE       reason u16 | UTF-8 text. The sender closes after it.
 *   0x07 ERROR       UTF-8 JSON { code: "RVPN_ERR_…", message }. The sender closes after it. The
 *                    receiver trusts the code only when it is one it knows (else `other`: a peer
 *                    must not mint metric labels) and truncates the message.
 *   0x08 DATA_GSO_BATCH  a packed batch in the GSO layout: ([u16 IP packet length][virtio_net_hdr,
 *                    10 bytes][IP packet])* (device.ts) — since 1.2, sent only when both HELLOs
 *                    listed the feature "gso" and both sides negotiated minor >= 2; anything else
 *                    makes it a protocol error. The header is the kernel's (TUN with IFF_VNET_HDR,
 *                    little-endian fields): a TCP super-packet of up to 64 KiB with its segment size,
 *                    or a packet whose checksum is left to the receiver's kernel. The receiver
 *                    validates every header (filter.ts checkVnetHeader) before its kernel sees it.
 *                    A session without "gso" on both ends carries plain DATA_BATCH only. On an HA
 *                    link (a TAP's Ethernet frames) the length counts the Ethernet frame and
 *                    csum_start counts from its first byte, as the TAP's kernel reads and writes it.
 *   0x80-0xff        optional extensions: ignored by receivers that do not know them.
 *   0x80 MAC_ANNOUNCE  (extension, HA) count u16 | count × MAC (6 bytes): the MACs attached to the
 *                    sending HA seed server's switch; bonds use it to pick a link per destination
 *                    (codec in libs/bonding announce.ts).
 *   Any other unknown type below 0x80 is a protocol error.
 *
 * HANDSHAKE
 *   After TLS, the DIALER sends HELLO first; the LISTENER checks it and answers with its own HELLO,
 *   or with ERROR and a close. Which side dials is configuration (reversed: the shoot dials; classic:
 *   the seed dials). The SEED role always carries `assignment` (tunnel addresses from VPN_NETWORK),
 *   whichever side dialed (in HA mode, `bond` instead: see HelloBody). A peer with another MAJOR version is refused with ERROR
 *   RVPN_ERR_PROTO_VERSION naming both versions; minors interoperate: the session uses
 *   min(local minor, peer minor) and only the frames that version knows.
 *   No data frame is sent before the handshake completes.
 *
 * KEEPALIVE
 *   Each side sends PING every keepaliveIntervalMs (default 250 ms) and declares the peer dead when
 *   NOTHING (any frame, data included) arrived for keepaliveTimeoutMs (default 1000 ms). Counting data
 *   as liveness means a link saturated with traffic is never declared dead because its pings queued
 *   behind data. Gardener's OpenVPN needs 30-60 s for the same decision.
 */

import { registeredErrors } from '@rvpn/config';

export const PROTOCOL_MAJOR = 1;
export const PROTOCOL_MINOR = 2;
/** HELLO feature: this side reads and writes DATA_GSO_BATCH (a TUN with offload). Since 1.2. */
export const FEATURE_GSO = 'gso';
export const MAGIC = Buffer.from('RVPN', 'ascii');
export const FRAME_HEADER_BYTES = 4;
export const MAX_FRAME_PAYLOAD = 1 << 20;
/** Frame limit while the handshake runs: a HELLO is a few hundred bytes; nobody needs a MiB for it. */
export const MAX_HELLO_PAYLOAD = 64 * 1024;
/** Peer text (CLOSE text, ERROR message, identities) kept for logs and reasons, in characters. */
export const MAX_PEER_TEXT = 256;
/** What an ERROR frame's code becomes when this side does not know it. */
export const OTHER_CODE = 'other';
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 250;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 1000;

export const FrameType = {
  HELLO: 0x01,
  DATA: 0x02,
  DATA_BATCH: 0x03,
  /** Since 1.2, with the "gso" feature on both ends. */
  DATA_GSO_BATCH: 0x08,
  PING: 0x04,
  PONG: 0x05,
  CLOSE: 0x06,
  ERROR: 0x07,
  /** Extension (HA): MACs attached to an HA seed server's switch. */
  MAC_ANNOUNCE: 0x80,
} as const;

export type Role = 'seed' | 'shoot';

export interface TunnelAssignment {
  seedAddress: string;
  shootAddress: string;
  prefixLength: number;
}

/** The JSON part of HELLO. */
export interface HelloBody {
  role: Role;
  /** Human-readable identity for logs (e.g. `vpn-shoot/<namespace>/<pod>`). */
  identity: string;
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  /** VPN_NETWORK as a CIDR string; both ends must agree. */
  vpnNetwork: string;
  mtu: number;
  /** Sent by the seed role only. */
  assignment?: TunnelAssignment;
  features?: string[];
  /**
   * HA (bonded, layer 2): a client names its address in the bond network (its MAC derives from it);
   * an HA seed server names its index. A seed-role HELLO carries either `assignment` or `bond`.
   */
  bond?: { address?: string; serverIndex?: number };
  /**
   * The sender's network mapping fingerprint (libs/config NetworkMapping.fingerprint, issue 12): the
   * receiver refuses a different one (RVPN_ERR_MAPPING_MISMATCH). Absent from peers before it existed.
   */
  mapping?: string;
}

export interface Hello extends HelloBody {
  major: number;
  minor: number;
}

export function frameHeader(type: number, length: number): Buffer {
  if (length > MAX_FRAME_PAYLOAD) throw new RangeError(`frame payload ${length} exceeds ${MAX_FRAME_PAYLOAD}`);
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h[0] = type;
  h[1] = (length >>> 16) & 0xff;
  h[2] = (length >>> 8) & 0xff;
  h[3] = length & 0xff;
  return h;
}

export function encodeFrame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([frameHeader(type, payload.length), payload]);
}

export function encodeHello(body: HelloBody, major = PROTOCOL_MAJOR, minor = PROTOCOL_MINOR): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  const p = Buffer.allocUnsafe(6 + json.length);
  MAGIC.copy(p, 0);
  p[4] = major;
  p[5] = minor;
  json.copy(p, 6);
  return encodeFrame(FrameType.HELLO, p);
}

/** Parses a HELLO payload; returns a reason string when it is invalid. */
export function decodeHello(payload: Buffer): Hello | string {
  if (payload.length < 6 || !payload.subarray(0, 4).equals(MAGIC)) return 'HELLO without the RVPN magic';
  const major = payload[4]!;
  const minor = payload[5]!;
  let body: unknown;
  try {
    body = JSON.parse(payload.subarray(6).toString('utf8'));
  } catch {
    return 'HELLO body is not JSON';
  }
  const b = body as Partial<HelloBody>;
  if (typeof b !== 'object' || b === null) return 'HELLO body is not an object';
  // A peer of another major version may use another body; the caller checks the version first.
  if (major !== PROTOCOL_MAJOR) return { ...(b as HelloBody), major, minor };
  if (b.role !== 'seed' && b.role !== 'shoot') return `HELLO role must be seed or shoot, got ${JSON.stringify(b.role)}`;
  if (typeof b.identity !== 'string') return 'HELLO identity missing';
  if (!Number.isFinite(b.keepaliveIntervalMs) || !Number.isFinite(b.keepaliveTimeoutMs)) return 'HELLO keepalive settings missing';
  if (typeof b.vpnNetwork !== 'string') return 'HELLO vpnNetwork missing';
  if (!Number.isInteger(b.mtu)) return 'HELLO mtu missing';
  if (b.features !== undefined && (!Array.isArray(b.features) || b.features.length > 32 || !b.features.every((f) => typeof f === 'string' && f.length <= 32))) return 'HELLO features must be a short list of short strings';
  if (b.bond !== undefined && (typeof b.bond !== 'object' || b.bond === null)) return 'HELLO bond must be an object';
  if (b.mapping !== undefined && (typeof b.mapping !== 'string' || b.mapping.length > 64)) return 'HELLO mapping must be a short string';
  if (b.role === 'seed' && !b.bond) {
    const a = b.assignment;
    if (!a || typeof a.seedAddress !== 'string' || typeof a.shootAddress !== 'string' || !Number.isInteger(a.prefixLength)) {
      return 'HELLO from the seed role lacks the address assignment';
    }
  }
  return { ...(b as HelloBody), major, minor };
}

export function encodePing(seq: number, timestampNs: bigint): Buffer {
  const p = Buffer.allocUnsafe(12);
  p.writeUInt32BE(seq >>> 0, 0);
  p.writeBigUInt64BE(timestampNs, 4);
  return encodeFrame(FrameType.PING, p);
}

export function encodeClose(reason: number, text: string): Buffer {
  const t = Buffer.from(text.slice(0, 512), 'utf8');
  const p = Buffer.allocUnsafe(2 + t.length);
  p.writeUInt16BE(reason, 0);
  t.copy(p, 2);
  return encodeFrame(FrameType.CLOSE, p);
}

export function decodeClose(payload: Buffer): { reason: number; text: string } {
  if (payload.length < 2) return { reason: 0, text: '' };
  return { reason: payload.readUInt16BE(0), text: peerText(payload.subarray(2, 2 + 4 * MAX_PEER_TEXT).toString('utf8')) };
}

export function encodeError(code: string, message: string): Buffer {
  return encodeFrame(FrameType.ERROR, Buffer.from(JSON.stringify({ code, message: message.slice(0, 1024) }), 'utf8'));
}

/**
 * Parses an ERROR payload. `code` is a code this process knows (registered with defineError) or
 * OTHER_CODE, so it is safe as a metric label; `rawCode` and `message` are sanitised and truncated
 * peer text, for logs only.
 */
export function decodeError(payload: Buffer): { code: string; rawCode: string; message: string } {
  try {
    const o = JSON.parse(payload.toString('utf8')) as { code?: unknown; message?: unknown } | null;
    const raw = typeof o?.code === 'string' ? o.code : 'RVPN_ERR_PROTO_MALFORMED';
    return { code: knownCode(raw), rawCode: peerText(raw, 64), message: typeof o?.message === 'string' ? peerText(o.message) : '' };
  } catch {
    return { code: 'RVPN_ERR_PROTO_MALFORMED', rawCode: 'RVPN_ERR_PROTO_MALFORMED', message: 'unparseable ERROR frame' };
  }
}

/** `code` when this process declared it (defineError), else OTHER_CODE: the only codes fit for labels. */
export function knownCode(code: string | undefined): string {
  if (code === undefined) return OTHER_CODE;
  if (!known || known.size !== registeredErrors().length) known = new Set(registeredErrors().map((e) => e.code));
  return known.has(code) ? code : OTHER_CODE;
}
let known: Set<string> | undefined;

/**
 * Peer-controlled text made fit for a log line: control and format characters replaced, at most
 * `max` characters (the rest counted, not kept).
 */
export function peerText(text: unknown, max = MAX_PEER_TEXT): string {
  const s = typeof text === 'string' ? text : String(text);
  const head = (s.length > max ? s.slice(0, max) : s).replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cs}\u2028\u2029]/gu, '?');
  return s.length > max ? `${head}…(+${s.length - max} chars)` : head;
}

/** PING/PONG payload: seq and the sender's timestamp, or undefined when it is too short. */
export function decodePing(payload: Buffer): { seq: number; timestampNs: bigint } | undefined {
  if (payload.length < 12) return undefined;
  return { seq: payload.readUInt32BE(0), timestampNs: payload.readBigUInt64BE(4) };
}

/** CLOSE reason codes. */
export const CloseReason = {
  NORMAL: 0,
  REPLACED: 1,
  SHUTDOWN: 2,
  PEER_DEAD: 3,
} as const;

/**
 * Incremental frame parser. Frames that lie within one chunk are handed out as views (no copy);
 * a frame spanning chunks is assembled once into a buffer of its exact size. Payload views stay
 * valid after the callback (chunks from a socket are never reused).
 *
 * It never throws on input: a declared length above `maxPayload` calls `onError` once (before
 * anything is allocated for it) and the parser ignores all later bytes. At most one buffer of
 * FRAME_HEADER_BYTES + maxPayload is held at a time (`bufferedBytes`).
 */
export class FrameParser {
  private partial: Buffer | null = null;
  private filled = 0;
  private readonly hdr = Buffer.alloc(FRAME_HEADER_BYTES);
  private hdrLen = 0;
  private failed = false;

  constructor(
    private onFrame: (type: number, payload: Buffer) => void,
    private onError: (reason: string, declaredLength: number) => void,
    private maxPayload = MAX_FRAME_PAYLOAD,
  ) {}

  /** Hands the parser to another consumer (the session, after the handshake) with its own limit. */
  retarget(onFrame: (type: number, payload: Buffer) => void, onError: (reason: string, declaredLength: number) => void, maxPayload: number): void {
    this.onFrame = onFrame;
    this.onError = onError;
    this.maxPayload = maxPayload;
  }

  /** Bytes held for a frame that spans chunks (bounded by FRAME_HEADER_BYTES + maxPayload). */
  get bufferedBytes(): number {
    return this.partial ? this.partial.length : 0;
  }

  get limit(): number {
    return this.maxPayload;
  }

  /** True after a length error: later bytes are ignored. */
  get stopped(): boolean {
    return this.failed;
  }

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.failed) {
      if (this.partial) {
        const n = Math.min(this.partial.length - this.filled, chunk.length - off);
        chunk.copy(this.partial, this.filled, off, off + n);
        this.filled += n;
        off += n;
        if (this.filled === this.partial.length) {
          const f = this.partial;
          this.partial = null;
          this.onFrame(f[0]!, f.subarray(FRAME_HEADER_BYTES));
        }
        continue;
      }
      if (this.hdrLen > 0 || chunk.length - off < FRAME_HEADER_BYTES) {
        const n = Math.min(FRAME_HEADER_BYTES - this.hdrLen, chunk.length - off);
        chunk.copy(this.hdr, this.hdrLen, off, off + n);
        this.hdrLen += n;
        off += n;
        if (this.hdrLen < FRAME_HEADER_BYTES) return;
        this.hdrLen = 0;
        const len = (this.hdr[1]! << 16) | (this.hdr[2]! << 8) | this.hdr[3]!;
        if (!this.checkLength(len)) return;
        if (len === 0) {
          this.onFrame(this.hdr[0]!, Buffer.alloc(0));
          continue;
        }
        this.partial = Buffer.allocUnsafe(FRAME_HEADER_BYTES + len);
        this.hdr.copy(this.partial, 0);
        this.filled = FRAME_HEADER_BYTES;
        continue;
      }
      const type = chunk[off]!;
      const len = (chunk[off + 1]! << 16) | (chunk[off + 2]! << 8) | chunk[off + 3]!;
      if (!this.checkLength(len)) return;
      if (off + FRAME_HEADER_BYTES + len <= chunk.length) {
        this.onFrame(type, chunk.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len));
        off += FRAME_HEADER_BYTES + len;
      } else {
        this.partial = Buffer.allocUnsafe(FRAME_HEADER_BYTES + len);
        chunk.copy(this.partial, 0, off);
        this.filled = chunk.length - off;
        off = chunk.length;
      }
    }
  }

  private checkLength(len: number): boolean {
    if (len <= this.maxPayload) return true;
    this.failed = true;
    this.partial = null;
    this.onError(`frame of ${len} bytes exceeds the ${this.maxPayload}-byte limit`, len);
    return false;
  }
}
