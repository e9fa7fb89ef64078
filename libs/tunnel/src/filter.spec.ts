import { describe, expect, it } from 'vitest';
import { Cidr, CidrSet } from '@rvpn/config';
import { packBatch, unpackBatch } from './device.js';
import { filterBatch } from './filter.js';
import { icmpEcho, ipv6Packet } from './testing/packets.js';

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
