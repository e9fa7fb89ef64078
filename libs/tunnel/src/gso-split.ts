/**
 * Segmentation in userspace: what the kernel does with a super-packet when the device it leaves by
 * has no offload, done for a peer that cannot take the GSO layout (a HELLO without "gso": an older
 * minor version, or offload switched off). The HA bond needs it where a switch of offload per
 * session is not enough: an endpoint's TAP reads super-frames for every link at once, and the seed
 * server's switch forwards one endpoint's super-frames to every other port, old ones included.
 *
 * splitGso takes one entry of the GSO layout (a virtio_net_hdr, then the packet) and returns the
 * packets the peer gets instead:
 * - no offload in the header: the packet as it is (a view);
 * - NEEDS_CSUM without GSO: a copy with its TCP or UDP checksum completed (the field holds the
 *   pseudo-header's sum, as the kernel leaves it);
 * - TCPV4 / TCPV6 (ECN bit allowed): one segment per gso_size bytes of payload, each with its own
 *   copy of the headers: IPv4 total length, ID (one higher per segment, as TSO counts) and header
 *   checksum; IPv6 payload length; TCP sequence number, flags (CWR on the first segment only, FIN
 *   and PSH on the last only) and a full checksum;
 * - anything else (a header that does not describe the packet): nothing. Entries from an untrusted
 *   peer are validated (checkVnetHeader) before they get here; this is the last line.
 * The entry is never changed (a switch may send the same entry to several ports).
 */
import { VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HDR_BYTES } from './device.js';
import { fold, onesSum, pseudoSum, sum16 } from './gro.js';

const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/**
 * The plain packets for one GSO-layout entry (see above). `l2`: the bytes in front of the IP packet
 * (14 for an Ethernet frame, 0 for a TUN's IP packet).
 */
export function splitGso(entry: Buffer, l2: number): Buffer[] {
  if (entry.length <= VNET_HDR_BYTES) return [];
  const flags = entry[0]!;
  const type = entry[1]! & ~VNET_GSO_ECN;
  const gsoSize = entry.readUInt16LE(4);
  const csumStart = entry.readUInt16LE(6);
  const csumOffset = entry.readUInt16LE(8);
  const f = entry.subarray(VNET_HDR_BYTES);
  if (type === VNET_GSO_NONE) {
    if ((flags & VNET_F_NEEDS_CSUM) === 0) return [f];
    if (csumOffset !== 16 && csumOffset !== 6) return [];
    const at = csumStart + csumOffset;
    if (csumStart < l2 + 20 || at + 2 > f.length) return [];
    const out = Buffer.from(f);
    let c = 0xffff - onesSum(out, csumStart, out.length);
    if (c === 0 && csumOffset === 6) c = 0xffff; // UDP: a zero checksum means "none"
    out.writeUInt16BE(c, at);
    return [out];
  }
  if ((type !== VNET_GSO_TCPV4 && type !== VNET_GSO_TCPV6) || gsoSize === 0) return [];
  const v6 = type === VNET_GSO_TCPV6;
  const l3 = l2;
  const l4 = csumStart;
  if (f.length < l3 + (v6 ? 40 : 20) || f[l3]! >> 4 !== (v6 ? 6 : 4)) return [];
  if (v6 ? l4 < l3 + 40 : l4 !== l3 + (f[l3]! & 0x0f) * 4 || l4 < l3 + 20) return [];
  if (l4 + 20 > f.length) return [];
  const data = l4 + (f[l4 + 12]! >> 4) * 4;
  if (data < l4 + 20 || data >= f.length) return [];
  const payload = f.length - data;
  const seq0 = f.readUInt32BE(l4 + 4);
  const id0 = v6 ? 0 : f.readUInt16BE(l3 + 4);
  const tcpFlags = f[l4 + 13]!;
  const n = Math.ceil(payload / gsoSize);
  const out: Buffer[] = new Array<Buffer>(n);
  for (let i = 0; i < n; i++) {
    const from = data + i * gsoSize;
    const len = Math.min(gsoSize, f.length - from);
    const seg = Buffer.allocUnsafe(data + len);
    f.copy(seg, 0, 0, data);
    f.copy(seg, data, from, from + len);
    if (v6) seg.writeUInt16BE(data - l3 - 40 + len, l3 + 4);
    else {
      seg.writeUInt16BE(data - l3 + len, l3 + 2);
      seg.writeUInt16BE((id0 + i) & 0xffff, l3 + 4);
      seg.writeUInt16BE(0, l3 + 10);
      seg.writeUInt16BE(0xffff - fold(sum16(seg, l3, l4)), l3 + 10);
    }
    seg.writeUInt32BE((seq0 + i * gsoSize) >>> 0, l4 + 4);
    let fl = tcpFlags;
    if (i > 0) fl &= ~TCP_CWR;
    if (i < n - 1) fl &= ~(TCP_FIN | TCP_PSH);
    seg[l4 + 13] = fl;
    seg.writeUInt16BE(0, l4 + 16);
    seg.writeUInt16BE(0xffff - fold(onesSum(seg, l4, seg.length) + pseudoSum(seg, { v6, l3 }, seg.length - l4)), l4 + 16);
    out[i] = seg;
  }
  return out;
}
