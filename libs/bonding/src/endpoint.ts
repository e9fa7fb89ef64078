/**
 * One bonded endpoint of the HA topology (a vpn-shoot pod, or the path-controller beside a
 * kube-apiserver): a TAP device (created by the caller) and one tunnel link to each HA seed server,
 * joined by a Bond. Link health is the tunnel session: up while a session is attached, down when it
 * ends (dead after about a second of silence); MAC announcements from the servers steer frames per
 * destination. The TAP's address and MAC never change while the endpoint runs, so flows survive a
 * server's death. With `offload`, TCP super-frames cross the links whole (offload.ts).
 */
import { errorCode, type NetworkMapping } from '@rvpn/config';
import {
  coalesceTcp,
  FEATURE_GSO,
  FrameType,
  packGsoBatch,
  VNET_HDR_BYTES,
  peerText,
  SessionSender,
  TunnelConfigMismatchError,
  TunnelDialer,
  unpackBatch,
  type PacketDevice,
  type TlsMaterial,
  type CoalesceStats,
  type SocketBufferCaps,
  type TunnelLogger,
  type TunnelSession,
} from '@rvpn/tunnel';
import { Bond, type BondMode } from './bond.js';
import { decodeMacAnnouncement } from './announce.js';
import { ETH_HEADER, macFromAddress } from './ethernet.js';
import { asksOffload, checkFrameHeader, packForGso, packPlain, sendFrames } from './offload.js';

export interface BondServerTarget {
  /** Link id, e.g. `vpn-seed-server-0`. */
  id: string;
  target: { host: string; port: number };
  /** Dial through an HTTP CONNECT proxy (the shoot side dials through sni-proxy). */
  via?: { proxyHost: string; proxyPort: number; target: string; headers?: Record<string, string> };
  servername: string;
}

export interface BondEndpointOptions {
  device: PacketDevice;
  servers: readonly BondServerTarget[];
  tls: () => TlsMaterial;
  role: 'shoot' | 'seed';
  /** HELLO identity; the same identity reconnecting replaces its old port on a server. */
  identity: string;
  /** IPv6 bond address (named in the HELLO; the MAC derives from it). */
  address: string;
  /** Every bond address of this endpoint (announced by GARP/NA after a switch). */
  addresses: readonly string[];
  vpnNetwork: string;
  /** The network mapping (issue 12): its fingerprint goes into the HELLO, and a server with another is refused. */
  mapping?: NetworkMapping;
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  mtu: number;
  mode?: BondMode;
  primary?: string;
  failbackDelayMs?: number;
  backoff?: { minMs: number; maxMs: number };
  protocolMinor?: number;
  /**
   * Offload (offload.ts): the TAP (opened with `offload`) reads TCP super-frames, and the links offer
   * "gso" to carry them whole (a link whose server lacks it gets them cut). Default false.
   */
  offload?: boolean;
  /** Coalesce TCP runs of plain frames from the links before the TAP write (gro.ts; a device with gsoWrites). Default true. */
  coalesce?: boolean;
  /** Kernel buffer caps of each link's socket (TUNNEL_SOCKET_CAPS of @rvpn/tunnel); default the kernel's. */
  socketBuffers?: SocketBufferCaps;
  logger?: TunnelLogger;
  onSwitch?: (e: { from: string | undefined; to: string | undefined; reason: string }) => void;
  onLinkChange?: (id: string, up: boolean) => void;
  /** A server announced the MACs attached to it (after the bond took them in). */
  onAnnounce?: (id: string, macs: readonly string[]) => void;
  onDialError?: (id: string, code: string, err: Error) => void;
  /** Frames a link's send queue dropped (over its byte cap, or by CoDel). */
  onSendDrop?: (id: string, reason: 'queue_full' | 'codel', count: number) => void;
}

export class BondEndpoint {
  private _bond: Bond;
  private readonly opts: BondEndpointOptions;
  private readonly dialers = new Map<string, TunnelDialer>();
  private readonly sessions = new Map<string, TunnelSession>();
  /** Per link: the session's sender with its flow-fair queue (the TAP is never paused). */
  private readonly senders = new Map<string, SessionSender>();
  private tick: NodeJS.Timeout | undefined;
  private started = false;
  /** Frames delivered to the TAP, the entries written for them, and the segments merged (a TAP with gsoWrites). */
  readonly coalesce: CoalesceStats = { packets: 0, entries: 0, merged: 0 };
  /** Offload (offload.ts): super-frames cut for a link without "gso"; frames from a link whose virtio_net_hdr was refused. */
  readonly offload = { split: 0, badHeaders: 0 };
  private badHeaderLoggedAt = 0;
  private offloadOn = false;

