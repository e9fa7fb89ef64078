/**
 * Ingress checks of an untrusted switch port (a shoot client on an HA seed server): what a shoot pod
 * may put on the bond network, beyond the source MAC it is pinned to.
 *
 * - IP anti-spoofing: IPv4 and IPv6 packets must come from the port's own bond addresses, its
 *   link-local address (EUI-64 of its MAC; `::` for duplicate address detection) or the shoot's
 *   networks (replies forwarded from the shoot). Destinations are not restricted (the bond network
 *   is on-link for every endpoint).
 * - ICMP: errors must quote a packet an apiserver endpoint sent toward the shoot; redirects and router
 *   advertisements are dropped (they would change how the endpoints route: accept_ra=0 and
 *   accept_redirects=0 on the bonds are the second line).
 * - ARP and neighbour discovery inspection: the sender hardware address / link-layer address option
 *   must be the frame's source MAC, the sender / target address one of the port's own, router
 *   solicitations are dropped; so a port cannot fill the endpoints' neighbour tables with entries
 *   for addresses it does not own.
 * - Other EtherTypes (VLAN tags, anything not IPv4, IPv6 or ARP) are dropped.
 * - In the GSO layout (offload.ts), the virtio_net_hdr must describe its frame (checkFrameHeader):
 *   the kernel behind the bond trusts it to cut the frame and complete its checksum.
 */
import { Cidr, CidrSet, parseIp } from '@rvpn/config';
import { checkPacket, ipv6UpperLayer, type FilterRules } from '@rvpn/tunnel';
import { ETH_HEADER, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from './ethernet.js';
import { checkFrameHeader } from './offload.js';

export type GuardDropReason = 'ip_spoofed' | 'icmp' | 'arp_spoofed' | 'nd_spoofed' | 'ethertype' | 'malformed' | 'gso_header';

export interface PortGuardOptions {
  /** The port's pinned MAC (6 bytes). */
  mac: Uint8Array;
  /** The port's own bond addresses (IPv6, and IPv4 when IPv4 is carried). */
  addresses: readonly string[];
  /** Networks the port may forward replies from (the shoot's service, pod and node networks). */
  forwardedSources: readonly Cidr[];
  /** Where the packets an ICMP error quotes may have come from (the apiserver endpoints' bond networks). */
  peers: readonly Cidr[];
}

export interface PortGuard {
  /**
   * undefined when the frame may pass; else why it is dropped. `hdr`: a virtio_net_hdr in front of
   * the frame (VNET_HDR_BYTES, offload.ts), checked against it first (drop reason `gso_header`).
   */
  check(frame: Buffer, hdr?: number): GuardDropReason | undefined;
}

const host = (a: string) => Cidr.of(parseIp(a)!, a.includes(':') ? 128 : 32);

/** The EUI-64 link-local address the kernel derives from a MAC (addrgenmode eui64). */
export function linkLocalFromMac(mac: Uint8Array): string {
  const h = (a: number, b: number) => ((a << 8) | b).toString(16);
  return `fe80::${h(mac[0]! ^ 0x02, mac[1]!)}:${h(mac[2]!, 0xff)}:${h(0xfe, mac[3]!)}:${h(mac[4]!, mac[5]!)}`;
}

export function createPortGuard(opts: PortGuardOptions): PortGuard {
  const mac = Buffer.from(opts.mac.subarray(0, 6));
  const own = [...opts.addresses, linkLocalFromMac(mac)].map(host);
  const ownSet = new CidrSet(own);
  const ownV4 = opts.addresses.filter((a) => !a.includes(':')).map((a) => parseIp(a)!.value);
  const sources = new CidrSet([...own, host('::'), ...opts.forwardedSources]);
  const rules: FilterRules = { allowSource: sources, icmpErrors: { quotedSource: new CidrSet(opts.peers), quotedDestination: sources } };
  const sameMac = (b: Buffer, off: number) => off + 6 <= b.length && b.compare(mac, 0, 6, off, off + 6) === 0;

  const arp = (f: Buffer): GuardDropReason | undefined => {
    const a = ETH_HEADER;
    if (f.length < a + 28 || f.readUInt16BE(a) !== 1 || f.readUInt16BE(a + 2) !== ETHERTYPE_IPV4 || f[a + 4] !== 6 || f[a + 5] !== 4) return 'malformed';
    if (!sameMac(f, a + 8)) return 'arp_spoofed';
    const sender = f.readUInt32BE(a + 14);
    return sender === 0 || ownV4.includes(BigInt(sender)) ? undefined : 'arp_spoofed';
  };

  /** Neighbour discovery: link-layer address options must be the port's MAC, an NA's target its own. */
  const nd = (f: Buffer, icmp: number): GuardDropReason | undefined => {
    const type = f[icmp]!;
    if (type === 133) return 'nd_spoofed'; // router solicitation: no router here to ask
    if (type !== 135 && type !== 136) return undefined;
    if (icmp + 24 > f.length) return 'malformed';
    if (type === 136 && !ownSet.matchV6(f, icmp + 8)) return 'nd_spoofed';
    for (let o = icmp + 24; o + 2 <= f.length; ) {
      const len = f[o + 1]! * 8;
      if (len === 0 || o + len > f.length) return 'malformed';
      if ((f[o] === 1 || f[o] === 2) && !sameMac(f, o + 2)) return 'nd_spoofed';
      o += len;
    }
    return undefined;
  };

  return {
    check(entry, hdr = 0) {
      if (hdr > 0 && !checkFrameHeader(entry)) return 'gso_header';
      const f = hdr > 0 ? entry.subarray(hdr) : entry;
      if (f.length < ETH_HEADER) return 'malformed';
      const type = f.readUInt16BE(12);
      if (type === ETHERTYPE_ARP) return arp(f);
      if (type !== ETHERTYPE_IPV4 && type !== ETHERTYPE_IPV6) return 'ethertype';
      const len = f.length - ETH_HEADER;
      const r = checkPacket(f, ETH_HEADER, len, rules);
      if (r === 'malformed') return 'malformed';
      if (r === 'source') return 'ip_spoofed';
      if (r !== undefined) return 'icmp';
      if (type === ETHERTYPE_IPV6) {
        const u = ipv6UpperLayer(f, ETH_HEADER, len);
        if (u && u.protocol === 58 && u.offset + 8 <= f.length) return nd(f, u.offset);
      }
      return undefined;
    },
  };
}
