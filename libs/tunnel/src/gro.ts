/**
 * TCP segment coalescing before a device write (receive offload in userspace, the way Linux GRO and
 * wireguard-go's tun/offload_linux.go do it): consecutive segments of one TCP flow in a batch become
 * one super-packet with a virtio_net_hdr (GSO TCPV4/TCPV6, NEEDS_CSUM), so the device takes one
 * write() and the kernel one trip through its stack for up to 64 KiB instead of one per 1.4 KiB
 * segment. Used by the HA bond endpoints on their TAP (Ethernet frames; a TAP opened with
 * `offload`), whose frames cross the bond and the seed server's switch one by one.
 *
 * A segment joins the open group of its flow only when the kernel could have produced the group by
 * TSO: the same addresses, ports, IP fields (IPv4: no options, no fragment, the same TOS, TTL and DF,
 * an ID one higher; IPv6: the same first word and hop limit, TCP right after the fixed header), the
 * same TCP header up to the sequence number (ACK, window, options byte for byte, flags ACK with PSH
 * only on the last), the next sequence number, and a payload no longer than the first's (a shorter
 * one ends the group; a first one under MIN_GSO_SIZE starts none). Every merged segment's IP and
 * TCP checksums are verified first: the super-packet's checksum is left to the kernel (NEEDS_CSUM),
 * which must not turn a corrupt segment into a valid one. Anything else is written as it came (a
 * zero header), in its place; a group is written where its first segment was, so no flow's order
 * changes.
 */
import { loadNativeAddon } from './addon.js';
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HDR_BYTES } from './device.js';

const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
/** The largest entry of a batch (its length is a u16): a super-frame, Ethernet header included. */
export const MAX_COALESCED_BYTES = 0xffff;
/**
 * The smallest segment that starts a group: the kernel would cut a super-frame back into segments
 * of that size wherever it must segment, and a flow of tiny segments gains nothing from merging.
 */
export const MIN_GSO_SIZE = 512;
/** Flows with an open group at once; the oldest is closed when a new one needs a place. */
const MAX_OPEN_GROUPS = 8;

export interface CoalesceStats {
  /** Packets in. */
  packets: number;
  /** Entries written (super-packets and packets as they came). */
  entries: number;
  /** Segments that joined another one's super-packet. */
  merged: number;
}

interface Segment {
  frame: Buffer;
  v6: boolean;
  /** Offsets of the IP header, the TCP header, and the payload. */
  l3: number;
  l4: number;
  data: number;
  seq: number;
  flags: number;
}

interface Group {
  first: Segment;
  /** The payloads of the segments that joined. */
  parts: Buffer[];
  bytes: number;
  gsoSize: number;
  nextSeq: number;
  nextId: number;
  psh: boolean;
  open: boolean;
}

/** One's-complement sum of 16-bit big-endian words of b[start, end), not folded. */
export function sum16(b: Uint8Array, start: number, end: number, acc = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < end) acc += b[i]! << 8;
  return acc;
}

/** Folds a one's-complement sum to 16 bits. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The same sum in JS, folded (the fallback without the addon; the tests compare both). */
export const onesSumJs = (b: Uint8Array, start: number, end: number): number => fold(sum16(b, start, end));

let nativeSum: ((b: Uint8Array, start: number, end: number) => number) | null | undefined;

/**
 * The folded one's-complement sum of b[start, end): in the addon when it is there (a 1.4 KiB segment
 * costs about 2 µs in JS, a tenth of that natively), else in JS.
 */
export function onesSum(b: Uint8Array, start: number, end: number): number {
  if (nativeSum === undefined) {
    try {
      nativeSum = (loadNativeAddon() as { onesSum?: typeof onesSumJs }).onesSum ?? null;
    } catch {
      nativeSum = null;
    }
  }
  return nativeSum ? nativeSum(b, start, end) : onesSumJs(b, start, end);
}

/** The pseudo-header's sum (addresses, protocol TCP, the TCP length), not folded. */
export function pseudoSum(f: Uint8Array, s: { v6: boolean; l3: number }, tcpLength: number): number {
  const a = s.v6 ? s.l3 + 8 : s.l3 + 12;
  return sum16(f, a, a + (s.v6 ? 32 : 8)) + 6 + tcpLength;
}

/**
 * The segment's offsets when it is a TCP data segment that may be coalesced; undefined for anything
 * else (written as it came). `l2`: 14 for an Ethernet frame, 0 for an IP packet.
 */
