/**
 * A tunnel session over one stream (a TLS socket in production, an in-memory duplex in tests):
 * the HELLO handshake, data frames in both directions, keepalive with RTT, and one `closed` promise
 * that says why it ended. See protocol.ts for the wire format.
 */
import type { Duplex } from 'node:stream';
import { errorCode } from '@rvpn/config';
import {
  CloseReason,
  decodeClose,
  decodeError,
  decodeHello,
  DEFAULT_KEEPALIVE_INTERVAL_MS,
  DEFAULT_KEEPALIVE_TIMEOUT_MS,
  encodeClose,
  encodeError,
  encodeHello,
  encodePing,
  FEATURE_GSO,
  FrameParser,
  frameHeader,
  FrameType,
  MAX_FRAME_PAYLOAD,
  MAX_HELLO_PAYLOAD,
  peerText,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  type Hello,
  type HelloBody,
} from './protocol.js';
import { entryOverhead } from './device.js';
import { ProtoFrameTooLargeError, ProtoHandshakeError, ProtoMalformedError, ProtoVersionError, TunnelClosedError, TunnelPeerDeadError, TunnelTlsError } from './errors.js';

export type LocalHello = HelloBody;
export type PeerHello = Hello;

export interface SessionEnd {
  reason: string;
  code?: string;
  error?: Error;
}

export interface SessionStats {
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  framesIn: number;
  framesOut: number;
  pingsSent: number;
  pongsReceived: number;
  rttMs: number | undefined;
  rttSmoothedMs: number | undefined;
  /** Batches dropped because the socket's write buffer was over its cap. */
  sendDrops: number;
  /** PINGs not echoed because the peer was not reading (write buffer over its cap). */
  pongsDropped: number;
  /** Extension frames (e.g. MAC announcements) dropped for the same reason. */
  extensionDrops: number;
}

export interface EstablishOptions {
  side: 'dialer' | 'listener';
  hello: LocalHello;
  /** Speak an older minor version (rolling upgrades; version-skew tests). */
  protocolMinor?: number;
  /** Extra checks of the peer's HELLO; throw a coded error to refuse it. */
  validatePeerHello?: (peer: PeerHello) => void;
  handshakeTimeoutMs?: number;
  /** Socket write-buffer cap above which sendBatch reports backpressure. Default 1 MiB. */
  writeBufferCap?: number;
  /** Batches held for a consumer that has not registered onPackets yet. Default 256. */
  maxPendingBatches?: number;
  signal?: AbortSignal;
}

type Listener = () => void;

export class TunnelSession {
  readonly peerHello: PeerHello;
  readonly negotiatedMinor: number;
  /** Both ends listed the "gso" feature and speak 1.2: DATA_GSO_BATCH may flow both ways. */
  readonly gso: boolean;
  readonly stats: SessionStats = {
    bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0, framesIn: 0, framesOut: 0,
    pingsSent: 0, pongsReceived: 0, rttMs: undefined, rttSmoothedMs: undefined, sendDrops: 0, pongsDropped: 0, extensionDrops: 0,
  };
  readonly closed: Promise<SessionEnd>;

  private readonly stream: Duplex;
  private readonly cap: number;
  private readonly maxPending: number;
  private packetHandler: ((packed: Buffer, gso: boolean) => void) | undefined;
  private extensionHandler: ((type: number, payload: Buffer) => void) | undefined;
  private pendingBatches: Array<[Buffer, boolean]> = [];
  private drainListeners = new Set<Listener>();
  private resolveClosed!: (end: SessionEnd) => void;
  private ended = false;
  private lastRx = Date.now();
  private pingSeq = 0;
  private pingTimer: NodeJS.Timeout | undefined;
  private deadTimer: NodeJS.Timeout | undefined;
  private readonly keepaliveTimeoutMs: number;

