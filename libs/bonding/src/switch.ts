/**
 * The layer-2 switch inside an HA vpn-seed-server: every client connected to the server (each
 * kube-apiserver-side endpoint, each vpn-shoot) is a port; Ethernet frames are switched in userspace,
 * so the server needs no TAP device and no NET_ADMIN.
 *
 * - Learning: the source MAC of every frame is (re)learned on its ingress port at once, so a gratuitous
 *   ARP or unsolicited NA after a bond's failover moves the MAC immediately.
 * - Forwarding: a known unicast destination goes to its port; broadcast, multicast (ARP, ND 33:33:…)
 *   and unknown unicast are flooded to every port but the ingress one.
 * - Announcements: the set of MACs attached to this server is published (on change, debounced by the
 *   caller) so that bonds can pick, per destination, a link to a server the destination is attached to.
 * - Limits: the shoot side is untrusted, so each port may hold at most `maxMacsPerPort` MACs, the
 *   table at most `maxMacs` (never more than one announcement carries), and a learned entry ages out
 *   after `agingMs` without traffic. At most `maxPorts` ports exist; one more is refused with
 *   RVPN_ERR_SWITCH_FULL. Each port may flood (broadcast, multicast, unknown unicast) at most
 *   `broadcastRate` frames per second (a token bucket holding one second's worth); the rest is dropped.
 * - A port may carry a guard (guard.ts): IP anti-spoofing, ARP/ND inspection, no redirects or router
 *   advertisements. The HA server gives one to every shoot client.
 */
import { defineError } from '@rvpn/config';
import { MAX_ANNOUNCED_MACS } from './announce.js';
import { macAt, sameMac } from './ethernet.js';
import type { GuardDropReason, PortGuard } from './guard.js';

export const SwitchFullError = defineError('RVPN_ERR_SWITCH_FULL', 'The HA seed server has HA_MAX_PORTS endpoints attached already; the new one was refused. Raise HA_MAX_PORTS only if this many endpoints are legitimate.');

export interface SwitchOptions {
  /** Sends frames out of a port (one call per port and batch); `hdr` as `receive` got it. */
  send: (portId: string, frames: Buffer[], hdr: number) => void;
  /** Called when the set of attached MACs changed. */
  onMacsChanged?: (macs: string[]) => void;
  maxMacsPerPort?: number;
  /** Entries in the table at most (default and upper bound: the MACs one announcement carries). */
  maxMacs?: number;
  /** Ports at most (default 4096). */
  maxPorts?: number;
  /** Frames per second a port may flood (default: unlimited). */
  broadcastRate?: number;
  agingMs?: number;
  now?: () => number;
}

interface Entry {
  port: string;
  seen: number;
  /** Pinned to its port while the port exists (never aged out). */
  pinned?: boolean;
}

