import { describe, expect, it } from 'vitest';
import { Cidr } from '@rvpn/config';
import { coalesceTcp, unpackBatch, VNET_HDR_BYTES } from '@rvpn/tunnel';
import { tcpFrame, v6Bytes } from '@rvpn/tunnel/testing';
import { Bond, checkFrameHeader, createPortGuard, formatMac, gratuitousArp, L2Switch, macFromAddress, packForGso, packPlain } from './index.js';

const SHOOT = 'fd8f:6d53:b97a:1::100';
const API = 'fd8f:6d53:b97a:1::1000';
const shootMac = macFromAddress(SHOOT);
const apiMac = macFromAddress(API);
/** A run of TCP segments shoot → api and the super-frame a kernel with TSO would have read instead. */
function superFrame(n = 6) {
  const segs = Array.from({ length: n }, (_, i) => tcpFrame({ dstMac: apiMac, srcMac: shootMac, src: v6Bytes(SHOOT), dst: v6Bytes(API), seq: 1 + i * 1400, payload: 1400 }));
  const [entry] = unpackBatch(coalesceTcp(segs, 14), true);
  return { segs, entry: entry! };
}
const withZeroHeader = (f: Buffer) => Buffer.concat([Buffer.alloc(VNET_HDR_BYTES), f]);

describe('offload on the HA path (offload.ts)', () => {
  it('checks a virtio_net_hdr against its Ethernet frame, and clears DATA_VALID on one that passes', () => {
    const { entry, segs } = superFrame();
    expect(checkFrameHeader(Buffer.from(entry))).toBe(true);
    const arp = withZeroHeader(gratuitousArp(shootMac, '192.168.123.16'));
    arp[0] = 2; // DATA_VALID
    expect(checkFrameHeader(arp)).toBe(true);
    expect(arp[0]).toBe(0);
    const arpCsum = withZeroHeader(gratuitousArp(shootMac, '192.168.123.16'));
    arpCsum[0] = 1; // NEEDS_CSUM on ARP
    expect(checkFrameHeader(arpCsum)).toBe(false);
    const csumStart = Buffer.from(entry);
    csumStart.writeUInt16LE(40, 6); // not counted from the Ethernet header
    expect(checkFrameHeader(csumStart)).toBe(false);
    const tiny = Buffer.from(entry);
    tiny.writeUInt16LE(8, 4); // gso_size below the smallest MSS
    expect(checkFrameHeader(tiny)).toBe(false);
    expect(checkFrameHeader(withZeroHeader(segs[0]!))).toBe(true);
  });

  it('packs for a "gso" link (zero headers for plain frames) and for a plain one (super-frames cut)', () => {
    const { entry, segs } = superFrame();
    const arp = gratuitousArp(shootMac, '192.168.123.16');
    const gso = unpackBatch(packForGso([arp, segs[0]!], 0), true);
    expect(gso.map((e) => e.subarray(0, VNET_HDR_BYTES))).toEqual([Buffer.alloc(VNET_HDR_BYTES), Buffer.alloc(VNET_HDR_BYTES)]);
    expect(gso.map((e) => e.subarray(VNET_HDR_BYTES))).toEqual([arp, segs[0]]);
    const stats = { split: 0 };
    expect(unpackBatch(packPlain([withZeroHeader(arp), entry], VNET_HDR_BYTES, stats))).toEqual([arp, ...segs]);
    expect(stats.split).toBe(1);
    expect(unpackBatch(packPlain([arp], 0))).toEqual([arp]);
  });

  it('the bond picks links by the MAC behind the header and announces itself plain', () => {
    const sent: Array<[string, number, number]> = [];
    const bond = new Bond({ links: ['s0', 's1'], mac: shootMac, addresses: [SHOOT], send: (id, fs, hdr) => sent.push([id, fs.length, hdr]), deliver: () => {} });
    bond.setLinkState('s0', true);
    bond.setLinkState('s1', true);
    bond.setAnnouncedMacs('s0', []);
    bond.setAnnouncedMacs('s1', [formatMac(apiMac)]);
    expect(sent).toEqual([['s0', 1, 0]]); // the NA after the first link came up
    const { entry } = superFrame();
    bond.sendFromDevice([entry], VNET_HDR_BYTES);
    // the api MAC is on s1 only: a detour past the active s0, read at offset 10
    expect(sent.at(-1)).toEqual(['s1', 1, VNET_HDR_BYTES]);
  });

  it('the switch forwards by the MAC behind the header, and the shoot port guard refuses a header that lies', () => {
    const out: Array<[string, number, number]> = [];
    const sw = new L2Switch({ send: (p, fs, hdr) => out.push([p, fs.length, hdr]) });
    sw.addPort('api', { allowedMacs: [formatMac(apiMac)] });
    sw.addPort('shoot', {
      allowedMacs: [formatMac(shootMac)],
      guard: createPortGuard({ mac: shootMac, addresses: [SHOOT], forwardedSources: [Cidr.parse('100.96.0.0/11')], peers: [Cidr.parse('fd8f:6d53:b97a:1::/96')] }),
    });
    const { entry } = superFrame();
    sw.receive('shoot', [Buffer.from(entry)], VNET_HDR_BYTES);
    expect(out).toEqual([['api', 1, VNET_HDR_BYTES]]);
    const lie = Buffer.from(entry);
    lie[1] = 1; // TCPV4 on an IPv6 frame
    sw.receive('shoot', [lie], VNET_HDR_BYTES);
    expect(sw.stats.dropped.gso_header).toBe(1);
    expect(out).toHaveLength(1);
  });
});
