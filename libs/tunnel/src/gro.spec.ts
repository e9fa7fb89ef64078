import { describe, expect, it } from 'vitest';
import { unpackBatch, VNET_HDR_BYTES } from './device.js';
import { coalesceTcp, MAX_COALESCED_BYTES, onesSum, onesSumJs, type CoalesceStats } from './gro.js';
import { loadNativeAddon } from './addon.js';
import { splitGso } from './gso-split.js';

// An independent checksum for the test (not gro.ts's).
function csum(...parts: Uint8Array[]): number {
  let s = 0;
  const all = Buffer.concat(parts);
  for (let i = 0; i < all.length; i += 2) s += (all[i]! << 8) + (i + 1 < all.length ? all[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

interface SegOpts {
  v6?: boolean;
  sport?: number;
  seq: number;
  payload: number;
  flags?: number;
  id?: number;
  ttl?: number;
  tsval?: number;
  window?: number;
  fill?: number;
}

const MAC = Buffer.from('02000000000102000000000208000000', 'hex');
const V6_SRC = Buffer.from('fd000000000000000000000000000001', 'hex');
const V6_DST = Buffer.from('fd000000000000000000000000000002', 'hex');

/** An Ethernet frame with a TCP segment (timestamps option), checksums complete. */
function segment(o: SegOpts): Buffer {
  const payload = Buffer.alloc(o.payload, o.fill ?? (o.seq & 0xff));
  const tcp = Buffer.alloc(32);
  tcp.writeUInt16BE(o.sport ?? 40000, 0);
  tcp.writeUInt16BE(5201, 2);
  tcp.writeUInt32BE(o.seq >>> 0, 4);
  tcp.writeUInt32BE(777, 8);
  tcp[12] = 8 << 4;
  tcp[13] = o.flags ?? 0x10;
  tcp.writeUInt16BE(o.window ?? 500, 14);
  Buffer.from([1, 1, 8, 10]).copy(tcp, 20);
  tcp.writeUInt32BE(o.tsval ?? 1000, 24);
  tcp.writeUInt32BE(2000, 28);
  const l4len = tcp.length + payload.length;
  let ip: Buffer;
  let pseudo: Buffer;
  if (o.v6) {
    ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(l4len, 4);
    ip[6] = 6;
    ip[7] = o.ttl ?? 64;
    V6_SRC.copy(ip, 8);
    V6_DST.copy(ip, 24);
    pseudo = Buffer.concat([V6_SRC, V6_DST, Buffer.from([0, 0, l4len >> 8, l4len & 0xff, 0, 0, 0, 6])]);
  } else {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4len, 2);
    ip.writeUInt16BE(o.id ?? 1, 4);
    ip.writeUInt16BE(0x4000, 6);
    ip[8] = o.ttl ?? 64;
    ip[9] = 6;
    Buffer.from([10, 0, 0, 1, 10, 0, 0, 2]).copy(ip, 12);
    ip.writeUInt16BE(0xffff - csum(ip), 10);
    pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 6, l4len >> 8, l4len & 0xff])]);
  }
  tcp.writeUInt16BE(0xffff - csum(pseudo, tcp, payload), 16);
  const eth = Buffer.from(MAC.subarray(0, 14));
  if (o.v6) eth.writeUInt16BE(0x86dd, 12);
  return Buffer.concat([eth, ip, tcp, payload]);
}

/** A bulk run of `n` full segments of one flow. */
function run(n: number, o: Partial<SegOpts> & { mss?: number } = {}): Buffer[] {
  const mss = o.mss ?? 1448;
  return Array.from({ length: n }, (_, i) => segment({ ...o, seq: (o.seq ?? 1) + i * mss, payload: mss, id: (o.id ?? 100) + i, fill: i }));
}

interface Entry {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  frame: Buffer;
}

