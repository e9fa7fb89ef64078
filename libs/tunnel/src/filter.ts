/**
 * Anti-spoofing on packed batches, in place and allocation-free per packet: a packet that fails a
 * check is cut out of the batch. The shoot side runs in a customer's cluster and is untrusted: at
 * the seed, packets from the tunnel must come from a shoot or tunnel address, go to one of the seed
 * side's own addresses, and ICMP errors must quote a packet that really went into the tunnel.
 *
 * Checks, in order (a failed one names the reason):
 * - `source`: the source address is in `allowSource`.
 * - `destination`: the destination address is in `allowDestination` (when given).
 * - `ext_header`: IPv6 extension headers are walked (hop-by-hop, destination options, fragment,
 *   AH) to find the upper-layer protocol; a routing header (no use through a tunnel; type 0 was a
 *   traffic amplifier), a hop-by-hop header with options other than padding and router alert (the
 *   kernel answers a jumbo or unknown option with an ICMPv6 error before any firewall rule runs),
 *   more than MAX_EXT_HEADERS headers, or a chain that does not fit the packet (RFC 7112: a first
 *   fragment must hold the whole chain) is dropped.
 * - `icmp_error`: with `icmpErrors`, an ICMP/ICMPv6 error (destination unreachable, packet too big,
 *   time exceeded, parameter problem) must quote a packet from `quotedSource` to `quotedDestination`,
 *   i.e. one this side sent through the tunnel. Without it a peer could forge a "fragmentation
 *   needed" about the seed's own flows elsewhere (the kernel accepts it as RELATED to any conntrack
 *   entry) and shrink their path MTU. A fragmented ICMP error, redirects and router advertisements
 *   are dropped outright (legitimate errors are never fragmented; redirects and RAs have no business
 *   coming out of a tunnel).
 *
 * - `gso_header` (GSO layout only, a session with the "gso" feature): the virtio_net_hdr in front of
 *   the packet must describe it (checkVnetHeader): the kernel trusts it to segment the packet and to
 *   complete its checksum, so a header from the shoot is checked before the seed kernel sees it. Its
 *   DATA_VALID flag ("checksum verified") is cleared on the packets that pass.
 *
 * Fragments: addresses are in every fragment's header, so source and destination are checked on all
 * of them. Upper-layer checks need the first fragment, which carries the ICMP header; a non-first
 * fragment passes these checks because the kernel cannot reassemble it without its first fragment —
 * and reassembly happens before the firewall (nf_defrag runs ahead of conntrack), so the nftables
 * rules see whole packets. Overlapping fragments are dropped by the kernel.
 */
import type { CidrSet } from '@rvpn/config';
import { VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HDR_BYTES } from './device.js';

export interface FilterRules {
  allowSource: CidrSet;
  allowDestination?: CidrSet;
  /** ICMP errors must quote a packet from `quotedSource` to `quotedDestination`. */
  icmpErrors?: { quotedSource: CidrSet; quotedDestination: CidrSet };
}

export type FilterDropReason = 'source' | 'destination' | 'ext_header' | 'icmp_error' | 'gso_header';

export interface FilterResult {
  /** The batch with rejected packets removed (a view of the input buffer). */
  batch: Buffer;
  passed: number;
  /** Packets dropped by a check (all reasons). */
  dropped: number;
  malformed: number;
  reasons: Record<FilterDropReason, number>;
}

export const MAX_EXT_HEADERS = 8;

const OK = 0;
const SOURCE = 1;
const DESTINATION = 2;
const EXT_HEADER = 3;
const ICMP_ERROR = 4;
const MALFORMED = 5;
const GSO_HEADER = 6;
const REASONS: Array<FilterDropReason | undefined> = [undefined, 'source', 'destination', 'ext_header', 'icmp_error', undefined, 'gso_header'];

/** Smallest segment size a super-packet may ask for (the kernel's TCP_MIN_MSS): a smaller one would
 * make the receiving kernel cut 64 KiB into thousands of packets. */
