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
 *
 * Offload: with a device opened for it (tun.ts `offload`) and a session whose both ends listed the
 * "gso" feature, the device's checksum offload and TSO go on for that session: the kernel hands over
 * TCP super-packets of up to 64 KiB with a virtio_net_hdr (the GSO layout of device.ts), they travel
 * as DATA_GSO_BATCH, and the peer's kernel takes them whole — one read, one frame and one write per
 * 64 KiB instead of per 1.4 KiB segment. Every header from the peer is checked first (filter.ts,
 * drop reason `gso_header`). With a peer without the feature (an older minor version) offload goes
 * off again: plain packets, and the kernel segments and checksums before we read.
 */
import { createIntervalLog, type IntervalLog } from '@rvpn/observability';
import { countPackets, type PacketDevice } from './device.js';
import { Cidr, CidrSet } from '@rvpn/config';
import { filterBatch, type FilterRules } from './filter.js';
import type { FairQueue, FairQueueOptions } from './fair-queue.js';
import { SessionSender } from './sender.js';
import type { TunnelSession } from './session.js';

export type DropReason = 'no_session' | 'spoofed_source' | 'bad_destination' | 'icmp_error' | 'ext_header' | 'gso_header' | 'malformed' | 'backpressure' | 'outbound_filtered' | 'queue_full' | 'codel' | 'offload_switch';


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
  /** Use the device's offload with sessions that negotiated "gso". Default: when the device can. */
  offload?: boolean;
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
    no_session: 0, spoofed_source: 0, bad_destination: 0, icmp_error: 0, ext_header: 0, gso_header: 0, malformed: 0, backpressure: 0, outbound_filtered: 0, queue_full: 0, codel: 0, offload_switch: 0,
  };
  /** Offload is on for the current session. */
  private gso = false;

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
    this.opts.device.start((batch, gso) => this.fromDevice(batch, gso));
  }

  /** True when this data path turns offload on for sessions that negotiated it. */
  get offloadCapable(): boolean {
    return (this.opts.offload ?? true) && this.opts.device.offloadCapable === true && this.opts.device.setOffload !== undefined;
  }

  /** Offload is on (the current session negotiated "gso"). */
  get offloadActive(): boolean {
    return this.gso;
  }

  private fromDevice(batch: Buffer, gso = false) {
    const s = this.sender;
    if (!s) {
      this.drop('no_session', countPackets(batch, gso));
      return;
    }
    if (gso && !this.gso) {
      // read just before offload went off for a session without it: the flows retransmit
      this.drop('offload_switch', countPackets(batch, gso));
      return;
    }
    if (this.opts.outboundFilter) {
      const r = filterBatch(batch, this.opts.outboundFilter, gso);
      this.drop('outbound_filtered', r.dropped);
      this.drop('malformed', r.malformed);
      batch = r.batch;
      if (batch.length === 0) return;
    }
    const before = s.session.stats.sendDrops;
    if (!s.send(batch, gso)) {
      // only without a queue: the session is over its cap, the device waits for its drain
      if (s.session.stats.sendDrops > before) this.drop('backpressure', countPackets(batch, gso));
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

  private fromSession(batch: Buffer, gso: boolean) {
    if (gso && !this.gso) {
      // the session negotiated gso but this side did not turn offload on (cannot happen by the
      // protocol: the session refuses GSO frames it did not negotiate); never hand headers to a
      // device that does not expect them
      this.drop('malformed', countPackets(batch, gso));
      return;
    }
    if (this.opts.inboundFilter) {
      const r = filterBatch(batch, this.opts.inboundFilter, gso);
      this.drop('spoofed_source', r.reasons.source);
      this.drop('bad_destination', r.reasons.destination);
      this.drop('icmp_error', r.reasons.icmp_error);
      this.drop('ext_header', r.reasons.ext_header);
      this.drop('gso_header', r.reasons.gso_header);
      this.drop('malformed', r.malformed);
      batch = r.batch;
    } else if (gso) {
      // no rules for addresses, but the kernel must still get only headers that describe the packet
      const r = filterBatch(batch, { allowSource: ANY }, true);
      this.drop('gso_header', r.reasons.gso_header);
      this.drop('malformed', r.malformed);
      batch = r.batch;
    }
    if (batch.length > 0 && !this.opts.device.closed) this.opts.device.writeBatch(batch, gso);
  }

  /** Makes `session` the current one (replacing any previous one without closing it). */
  attach(session: TunnelSession): void {
    this.detach();
    this.session = session;
    this.setOffload(session.gso && this.offloadCapable);
    this.sender = new SessionSender(session, {
      queue: this.opts.queue === false ? false : { ...this.opts.queue, gso: this.gso },
      ...(this.opts.sessionBufferBytes !== undefined ? { bufferBytes: this.opts.sessionBufferBytes } : {}),
      onDrop: (reason, n) => this.drop(reason, n),
    });
    session.onPackets((b, gso) => {
      if (this.session === session) this.fromSession(b, gso);
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
    this.setOffload(false);
    this.resume();
  }

  private setOffload(on: boolean) {
    if (this.gso === on || this.opts.device.closed) return;
    try {
      this.opts.device.setOffload?.(on);
      this.gso = on;
    } catch (err) {
      // the session still works without it: plain packets, as with a peer that lacks the feature
      this.opts.logger?.warn({ err: (err as Error).message, code: (err as { code?: string }).code, on }, 'switching TUN offload failed; plain packets');
      if (on) return;
      this.gso = false;
    }
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

const ANY = new CidrSet([Cidr.parse('0.0.0.0/0'), Cidr.parse('::/0')]);
