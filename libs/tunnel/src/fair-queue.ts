/**
 * The send queue between the packet device and the tunnel session: flow-fair, capped in bytes, with
 * CoDel on each flow (fq_codel's design, RFC 8290, in userspace — this kernel has no fq_codel, and
 * tun orphans its packets, so TCP small queues never limit what piles up in front of the tunnel).
 *
 * Why: the tunnel's outer connection is slower than the device that feeds it, so a queue forms in
 * front of it. Left to the session's socket buffer (a FIFO of up to 1 MiB) or the TUN device's queue
 * (500 packets), one bulk flow's window fills it and every other packet — a ping, a kubelet exec
 * keystroke, a TCP handshake — waits behind it: 20-100 ms under a single iperf3 stream. Here:
 *
 * - Packets are hashed by flow (protocol, addresses, ports; IPv4 and IPv6) into `buckets` queues,
 *   served by deficit round robin with a `quantum` of bytes each. A flow that had nothing queued is
 *   "new" and is served before the old ones, so sparse flows (pings, ACKs, SYNs, DNS, keystrokes)
 *   overtake bulk traffic and meet an almost empty queue.
 * - CoDel per flow: when the sojourn time of the packets leaving a flow's queue has stayed above
 *   `targetMs` for a whole `intervalMs`, packets are dropped (or ECN-marked when the packet says it
 *   can take a mark) at increasing frequency, interval/sqrt(count), until it falls below again.
 *   The inner TCP flow backs off and the standing queue drains: bulk flows keep their throughput
 *   with a few milliseconds of queue instead of a window's worth.
 * - `limitBytes` caps the whole queue: past it, the fattest flow loses up to half its backlog from
 *   the head (fq_codel's overflow rule), so one flow cannot push out the others.
 *
 * Packets are held as views of the batches the device delivered (each batch is a fresh copy, see
 * tun.cc); a dequeue copies them into one packed batch (2-byte length, packet; as everywhere else).
 */
import { VNET_HDR_BYTES } from './device.js';

export interface FairQueueOptions {
  /** Flow buckets (a power of two). Default 1024. */
  buckets?: number;
  /** Bytes a flow may send per round. Default 1514. */
  quantum?: number;
  /** CoDel target: acceptable standing sojourn time. Default 5 ms. */
  targetMs?: number;
  /** CoDel interval: how long the sojourn time must stay above target before drops start. Default 100 ms. */
  intervalMs?: number;
  /** Cap on the queued bytes (packets without their length prefix). Default 1 MiB, 4 MiB with `gso`
   * (a 64 KiB super-packet each: 1 MiB is 16 of them, under 5 ms at 2 Gbit/s, so the cap and not
   * CoDel would decide, dropping 8 × 45 segments at once). */
  limitBytes?: number;
  /** Mark ECN-capable packets instead of dropping them. Default true. */
  ecn?: boolean;
  /** The packets are Ethernet frames (a TAP device, the HA bond): flows and ECN are read past the
   * 14-byte header when it carries IPv4 or IPv6. Default false (IP packets of a TUN device). */
  ethernet?: boolean;
  /** Batches come in the GSO layout (device.ts: a virtio_net_hdr before each IP packet, or Ethernet frame). Default false. */
  gso?: boolean;
  /** Clock in milliseconds (tests inject one). Default performance.now. */
  now?: () => number;
}

export interface FairQueueStats {
  /** Packets and bytes queued right now. */
  backlogPackets: number;
  backlogBytes: number;
  /** Packets taken in and sent on since the start. */
  enqueued: number;
  dequeued: number;
  /** Packets dropped by CoDel, ECN marks set instead of a drop, and drops over limitBytes. */
  codelDrops: number;
  ecnMarks: number;
  overflowDrops: number;
  /** Longest sojourn time of a dequeued packet since the last readAndResetMaxSojourn(). */
  maxSojournMs: number;
  /** Flows with packets queued right now. */
  activeFlows: number;
}

/** One flow's queue: a ring of (batch, offset, length, enqueue time) plus its DRR and CoDel state. */
class Flow {
  bufs: Buffer[] = [];
  offs: number[] = [];
  lens: number[] = [];
  times: number[] = [];
  head = 0;
  bytes = 0;
  deficit = 0;
  /** 0: in no list, 1: new flows, 2: old flows. */
  list = 0;
  // CoDel state (RFC 8289 names)
  firstAboveTime = 0;
  dropNext = 0;
  count = 0;
  lastCount = 0;
  dropping = false;

  get length(): number {
    return this.bufs.length - this.head;
  }

  push(buf: Buffer, off: number, len: number, t: number): void {
    this.bufs.push(buf);
    this.offs.push(off);
    this.lens.push(len);
    this.times.push(t);
    this.bytes += len;
  }