export const MIN_GSO_SIZE = 88;

/**
 * Checks the virtio_net_hdr at `b[h .. h+10)` against the IP packet at `b[ip .. ip+len)`:
 * - flags: only NEEDS_CSUM and DATA_VALID;
 * - NEEDS_CSUM: csum_start is the start of the TCP or UDP header of an unfragmented packet and
 *   csum_offset points at its checksum field (16 or 6);
 * - gso_type: none (and no gso_size), or TCPV4 for an IPv4 and TCPV6 for an IPv6 TCP packet
 *   (ECN bit allowed), with NEEDS_CSUM, a gso_size of at least MIN_GSO_SIZE, the IP length field
 *   equal to the packet's, and headers that fit; UDP and anything else is refused.
 * `l2`: the bytes in front of the IP packet that csum_start counts too (14 for an Ethernet frame of a
 * TAP, 0 for a TUN's IP packet). Returns true when the header may be handed to the kernel.
 */
export function checkVnetHeader(b: Buffer, h: number, ip: number, len: number, l2 = 0): boolean {
  const flags = b[h]!;
  const type = b[h + 1]!;
  const gsoSize = b[h + 4]! | (b[h + 5]! << 8);
  const csumStart = b[h + 6]! | (b[h + 7]! << 8);
  const csumOffset = b[h + 8]! | (b[h + 9]! << 8);
  if ((flags & ~(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) !== 0) return false;
  const gso = type & ~VNET_GSO_ECN;
  if (gso === VNET_GSO_NONE) {
    if (type !== VNET_GSO_NONE || gsoSize !== 0) return false;
    if ((flags & VNET_F_NEEDS_CSUM) === 0) return true;
  } else if ((gso !== VNET_GSO_TCPV4 && gso !== VNET_GSO_TCPV6) || (flags & VNET_F_NEEDS_CSUM) === 0 || gsoSize < MIN_GSO_SIZE) {
    return false;
  }
  // where the transport header starts, for an unfragmented packet
  const version = len > 0 ? b[ip]! >> 4 : 0;
  let l4: number;
  let proto: number;
  if (version === 4 && len >= 20) {
    const ihl = (b[ip]! & 0x0f) * 4;
    if (ihl < 20 || (((b[ip + 6]! << 8) | b[ip + 7]!) & 0x3fff) !== 0) return false;
    if (gso !== VNET_GSO_NONE && (gso !== VNET_GSO_TCPV4 || ((b[ip + 2]! << 8) | b[ip + 3]!) !== len)) return false;
    l4 = ihl;
    proto = b[ip + 9]!;
  } else if (version === 6 && len >= 40) {
    const u = ipv6UpperLayer(b, ip, len);
    if (!u || u.fragmented) return false;
    if (gso !== VNET_GSO_NONE && (gso !== VNET_GSO_TCPV6 || ((b[ip + 4]! << 8) | b[ip + 5]!) + 40 !== len)) return false;
    l4 = u.offset - ip;
    proto = u.protocol;
  } else {
    return false;
  }
  const field = proto === 6 ? 16 : proto === 17 && gso === VNET_GSO_NONE ? 6 : -1;
  if (field < 0 || csumStart !== l2 + l4 || csumOffset !== field || l4 + field + 2 > len) return false;
  // a super-packet: the whole TCP header fits, and there is payload to cut
  if (gso !== VNET_GSO_NONE) {
    const tcpLen = (b[ip + l4 + 12]! >> 4) * 4;
    if (tcpLen < 20 || l4 + tcpLen >= len) return false;
  }
  return true;
}

/** ICMPv4 types that are errors (they quote a packet); 5 is redirect. */
const isIcmp4Error = (t: number) => t === 3 || t === 4 || t === 11 || t === 12;

function checkV4(b: Buffer, s: number, len: number, rules: FilterRules): number {
  const ihl = (b[s]! & 0x0f) * 4;
  if (ihl < 20 || ihl > len) return MALFORMED;
  if (!rules.allowSource.matchV4(b, s + 12)) return SOURCE;
  if (rules.allowDestination && !rules.allowDestination.matchV4(b, s + 16)) return DESTINATION;
  if (b[s + 9] !== 1 || !rules.icmpErrors) return OK;
  const frag = (b[s + 6]! << 8) | b[s + 7]!;
  if ((frag & 0x1fff) !== 0) return OK; // non-first fragment: useless without the first one
  const icmp = s + ihl;
  if (icmp + 8 > s + len) return ICMP_ERROR; // first fragment without a whole ICMP header
  const type = b[icmp]!;
  if (type === 5) return ICMP_ERROR; // redirect
  if (!isIcmp4Error(type)) return OK;
  if (frag & 0x2000) return ICMP_ERROR; // a fragmented error
  const q = icmp + 8;
  if (q + 20 > s + len || b[q]! >> 4 !== 4) return ICMP_ERROR;
  const { quotedSource, quotedDestination } = rules.icmpErrors;
  return quotedSource.matchV4(b, q + 12) && quotedDestination.matchV4(b, q + 16) ? OK : ICMP_ERROR;
}

/**
 * A hop-by-hop header holds only padding and router alert. The kernel parses hop-by-hop options
 * before netfilter sees the packet, and answers a jumbo option in a normal packet or an unknown
 * option whose type asks for it with an ICMPv6 parameter problem: a forged packet would make the
 * seed send errors into the tunnel that no firewall rule on the input side can stop.
 */
function plainHopByHop(b: Buffer, off: number, end: number): boolean {
  const stop = off + (b[off + 1]! + 1) * 8;
  if (stop > end) return false;
  for (let o = off + 2; o < stop; ) {
    const t = b[o]!;
    if (t === 0) { o += 1; continue; } // Pad1
    if (o + 2 > stop) return false;
    const l = b[o + 1]!;
    if (t === 5 ? l !== 2 : t !== 1) return false; // router alert (2 bytes) or PadN
    o += 2 + l;
    if (o > stop) return false;
  }
  return true;
}

function checkV6(b: Buffer, s: number, len: number, rules: FilterRules): number {
  if (!rules.allowSource.matchV6(b, s + 8)) return SOURCE;
  if (rules.allowDestination && !rules.allowDestination.matchV6(b, s + 24)) return DESTINATION;
  const end = s + len;
  let nh = b[s + 6]!;
  let off = s + 40;
  let fragmented = false;
  for (let i = 0; ; i++) {
    if (nh === 0 || nh === 60 || nh === 51 || nh === 44) {
      if (i >= MAX_EXT_HEADERS || off + 8 > end) return EXT_HEADER;
      if (nh === 0 && !plainHopByHop(b, off, end)) return EXT_HEADER;
      if (nh === 44) {
        if ((((b[off + 2]! << 8) | b[off + 3]!) & 0xfff8) !== 0) return OK; // non-first fragment
        fragmented = true;
        nh = b[off]!;
        off += 8;
      } else {
        const size = nh === 51 ? (b[off + 1]! + 2) * 4 : (b[off + 1]! + 1) * 8;
        nh = b[off]!;
        off += size;
      }
      continue;
    }
    if (nh === 43) return EXT_HEADER; // routing header
    break; // an upper-layer protocol, ESP (50) or no next header (59)
  }
  if (off > end) return EXT_HEADER;
  if (nh !== 58 || !rules.icmpErrors) return OK;
  if (off + 8 > end) return ICMP_ERROR;
  const type = b[off]!;
  if (type === 134 || type === 137) return ICMP_ERROR; // router advertisement, redirect
  if (type >= 128) return OK; // informational (echo, neighbour discovery)
  if (fragmented) return ICMP_ERROR;
  const q = off + 8;
  if (q + 40 > end || b[q]! >> 4 !== 6) return ICMP_ERROR;
  const { quotedSource, quotedDestination } = rules.icmpErrors;
  return quotedSource.matchV6(b, q + 8) && quotedDestination.matchV6(b, q + 24) ? OK : ICMP_ERROR;
}

/**
 * The upper-layer protocol of the IPv6 packet at `b[start .. start+len)` and where its header
 * starts, behind hop-by-hop, destination options, fragment and AH headers; undefined for a non-first
 * fragment, a routing header or a chain that is too long or does not fit.
 */
export function ipv6UpperLayer(b: Buffer, start: number, len: number): { protocol: number; offset: number; fragmented: boolean } | undefined {
  if (len < 40) return undefined;
  const end = start + len;
  let nh = b[start + 6]!;
  let off = start + 40;
  let fragmented = false;
  for (let i = 0; nh === 0 || nh === 60 || nh === 51 || nh === 44 || nh === 43; i++) {
    if (nh === 43 || i >= MAX_EXT_HEADERS || off + 8 > end) return undefined;
    if (nh === 44) {
      if ((((b[off + 2]! << 8) | b[off + 3]!) & 0xfff8) !== 0) return undefined;
      fragmented = true;
      nh = b[off]!;
      off += 8;
    } else {
      const size = nh === 51 ? (b[off + 1]! + 2) * 4 : (b[off + 1]! + 1) * 8;
      nh = b[off]!;
      off += size;
    }
  }
  return off > end ? undefined : { protocol: nh, offset: off, fragmented };
}

/** Checks one IP packet at `batch[start .. start+len)`; undefined when it passes, else the reason. */
export function checkPacket(batch: Buffer, start: number, len: number, rules: FilterRules): FilterDropReason | 'malformed' | undefined {
  const r = verdict(batch, start, len, rules);
  return r === OK ? undefined : r === MALFORMED ? 'malformed' : REASONS[r];
}

function verdict(b: Buffer, start: number, len: number, rules: FilterRules): number {
  const version = len > 0 ? b[start]! >> 4 : 0;
  if (version === 4 && len >= 20) return checkV4(b, start, len, rules);
  if (version === 6 && len >= 40) return checkV6(b, start, len, rules);
  return MALFORMED;
}

/**
 * Filters a packed batch in place; `gso`: the batch is in the GSO layout (device.ts) and each
 * entry's virtio_net_hdr is checked too (checkVnetHeader).
 */
export function filterBatch(batch: Buffer, rules: FilterRules, gso = false): FilterResult {
  let read = 0;
  let write = 0;
  let passed = 0;
  let malformed = 0;
  const hdr = gso ? VNET_HDR_BYTES : 0;
  const reasons: Record<FilterDropReason, number> = { source: 0, destination: 0, ext_header: 0, icmp_error: 0, gso_header: 0 };
  while (read + 2 <= batch.length) {
    const len = (batch[read]! << 8) | batch[read + 1]!;
    const start = read + 2 + hdr;
    const end = start + len;
    if (end > batch.length) {
      malformed++;
      break;
    }
    let v = verdict(batch, start, len, rules);
    if (v === OK && gso) {
      if (!checkVnetHeader(batch, read + 2, start, len)) v = GSO_HEADER;
      // "checksum already verified" is not the peer's to say: the receiving kernel checks itself
      else batch[read + 2] = batch[read + 2]! & ~VNET_F_DATA_VALID;
    }
    if (v === OK) {
      if (write !== read) batch.copy(batch, write, read, end);
      write += end - read;
      passed++;
    } else if (v === MALFORMED) malformed++;
    else reasons[REASONS[v]!]++;
    read = end;
  }
  const dropped = reasons.source + reasons.destination + reasons.ext_header + reasons.icmp_error + reasons.gso_header;
  return { batch: batch.subarray(0, write), passed, dropped, malformed, reasons };
}
