/**
 * Ethernet helpers for the bond and the switch: MAC addresses, frame fields, and the frames a bond
 * sends after a switch so that switches relearn it at once (gratuitous ARP, unsolicited neighbour
 * advertisement).
 *
 * Frame layout (no FCS, as TAP devices deliver them): dst MAC (6) | src MAC (6) | EtherType (2) | payload.
 */
import { createHash } from 'node:crypto';
import { parseIp } from '@rvpn/config';

export const ETH_HEADER = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const BROADCAST = Buffer.from('ffffffffffff', 'hex');

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/** `aa:bb:cc:dd:ee:ff` */
export function formatMac(mac: Uint8Array): string {
  return macAt(mac, 0);
}

/**
 * The MAC at `off` in a frame as `aa:bb:cc:dd:ee:ff`, without a view or an array: the switch and the
 * bond key every frame by it (an Array.from/join per frame was a fifth of an HA seed server's JS time
 * under one iperf3 stream).
 */
export function macAt(b: Uint8Array, off: number): string {
  return `${HEX[b[off]!]}:${HEX[b[off + 1]!]}:${HEX[b[off + 2]!]}:${HEX[b[off + 3]!]}:${HEX[b[off + 4]!]}:${HEX[b[off + 5]!]}`;
}

/** Whether the 6 bytes at `aOff` in `a` equal those at `bOff` in `b`. */
export function sameMac(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 6; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

export function parseMac(text: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text)) throw new RangeError(`not a MAC address: ${JSON.stringify(text)}`);
  return Buffer.from(text.replace(/:/g, ''), 'hex');
}

/**
 * A stable, locally administered unicast MAC derived from a bond address, so an endpoint keeps its
 * MAC across pod restarts and peers' neighbour caches stay valid.
 */
export function macFromAddress(address: string): Buffer {
  const h = createHash('sha256').update(`rvpn-bond:${address}`).digest();
  const mac = Buffer.from(h.subarray(0, 6));
  mac[0] = (mac[0]! & 0xfc) | 0x02; // unicast, locally administered
  return mac;
}

/** Destination MAC as a string key (no copy of the frame). */
export const dstKey = (frame: Uint8Array) => macAt(frame, 0);
export const srcKey = (frame: Uint8Array) => macAt(frame, 6);
/** Broadcast and multicast destinations have the group bit set. */
export const isGroup = (frame: Uint8Array) => (frame[0]! & 1) === 1;
export const isGroupMac = (mac: string) => (parseInt(mac.slice(0, 2), 16) & 1) === 1;
export const etherType = (frame: Uint8Array) => (frame[12]! << 8) | frame[13]!;

function ipBytes(address: string, family: 4 | 6): Buffer {
  const ip = parseIp(address);
  if (!ip || ip.family !== family) throw new RangeError(`${address} is not an IPv${family} address`);
  const n = family === 4 ? 4 : 16;
  const out = Buffer.alloc(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** A gratuitous ARP reply announcing `ipv4` at `mac`, broadcast. */
export function gratuitousArp(mac: Uint8Array, ipv4: string): Buffer {
  const ip = ipBytes(ipv4, 4);
  const f = Buffer.alloc(ETH_HEADER + 28);
  BROADCAST.copy(f, 0);
  f.set(mac.subarray(0, 6), 6);
  f.writeUInt16BE(ETHERTYPE_ARP, 12);
  const a = ETH_HEADER;
  f.writeUInt16BE(1, a); // hardware: Ethernet
  f.writeUInt16BE(ETHERTYPE_IPV4, a + 2);
  f[a + 4] = 6;
  f[a + 5] = 4;
  f.writeUInt16BE(2, a + 6); // reply
  f.set(mac.subarray(0, 6), a + 8);
  ip.copy(f, a + 14);
  BROADCAST.copy(f, a + 18);
  ip.copy(f, a + 24);
  return f;
}

/** The one's-complement sum used by ICMPv6 (over the pseudo-header and the message). */
function checksum(parts: Uint8Array[]): number {
  let sum = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i += 2) sum += (p[i]! << 8) | (i + 1 < p.length ? p[i + 1]! : 0);
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

/**
 * An unsolicited neighbour advertisement (RFC 4861 7.2.6) for `ipv6` at `mac`, to all nodes
 * (ff02::1, 33:33:00:00:00:01), with the Override flag and a target link-layer address option.
 */
export function unsolicitedNa(mac: Uint8Array, ipv6: string): Buffer {
  const target = ipBytes(ipv6, 6);
  const dstIp = ipBytes('ff02::1', 6);
  const icmp = Buffer.alloc(32);
  icmp[0] = 136; // neighbour advertisement
  icmp.writeUInt32BE(0x20000000, 4); // Override
  target.copy(icmp, 8);
  icmp[24] = 2; // option: target link-layer address
  icmp[25] = 1; // length in units of 8 bytes
  icmp.set(mac.subarray(0, 6), 26);
  const pseudo = Buffer.alloc(40);
  target.copy(pseudo, 0);
  dstIp.copy(pseudo, 16);
  pseudo.writeUInt32BE(icmp.length, 32);
  pseudo[39] = 58;
  icmp.writeUInt16BE(checksum([pseudo, icmp]), 2);
  const f = Buffer.alloc(ETH_HEADER + 40 + icmp.length);
  Buffer.from('333300000001', 'hex').copy(f, 0);
  f.set(mac.subarray(0, 6), 6);
  f.writeUInt16BE(ETHERTYPE_IPV6, 12);
  const h = ETH_HEADER;
  f.writeUInt32BE(0x60000000, h);
  f.writeUInt16BE(icmp.length, h + 4);
  f[h + 6] = 58; // ICMPv6
  f[h + 7] = 255; // hop limit: ND requires 255
  target.copy(f, h + 8);
  dstIp.copy(f, h + 24);
  icmp.copy(f, h + 40);
  return f;
}

/** The announcement frames for a bond's addresses (GARP for IPv4, unsolicited NA for IPv6). */
export function announcements(mac: Uint8Array, addresses: readonly string[]): Buffer[] {
  return addresses.map((a) => (a.includes(':') ? unsolicitedNa(mac, a) : gratuitousArp(mac, a)));
}