function entries(batch: Buffer): Entry[] {
  return unpackBatch(batch, true).map((e) => ({
    flags: e[0]!,
    gsoType: e[1]!,
    hdrLen: e.readUInt16LE(2),
    gsoSize: e.readUInt16LE(4),
    csumStart: e.readUInt16LE(6),
    csumOffset: e.readUInt16LE(8),
    frame: Buffer.from(e.subarray(VNET_HDR_BYTES)),
  }));
}

/** Cuts a super-frame into segments as TSO would, completing each checksum from the header's seed. */
function segmentLikeTso(e: Entry): Buffer[] {
  const f = e.frame;
  const v6 = f.readUInt16BE(12) === 0x86dd;
  const hdr = f.subarray(0, e.hdrLen);
  const out: Buffer[] = [];
  for (let at = e.hdrLen, i = 0; at < f.length; at += e.gsoSize, i++) {
    const payload = f.subarray(at, Math.min(at + e.gsoSize, f.length));
    const s = Buffer.concat([hdr, payload]);
    const l4len = s.length - e.csumStart;
    if (v6) s.writeUInt16BE(l4len, 18);
    else {
      s.writeUInt16BE(s.length - 14, 16);
      s.writeUInt16BE(s.readUInt16BE(18) + i, 18);
      s.writeUInt16BE(0, 24);
      s.writeUInt16BE(0xffff - csum(s.subarray(14, 34)), 24);
    }
    s.writeUInt32BE((s.readUInt32BE(e.csumStart + 4) + (at - e.hdrLen)) >>> 0, e.csumStart + 4);
    if (at + e.gsoSize < f.length) s[e.csumStart + 13] = s[e.csumStart + 13]! & ~0x08; // PSH on the last only
    // the seed in the header is the super-frame's pseudo-header: take the segment's own instead
    // (the kernel adjusts it by the length difference; the same thing)
    const addr = v6 ? s.subarray(22, 54) : s.subarray(26, 34);
    const seed = csum(addr, Buffer.from(v6 ? [0, 0, l4len >> 8, l4len & 0xff, 0, 0, 0, 6] : [0, 6, l4len >> 8, l4len & 0xff]));
    s.writeUInt16BE(0, e.csumStart + e.csumOffset);
    s.writeUInt16BE(0xffff - csum(Buffer.from([seed >> 8, seed & 0xff]), s.subarray(e.csumStart)), e.csumStart + e.csumOffset);
    out.push(s);
  }
  return out;
}

/** What a NIC does with NEEDS_CSUM: sum from csum_start over the rest (the seed included) into the field. */
function completeChecksum(e: Entry): Buffer {
  const f = Buffer.from(e.frame);
  const sum = csum(f.subarray(e.csumStart));
  f.writeUInt16BE(0xffff - sum, e.csumStart + e.csumOffset);
  return f;
}

