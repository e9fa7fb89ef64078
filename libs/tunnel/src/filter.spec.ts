import { describe, expect, it } from 'vitest';
import { Cidr, CidrSet } from '@rvpn/config';
import { packBatch, packGsoBatch, unpackBatch } from './device.js';
import { checkVnetHeader, filterBatch, MIN_GSO_SIZE } from './filter.js';
import { icmp4Error, icmp6, icmpEcho, ipv4Packet, ipv6Packet, ipv6WithHeaders, tcp4, tcpSuperPacket, v6Bytes, vnetHeader } from './testing/packets.js';

const allow = new CidrSet(['100.96.0.0/11', 'fd8f:6d53:b97a:1::/96'].map((c) => Cidr.parse(c)));
const v6 = (last: number, prefix = [0xfd, 0x8f, 0x6d, 0x53, 0xb9, 0x7a, 0, 1]) => Uint8Array.from([...prefix, 0, 0, 0, 0, 0, 0, 0, last]);

describe('filterBatch', () => {
  it('cuts out packets with foreign sources and keeps the rest in order', () => {
    const batch = packBatch([
      icmpEcho('100.96.1.10', '10.1.0.20', 1, 1),
      icmpEcho('10.1.0.99', '10.1.0.20', 1, 2), // spoofed: a seed address
      ipv6Packet(v6(2), v6(1)),
      ipv6Packet(v6(2, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0]), v6(1)), // spoofed v6
      Buffer.from([0x45, 0, 0]), // too short
      icmpEcho('100.127.255.255', '10.1.0.20', 1, 3),
    ]);
    const r = filterBatch(batch, { allowSource: allow });
    expect(r).toMatchObject({ passed: 3, dropped: 2, malformed: 1 });
    const kept = unpackBatch(r.batch);
    expect(kept).toHaveLength(3);
    expect(kept[0]![0]! >> 4).toBe(4);
    expect(kept[1]![0]! >> 4).toBe(6);
    expect([...kept[2]!.subarray(12, 16)]).toEqual([100, 127, 255, 255]);
  });
  it('checks destinations when asked', () => {
    const r = filterBatch(packBatch([icmpEcho('100.96.1.10', '8.8.8.8', 1, 1)]), {
      allowSource: allow,
      allowDestination: new CidrSet([Cidr.parse('10.1.0.0/24')]),
    });
    expect(r.dropped).toBe(1);
  });
});

