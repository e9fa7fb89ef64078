/**
 * The data path between one packet device and the current tunnel session. Sessions come and go
 * (reconnects); the device, its addresses and routes stay, so flows survive a reconnect.
 *
 * device → (outbound filter) → fair queue (fair-queue.ts: per-flow round robin, sparse flows first,
 * CoDel, capped in bytes) → session.sendBatch while the session's own buffer holds less than
 * `sessionBufferBytes`. The device is read all the time: a paused device only moves the backlog into
 * the kernel's 500-packet TUN FIFO, where a ping waits behind a bulk flow's window. With `queue:
 * false` the old behaviour: straight into the session, and backpressure pauses the device.
 * session → inbound filter (sources, destinations, ICMP errors, IPv6 extension headers; see
 * filter.ts) → device.writeBatch, one call per batch.
 */
import { createIntervalLog, type IntervalLog } from '@rvpn/observability';
import type { PacketDevice } from './device.js';
import { filterBatch, type FilterRules } from './filter.js';
import type { FairQueue, FairQueueOptions } from './fair-queue.js';
import { SessionSender } from './sender.js';
import type { TunnelSession } from './session.js';

export type DropReason = 'no_session' | 'spoofed_source' | 'bad_destination' | 'icmp_error' | 'ext_header' | 'malformed' | 'backpressure' | 'outbound_filtered' | 'queue_full' | 'codel';


export interface DataPathLogger {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface TunnelDataPathOptions {
  device: PacketDevice;
  /** Checks on packets arriving from the peer (anti-spoofing). */
  inboundFilter?: FilterRules;
  /** Checks on packets leaving through the tunnel. */
  outboundFilter?: FilterRules;
  logger?: DataPathLogger;
  onDrop?: (reason: DropReason, count: number) => void;
  /** The send queue (fair-queue.ts), or false for none. Default: on, with its defaults. */
  queue?: FairQueueOptions | false;
  /** Bytes the session's write buffer may hold before packets wait in the queue. Default 64 KiB. */
  sessionBufferBytes?: number;
}

export class TunnelDataPath {
  private readonly opts: TunnelDataPathOptions;
  private session: TunnelSession | undefined;
  private sender: SessionSender | undefined;
  private offDrain: (() => void) | undefined;
  private paused = false;
  private started = false;
  private readonly dropLog: IntervalLog | undefined;
  readonly drops: Record<DropReason, number> = {
    no_session: 0, spoofed_source: 0, bad_destination: 0, icmp_error: 0, ext_header: 0, malformed: 0, backpressure: 0, outbound_filtered: 0, queue_full: 0, codel: 0,
  };

  constructor(opts: TunnelDataPathOptions) {
    this.opts = opts;
    const l = opts.logger;
    this.dropLog = l ? createIntervalLog({ logger: { debug: (o, m) => l.debug(o, m), info: (o, m) => l.warn(o, m), warn: (o, m) => l.warn(o, m), error: (o, m) => l.warn(o, m) }, level: 'warn' }) : undefined;
  }

  private drop(reason: DropReason, n: number) {
    if (n <= 0) return;
    this.drops[reason] += n;
    this.opts.onDrop?.(reason, n);
    // what the peer sent and the filter refused: once per interval and reason, never per packet
    if (reason !== 'no_session' && reason !== 'backpressure' && reason !== 'outbound_filtered') {
      this.dropLog?.log(`drop:${reason}`, { reason, packets: n, total: this.drops[reason] }, 'packets from the tunnel dropped');
    }
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.opts.device.start((batch) => this.fromDevice(batch));
  }

  private fromDevice(batch: Buffer) {
    const s = this.sender;
    if (!s) {
      this.drop('no_session', countPackets(batch));
      return;
    }
    if (this.opts.outboundFilter) {
      const r = filterBatch(batch, this.opts.outboundFilter);
      this.drop('outbound_filtered', r.dropped);
      this.drop('malformed', r.malformed);
      batch = r.batch;
      if (batch.length === 0) return;
    }
    const before = s.session.stats.sendDrops;
    if (!s.send(batch)) {
      // only without a queue: the session is over its cap, the device waits for its drain
      if (s.session.stats.sendDrops > before) this.drop('backpressure', countPackets(batch));
      if (!this.paused) {
        this.paused = true;
        this.opts.device.pause();
      }
    }
  }

  /** The current session's send queue (undefined without a session, or with `queue: false`). */
  get queue(): FairQueue | undefined {
    return this.sender?.queue;
  }

  private fromSession(batch: Buffer) {
    if (this.opts.inboundFilter) {
      const r = filterBatch(batch, this.opts.inboundFilter);
      this.drop('spoofed_source', r.reasons.source);
      this.drop('bad_destination', r.reasons.destination);
      this.drop('icmp_error', r.reasons.icmp_error);
      this.drop('ext_header', r.reasons.ext_header);
      this.drop('malformed', r.malformed);
      batch = r.batch;
    }
    if (batch.length > 0 && !this.opts.device.closed) this.opts.device.writeBatch(batch);
  }

  /** Makes `session` the current one (replacing any previous one without closing it). */
  attach(session: TunnelSession): void {
    this.detach();
    this.session = session;
    this.sender = new SessionSender(session, {
      queue: this.opts.queue ?? {},
      ...(this.opts.sessionBufferBytes !== undefined ? { bufferBytes: this.opts.sessionBufferBytes } : {}),
      onDrop: (reason, n) => this.drop(reason, n),
    });
    session.onPackets((b) => {
      if (this.session === session) this.fromSession(b);
    });
    this.offDrain = session.onDrain(() => this.resume());
  }

  /** Forgets the current session; device packets are dropped (counted) until the next attach. */
  detach(): void {
    this.offDrain?.();
    this.offDrain = undefined;
    this.session = undefined;
    // what waited for the old session is stale by the time a new one is up; the flows retransmit
    if (this.sender) this.drop('no_session', this.sender.close());
    this.sender = undefined;
    this.resume();
  }

  private resume() {
    if (this.paused && !this.opts.device.closed) {
      this.paused = false;
      this.opts.device.resume();
    }
  }

  get attached(): TunnelSession | undefined {
    return this.session;
  }

  stop(): void {
    this.detach();
    this.dropLog?.stop();
  }
}

function countPackets(batch: Buffer): number {
  let n = 0;
  let off = 0;
  while (off + 2 <= batch.length) {
    off += 2 + batch.readUInt16BE(off);
    n++;
  }
  return n;
}