  shift(): void {
    this.bytes -= this.lens[this.head]!;
    this.bufs[this.head] = EMPTY; // let the batch go once its last packet left
    this.head++;
    if (this.head === this.bufs.length) {
      this.bufs.length = this.offs.length = this.lens.length = this.times.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.bufs.length) {
      this.bufs = this.bufs.slice(this.head);
      this.offs = this.offs.slice(this.head);
      this.lens = this.lens.slice(this.head);
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }
}

const EMPTY = Buffer.alloc(0);

/** A simple FIFO of flows (the new and old lists of DRR). */
class FlowList {
  private items: Flow[] = [];
  private head = 0;
  get empty(): boolean {
    return this.head === this.items.length;
  }
  first(): Flow {
    return this.items[this.head]!;
  }
  push(f: Flow): void {
    this.items.push(f);
  }
  shift(): Flow {
    const f = this.items[this.head++]!;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head >= 256 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return f;
  }
  forEach(fn: (f: Flow) => void): void {
    for (let i = this.head; i < this.items.length; i++) fn(this.items[i]!);
  }
}

export class FairQueue {
  readonly stats: FairQueueStats = { backlogPackets: 0, backlogBytes: 0, enqueued: 0, dequeued: 0, codelDrops: 0, ecnMarks: 0, overflowDrops: 0, maxSojournMs: 0, activeFlows: 0 };
  /** Buckets, made on first use: an idle sender (an HA port, a quiet tunnel) holds a few hundred bytes, not 1024 flows. */
  private readonly flows: Array<Flow | undefined>;
  private readonly mask: number;
  private readonly quantum: number;
  private readonly target: number;
  private readonly interval: number;
  private readonly limit: number;
  private readonly ecn: boolean;
  private readonly ethernet: boolean;
  /** Bytes between an entry's length and its packet: the virtio_net_hdr in the GSO layout. */
  private readonly hdr: number;
  private readonly now: () => number;
  private readonly newFlows = new FlowList();
  private readonly oldFlows = new FlowList();

  constructor(opts: FairQueueOptions = {}) {
    const n = opts.buckets ?? 1024;
    if (!Number.isInteger(n) || n < 1 || n > 65536 || (n & (n - 1)) !== 0) throw new RangeError(`buckets must be a power of two up to 65536, not ${n}`);
    this.flows = new Array<Flow | undefined>(n).fill(undefined);
    this.mask = n - 1;
    this.quantum = opts.quantum ?? 1514;
    this.target = opts.targetMs ?? 5;
    this.interval = opts.intervalMs ?? 100;
    this.limit = opts.limitBytes ?? (opts.gso ? 4 << 20 : 1 << 20);
    this.ecn = opts.ecn ?? true;
    this.ethernet = opts.ethernet ?? false;
    this.hdr = opts.gso ? VNET_HDR_BYTES : 0;
    if (!(this.quantum > 0) || !(this.target > 0) || !(this.interval > 0) || !(this.limit > 0)) throw new RangeError('quantum, targetMs, intervalMs and limitBytes must be positive');
    this.now = opts.now ?? (() => performance.now());
  }

  get empty(): boolean {
    return this.stats.backlogPackets === 0;
  }

  /** Queues every packet of a packed batch (views, no copy). Returns the packets dropped over the limit. */
  enqueueBatch(packed: Buffer): number {
    const t = this.now();
    let off = 0;
    let overflow = 0;
    while (off + 2 <= packed.length) {
      // an entry: its header (GSO layout) and packet, held and counted together
      const len = this.hdr + packed.readUInt16BE(off);
      const start = off + 2;
      off = start + len;
      if (off > packed.length || len === this.hdr) break;
      const ip = this.ethernet ? ethernetPayload(packed, start + this.hdr, len - this.hdr) : start + this.hdr;
      const i = (ip >= 0 ? flowHash(packed, ip, len - (ip - start)) : flowHash(packed, start + this.hdr, Math.min(len - this.hdr, 14))) & this.mask;
      const f = (this.flows[i] ??= new Flow());
      f.push(packed, start, len, t);
      this.stats.backlogPackets++;
      this.stats.backlogBytes += len;
      this.stats.enqueued++;
      if (f.list === 0) {
        f.list = 1;
        f.deficit = this.quantum;
        this.newFlows.push(f);
        this.stats.activeFlows++;
      }
      if (this.stats.backlogBytes > this.limit) overflow += this.dropFattest();
    }
    return overflow;
  }