  /** @internal use establishSession */
  constructor(stream: Duplex, parser: FrameParser, peer: PeerHello, minor: number, local: LocalHello, opts: EstablishOptions) {
    this.stream = stream;
    this.peerHello = peer;
    this.negotiatedMinor = minor;
    this.gso = minor >= 2 && (local.features?.includes(FEATURE_GSO) ?? false) && (peer.features?.includes(FEATURE_GSO) ?? false);
    this.cap = opts.writeBufferCap ?? 1 << 20;
    this.maxPending = opts.maxPendingBatches ?? 256;
    this.keepaliveTimeoutMs = local.keepaliveTimeoutMs || DEFAULT_KEEPALIVE_TIMEOUT_MS;
    this.closed = new Promise((r) => (this.resolveClosed = r));
    // From here on frames may be up to MAX_FRAME_PAYLOAD; a larger one ends the session at once
    // (before it was ignored and the session lingered until the keepalive timeout).
    parser.retarget(
      (type, payload) => this.onFrame(type, payload),
      (reason) => this.protocolError(reason, new ProtoFrameTooLargeError(reason)),
      MAX_FRAME_PAYLOAD,
    );
    stream.on('drain', () => {
      for (const l of [...this.drainListeners]) l();
    });
    stream.on('close', () => this.finish({ reason: 'connection closed', code: TunnelClosedError.code }));
    stream.on('error', (err) => this.finish({ reason: `connection error: ${err.message}`, code: TunnelClosedError.code, error: err }));
    stream.on('end', () => this.finish({ reason: 'peer ended the connection', code: TunnelClosedError.code }));
    const interval = local.keepaliveIntervalMs || DEFAULT_KEEPALIVE_INTERVAL_MS;
    this.pingTimer = setInterval(() => this.ping(), interval);
    this.pingTimer.unref();
    this.deadTimer = setInterval(() => this.checkAlive(), Math.max(10, Math.floor(this.keepaliveTimeoutMs / 4)));
    this.deadTimer.unref();
  }

  /**
   * Registers the consumer of received packets (packed batches; `gso` true for the GSO layout, which
   * only a session with `gso` delivers); flushes what arrived before.
   */
  onPackets(handler: (packed: Buffer, gso: boolean) => void): void {
    this.packetHandler = handler;
    const pending = this.pendingBatches;
    this.pendingBatches = [];
    for (const [b, g] of pending) handler(b, g);
  }

  /** Receives extension frames (types 0x80-0xff, e.g. MAC_ANNOUNCE). */
  onExtension(handler: (type: number, payload: Buffer) => void): void {
    this.extensionHandler = handler;
  }

  /**
   * Sends an extension frame; peers that do not know the type ignore it. Returns false (and sends
   * nothing) when the session ended or the peer is not reading (write buffer over its cap):
   * extensions are state announcements that are repeated, never worth unbounded memory.
   */
  sendExtension(type: number, payload: Buffer): boolean {
    if (type < 0x80 || type > 0xff) throw new RangeError(`extension frame types are 0x80-0xff, not 0x${type.toString(16)}`);
    if (this.ended) return false;
    if (this.stream.writableLength >= this.cap) {
      this.stats.extensionDrops++;
      return false;
    }
    this.stream.write(Buffer.concat([frameHeader(type, payload.length), payload]));
    this.stats.framesOut++;
    return true;
  }

  onDrain(l: Listener): () => void {
    this.drainListeners.add(l);
    return () => this.drainListeners.delete(l);
  }

  /** Bytes written to the session and not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.stream.writableLength;
  }

  /** True when the stream can take more right now. */
  get writable(): boolean {
    return !this.ended && this.stream.writableLength < this.cap;
  }

  /**
   * Sends a packed batch in one write (one DATA_BATCH frame per ≤1 MiB, or one DATA frame per packet
   * for a 1.0 peer; DATA_GSO_BATCH frames for a batch in the GSO layout, which needs `gso`). Returns
   * false when the stream's buffer is over its cap: the caller should pause its source until
   * onDrain. A batch offered while over twice the cap is dropped (counted).
   */
  sendBatch(packed: Buffer, gso = false): boolean {
    if (this.ended || packed.length === 0) return !this.ended;
    if (gso && !this.gso) throw new RangeError('a GSO batch on a session without the gso feature');
    if (this.stream.writableLength > 2 * this.cap) {
      this.stats.sendDrops++;
      return false;
    }
    const s = this.stream;
    s.cork();
    let packets = 0;
    if (this.negotiatedMinor >= 1) {
      const type = gso ? FrameType.DATA_GSO_BATCH : FrameType.DATA_BATCH;
      const extra = entryOverhead(gso);
      let start = 0;
      let off = 0;
      while (off < packed.length) {
        const len = packed.readUInt16BE(off);
        if (off + extra + len - start > MAX_FRAME_PAYLOAD) {
          s.write(frameHeader(type, off - start));
          s.write(packed.subarray(start, off));
          this.stats.framesOut++;
          start = off;
        }
        off += extra + len;
        packets++;
      }
      s.write(frameHeader(type, packed.length - start));
      s.write(start === 0 ? packed : packed.subarray(start));
      this.stats.framesOut++;
    } else {
      let off = 0;
      while (off + 2 <= packed.length) {
        const len = packed.readUInt16BE(off);
        s.write(frameHeader(FrameType.DATA, len));
        s.write(packed.subarray(off + 2, off + 2 + len));
        off += 2 + len;
        packets++;
        this.stats.framesOut++;
      }
    }
    s.uncork();
    this.stats.packetsOut += packets;
    this.stats.bytesOut += packed.length - entryOverhead(gso) * packets;
    return s.writableLength < this.cap;
  }