export interface SwitchStats {
  framesIn: number;
  flooded: number;
  unicast: number;
  dropped: { hairpin: number; macLimit: number; runt: number; unknownPort: number; spoofed: number; broadcastLimit: number } & Record<GuardDropReason, number>;
  moves: number;
  /** Ports refused because the switch was full. */
  refusedPorts: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class L2Switch {
  private readonly opts: Required<Omit<SwitchOptions, 'onMacsChanged'>> & Pick<SwitchOptions, 'onMacsChanged'>;
  private readonly ports = new Set<string>();
  private readonly table = new Map<string, Entry>();
  private readonly perPort = new Map<string, Set<string>>();
  private readonly allowed = new Map<string, Set<string>>();
  private readonly guards = new Map<string, PortGuard>();
  private readonly buckets = new Map<string, Bucket>();
  readonly stats: SwitchStats = {
    framesIn: 0, flooded: 0, unicast: 0, moves: 0, refusedPorts: 0,
    dropped: { hairpin: 0, macLimit: 0, runt: 0, unknownPort: 0, spoofed: 0, broadcastLimit: 0, ip_spoofed: 0, icmp: 0, arp_spoofed: 0, nd_spoofed: 0, ethertype: 0, malformed: 0, gso_header: 0 },
  };

  constructor(opts: SwitchOptions) {
    this.opts = { maxMacsPerPort: 16, maxMacs: MAX_ANNOUNCED_MACS, maxPorts: 4096, broadcastRate: Infinity, agingMs: 300_000, now: () => Date.now(), ...opts };
    this.opts.maxMacs = Math.min(this.opts.maxMacs, MAX_ANNOUNCED_MACS);
  }

  /** Whether one more port may be added. */
  get full(): boolean {
    return this.ports.size >= this.opts.maxPorts;
  }

  /**
   * Adds a port. `allowedMacs` pins the source MACs the port may use (an HA server pins each client
   * to the MAC of its bond address): frames from any other source are dropped as spoofed. `guard`
   * checks every frame the port sends (guard.ts). Throws RVPN_ERR_SWITCH_FULL at `maxPorts`.
   */
  addPort(id: string, opts: { allowedMacs?: readonly string[]; guard?: PortGuard } = {}): void {
    if (!this.ports.has(id) && this.full) {
      this.stats.refusedPorts++;
      throw new SwitchFullError(`the switch has ${this.ports.size} ports, its limit`);
    }
    if (opts.allowedMacs?.length === 1 && !this.table.has(opts.allowedMacs[0]!) && this.table.size >= this.opts.maxMacs) {
      this.stats.refusedPorts++;
      throw new SwitchFullError(`the switch table holds ${this.table.size} MACs, its limit`);
    }
    this.ports.add(id);
    if (opts.guard) this.guards.set(id, opts.guard);
    else this.guards.delete(id);
    if (!this.perPort.has(id)) this.perPort.set(id, new Set());
    if (opts.allowedMacs) this.allowed.set(id, new Set(opts.allowedMacs));
    else this.allowed.delete(id);
    // A port pinned to one MAC has that MAC attached from the start: it is announced at once, before
    // the endpoint sent anything through this server, and leaves with the port.
    if (opts.allowedMacs?.length === 1) {
      const mac = opts.allowedMacs[0]!;
      const old = this.table.get(mac);
      if (old && old.port !== id) this.perPort.get(old.port)?.delete(mac);
      this.table.set(mac, { port: id, seen: this.opts.now(), pinned: true });
      this.perPort.get(id)!.add(mac);
      this.changed();
    }
  }

  /** Removes a port and forgets every MAC learned on it. */
  removePort(id: string): void {
    this.ports.delete(id);
    this.allowed.delete(id);
    this.guards.delete(id);
    this.buckets.delete(id);
    const macs = this.perPort.get(id);
    this.perPort.delete(id);
    if (macs && macs.size > 0) {
      for (const m of macs) this.table.delete(m);
      this.changed();
    }
  }

  get portIds(): string[] {
    return [...this.ports];
  }

  /** MACs currently attached to this switch (learned on some port). */
  attachedMacs(): string[] {
    return [...this.table.keys()].sort();
  }

  /** Which port a MAC is on, if learned. */
  portOf(mac: string): string | undefined {
    return this.table.get(mac)?.port;
  }

  private changed() {
    this.opts.onMacsChanged?.(this.attachedMacs());
  }

  private learn(port: string, src: string, now: number): boolean {
    const e = this.table.get(src);
    if (e && e.port === port) {
      e.seen = now;
      return true;
    }
    if (e?.pinned && this.ports.has(e.port)) return false; // a pinned MAC does not move
    const mine = this.perPort.get(port)!;
    if (mine.size >= this.opts.maxMacsPerPort) return false;
    if (!e && this.table.size >= this.opts.maxMacs) return false;
    if (e) {
      this.perPort.get(e.port)?.delete(src);
      this.stats.moves++;
    }
    this.table.set(src, { port, seen: now });
    mine.add(src);
    this.changed();
    return true;
  }

  /**
   * Switches a batch of frames that arrived on `port`. `hdr`: bytes in front of each frame (a
   * virtio_net_hdr in the GSO layout, offload.ts; the port's guard checks it), 0 for plain frames.
   */
  receive(port: string, frames: readonly Buffer[], hdr = 0): void {
    if (!this.ports.has(port)) {
      this.stats.dropped.unknownPort += frames.length;
      return;
    }
    const now = this.opts.now();
    const allowed = this.allowed.get(port);
    const guard = this.guards.get(port);
    const out = new Map<string, Buffer[]>();
    const push = (p: string, f: Buffer) => {
      const q = out.get(p);
      if (q) q.push(f);
      else out.set(p, [f]);
    };
    // A batch is mostly one conversation: the previous frame's MAC strings are reused when its bytes match.
    let prev: Buffer | undefined;
    let src = '';
    let dstMac = '';
    for (const f of frames) {
      this.stats.framesIn++;
      if (f.length < hdr + 14) {
        this.stats.dropped.runt++;
        continue;
      }
      if (f[hdr + 6]! & 1) {
        // a group address as source is invalid
        this.stats.dropped.runt++;
        continue;
      }
      const sameSrc = prev !== undefined && sameMac(prev, hdr + 6, f, hdr + 6);
      const sameDst = prev !== undefined && sameMac(prev, hdr, f, hdr);
      if (!sameSrc) src = macAt(f, hdr + 6);
      if (!sameDst) dstMac = macAt(f, hdr);
      prev = f;
      if (allowed && !allowed.has(src)) {
        this.stats.dropped.spoofed++;
        continue;
      }
      if (guard) {
        const why = guard.check(f, hdr);
        if (why) {
          this.stats.dropped[why]++;
          continue;
        }
      }
      if (!this.learn(port, src, now)) {
        this.stats.dropped.macLimit++;
        continue;
      }
      if ((f[hdr]! & 1) === 0) {
        const dst = this.table.get(dstMac);
        if (dst) {
          if (dst.port === port) this.stats.dropped.hairpin++;
          else {
            this.stats.unicast++;
            push(dst.port, f);
          }
          continue;
        }
      }
      if (!this.takeToken(port, now)) {
        this.stats.dropped.broadcastLimit++;
        continue;
      }
      this.stats.flooded++;
      for (const p of this.ports) if (p !== port) push(p, f);
    }
    for (const [p, fs] of out) this.opts.send(p, fs, hdr);
  }

  /** One flooded frame from `port`: a token bucket of `broadcastRate` per second, one second deep. */
  private takeToken(port: string, now: number): boolean {
    const rate = this.opts.broadcastRate;
    if (!Number.isFinite(rate)) return true;
    let b = this.buckets.get(port);
    if (!b) {
      b = { tokens: rate, at: now };
      this.buckets.set(port, b);
    }
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) * rate) / 1000);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /** Ages out entries not seen for agingMs; call periodically. */
  tick(): void {
    const now = this.opts.now();
    let any = false;
    for (const [mac, e] of this.table) {
      if (!e.pinned && now - e.seen > this.opts.agingMs) {
        this.table.delete(mac);
        this.perPort.get(e.port)?.delete(mac);
        any = true;
      }
    }
    if (any) this.changed();
  }
}
