/**
 * Userspace bonding over N tunnel links, presented to the kernel as ONE TAP device (the caller wires
 * `deliver` to the device's writeBatch and feeds `sendFromDevice` with what the device reads).
 *
 * active-backup, better than Linux's for this topology:
 * - Link health comes from the tunnel session (keepalive: dead after about a second of silence); the
 *   caller reports it with setLinkState.
 * - A frame arriving on ANY healthy link is delivered (no "inactive slave" drops).
 * - Per-destination choice: every server announces the MACs attached to it. A unicast frame goes out of
 *   the active link when the destination is attached to that server (or nobody announced it), else out
 *   of a healthy link whose server has it, so a failure of ONE link between one endpoint and one server
 *   never cuts traffic between two endpoints.
 * - Broadcast and multicast (ARP, ND) go out of every healthy link: a peer that lost its link to our
 *   active server must still resolve us. Duplicates of ARP/ND are harmless.
 * - After a switch the bond sends a gratuitous ARP / unsolicited NA for each of its addresses on the new
 *   active link, so the server relearns the MAC at once.
 * - Optional primary with fail-back after it stayed healthy for failbackDelayMs (hysteresis).
 * balance-rr: unicast frames rotate over the healthy links that reach the destination.
 */
import { announcements, formatMac, macAt, sameMac } from './ethernet.js';

export type BondMode = 'active-backup' | 'balance-rr';

export interface BondOptions {
  mode?: BondMode;
  /** Link ids in priority order (e.g. ['vpn-seed-server-0', 'vpn-seed-server-1']). */
  links: readonly string[];
  /** Preferred link; the bond returns to it after it has been healthy for failbackDelayMs. */
  primary?: string;
  /** Default 2000 ms; Infinity disables fail-back. */
  failbackDelayMs?: number;
  /** This bond's MAC (see macFromAddress) and addresses (announced after a switch). */
  mac: Buffer;
  addresses: readonly string[];
  /** `hdr`: the bytes in front of each frame (offload.ts: a virtio_net_hdr, or 0 for plain frames). */
  send: (linkId: string, frames: Buffer[], hdr: number) => void;
  deliver: (frames: Buffer[], hdr: number) => void;
  onSwitch?: (event: { from: string | undefined; to: string | undefined; reason: string }) => void;
  now?: () => number;
}

interface LinkState {
  id: string;
  up: boolean;
  upSince: number;
  macs: ReadonlySet<string>;
}

export interface BondStats {
  switches: number;
  framesOut: number;
  framesIn: number;
  perDestinationDetours: number;
  dropped: { noLink: number; linkDown: number };
}

export class Bond {
  private readonly opts: BondOptions;
  private readonly now: () => number;
  private readonly links = new Map<string, LinkState>();
  private readonly order: string[];
  private _active: string | undefined;
  private rr = 0;
  readonly stats: BondStats = { switches: 0, framesOut: 0, framesIn: 0, perDestinationDetours: 0, dropped: { noLink: 0, linkDown: 0 } };

  constructor(opts: BondOptions) {
    if (opts.links.length === 0) throw new RangeError('a bond needs at least one link');
    if (opts.primary !== undefined && !opts.links.includes(opts.primary)) throw new RangeError(`primary ${opts.primary} is not one of the links`);
    this.opts = opts;
    this.now = opts.now ?? (() => Date.now());
    this.order = [...opts.links];
    for (const id of opts.links) this.links.set(id, { id, up: false, upSince: 0, macs: new Set() });
  }

  get mode(): BondMode {
    return this.opts.mode ?? 'active-backup';
  }

  /** The active link (active-backup), or undefined when no link is healthy. */
  get active(): string | undefined {
    return this._active;
  }

  get mac(): string {
    return formatMac(this.opts.mac);
  }

  linkUp(id: string): boolean {
    return this.link(id).up;
  }

  private link(id: string): LinkState {
    const l = this.links.get(id);
    if (!l) throw new RangeError(`unknown link ${id}`);
    return l;
  }

  private healthy(): LinkState[] {
    return this.order.map((id) => this.links.get(id)!).filter((l) => l.up);
  }