  /** Sends CLOSE and ends the connection. */
  close(text = 'closed', reason: number = CloseReason.NORMAL): void {
    if (this.ended) return;
    try {
      this.stream.write(encodeClose(reason, text));
    } catch {
      /* the stream is already gone */
    }
    this.finish({ reason: `closed locally: ${text}` });
  }

  private ping() {
    if (this.ended) return;
    this.stats.pingsSent++;
    this.stream.write(encodePing(this.pingSeq++, process.hrtime.bigint()));
  }

  private checkAlive() {
    const silent = Date.now() - this.lastRx;
    if (silent > this.keepaliveTimeoutMs) {
      const err = new TunnelPeerDeadError(`nothing received from ${peerText(this.peerHello.identity)} for ${silent} ms`);
      this.finish({ reason: err.message, code: err.code, error: err });
    }
  }

  private deliver(packed: Buffer, gso = false) {
    if (this.packetHandler) this.packetHandler(packed, gso);
    else if (this.pendingBatches.length < this.maxPending) this.pendingBatches.push([packed, gso]);
  }

  private onFrame(type: number, payload: Buffer) {
    if (this.ended) return;
    this.lastRx = Date.now();
    this.stats.framesIn++;
    switch (type) {
      case FrameType.DATA_BATCH:
      case FrameType.DATA_GSO_BATCH: {
        const gso = type === FrameType.DATA_GSO_BATCH;
        if (gso && !this.gso) {
          this.protocolError('DATA_GSO_BATCH on a session without the gso feature');
          return;
        }
        const extra = entryOverhead(gso);
        let off = 0;
        let n = 0;
        while (off + 2 <= payload.length) {
          off += extra + payload.readUInt16BE(off);
          n++;
        }
        if (off !== payload.length) {
          this.protocolError(`${gso ? 'DATA_GSO_BATCH' : 'DATA_BATCH'} with a truncated packet`);
          return;
        }
        this.stats.packetsIn += n;
        this.stats.bytesIn += payload.length - extra * n;
        this.deliver(payload, gso);
        return;
      }
      case FrameType.DATA: {
        if (payload.length > 0xffff) {
          this.protocolError('DATA frame larger than a packet can be');
          return;
        }
        const packed = Buffer.allocUnsafe(2 + payload.length);
        packed.writeUInt16BE(payload.length, 0);
        payload.copy(packed, 2);
        this.stats.packetsIn++;
        this.stats.bytesIn += payload.length;
        this.deliver(packed);
        return;
      }
      case FrameType.PING:
        // Echo only while the peer reads what we write: a peer that sends big PINGs and never
        // reads would otherwise grow our write buffer without bound.
        if (this.stream.writableLength >= this.cap) this.stats.pongsDropped++;
        else this.stream.write(Buffer.concat([frameHeader(FrameType.PONG, payload.length), payload]));
        return;
      case FrameType.PONG: {
        if (payload.length < 12) return;
        const rtt = Number(process.hrtime.bigint() - payload.readBigUInt64BE(4)) / 1e6;
        this.stats.pongsReceived++;
        this.stats.rttMs = rtt;
        this.stats.rttSmoothedMs = this.stats.rttSmoothedMs === undefined ? rtt : this.stats.rttSmoothedMs * 0.875 + rtt * 0.125;
        return;
      }
      case FrameType.CLOSE: {
        const c = decodeClose(payload);
        this.finish({ reason: `peer closed: ${c.text}`, code: TunnelClosedError.code });
        return;
      }
      case FrameType.ERROR: {
        const e = decodeError(payload);
        this.finish({ reason: `peer error ${e.rawCode}: ${e.message}`, code: e.code });
        return;
      }
      case FrameType.HELLO:
        this.protocolError('HELLO after the handshake');
        return;
      default:
        if (type >= 0x80) {
          this.extensionHandler?.(type, payload); // optional extension; ignored when nobody listens
          return;
        }
        this.protocolError(`unknown frame type 0x${type.toString(16)}`);
    }
  }

  /** @internal */
  protocolError(text: string, err: Error & { code: string } = new ProtoMalformedError(text)) {
    try {
      this.stream.write(encodeError(err.code, text));
    } catch {
      /* gone */
    }
    this.finish({ reason: text, code: err.code, error: err });
  }