  /**
   * Takes packets, fairly, into one packed batch of at most maxBytes (at least one packet when any is
   * queued). Returns undefined when nothing is queued (or CoDel dropped what was).
   */
  dequeueBatch(maxBytes: number): Buffer | undefined {
    const now = this.now();
    const bufs: Buffer[] = [];
    const offs: number[] = [];
    const lens: number[] = [];
    let total = 0;
    for (;;) {
      const list = !this.newFlows.empty ? this.newFlows : !this.oldFlows.empty ? this.oldFlows : undefined;
      if (!list) break;
      const f = list.first();
      if (f.deficit <= 0) {
        f.deficit += this.quantum;
        list.shift();
        f.list = 2;
        this.oldFlows.push(f);
        continue;
      }
      if (!this.codelHead(f, now)) {
        // empty: a new flow goes to the old list once (so it cannot stay "new" by sending a packet
        // per round), an old one leaves the rotation
        list.shift();
        if (list === this.newFlows && !this.oldFlows.empty) {
          f.list = 2;
          this.oldFlows.push(f);
        } else {
          f.list = 0;
          this.stats.activeFlows--;
        }
        continue;
      }
      const len = f.lens[f.head]!;
      if (bufs.length > 0 && total + 2 + len > maxBytes) break;
      bufs.push(f.bufs[f.head]!);
      offs.push(f.offs[f.head]!);
      lens.push(len);
      total += 2 + len;
      const sojourn = now - f.times[f.head]!;
      if (sojourn > this.stats.maxSojournMs) this.stats.maxSojournMs = sojourn;
      f.shift();
      f.deficit -= len;
      this.stats.backlogPackets--;
      this.stats.backlogBytes -= len;
      this.stats.dequeued++;
    }
    if (bufs.length === 0) return undefined;
    const out = Buffer.allocUnsafe(total);
    let o = 0;
    for (let i = 0; i < bufs.length; i++) {
      out.writeUInt16BE(lens[i]! - this.hdr, o);
      bufs[i]!.copy(out, o + 2, offs[i]!, offs[i]! + lens[i]!);
      o += 2 + lens[i]!;
    }
    return out;
  }

  /** The longest sojourn since the last call (for a gauge scraped now and then). */
  readAndResetMaxSojourn(): number {
    const m = this.stats.maxSojournMs;
    this.stats.maxSojournMs = 0;
    return m;
  }

  /** Drops everything queued (the session went away). Returns the packets dropped. */
  clear(): number {
    const n = this.stats.backlogPackets;
    for (const f of this.flows) {
      if (!f) continue;
      while (f.length > 0) f.shift();
      f.list = 0;
      f.dropping = false;
      f.firstAboveTime = 0;
    }
    while (!this.newFlows.empty) this.newFlows.shift();
    while (!this.oldFlows.empty) this.oldFlows.shift();
    this.stats.backlogPackets = this.stats.backlogBytes = this.stats.activeFlows = 0;
    return n;
  }

  /**
   * CoDel at the head of flow f (RFC 8289 §5): drops (or marks) head packets as the control law
   * says and returns whether a packet is left to send.
   */
  private codelHead(f: Flow, now: number): boolean {
    if (f.length === 0) {
      f.firstAboveTime = 0;
      f.dropping = false;
      return false;
    }
    let ok = this.okToDrop(f, now);
    if (f.dropping) {
      if (!ok) f.dropping = false;
      else {
        while (now >= f.dropNext && f.dropping) {
          f.count++;
          if (this.markOrDrop(f)) {
            // marked: it is sent, and the next mark comes by the control law
            f.dropNext = this.controlLaw(f.dropNext, f.count);
            return true;
          }
          if (f.length === 0) {
            f.dropping = false;
            return false;
          }
          ok = this.okToDrop(f, now);
          if (!ok) f.dropping = false;
          else f.dropNext = this.controlLaw(f.dropNext, f.count);
        }
      }
    } else if (ok) {
      // enter the dropping state; start from the count of the last episode when it was recent
      const delta = f.count - f.lastCount;
      f.count = delta > 1 && now - f.dropNext < 16 * this.interval ? delta : 1;
      f.lastCount = f.count;
      f.dropping = true;
      f.dropNext = this.controlLaw(now, f.count);
      if (this.markOrDrop(f)) return true;
      if (f.length === 0) {
        f.dropping = false;
        return false;
      }
    }
    return f.length > 0;
  }

  private okToDrop(f: Flow, now: number): boolean {
    const sojourn = now - f.times[f.head]!;
    // below target, or no more than a packet queued in this flow: nothing to do
    if (sojourn < this.target || f.bytes <= this.quantum) {
      f.firstAboveTime = 0;
      return false;
    }
    if (f.firstAboveTime === 0) {
      f.firstAboveTime = now + this.interval;
      return false;
    }
    return now >= f.firstAboveTime;
  }

  private controlLaw(t: number, count: number): number {
    return t + this.interval / Math.sqrt(count);
  }