describe('filterBatch at the seed: destinations, ICMP errors, fragments, IPv6 extension headers', () => {
  const shoot = new CidrSet(['100.96.0.0/11', 'fd10:96::/32', 'fd8f:6d53:b97a:1::2/128'].map((c) => Cidr.parse(c)));
  const own = new CidrSet(['10.1.0.20/32', 'fd8f:6d53:b97a:1::1/128'].map((c) => Cidr.parse(c)));
  const rules = { allowSource: shoot, allowDestination: own, icmpErrors: { quotedSource: own, quotedDestination: shoot } };
  const one = (p: Buffer) => filterBatch(packBatch([p]), rules);
  const SEED6 = v6Bytes('fd8f:6d53:b97a:1::1');
  const SHOOT6 = v6Bytes('fd8f:6d53:b97a:1::2');
  const POD6 = v6Bytes('fd10:96:1::10');

  it('accepts replies from the shoot to the seed side', () => {
    expect(one(tcp4('100.96.1.10', '10.1.0.20', 8080, 40000, 0x12)).passed).toBe(1);
    expect(one(ipv6WithHeaders(POD6, SEED6, [], { type: 6, payload: Buffer.alloc(20) })).passed).toBe(1);
  });

  it('drops sources elsewhere in VPN_NETWORK, the seed\'s own address as source, and foreign destinations', () => {
    expect(one(ipv6Packet(v6Bytes('fd8f:6d53:b97a:1::99'), SEED6)).reasons.source).toBe(1);
    expect(one(ipv6Packet(SEED6, SEED6)).reasons.source).toBe(1);
    expect(one(icmpEcho('100.96.1.10', '10.1.0.21', 1, 1)).reasons.destination).toBe(1); // another seed pod
    expect(one(icmpEcho('100.96.1.10', '255.255.255.255', 1, 1)).reasons.destination).toBe(1);
    expect(one(ipv6Packet(SHOOT6, v6Bytes('ff02::1'))).reasons.destination).toBe(1);
  });

  it('accepts an ICMP error that quotes a packet the seed sent into the tunnel', () => {
    const ours = tcp4('10.1.0.20', '100.96.1.10', 40000, 8080);
    expect(one(icmp4Error('100.96.0.1', '10.1.0.20', ours, { mtu: 1400 })).passed).toBe(1);
    const ours6 = ipv6WithHeaders(SEED6, POD6, [], { type: 6, payload: Buffer.alloc(20) });
    expect(one(ipv6WithHeaders(SHOOT6, SEED6, [], { type: 58, payload: icmp6(2, 0, ours6, 1280) })).passed).toBe(1);
  });

  it('drops a forged "fragmentation needed" about a flow outside the tunnel (the apiserver\'s connection to 9443)', () => {
    const elsewhere = tcp4('10.1.0.20', '10.1.0.30', 9443, 51234, 0x10);
    expect(one(icmp4Error('100.96.0.1', '10.1.0.20', elsewhere, { mtu: 576 })).reasons.icmp_error).toBe(1);
    const elsewhere6 = ipv6WithHeaders(SEED6, v6Bytes('fd00:1::30'), [], { type: 6, payload: Buffer.alloc(20) });
    expect(one(ipv6WithHeaders(SHOOT6, SEED6, [], { type: 58, payload: icmp6(2, 0, elsewhere6, 1280) })).reasons.icmp_error).toBe(1);
  });

  it('drops ICMP errors that are fragmented or too short to show what they quote, redirects and router advertisements', () => {
    const ours = tcp4('10.1.0.20', '100.96.1.10', 40000, 8080);
    expect(one(icmp4Error('100.96.0.1', '10.1.0.20', ours, { mtu: 1400, fragment: { offset8: 0, more: true } })).reasons.icmp_error).toBe(1);
    expect(one(icmp4Error('100.96.0.1', '10.1.0.20', ours.subarray(0, 12))).reasons.icmp_error).toBe(1);
    expect(one(icmp4Error('100.96.0.1', '10.1.0.20', ours, { type: 5, code: 1 })).reasons.icmp_error).toBe(1);
    const ours6 = ipv6WithHeaders(SEED6, POD6, [], { type: 6, payload: Buffer.alloc(20) });
    expect(one(ipv6WithHeaders(SHOOT6, SEED6, [{ type: 44 }], { type: 58, payload: icmp6(2, 0, ours6, 1280) })).reasons.icmp_error).toBe(1);
    expect(one(ipv6WithHeaders(SHOOT6, SEED6, [], { type: 58, payload: icmp6(134, 0, Buffer.alloc(8)) })).reasons.icmp_error).toBe(1);
    expect(one(ipv6WithHeaders(SHOOT6, SEED6, [], { type: 58, payload: icmp6(137, 0, Buffer.alloc(32)) })).reasons.icmp_error).toBe(1);
  });

  it('finds the ICMPv6 header behind extension headers (no bypass by hop-by-hop or destination options)', () => {
    const elsewhere6 = ipv6WithHeaders(SEED6, v6Bytes('fd00:1::30'), [], { type: 6, payload: Buffer.alloc(20) });
    const forged = ipv6WithHeaders(SHOOT6, SEED6, [{ type: 0 }, { type: 60 }, { type: 60, body: Buffer.alloc(14) }], { type: 58, payload: icmp6(2, 0, elsewhere6, 1280) });
    expect(one(forged).reasons.icmp_error).toBe(1);
    const echo = ipv6WithHeaders(SHOOT6, SEED6, [{ type: 0 }, { type: 60 }], { type: 58, payload: icmp6(129, 0, Buffer.alloc(8)) });
    expect(one(echo).passed).toBe(1);
  });

  it('lets a hop-by-hop header through only with padding and router alert (the kernel answers other options with ICMPv6 errors before any firewall)', () => {
    const tcp = { type: 6, payload: Buffer.alloc(20) };
    expect(one(ipv6WithHeaders(POD6, SEED6, [{ type: 0, body: Buffer.from([5, 2, 0, 0, 1, 0]) }], tcp)).passed).toBe(1); // router alert + PadN
    expect(one(ipv6WithHeaders(POD6, SEED6, [{ type: 0, body: Buffer.from([1, 4, 0, 0, 0, 0]) }], tcp)).passed).toBe(1); // PadN
    expect(one(ipv6WithHeaders(POD6, SEED6, [{ type: 0, body: Buffer.from([0xc2, 4, 0, 1, 0, 0]) }], tcp)).reasons.ext_header).toBe(1); // jumbo in a normal packet
    expect(one(ipv6WithHeaders(POD6, SEED6, [{ type: 0, body: Buffer.from([0x9e, 4, 0, 0, 0, 0]) }], tcp)).reasons.ext_header).toBe(1); // unknown, "discard and send ICMP"
    expect(one(ipv6WithHeaders(POD6, SEED6, [{ type: 0, body: Buffer.from([1, 9, 0, 0, 0, 0]) }], tcp)).reasons.ext_header).toBe(1); // PadN past the header
    expect(one(ipv6WithHeaders(POD6, SEED6, [{ type: 0, body: Buffer.from([5, 3, 0, 0, 0, 0]) }], tcp)).reasons.ext_header).toBe(1); // router alert of the wrong size
  });

  it('drops routing headers, over-long or truncated extension header chains', () => {
    expect(one(ipv6WithHeaders(SHOOT6, SEED6, [{ type: 43 }], { type: 6, payload: Buffer.alloc(20) })).reasons.ext_header).toBe(1);
    expect(one(ipv6WithHeaders(SHOOT6, SEED6, Array.from({ length: 9 }, () => ({ type: 60 })), { type: 6, payload: Buffer.alloc(20) })).reasons.ext_header).toBe(1);
    const truncated = ipv6WithHeaders(SHOOT6, SEED6, [{ type: 60, body: Buffer.alloc(30) }], { type: 6, payload: Buffer.alloc(0) }).subarray(0, 50);
    expect(one(Buffer.from(truncated)).reasons.ext_header).toBe(1);
  });

  it('lets non-first fragments through (no reassembly without the checked first one) but still checks their addresses', () => {
    const second = ipv6WithHeaders(POD6, SEED6, [{ type: 44, body: Buffer.from([0, 0x08, 0, 0, 0, 1]) }], { type: 58, payload: Buffer.alloc(64) });
    expect(one(second).passed).toBe(1);
    const spoofed = ipv6WithHeaders(v6Bytes('fd8f:6d53:b97a:1::77'), SEED6, [{ type: 44, body: Buffer.from([0, 0x08, 0, 0, 0, 1]) }], { type: 58, payload: Buffer.alloc(64) });
    expect(one(spoofed).reasons.source).toBe(1);
    const frag4 = icmp4Error('100.96.0.1', '10.1.0.20', Buffer.alloc(28), { fragment: { offset8: 3, more: false } });
    expect(one(frag4).passed).toBe(1);
  });
});