  /** Reports a link's health (session attached and alive, or gone). */
  setLinkState(id: string, up: boolean): void {
    const l = this.link(id);
    if (l.up === up) return;
    l.up = up;
    l.upSince = up ? this.now() : 0;
    if (!up) l.macs = new Set();
    this.reselect(up ? `${id} came up` : `${id} went down`);
  }

  /** Whether some healthy link's server announced `mac` as attached (undefined: no announcement yet). */
  attachedAnywhere(mac: string): boolean | undefined {
    const healthy = this.healthy();
    if (healthy.length === 0 || healthy.every((l) => l.macs.size === 0)) return undefined;
    return healthy.some((l) => l.macs.has(mac));
  }

  /** The MACs the server behind `id` says are attached to it. */
  setAnnouncedMacs(id: string, macs: Iterable<string>): void {
    this.link(id).macs = new Set(macs);
  }

  /**
   * Frames received from a link; delivered if that link is healthy, whichever is active. `hdr`: bytes
   * in front of each frame (a virtio_net_hdr in the GSO layout), passed on to `deliver`.
   */
  receiveFromLink(id: string, frames: Buffer[], hdr = 0): void {
    if (!this.link(id).up) {
      this.stats.dropped.linkDown += frames.length;
      return;
    }
    this.stats.framesIn += frames.length;
    this.opts.deliver(frames, hdr);
  }

  /** Frames read from the TAP device (`hdr` bytes in front of each): choose a link per frame. */
  sendFromDevice(frames: readonly Buffer[], hdr = 0): void {
    const healthy = this.healthy();
    if (healthy.length === 0) {
      this.stats.dropped.noLink += frames.length;
      return;
    }
    const out = new Map<string, Buffer[]>();
    const push = (id: string, f: Buffer) => {
      const q = out.get(id);
      if (q) q.push(f);
      else out.set(id, [f]);
    };
    // consecutive frames to the same MAC (most of a batch) share its key and the links reaching it
    let prev: Buffer | undefined;
    let reaching: LinkState[] = [];
    let dst = '';
    for (const f of frames) {
      if (f.length < hdr + 14) continue;
      if (f[hdr]! & 1) {
        // broadcast, multicast
        for (const l of healthy) push(l.id, f);
        continue;
      }
      if (prev === undefined || !sameMac(prev, hdr, f, hdr)) {
        dst = macAt(f, hdr);
        reaching = healthy.filter((l) => l.macs.has(dst));
        prev = f;
      }
      if (this.mode === 'balance-rr') {
        const pool = reaching.length > 0 ? reaching : healthy;
        push(pool[this.rr++ % pool.length]!.id, f);
        continue;
      }
      const active = this._active ? this.links.get(this._active)! : undefined;
      if (active?.up && (reaching.length === 0 || active.macs.has(dst))) push(active.id, f);
      else if (reaching.length > 0) {
        this.stats.perDestinationDetours++;
        push(reaching[0]!.id, f);
      } else push(healthy[0]!.id, f);
    }
    for (const [id, fs] of out) {
      this.stats.framesOut += fs.length;
      this.opts.send(id, fs, hdr);
    }
  }

  /** Re-evaluates fail-back to the primary; call periodically (e.g. every 100 ms). */
  tick(): void {
    this.reselect('tick');
  }

  private reselect(reason: string): void {
    const healthy = this.healthy();
    const cur = this._active ? this.links.get(this._active)! : undefined;
    let next: LinkState | undefined = cur?.up ? cur : undefined;
    const primary = this.opts.primary ? this.links.get(this.opts.primary)! : undefined;
    const delay = this.opts.failbackDelayMs ?? 2000;
    if (!next) {
      // the active link is gone: take the primary at once if healthy, else the first healthy one
      next = primary?.up ? primary : healthy[0];
    } else if (primary && primary.up && next !== primary && Number.isFinite(delay) && this.now() - primary.upSince >= delay) {
      next = primary;
      reason = `fail-back to primary ${primary.id} after ${delay} ms healthy`;
    }
    if (next?.id === this._active) return;
    const from = this._active;
    this._active = next?.id;
    this.stats.switches++;
    this.opts.onSwitch?.({ from, to: this._active, reason });
    if (this._active && this.mode === 'active-backup' && this.opts.addresses.length > 0) {
      this.opts.send(this._active, announcements(this.opts.mac, this.opts.addresses), 0);
    }
  }
}