  /** Marks the head packet Congestion Experienced when it is ECN-capable (true), else drops it (false). */
  private markOrDrop(f: Flow): boolean {
    const b = f.bufs[f.head]!;
    const off = f.offs[f.head]!;
    const len = f.lens[f.head]!;
    const ip = this.ethernet ? ethernetPayload(b, off + this.hdr, len - this.hdr) : off + this.hdr;
    if (this.ecn && ip >= 0 && markCe(b, ip, len - (ip - off))) {
      this.stats.ecnMarks++;
      return true;
    }
    this.stats.codelDrops++;
    this.removeHead(f);
    return false;
  }

  private removeHead(f: Flow): void {
    const len = f.lens[f.head]!;
    f.shift();
    this.stats.backlogPackets--;
    this.stats.backlogBytes -= len;
  }

  /** Over the limit: the flow with the most bytes loses up to half of them, oldest first. */
  private dropFattest(): number {
    let fat: Flow | undefined;
    const pick = (f: Flow) => {
      if (!fat || f.bytes > fat.bytes) fat = f;
    };
    this.newFlows.forEach(pick);
    this.oldFlows.forEach(pick);
    if (!fat || fat.length === 0) return 0;
    const goal = fat.bytes / 2;
    let n = 0;
    do {
      this.removeHead(fat);
      n++;
    } while (fat.length > 0 && fat.bytes > goal);
    this.stats.overflowDrops += n;
    return n;
  }
}

/**
 * A flow's hash: protocol, addresses and (TCP/UDP/SCTP) ports of an IPv4 or IPv6 packet, FNV-1a.
 * Anything else (a fragment's ports are unknown, so it hashes by addresses only) still lands in a
 * deterministic bucket.
 */
export function flowHash(b: Buffer, off: number, len: number): number {
  let h = 0x811c9dc5;
  const mix = (from: number, to: number) => {
    for (let i = from; i < to; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  };
  const v = b[off]! >> 4;
  if (v === 4 && len >= 20) {
    const ihl = (b[off]! & 0x0f) * 4;
    const proto = b[off + 9]!;
    h = Math.imul(h ^ proto, 0x01000193);
    mix(off + 12, off + 20);
    const fragOffset = b.readUInt16BE(off + 6) & 0x1fff;
    if (fragOffset === 0 && hasPorts(proto) && len >= ihl + 4) mix(off + ihl, off + ihl + 4);
  } else if (v === 6 && len >= 40) {
    const nh = b[off + 6]!;
    h = Math.imul(h ^ nh, 0x01000193);
    mix(off + 8, off + 40);
    // flow label when set (RFC 6437: the sender's own flow identification), else the ports
    const label = ((b[off + 1]! & 0x0f) << 16) | (b[off + 2]! << 8) | b[off + 3]!;
    if (label !== 0) h = Math.imul(h ^ label, 0x01000193);
    else if (hasPorts(nh) && len >= 44) mix(off + 40, off + 44);
  } else {
    mix(off, off + Math.min(len, 40));
  }
  return h >>> 0;
}

/** Where the IP packet of an Ethernet frame starts (-1 when it carries no IPv4/IPv6: ARP and the like). */
function ethernetPayload(b: Buffer, off: number, len: number): number {
  if (len < 14 + 20) return -1;
  const type = (b[off + 12]! << 8) | b[off + 13]!;
  return type === 0x0800 || type === 0x86dd ? off + 14 : -1;
}

function hasPorts(proto: number): boolean {
  return proto === 6 || proto === 17 || proto === 132 || proto === 136;
}

/**
 * Sets ECN Congestion Experienced on an ECT(0)/ECT(1) packet, in place (IPv4 with its header
 * checksum updated per RFC 1624). Returns false when the packet is not ECN-capable.
 */
export function markCe(b: Buffer, off: number, len: number): boolean {
  const v = b[off]! >> 4;
  if (v === 4 && len >= 20) {
    const tos = b[off + 1]!;
    const ecn = tos & 3;
    if (ecn === 0) return false;
    if (ecn === 3) return true;
    const oldWord = (b[off]! << 8) | tos;
    const newTos = tos | 3;
    const newWord = (b[off]! << 8) | newTos;
    b[off + 1] = newTos;
    // HC' = ~(~HC + ~m + m')
    let sum = (~b.readUInt16BE(off + 10) & 0xffff) + (~oldWord & 0xffff) + newWord;
    sum = (sum & 0xffff) + (sum >>> 16);
    sum = (sum & 0xffff) + (sum >>> 16);
    b.writeUInt16BE(~sum & 0xffff, off + 10);
    return true;
  }
  if (v === 6 && len >= 40) {
    // traffic class spans the low nibble of byte 0 and the high nibble of byte 1; ECN is its low 2 bits
    const ecn = (b[off + 1]! >> 4) & 3;
    if (ecn === 0) return false;
    b[off + 1] = b[off + 1]! | 0x30;
    return true;
  }
  return false;
}