function parseSegment(f: Buffer, l2: number): Segment | undefined {
  if (f.length < l2 + 40) return undefined;
  let v6: boolean;
  if (l2 === 0) v6 = f[0]! >> 4 === 6;
  else {
    const type = (f[12]! << 8) | f[13]!;
    if (type !== 0x0800 && type !== 0x86dd) return undefined;
    v6 = type === 0x86dd;
  }
  const l3 = l2;
  let l4: number;
  if (v6) {
    if (f[l3]! >> 4 !== 6 || f[l3 + 6] !== 6 || f.length < l3 + 60) return undefined;
    if (((f[l3 + 4]! << 8) | f[l3 + 5]!) !== f.length - l3 - 40) return undefined;
    l4 = l3 + 40;
  } else {
    // no IP options, no fragment, the length exactly the frame's (no Ethernet padding)
    if (f[l3] !== 0x45 || f[l3 + 9] !== 6) return undefined;
    if (((f[l3 + 2]! << 8) | f[l3 + 3]!) !== f.length - l3) return undefined;
    if ((((f[l3 + 6]! << 8) | f[l3 + 7]!) & 0x3fff) !== 0) return undefined;
    l4 = l3 + 20;
  }
  const doff = (f[l4 + 12]! >> 4) * 4;
  const data = l4 + doff;
  if (doff < 20 || data >= f.length) return undefined;
  const flags = f[l4 + 13]!;
  if ((flags & ~TCP_PSH) !== TCP_ACK) return undefined;
  return { frame: f, v6, l3, l4, data, seq: f.readUInt32BE(l4 + 4), flags };
}

function checksumsValid(s: Segment): boolean {
  const f = s.frame;
  if (!s.v6 && fold(sum16(f, s.l3, s.l3 + 20)) !== 0xffff) return false;
  return fold(onesSum(f, s.l4, f.length) + pseudoSum(f, s, f.length - s.l4)) === 0xffff;
}

const sameBytes = (a: Buffer, b: Buffer, start: number, end: number): boolean => {
  for (let i = start; i < end; i++) if (a[i] !== b[i]) return false;
  return true;
};

/** Same addresses and ports: the segment belongs to the group's flow. */
function sameFlow(g: Segment, s: Segment): boolean {
  if (g.v6 !== s.v6 || g.l4 !== s.l4) return false;
  const a = g.v6 ? g.l3 + 8 : g.l3 + 12;
  return sameBytes(g.frame, s.frame, a, a + (g.v6 ? 32 : 8)) && sameBytes(g.frame, s.frame, g.l4, g.l4 + 4);
}

/** Whether `s` (of the group's flow) continues the group as TSO would have cut it. */
function continues(g: Group, s: Segment): boolean {
  const h = g.first;
  const a = h.frame;
  const b = s.frame;
  const payload = b.length - s.data;
  if (!g.open || s.seq !== g.nextSeq || payload > g.gsoSize || s.data !== h.data) return false;
  if (g.bytes + payload > MAX_COALESCED_BYTES) return false;
  if (h.v6) {
    if (!sameBytes(a, b, h.l3, h.l3 + 4) || a[h.l3 + 7] !== b[h.l3 + 7]) return false;
  } else {
    // TOS, the DF bit (fragments were refused), TTL; the ID one higher than the last
    if (a[h.l3 + 1] !== b[h.l3 + 1] || a[h.l3 + 6] !== b[h.l3 + 6] || a[h.l3 + 8] !== b[h.l3 + 8]) return false;
    if (((b[h.l3 + 4]! << 8) | b[h.l3 + 5]!) !== g.nextId) return false;
  }
  // ACK number, header length, the flags but PSH, window, urgent pointer, options
  if (!sameBytes(a, b, h.l4 + 8, h.l4 + 13) || (a[h.l4 + 13]! & ~TCP_PSH) !== (b[h.l4 + 13]! & ~TCP_PSH)) return false;
  if (!sameBytes(a, b, h.l4 + 14, h.l4 + 16) || !sameBytes(a, b, h.l4 + 18, h.data)) return false;
  return checksumsValid(s);
}

function add(g: Group, s: Segment) {
  const payload = s.frame.length - s.data;
  g.parts.push(s.frame.subarray(s.data));
  g.bytes += payload;
  g.nextSeq = (g.nextSeq + payload) >>> 0;
  g.nextId = (g.nextId + 1) & 0xffff;
  if (s.flags & TCP_PSH) g.psh = true;
  if (g.psh || payload < g.gsoSize) g.open = false;
}

