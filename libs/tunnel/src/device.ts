/**
 * The packet device contract shared by the real TUN/TAP device (native addon) and the in-memory
 * fake under `@rvpn/tunnel/testing`. Both pass the same compliance suite.
 *
 * Packets move in PACKED BATCHES, never one JS call per packet. A packed batch is a Buffer holding
 * zero or more entries back to back:
 *
 *   +--------+--------+------------------------+--------+-----
 *   | len (u16, big-endian) | packet bytes (len)  | len    | ...
 *   +--------+--------+------------------------+--------+-----
 *
 * The same layout is the payload of the tunnel's DATA_BATCH frame (see protocol.ts), so a batch
 * read from the device is sent on the wire without copying packets one by one, and a batch received
 * from the wire is written to the device in one call.
 *
 * GSO LAYOUT (a TUN device with offload on, and the DATA_GSO_BATCH frame): every entry also carries
 * the 10-byte virtio_net_hdr the kernel reads and writes with IFF_VNET_HDR, between the length and
 * the packet; the length counts the IP packet only (an IP header bounds it to 65535, a TCP
 * super-packet included):
 *
 *   | len (u16 BE) | virtio_net_hdr (10 bytes, little-endian fields) | IP packet (len) | ...
 */
import { ProtoMalformedError } from './errors.js';

export type DeviceMode = 'tun' | 'tap';

/** Bytes of the virtio_net_hdr in front of each packet of a GSO batch. */
export const VNET_HDR_BYTES = 10;
// Its fields (linux/virtio_net.h): flags u8, gso_type u8, then hdr_len, gso_size, csum_start and
// csum_offset as little-endian u16 (the devices are set to little-endian headers, TUNSETVNETLE).
/** flags: the checksum from csum_start on is left to the receiver (the field holds the pseudo-header's sum). */
export const VNET_F_NEEDS_CSUM = 1;
/** flags: the checksum was verified (never taken from a peer: cleared on what passes the checks). */
export const VNET_F_DATA_VALID = 2;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_TCPV6 = 4;
/** gso_type bit: the super-packet carries CWR (ECN). */
export const VNET_GSO_ECN = 0x80;
/** What each entry of a batch adds to its packet: the length, and the header in the GSO layout. */
export const entryOverhead = (gso: boolean): number => (gso ? 2 + VNET_HDR_BYTES : 2);

export interface PacketDevice {
  /** Interface name as the kernel knows it (e.g. `tun0`). */
  readonly name: string;
  readonly mode: DeviceMode;
  /**
   * Starts delivering packets read from the device. `onBatch` receives a packed batch that JS owns
   * from then on (the device never reuses it), `gso` true when it is in the GSO layout (offload on).
   * At most `maxBatchPackets` packets per call, so timers and keepalives are not starved.
   */
  start(onBatch: (batch: Buffer, gso: boolean) => void): void;
  /**
   * Writes every packet of a packed batch (in the GSO layout with `gso`, which needs an
   * offload-capable device); returns how many the kernel accepted. Synchronous.
   */
  writeBatch(batch: Buffer, gso?: boolean): number;
  /** True when the device was opened for offload (setOffload may switch it on). */
  readonly offloadCapable?: boolean;
  /** writeBatch takes batches in the GSO layout (opened with a virtio-net header; gro.ts fills them). */
  readonly gsoWrites?: boolean;
  /** Checksum offload and TSO on or off: reads then come in the GSO layout, or the plain one. */
  setOffload?(on: boolean): void;
  /** Stops reading (backpressure); packets then queue in, and are dropped by, the kernel. */
  pause(): void;
  resume(): void;
  /** Carrier on/off (TUNSETCARRIER). */
  setCarrier(up: boolean): void;
  /** Closes the fd; a non-persistent device disappears with it. Idempotent. */
  close(): void;
  readonly closed: boolean;
}

/** Appends packets into a packed batch. */
export function packBatch(packets: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const p of packets) {
    if (p.length > 0xffff) throw new RangeError(`packet of ${p.length} bytes exceeds 65535`);
    total += 2 + p.length;
  }
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (const p of packets) {
    out.writeUInt16BE(p.length, off);
    out.set(p, off + 2);
    off += 2 + p.length;
  }
  return out;
}

/**
 * Splits a packed batch into views (no copies); in the GSO layout each view starts with the
 * virtio_net_hdr. Throws RVPN_ERR_PROTO_MALFORMED on a truncated entry.
 */
export function unpackBatch(batch: Buffer, gso = false): Buffer[] {
  const out: Buffer[] = [];
  const hdr = gso ? VNET_HDR_BYTES : 0;
  let off = 0;
  while (off < batch.length) {
    if (off + 2 > batch.length) throw new ProtoMalformedError('truncated packed batch (length prefix)');
    const len = batch.readUInt16BE(off);
    if (off + 2 + hdr + len > batch.length) throw new ProtoMalformedError('truncated packed batch (packet)');
    out.push(batch.subarray(off + 2, off + 2 + hdr + len));
    off += 2 + hdr + len;
  }
  return out;
}

/** Packs (virtio_net_hdr + packet) entries into a GSO batch (the inverse of unpackBatch(b, true)). */
export function packGsoBatch(entries: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const e of entries) {
    if (e.length < VNET_HDR_BYTES || e.length - VNET_HDR_BYTES > 0xffff) throw new RangeError(`GSO entry of ${e.length} bytes`);
    total += 2 + e.length;
  }
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (const e of entries) {
    out.writeUInt16BE(e.length - VNET_HDR_BYTES, off);
    out.set(e, off + 2);
    off += 2 + e.length;
  }
  return out;
}

/** The number of entries of a packed batch (counting stops at a truncated one). */
export function countPackets(batch: Buffer, gso = false): number {
  const extra = entryOverhead(gso);
  let n = 0;
  let off = 0;
  while (off + 2 <= batch.length) {
    off += extra + batch.readUInt16BE(off);
    if (off > batch.length) break;
    n++;
  }
  return n;
}
