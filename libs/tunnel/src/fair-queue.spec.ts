import { describe, expect, it } from 'vitest';
import { FairQueue, flowHash, markCe } from './fair-queue.js';
import { icmpEcho, ipv4Packet, ipv6Packet, tcpSuperPacket, v6Bytes, vnetHeader } from './testing/packets.js';
import { packGsoBatch, unpackBatch } from './device.js';

/** A TCP/IPv4 packet of `size` bytes with ports, and a tag in its payload to find it again. */
function tcp(src: string, dst: string, sport: number, dport: number, size: number, tag: number, tos = 0): Buffer {
  const seg = Buffer.alloc(size - 20);
  seg.writeUInt16BE(sport, 0);
  seg.writeUInt16BE(dport, 2);
  seg[12] = 5 << 4;
  seg.writeUInt32BE(tag, 20);
  const p = ipv4Packet(src, dst, 6, seg);
  if (tos) {
    p[1] = tos;
    p.writeUInt16BE(0, 10);
    p.writeUInt16BE(ipv4Checksum(p), 10);
  }
  return p;
}

function ipv4Checksum(p: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += p.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function pack(packets: Buffer[]): Buffer {
  return Buffer.concat(packets.flatMap((p) => {
    const h = Buffer.alloc(2);
    h.writeUInt16BE(p.length);
    return [h, p];
  }));
}

function unpack(b: Buffer | undefined): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (b && off + 2 <= b.length) {
    const len = b.readUInt16BE(off);
    out.push(b.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return out;
}

const isPing = (p: Buffer) => p[9] === 1;
const tagOf = (p: Buffer) => p.readUInt32BE(40);

describe('FairQueue', () => {
  it('serves a sparse flow (a ping) ahead of a bulk backlog', () => {
    const q = new FairQueue();
    q.enqueueBatch(pack(Array.from({ length: 400 }, (_, i) => tcp('10.0.0.1', '10.0.0.2', 40000, 5201, 1400, i))));
    q.enqueueBatch(pack([icmpEcho('10.0.0.1', '10.0.0.2', 7, 1)]));
    const first = unpack(q.dequeueBatch(4 * 1024));
    // the bulk flow's first round goes before it: a quantum (1514 bytes), which the second 1400-byte
    // packet overruns (DRR sends while the deficit is positive)
    expect(first.findIndex(isPing)).toBeGreaterThanOrEqual(0);
    expect(first.findIndex(isPing)).toBeLessThanOrEqual(2);
    // and nothing is lost or reordered within the bulk flow
    const rest: Buffer[] = [];
    for (let b = q.dequeueBatch(64 * 1024); b; b = q.dequeueBatch(64 * 1024)) rest.push(...unpack(b));
    const tags = [...first, ...rest].filter((p) => !isPing(p)).map(tagOf);
    expect(tags).toEqual(Array.from({ length: 400 }, (_, i) => i));
    expect(q.empty).toBe(true);
    expect(q.stats).toMatchObject({ enqueued: 401, dequeued: 401, backlogBytes: 0, backlogPackets: 0, activeFlows: 0 });
  });

  it('shares the link between bulk flows by bytes, not by packets', () => {
    const q = new FairQueue({ quantum: 1500 });
    // flow A sends 1400-byte packets, flow B 200-byte ones; both have a deep backlog
    q.enqueueBatch(pack(Array.from({ length: 300 }, (_, i) => tcp('10.0.0.1', '10.0.0.2', 1000, 80, 1400, i))));
    q.enqueueBatch(pack(Array.from({ length: 2000 }, (_, i) => tcp('10.0.0.1', '10.0.0.2', 2000, 80, 200, i))));
    const bytes = { a: 0, b: 0 };
    for (let i = 0; i < 20; i++) {
      for (const p of unpack(q.dequeueBatch(16 * 1024))) bytes[p.readUInt16BE(20) === 1000 ? 'a' : 'b'] += p.length;
    }
    expect(bytes.a / bytes.b).toBeGreaterThan(0.8);
    expect(bytes.a / bytes.b).toBeLessThan(1.25);
  });

  it('CoDel: leaves a queue below target alone, drops from a standing one after an interval, and stops when it drains', () => {
    let now = 0;
    const q = new FairQueue({ targetMs: 5, intervalMs: 100, ecn: false, now: () => now });
    // a short burst dequeued within the target: no drop
    q.enqueueBatch(pack(Array.from({ length: 20 }, (_, i) => tcp('10.0.0.1', '10.0.0.2', 1, 2, 1000, i))));
    now += 2;
    while (q.dequeueBatch(64 * 1024));
    expect(q.stats.codelDrops).toBe(0);

    // a standing queue: 1000 packets arrive each ms, ~900 leave (the link is slower), for 1 s
    let tag = 0;
    for (let ms = 0; ms < 1000; ms++) {
      now += 1;
      q.enqueueBatch(pack(Array.from({ length: 10 }, () => tcp('10.0.0.1', '10.0.0.2', 1, 2, 1000, tag++))));
      q.dequeueBatch(9 * 1002);
    }
    const dropped = q.stats.codelDrops;
    expect(dropped).toBeGreaterThan(0);
    // the control law drops more often the longer it lasts, but never a large part of the flow
    expect(dropped).toBeLessThan(tag / 10);
    // the link catches up: the queue drains, and the dropping state ends
    for (let ms = 0; ms < 300; ms++) {
      now += 1;
      q.dequeueBatch(64 * 1024);
    }
    expect(q.empty).toBe(true);
    const after = q.stats.codelDrops;
    for (let ms = 0; ms < 200; ms++) {
      now += 1;
      q.enqueueBatch(pack([tcp('10.0.0.1', '10.0.0.2', 1, 2, 1000, tag++)]));
      q.dequeueBatch(64 * 1024);
    }
    expect(q.stats.codelDrops).toBe(after);
  });

  it('CoDel marks ECN-capable packets instead of dropping them', () => {
    let now = 0;
    const q = new FairQueue({ targetMs: 5, intervalMs: 100, now: () => now });
    let sent = 0;
    let ce = 0;
    for (let ms = 0; ms < 600; ms++) {
      now += 1;
      q.enqueueBatch(pack(Array.from({ length: 10 }, (_, i) => tcp('10.0.0.1', '10.0.0.2', 1, 2, 1000, ms * 10 + i, 0x02 /* ECT(0) */))));
      for (const p of unpack(q.dequeueBatch(9 * 1002))) {
        sent++;
        if ((p[1]! & 3) === 3) {
          ce++;
          expect(ipv4Checksum(p)).toBe(0); // the header checksum still adds up
        }
      }
    }
    expect(ce).toBeGreaterThan(0);
    expect(q.stats.ecnMarks).toBe(ce);
    expect(q.stats.codelDrops).toBe(0);
    expect(sent + q.stats.backlogPackets).toBe(6000);
  });

  it('over limitBytes the fattest flow loses from its head, and a small flow keeps its packets', () => {
    const q = new FairQueue({ limitBytes: 20_000 });
    q.enqueueBatch(pack([tcp('10.0.0.9', '10.0.0.2', 3, 4, 100, 999)]));
    const dropped = q.enqueueBatch(pack(Array.from({ length: 40 }, (_, i) => tcp('10.0.0.1', '10.0.0.2', 1, 2, 1000, i))));
    expect(dropped).toBeGreaterThan(0);
    expect(q.stats.overflowDrops).toBe(dropped);
    expect(q.stats.backlogBytes).toBeLessThanOrEqual(20_000);
    const out: Buffer[] = [];
    for (let b = q.dequeueBatch(64 * 1024); b; b = q.dequeueBatch(64 * 1024)) out.push(...unpack(b));
    expect(out.some((p) => tagOf(p) === 999)).toBe(true);
    // the bulk flow lost its oldest packets, and what is left keeps its order
    const bulk = out.filter((p) => tagOf(p) !== 999).map(tagOf);
    expect(bulk).toEqual([...bulk].sort((a, b) => a - b));
    expect(bulk.at(-1)).toBe(39);
    expect(bulk.length + dropped).toBe(40);
  });

  it('clear() drops what waits and leaves an empty queue that works on', () => {
    const q = new FairQueue();
    q.enqueueBatch(pack([icmpEcho('10.0.0.1', '10.0.0.2', 1, 1), icmpEcho('10.0.0.3', '10.0.0.2', 1, 1)]));
    expect(q.clear()).toBe(2);
    expect(q.empty).toBe(true);
    expect(q.dequeueBatch(1000)).toBeUndefined();
    q.enqueueBatch(pack([icmpEcho('10.0.0.1', '10.0.0.2', 1, 2)]));
    expect(unpack(q.dequeueBatch(1000))).toHaveLength(1);
    expect(q.stats.activeFlows).toBe(0);
  });

  it('always dequeues at least one packet, even one larger than maxBytes', () => {
    const q = new FairQueue();
    q.enqueueBatch(pack([tcp('10.0.0.1', '10.0.0.2', 1, 2, 1400, 1)]));
    expect(unpack(q.dequeueBatch(100))).toHaveLength(1);
  });

  it('refuses bucket counts that are not a power of two', () => {
    expect(() => new FairQueue({ buckets: 1000 })).toThrow(RangeError);
    expect(() => new FairQueue({ limitBytes: 0 })).toThrow(RangeError);
  });
});

describe('flowHash', () => {
  const h = (p: Buffer) => flowHash(p, 0, p.length);
  it('is the same for the packets of one flow and differs by port, address and protocol', () => {
    expect(h(tcp('10.0.0.1', '10.0.0.2', 1000, 80, 100, 1))).toBe(h(tcp('10.0.0.1', '10.0.0.2', 1000, 80, 1400, 2)));
    const others = [tcp('10.0.0.1', '10.0.0.2', 1001, 80, 100, 1), tcp('10.0.0.3', '10.0.0.2', 1000, 80, 100, 1), icmpEcho('10.0.0.1', '10.0.0.2', 1000, 80)];
    for (const o of others) expect(h(o)).not.toBe(h(tcp('10.0.0.1', '10.0.0.2', 1000, 80, 100, 1)));
  });
  it('hashes IPv6 by addresses and ports (or the flow label)', () => {
    const udp = (sport: number) => {
      const u = Buffer.alloc(8);
      u.writeUInt16BE(sport, 0);
      u.writeUInt16BE(53, 2);
      return ipv6Packet(v6Bytes('fd00::1'), v6Bytes('fd00::2'), u, 17);
    };
    expect(h(udp(1))).toBe(h(udp(1)));
    expect(h(udp(1))).not.toBe(h(udp(2)));
    const labelled = udp(1);
    labelled[3] = 7;
    expect(h(labelled)).not.toBe(h(udp(1)));
  });
});

describe('markCe', () => {
  it('sets CE on ECT IPv4 with a valid checksum, leaves Not-ECT alone', () => {
    for (const ect of [1, 2]) {
      const p = tcp('10.0.0.1', '10.0.0.2', 1, 2, 100, 1, ect);
      expect(markCe(p, 0, p.length)).toBe(true);
      expect(p[1]! & 3).toBe(3);
      expect(ipv4Checksum(p)).toBe(0);
    }
    const plain = tcp('10.0.0.1', '10.0.0.2', 1, 2, 100, 1);
    expect(markCe(plain, 0, plain.length)).toBe(false);
    expect(plain[1]).toBe(0);
  });
  it('sets CE on ECT IPv6 (traffic class low bits)', () => {
    const p = ipv6Packet(v6Bytes('fd00::1'), v6Bytes('fd00::2'), Buffer.alloc(8), 17);
    p[1] = 0x10; // ECT(1)
    expect(markCe(p, 0, p.length)).toBe(true);
    expect((p[1]! >> 4) & 3).toBe(3);
    const n = ipv6Packet(v6Bytes('fd00::1'), v6Bytes('fd00::2'), Buffer.alloc(8), 17);
    expect(markCe(n, 0, n.length)).toBe(false);
  });
});

describe('FairQueue on Ethernet frames (the HA bond)', () => {
  const eth = (ip: Buffer, type = 0x0800) => {
    const h = Buffer.alloc(14);
    h.writeUInt16BE(type, 12);
    return Buffer.concat([h, ip]);
  };
  it('hashes flows past the Ethernet header and marks ECN in the IP header', () => {
    let now = 0;
    const q = new FairQueue({ ethernet: true, now: () => now });
    q.enqueueBatch(pack(Array.from({ length: 200 }, (_, i) => eth(tcp('10.0.0.1', '10.0.0.2', 40000, 5201, 1400, i)))));
    q.enqueueBatch(pack([eth(icmpEcho('10.0.0.1', '10.0.0.2', 7, 1))]));
    const first = unpack(q.dequeueBatch(4 * 1024)).map((f) => f.subarray(14));
    expect(first.findIndex(isPing)).toBeLessThanOrEqual(2);
    expect(first.findIndex(isPing)).toBeGreaterThanOrEqual(0);
    // an ARP frame (no IP inside) still queues and leaves
    q.enqueueBatch(pack([eth(Buffer.alloc(28), 0x0806)]));
    let n = first.length;
    for (let b = q.dequeueBatch(64 * 1024); b; b = q.dequeueBatch(64 * 1024)) n += unpack(b).length;
    expect(n).toBe(202);

    const m = new FairQueue({ ethernet: true, targetMs: 5, intervalMs: 100, now: () => now });
    let ce = 0;
    for (let ms = 0; ms < 400; ms++) {
      now += 1;
      m.enqueueBatch(pack(Array.from({ length: 10 }, (_, i) => eth(tcp('10.0.0.1', '10.0.0.2', 1, 2, 1000, ms * 10 + i, 0x01)))));
      for (const f of unpack(m.dequeueBatch(9 * 1016))) {
        if ((f[15]! & 3) === 3) {
          ce++;
          expect(ipv4Checksum(f.subarray(14))).toBe(0);
        }
      }
    }
    expect(ce).toBeGreaterThan(0);
    expect(m.stats.codelDrops).toBe(0);
  });
});

describe('FairQueue on the GSO layout (offload on)', () => {
  it('keeps each header with its super-packet, hashes flows behind it, and lets a ping overtake 64 KiB packets', () => {
    let now = 0;
    const q = new FairQueue({ gso: true, now: () => now });
    const bulkEntries = Array.from({ length: 8 }, (_, i) => tcpSuperPacket('10.0.0.1', '10.0.0.2', 60_000 + i));
    q.enqueueBatch(packGsoBatch(bulkEntries));
    q.enqueueBatch(packGsoBatch([Buffer.concat([vnetHeader(), icmpEcho('10.0.0.1', '10.0.0.2', 7, 1)])]));
    expect(q.stats.activeFlows).toBe(2);
    const out: Buffer[] = [];
    for (let b = q.dequeueBatch(64 * 1024); b; b = q.dequeueBatch(64 * 1024)) out.push(...unpackBatch(b, true).map((e) => Buffer.from(e)));
    expect(out).toHaveLength(9);
    expect(out.findIndex((e) => e[10 + 9] === 1)).toBeLessThanOrEqual(1);
    const bulkOut = out.filter((e) => e[10 + 9] === 6);
    expect(bulkOut.map((e) => Buffer.compare(e, bulkEntries[bulkOut.indexOf(e)]!))).toEqual(bulkEntries.map(() => 0));
    // ECN marks land in the IP header behind the virtio header
    const m = new FairQueue({ gso: true, targetMs: 5, intervalMs: 100, now: () => now });
    let ce = 0;
    for (let ms = 0; ms < 400; ms++) {
      now += 1;
      const e = tcpSuperPacket('10.0.0.1', '10.0.0.2', 4000);
      e[10 + 1] = 0x01; // ECT(1)
      e.writeUInt16BE(0, 10 + 10);
      e.writeUInt16BE(ipv4Checksum(e.subarray(10)), 10 + 10);
      m.enqueueBatch(packGsoBatch([e, Buffer.from(e)]));
      const b = m.dequeueBatch(4100);
      for (const f of b ? unpackBatch(b, true) : []) {
        if ((f[10 + 1]! & 3) === 3) {
          ce++;
          expect(ipv4Checksum(f.subarray(10))).toBe(0);
        }
      }
    }
    expect(ce).toBeGreaterThan(0);
  });
});