function newGroup(s: Segment): Group {
  const payload = s.frame.length - s.data;
  return {
    first: s,
    parts: [],
    bytes: s.frame.length,
    gsoSize: payload,
    nextSeq: (s.seq + payload) >>> 0,
    nextId: s.v6 ? 0 : (((s.frame[s.l3 + 4]! << 8) | s.frame[s.l3 + 5]!) + 1) & 0xffff,
    psh: (s.flags & TCP_PSH) !== 0,
    // a first segment with PSH, a small one, or one that fails its checksums takes no followers
    open: (s.flags & TCP_PSH) === 0 && payload >= MIN_GSO_SIZE && checksumsValid(s),
  };
}

/** Writes the group's super-packet (virtio_net_hdr + frame) at `off` of `out`; returns its frame length. */
function writeSuper(out: Buffer, off: number, g: Group): number {
  const h = g.first;
  const f = out.subarray(off + VNET_HDR_BYTES, off + VNET_HDR_BYTES + g.bytes);
  h.frame.copy(f, 0);
  let at = h.frame.length;
  for (const p of g.parts) {
    p.copy(f, at);
    at += p.length;
  }
  const tcpLength = g.bytes - h.l4;
  if (h.v6) {
    f.writeUInt16BE(g.bytes - h.l3 - 40, h.l3 + 4);
  } else {
    f.writeUInt16BE(g.bytes - h.l3, h.l3 + 2);
    f.writeUInt16BE(0, h.l3 + 10);
    f.writeUInt16BE(0xffff - fold(sum16(f, h.l3, h.l3 + 20)), h.l3 + 10);
  }
  if (g.psh) f[h.l4 + 13] = f[h.l4 + 13]! | TCP_PSH;
  // NEEDS_CSUM: the field holds the pseudo-header's sum; the kernel adds the segment's own
  f.writeUInt16BE(fold(pseudoSum(f, h, tcpLength)), h.l4 + 16);
  out[off] = VNET_F_NEEDS_CSUM;
  out[off + 1] = h.v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
  out.writeUInt16LE(h.data, off + 2); // hdr_len
  out.writeUInt16LE(g.gsoSize, off + 4);
  out.writeUInt16LE(h.l4, off + 6); // csum_start
  out.writeUInt16LE(16, off + 8); // csum_offset: the TCP checksum
  return g.bytes;
}

/**
 * Packs `packets` into a batch in the GSO layout (device.ts), coalescing TCP segments as described
 * above. `l2`: 14 for Ethernet frames (TAP), 0 for IP packets (TUN). Packets over 65535 bytes throw
 * (as packBatch does).
 */
export function coalesceTcp(packets: readonly Buffer[], l2: number, stats?: CoalesceStats): Buffer {
  const slots: Array<Buffer | Group> = [];
  const open: Group[] = [];
  let total = 0;
  let merged = 0;
  for (const p of packets) {
    if (p.length > 0xffff) throw new RangeError(`packet of ${p.length} bytes exceeds 65535`);
    const s = parseSegment(p, l2);
    if (!s) {
      slots.push(p);
      total += 2 + VNET_HDR_BYTES + p.length;
      continue;
    }
    const i = open.findIndex((g) => sameFlow(g.first, s));
    const g = i >= 0 ? open[i] : undefined;
    if (g && continues(g, s)) {
      total += s.frame.length - s.data;
      add(g, s);
      merged++;
      if (!g.open) open.splice(i, 1);
      continue;
    }
    if (g) open.splice(i, 1);
    const n = newGroup(s);
    slots.push(n);
    total += 2 + VNET_HDR_BYTES + p.length;
    if (n.open) {
      if (open.length >= MAX_OPEN_GROUPS) open.shift();
      open.push(n);
    }
  }
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (const x of slots) {
    let len: number;
    if (Buffer.isBuffer(x) || x.parts.length === 0) {
      const f = Buffer.isBuffer(x) ? x : x.first.frame;
      out.fill(0, off + 2, off + 2 + VNET_HDR_BYTES);
      f.copy(out, off + 2 + VNET_HDR_BYTES);
      len = f.length;
    } else {
      len = writeSuper(out, off + 2, x);
    }
    out.writeUInt16BE(len, off);
    off += 2 + VNET_HDR_BYTES + len;
  }
  if (stats) {
    stats.packets += packets.length;
    stats.entries += slots.length;
    stats.merged += merged;
  }
  return out;
}