  constructor(opts: BondEndpointOptions) {
    this.opts = { ...opts };
    this._bond = this.makeBond();
  }

  get bond(): Bond {
    return this._bond;
  }

  /** Links that carry super-frames whole now (their sessions negotiated "gso"). */
  get gsoLinks(): number {
    let n = 0;
    for (const s of this.senders.values()) if (s.gso) n++;
    return n;
  }

  /** The TAP reads super-frames and the links offer "gso" (`offload` on a device opened for it, switched on at start). */
  get offloading(): boolean {
    return this.offloadOn;
  }

  private makeBond(): Bond {
    const opts = this.opts;
    return new Bond({
      links: opts.servers.map((s) => s.id),
      mode: opts.mode ?? 'active-backup',
      ...(opts.primary ? { primary: opts.primary } : {}),
      ...(opts.failbackDelayMs !== undefined ? { failbackDelayMs: opts.failbackDelayMs } : {}),
      mac: macFromAddress(opts.address),
      addresses: opts.addresses,
      send: (id, frames, hdr) => {
        const sender = this.senders.get(id);
        if (sender) sendFrames(sender, frames, hdr, this.offload);
      },
      deliver: (frames, hdr) => this.deliver(frames, hdr),
      onSwitch: (e) => {
        opts.logger?.info({ from: e.from, to: e.to, reason: e.reason }, 'bond switched its active link');
        opts.onSwitch?.(e);
      },
    });
  }

  /**
   * Writes what the links delivered into the TAP. A TAP opened for it takes the GSO layout: super-
   * frames from a "gso" link go whole (their headers were checked), and runs of plain frames — from
   * a link without "gso", or frames the far kernel did not merge (forwarded traffic) — are coalesced
   * (gro.ts: one write per 64 KiB), in their order.
   */
  private deliver(frames: Buffer[], hdr: number): void {
    const dev = this.opts.device;
    if (dev.closed) return;
    const coalesce = (plain: Buffer[]) => (this.opts.coalesce ?? true ? coalesceTcp(plain, ETH_HEADER, this.coalesce) : packForGso(plain, 0));
    if (!dev.gsoWrites) {
      dev.writeBatch(packPlain(frames, hdr, this.offload));
      return;
    }
    if (hdr === 0) {
      dev.writeBatch(coalesce(frames), true);
      return;
    }
    let plain: Buffer[] = [];
    let whole: Buffer[] = [];
    for (const e of frames) {
      if (asksOffload(e)) {
        if (plain.length > 0) {
          dev.writeBatch(coalesce(plain), true);
          plain = [];
        }
        whole.push(e);
      } else {
        if (whole.length > 0) {
          dev.writeBatch(packGsoBatch(whole), true);
          whole = [];
        }
        plain.push(e.subarray(VNET_HDR_BYTES));
      }
    }
    if (plain.length > 0) dev.writeBatch(coalesce(plain), true);
    if (whole.length > 0) dev.writeBatch(packGsoBatch(whole), true);
  }

  /**
   * Moves the endpoint to another bond address (the servers refused this one: another endpoint holds
   * it). The links are re-dialed with the new address; the TAP device keeps running (the caller
   * re-addresses it and sets the new MAC).
   */
  async readdress(address: string, addresses: readonly string[]): Promise<void> {
    await this.stopLinks();
    this.opts.address = address;
    this.opts.addresses = addresses;
    this._bond = this.makeBond();
    this.startLinks();
  }

  /** Sessions per link, for status and metrics. */
  session(id: string): TunnelSession | undefined {
    return this.sessions.get(id);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const o = this.opts;
    if (o.offload && o.device.offloadCapable && o.device.setOffload) {
      try {
        o.device.setOffload(true);
        this.offloadOn = true;
      } catch (err) {
        // a kernel that refuses TSO on a TAP: plain frames, and no "gso" offered
        o.logger?.warn({ err: (err as Error).message, code: errorCode(err) }, 'bond TAP offload refused; reading plain frames');
      }
    }
    o.device.start((batch, gso) => {
      try {
        this._bond.sendFromDevice(unpackBatch(batch, gso), gso ? VNET_HDR_BYTES : 0);
      } catch (err) {
        o.logger?.warn({ err: (err as Error).message }, 'malformed batch from the TAP device');
      }
    });
    this.startLinks();
  }