describe('coalesceTcp', () => {
  it('turns a run of one flow into one super-frame that TSO would cut back into the same segments', () => {
    for (const v6 of [false, true]) {
      const segs = run(10, { v6 });
      segs[9] = segment({ v6, seq: 1 + 9 * 1448, payload: 1448, id: 109, fill: 9, flags: 0x18 });
      const stats: CoalesceStats = { packets: 0, entries: 0, merged: 0 };
      const out = entries(coalesceTcp(segs, 14, stats));
      expect(stats).toEqual({ packets: 10, entries: 1, merged: 9 });
      expect(out).toHaveLength(1);
      const e = out[0]!;
      const l4 = v6 ? 54 : 34;
      expect(e).toMatchObject({ flags: 1, gsoType: v6 ? 4 : 1, hdrLen: l4 + 32, gsoSize: 1448, csumStart: l4, csumOffset: 16 });
      expect(e.frame.length).toBe(l4 + 32 + 10 * 1448);
      // PSH of the last segment on the super-frame
      expect(e.frame[l4 + 13]).toBe(0x18);
      if (!v6) expect(csum(e.frame.subarray(14, 34))).toBe(0xffff);
      // the checksum completed from the seed verifies over the whole super-frame
      const done = completeChecksum(e);
      const l4len = done.length - l4;
      const addr = v6 ? done.subarray(22, 54) : done.subarray(26, 34);
      expect(csum(addr, Buffer.from(v6 ? [0, 0, l4len >> 8, l4len & 0xff, 0, 0, 0, 6] : [0, 6, l4len >> 8, l4len & 0xff]), done.subarray(l4))).toBe(0xffff);
      // and cut like TSO, the original segments come back byte for byte
      expect(segmentLikeTso(e)).toEqual(segs);
    }
  });

  it('leaves what it cannot merge as it came, in its place, with a zero header', () => {
    const arp = Buffer.alloc(42, 1);
    arp.writeUInt16BE(0x0806, 12);
    const pureAck = segment({ sport: 40001, seq: 5, payload: 0 });
    const syn = segment({ sport: 40002, seq: 5, payload: 0, flags: 0x02 });
    const udp = segment({ sport: 40003, seq: 5, payload: 100 });
    udp[23] = 17;
    const input = [arp, pureAck, syn, udp];
    const out = entries(coalesceTcp(input, 14));
    expect(out.map((e) => e.frame)).toEqual(input);
    for (const e of out) expect([e.flags, e.gsoType, e.hdrLen, e.gsoSize, e.csumStart, e.csumOffset]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('keeps two interleaved flows apart and in order, with the other frames where they were', () => {
    const a = run(4, { sport: 40000, seq: 1 });
    const b = run(4, { sport: 40001, seq: 90_000 });
    const ack = segment({ sport: 40009, seq: 3, payload: 0 });
    const out = entries(coalesceTcp([a[0]!, b[0]!, a[1]!, ack, b[1]!, a[2]!, b[2]!, a[3]!, b[3]!], 14));
    expect(out).toHaveLength(3);
    expect(segmentLikeTso(out[0]!)).toEqual(a);
    expect(segmentLikeTso(out[1]!)).toEqual(b);
    expect(out[2]!.frame).toEqual(ack);
  });

  it('ends a group where TSO could not have cut it', () => {
    const count = (segs: Buffer[]) => entries(coalesceTcp(segs, 14)).length;
    const base = run(4);
    // a gap in the sequence
    expect(count([base[0]!, base[1]!, base[3]!])).toBe(2);
    // an IP ID that does not follow
    expect(count([base[0]!, segment({ seq: 1 + 1448, payload: 1448, id: 150 })])).toBe(2);
    // another TTL, window or timestamp
    expect(count([base[0]!, segment({ seq: 1 + 1448, payload: 1448, id: 101, ttl: 63 })])).toBe(2);
    expect(count([base[0]!, segment({ seq: 1 + 1448, payload: 1448, id: 101, window: 501 })])).toBe(2);
    expect(count([base[0]!, segment({ seq: 1 + 1448, payload: 1448, id: 101, tsval: 1001 })])).toBe(2);
    // PSH ends it after that segment; a shorter segment too; a longer one never joins
    expect(count([segment({ seq: 1, payload: 1448, id: 100, flags: 0x18 }), base[1]!])).toBe(2);
    expect(count([base[0]!, segment({ seq: 1 + 1448, payload: 500, id: 101 }), segment({ seq: 1 + 1948, payload: 1448, id: 102 })])).toBe(2);
    expect(count([segment({ seq: 1, payload: 1000, id: 100 }), segment({ seq: 1001, payload: 1448, id: 101 })])).toBe(2);
    // segments under MIN_GSO_SIZE start no group (a tiny gso_size would be cut into as many segments)
    expect(count([segment({ seq: 1, payload: 100, id: 100 }), segment({ seq: 101, payload: 100, id: 101 })])).toBe(2);
    expect(count([segment({ seq: 1, payload: 512, id: 100 }), segment({ seq: 513, payload: 512, id: 101 })])).toBe(1);
    // FIN, RST, URG, ECE/CWR: never merged
    expect(count([base[0]!, segment({ seq: 1 + 1448, payload: 1448, id: 101, flags: 0x11 })])).toBe(2);
    expect(count([base[0]!, segment({ seq: 1 + 1448, payload: 1448, id: 101, flags: 0x90 })])).toBe(2);
    // the whole run, for contrast
    expect(count(base)).toBe(1);
  });

  it('merges no segment whose checksums do not verify', () => {
    const segs = run(4);
    const badTcp = Buffer.from(segs[1]!);
    badTcp[badTcp.length - 1]! ^= 0xff;
    const badIp = Buffer.from(segs[2]!);
    badIp[22]! ^= 0x01; // TTL, the IP checksum no longer matches
    const out = entries(coalesceTcp([segs[0]!, badTcp, segs[2]!, segs[3]!], 14));
    // the corrupt one goes as it came (the receiver drops it), and a new group starts after it
    expect(out.map((e) => e.gsoType)).toEqual([0, 0, 1]);
    expect(out[1]!.frame).toEqual(badTcp);
    expect(entries(coalesceTcp([segs[0]!, badIp], 14)).map((e) => e.frame)).toEqual([segs[0], badIp]);
    // nor a first segment that does not verify
    expect(entries(coalesceTcp([badTcp, segs[2]!], 14)).map((e) => e.frame)).toEqual([badTcp, segs[2]]);
  });

  it('stops a super-frame at 65535 bytes', () => {
    const segs = run(60);
    const out = entries(coalesceTcp(segs, 14));
    expect(out.length).toBeGreaterThan(1);
    for (const e of out) expect(e.frame.length).toBeLessThanOrEqual(MAX_COALESCED_BYTES);
    expect(out.flatMap((e) => (e.gsoType ? segmentLikeTso(e) : [e.frame]))).toEqual(segs);
  });

  it('coalesces IP packets without an Ethernet header (l2 = 0)', () => {
    const segs = run(3).map((f) => f.subarray(14));
    const out = entries(coalesceTcp(segs, 0));
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ gsoType: 1, csumStart: 20, hdrLen: 52, gsoSize: 1448 });
  });

  it('sums in the addon as in JS (odd and even lengths and offsets)', () => {
    expect((loadNativeAddon() as { onesSum?: unknown }).onesSum).toBeTypeOf('function');
    const b = Buffer.alloc(1600);
    for (let i = 0; i < b.length; i++) b[i] = (i * 131 + 7) & 0xff;
    for (const [start, end] of [[0, 0], [0, 1], [1, 2], [3, 1514], [14, 1515], [7, 1600], [0, 1600], [33, 41]] as const) {
      const want = start === end ? 0 : csum(b.subarray(start, end));
      expect([start, end, onesSum(b, start, end)]).toEqual([start, end, want]);
      expect(onesSumJs(b, start, end)).toBe(want);
    }
    expect(onesSum(Buffer.alloc(64, 0xff), 0, 64)).toBe(0xffff);
    expect(() => onesSum(b, 10, 1601)).toThrow(RangeError);
  });
});

describe('splitGso (gso-split.ts): super-frames for a peer without offload', () => {
  const withHeader = (e: Entry) => {
    const h = Buffer.alloc(VNET_HDR_BYTES);
    h[0] = e.flags;
    h[1] = e.gsoType;
    h.writeUInt16LE(e.hdrLen, 2);
    h.writeUInt16LE(e.gsoSize, 4);
    h.writeUInt16LE(e.csumStart, 6);
    h.writeUInt16LE(e.csumOffset, 8);
    return Buffer.concat([h, e.frame]);
  };

  it('cuts a super-frame back into the very segments it was made of (IPv4 and IPv6, a short last one with PSH)', () => {
    for (const v6 of [false, true]) {
      const segs = [...run(7, { v6 }), segment({ v6, seq: 1 + 7 * 1448, payload: 600, id: 107, flags: 0x18, fill: 7 })];
      const out = entries(coalesceTcp(segs, 14));
      expect(out).toHaveLength(1);
      expect(splitGso(withHeader(out[0]!), 14)).toEqual(segs);
      // and as an independent segmenter would
      expect(splitGso(withHeader(out[0]!), 14)).toEqual(segmentLikeTso(out[0]!));
    }
  });

  it('cuts IP packets without an Ethernet header (l2 = 0), with FIN on the last segment and CWR on the first only', () => {
    const segs = run(3).map((f) => Buffer.from(f.subarray(14)));
    const e = entries(coalesceTcp(segs, 0))[0]!;
    e.frame[20 + 13] = 0x10 | 0x80 | 0x01; // ACK CWR FIN on the super-packet
    const cut = splitGso(withHeader(e), 0);
    expect(cut.map((p) => p[33])).toEqual([0x90, 0x10, 0x11]);
    for (const p of cut) {
      expect(csum(p.subarray(0, 20))).toBe(0xffff);
      const l4len = p.length - 20;
      expect(csum(p.subarray(12, 20), Buffer.from([0, 6, l4len >> 8, l4len & 0xff]), p.subarray(20))).toBe(0xffff);
    }
    expect(cut.map((p) => p.readUInt32BE(24))).toEqual([1, 1 + 1448, 1 + 2 * 1448]);
  });

  it('completes the checksum of a NEEDS_CSUM packet (TCP and UDP) and passes plain ones through as views', () => {
    const seg = segment({ seq: 5, payload: 300 });
    const partial = Buffer.from(seg);
    const l4len = seg.length - 34;
    const seed = csum(seg.subarray(26, 34), Buffer.from([0, 6, l4len >> 8, l4len & 0xff]));
    partial.writeUInt16BE(seed, 34 + 16);
    const h = Buffer.alloc(VNET_HDR_BYTES);
    h[0] = 1;
    h.writeUInt16LE(34, 6);
    h.writeUInt16LE(16, 8);
    const entry = Buffer.concat([h, partial]);
    expect(splitGso(entry, 14)).toEqual([seg]);
    expect(entry.subarray(VNET_HDR_BYTES)).toEqual(partial); // the entry itself is left alone
    // UDP whose sum folds to zero sends 0xffff
    const udp = Buffer.alloc(14 + 20 + 8 + 2);
    udp.writeUInt16BE(0x0800, 12);
    udp[14] = 0x45;
    udp[14 + 9] = 17;
    udp.writeUInt16BE(8 + 2, 34 + 4);
    const uh = Buffer.alloc(VNET_HDR_BYTES);
    uh[0] = 1;
    uh.writeUInt16LE(34, 6);
    uh.writeUInt16LE(6, 8);
    // all-zero addresses and ports: the seed is 17 + 10 + 10; make the payload cancel the rest
    udp.writeUInt16BE(37, 34 + 6);
    udp.writeUInt16BE(0xffff - 37 - 10, 42);
    const [u] = splitGso(Buffer.concat([uh, udp]), 14);
    expect(u!.readUInt16BE(34 + 6)).toBe(0xffff);
    const plain = Buffer.concat([Buffer.alloc(VNET_HDR_BYTES), seg]);
    const [v] = splitGso(plain, 14);
    expect(v!.buffer).toBe(plain.buffer);
    expect(v).toEqual(seg);
  });

  it('returns nothing for a header that does not describe the packet', () => {
    const e = entries(coalesceTcp(run(3), 14))[0]!;
    const bad = (patch: (b: Buffer) => void) => {
      const b = withHeader(e);
      patch(b);
      return splitGso(b, 14);
    };
    expect(bad((b) => (b[1] = 3))).toEqual([]); // UDP GSO
    expect(bad((b) => b.writeUInt16LE(0, 4))).toEqual([]); // gso_size 0
    expect(bad((b) => b.writeUInt16LE(30, 6))).toEqual([]); // csum_start not the TCP header
    expect(bad((b) => (b[1] = 4))).toEqual([]); // TCPV6 on an IPv4 packet
    expect(splitGso(Buffer.alloc(VNET_HDR_BYTES), 14)).toEqual([]);
    const csumPast = withHeader({ ...e, gsoType: 0, gsoSize: 0, frame: e.frame.subarray(0, 40) });
    expect(splitGso(csumPast, 14)).toEqual([]);
  });
});