  private finish(end: SessionEnd) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.pingTimer);
    clearInterval(this.deadTimer);
    this.stream.end();
    // Give CLOSE/ERROR a moment to flush, then make sure the socket is released.
    setTimeout(() => this.stream.destroy(), 200).unref();
    this.drainListeners.clear();
    this.resolveClosed(end);
  }
}

/**
 * Runs the HELLO handshake on `stream` and returns the session. On any failure the stream is
 * destroyed and the promise rejects with a coded error (RVPN_ERR_PROTO_VERSION, _HANDSHAKE,
 * _MALFORMED, or the code of the peer's ERROR frame / of validatePeerHello).
 */
export function establishSession(stream: Duplex, opts: EstablishOptions): Promise<TunnelSession> {
  const localMinor = Math.min(opts.protocolMinor ?? PROTOCOL_MINOR, PROTOCOL_MINOR);
  return new Promise<TunnelSession>((resolve, reject) => {
    let done = false;
    // Before the handshake completes only a HELLO (or ERROR) may come: a small limit.
    const parser = new FrameParser(
      (t, p) => onHandshakeFrame(t, p),
      (reason) => fail(new ProtoFrameTooLargeError(reason), true),
      MAX_HELLO_PAYLOAD,
    );
    const onData = (chunk: Buffer) => parser.push(chunk);
    const onClose = () => fail(new ProtoHandshakeError('connection closed during the tunnel handshake'));
    const onError = (err: Error) =>
      fail(/^ERR_SSL_|^ERR_TLS_/.test((err as NodeJS.ErrnoException).code ?? '')
        ? new TunnelTlsError(`the peer refused the TLS session: ${err.message}`, { cause: err })
        : new ProtoHandshakeError(`connection failed during the tunnel handshake: ${err.message}`, { cause: err }));
    const timer = setTimeout(() => fail(new ProtoHandshakeError(`no HELLO within ${opts.handshakeTimeoutMs ?? 10_000} ms`)), opts.handshakeTimeoutMs ?? 10_000);
    const onAbort = () => fail(new ProtoHandshakeError('handshake aborted'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    stream.on('data', onData);
    stream.once('close', onClose);
    stream.once('error', onError);

    function cleanup() {
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      stream.off('close', onClose);
      stream.off('error', onError);
    }

    function fail(err: Error, sendError = false) {
      if (done) return;
      cleanup();
      stream.off('data', onData);
      if (sendError) {
        try {
          stream.write(encodeError(errorCode(err) ?? ProtoHandshakeError.code, err.message));
        } catch {
          /* gone */
        }
        stream.end();
        setTimeout(() => stream.destroy(), 200).unref();
      } else {
        stream.destroy();
      }
      reject(err);
    }

    function onHandshakeFrame(type: number, payload: Buffer) {
      if (done) return;
      if (type === FrameType.ERROR) {
        const e = decodeError(payload);
        const err = e.code === ProtoVersionError.code
          ? new ProtoVersionError(`peer refused the session: ${e.message}`)
          : Object.assign(new ProtoHandshakeError(`peer refused the session: ${e.rawCode}: ${e.message}`), { code: e.code });
        fail(err);
        return;
      }
      if (type !== FrameType.HELLO) {
        fail(new ProtoMalformedError(`expected HELLO, got frame type 0x${type.toString(16)}`), true);
        return;
      }
      const peer = decodeHello(payload);
      if (typeof peer === 'string') {
        fail(new ProtoMalformedError(peer), true);
        return;
      }
      if (peer.major !== PROTOCOL_MAJOR) {
        fail(new ProtoVersionError(`peer speaks protocol ${peer.major}.${peer.minor}, this side ${PROTOCOL_MAJOR}.${localMinor}: upgrade the older side`), true);
        return;
      }
      try {
        opts.validatePeerHello?.(peer);
      } catch (err) {
        fail(err as Error, true);
        return;
      }
      if (opts.side === 'listener') stream.write(encodeHello(opts.hello, PROTOCOL_MAJOR, localMinor));
      const minor = Math.min(localMinor, peer.minor);
      cleanup();
      const session = new TunnelSession(stream, parser, peer, minor, opts.hello, opts);
      resolve(session);
    }

    if (opts.side === 'dialer') stream.write(encodeHello(opts.hello, PROTOCOL_MAJOR, localMinor));
  });
}

/** For tests: a HELLO with an arbitrary version, as a peer of another release would send it. */
export function encodeHelloForVersion(body: HelloBody, major: number, minor: number): Buffer {
  return encodeHello(body, major, minor);
}