  private startLinks(): void {
    const o = this.opts;
    for (const s of o.servers) {
      const d = new TunnelDialer({
        target: s.target,
        ...(s.via ? { via: s.via } : {}),
        tls: () => ({ ...o.tls(), servername: s.servername }),
        hello: () => ({
          role: o.role,
          identity: o.identity,
          keepaliveIntervalMs: o.keepaliveIntervalMs,
          keepaliveTimeoutMs: o.keepaliveTimeoutMs,
          vpnNetwork: o.vpnNetwork,
          mtu: o.mtu,
          bond: { address: o.address },
          ...(this.offloading ? { features: [FEATURE_GSO] } : {}),
          ...(o.mapping ? { mapping: o.mapping.fingerprint() } : {}),
        }),
        validatePeerHello: (peer) => {
          if (peer.role !== 'seed' || peer.bond?.serverIndex === undefined) throw new TunnelConfigMismatchError(`${s.id} is not an HA seed server (no server index in its HELLO)`);
          if (peer.vpnNetwork !== o.vpnNetwork) throw new TunnelConfigMismatchError(`VPN_NETWORK differs: ${s.id} ${peerText(peer.vpnNetwork, 64)}, here ${o.vpnNetwork}`);
          o.mapping?.assertSameAs(peer.mapping, s.id);
        },
        onSession: (session) => this.attach(s.id, session),
        onDialError: (code, err) => o.onDialError?.(s.id, code, err),
        backoff: o.backoff ?? { minMs: 100, maxMs: 2000 },
        ...(o.protocolMinor !== undefined ? { protocolMinor: o.protocolMinor } : {}),
        ...(o.socketBuffers ? { socketBuffers: o.socketBuffers } : {}),
        ...(o.logger ? { logger: o.logger } : {}),
      });
      this.dialers.set(s.id, d);
      d.start();
    }
    this.tick = setInterval(() => this._bond.tick(), 100);
    this.tick.unref();
  }

  private attach(id: string, session: TunnelSession): void {
    const o = this.opts;
    const bond = this._bond;
    this.sessions.set(id, session);
    this.senders.get(id)?.close();
    this.senders.set(id, new SessionSender(session, { queue: { ethernet: true, gso: session.gso }, onDrop: (reason, n) => o.onSendDrop?.(id, reason, n) }));
    session.onPackets((packed, gso) => {
      try {
        if (!gso) bond.receiveFromLink(id, unpackBatch(packed));
        else {
          // the server checked what a shoot sent; this kernel is checked for again (offload.ts)
          const all = unpackBatch(packed, true);
          const ok = all.filter(checkFrameHeader);
          if (ok.length < all.length) {
            this.offload.badHeaders += all.length - ok.length;
            const now = Date.now();
            if (now - this.badHeaderLoggedAt >= 10_000) {
              this.badHeaderLoggedAt = now;
              o.logger?.warn({ link: id, droppedSinceStart: this.offload.badHeaders }, 'frames whose virtio_net_hdr does not describe them dropped (logged at most every 10 s)');
            }
          }
          bond.receiveFromLink(id, ok, VNET_HDR_BYTES);
        }
      } catch (err) {
        o.logger?.warn({ link: id, err: (err as Error).message }, 'malformed batch from a server');
      }
    });
    session.onExtension((type, payload) => {
      if (type !== FrameType.MAC_ANNOUNCE) return;
      try {
        const macs = decodeMacAnnouncement(payload);
        bond.setAnnouncedMacs(id, macs);
        o.onAnnounce?.(id, macs);
      } catch (err) {
        o.logger?.warn({ link: id, err: (err as Error).message, code: errorCode(err) }, 'bad MAC announcement');
      }
    });
    bond.setLinkState(id, true);
    o.onLinkChange?.(id, true);
    o.logger?.info({ link: id }, 'bond link up');
    void session.closed.then((end) => {
      if (this.sessions.get(id) !== session) return;
      this.sessions.delete(id);
      this.senders.get(id)?.close();
      this.senders.delete(id);
      bond.setLinkState(id, false);
      o.onLinkChange?.(id, false);
      o.logger?.warn({ link: id, reason: end.reason, code: end.code }, 'bond link down');
    });
  }

  async stop(): Promise<void> {
    await this.stopLinks();
  }

  private async stopLinks(): Promise<void> {
    if (this.tick) clearInterval(this.tick);
    await Promise.all([...this.dialers.values()].map((d) => d.stop()));
    this.dialers.clear();
    for (const s of this.sessions.values()) s.close('endpoint stopping');
    this.sessions.clear();
    for (const s of this.senders.values()) s.close();
    this.senders.clear();
  }
}