describe('filterBatch on the GSO layout (virtio_net_hdr per packet)', () => {
  const src = '100.96.1.10';
  const dst = '10.1.0.20';
  const good = () => tcpSuperPacket(src, dst, 60_000);
  const withHeader = (entry: Buffer, patch: Parameters<typeof vnetHeader>[0]) => {
    const h = vnetHeader({ flags: entry[0], gsoType: entry[1], hdrLen: entry.readUInt16LE(2), gsoSize: entry.readUInt16LE(4), csumStart: entry.readUInt16LE(6), csumOffset: entry.readUInt16LE(8), ...patch });
    return Buffer.concat([h, entry.subarray(10)]);
  };
  const verdicts = (entries: Buffer[]) => {
    const r = filterBatch(packGsoBatch(entries), { allowSource: allow }, true);
    return { r, kept: unpackBatch(r.batch, true) };
  };

  it('passes a TCP super-packet (IPv4 and IPv6) and a plain packet with a zero header', () => {
    const v6s = tcpSuperPacket('', '', 30_000, 1380, { src: v6(2), dst: v6(1) });
    const plain = Buffer.concat([vnetHeader(), icmpEcho(src, dst, 1, 1)]);
    const { r, kept } = verdicts([good(), v6s, plain]);
    expect(r).toMatchObject({ passed: 3, dropped: 0, malformed: 0 });
    expect(kept.map((k) => k.length)).toEqual([10 + 20 + 20 + 60_000, 10 + 40 + 20 + 30_000, plain.length]);
  });

  it('refuses headers that do not describe their packet, with reason gso_header', () => {
    const bad: Buffer[] = [
      withHeader(good(), { gsoType: 3 }), // UDP fragmentation offload
      withHeader(good(), { gsoType: 5 }), // UDP L4
      withHeader(good(), { gsoType: 4 }), // TCPV6 on an IPv4 packet
      withHeader(good(), { gsoSize: MIN_GSO_SIZE - 1 }), // thousands of segments from one packet
      withHeader(good(), { flags: 0 }), // GSO without a partial checksum
      withHeader(good(), { flags: 1 | 4 }), // an unknown flag
      withHeader(good(), { csumStart: 24 }), // checksum start is not the TCP header
      withHeader(good(), { csumOffset: 6 }), // UDP's checksum field in a TCP packet
      Buffer.concat([vnetHeader({ gsoSize: 1400 }), icmpEcho(src, dst, 1, 1)]), // gso_size without GSO
      Buffer.concat([vnetHeader({ flags: 1, csumStart: 20, csumOffset: 16 }), icmpEcho(src, dst, 1, 2)]), // partial checksum on ICMP
    ];
    // the IPv4 length field says less than the packet holds
    const short = good();
    short.writeUInt16BE(1500, 10 + 2);
    bad.push(short);
    const { r, kept } = verdicts([...bad, good()]);
    expect(r.reasons.gso_header).toBe(bad.length);
    expect(r.passed).toBe(1);
    expect(kept).toHaveLength(1);
  });

  it('still applies the address rules behind the header, and clears DATA_VALID on what passes', () => {
    const spoofed = tcpSuperPacket('10.1.0.99', dst, 10_000);
    const valid = withHeader(good(), { flags: 1 | 2 });
    const { r, kept } = verdicts([spoofed, valid]);
    expect(r.reasons).toMatchObject({ source: 1, gso_header: 0 });
    expect(kept).toHaveLength(1);
    expect(kept[0]![0]).toBe(1);
  });

  it('accepts a partial checksum on a plain UDP packet but no UDP segmentation', () => {
    const udp = Buffer.alloc(8 + 100);
    const p = Buffer.concat([vnetHeader({ flags: 1, csumStart: 20, csumOffset: 6 }), ipv4Packet(src, dst, 17, udp)]);
    expect(checkVnetHeader(p, 0, 10, p.length - 10)).toBe(true);
    const seg = withHeader(p, { gsoType: 1, gsoSize: 1400 });
    expect(checkVnetHeader(seg, 0, 10, seg.length - 10)).toBe(false);
  });
});
