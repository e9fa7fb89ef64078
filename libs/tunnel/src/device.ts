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
 */
import { ProtoMalformedError } from './errors.js';

export type DeviceMode = 'tun' | 'tap';

export interface PacketDevice {
  /** Interface name as the kernel knows it (e.g. `tun0`). */
  readonly name: string;
  readonly mode: DeviceMode;
  /**
   * Starts delivering packets read from the device. `onBatch` receives a packed batch that JS owns
   * from then on (the device never reuses it). At most `maxBatchPackets` packets per call, so timers
   * and keepalives are not starved.
   */
  start(onBatch: (batch: Buffer) => void): void;
  /** Writes every packet of a packed batch; returns how many the kernel accepted. Synchronous. */
  writeBatch(batch: Buffer): number;
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

/** Splits a packed batch into views (no copies). Throws RVPN_ERR_PROTO_MALFORMED on a truncated entry. */
export function unpackBatch(batch: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < batch.length) {
    if (off + 2 > batch.length) throw new ProtoMalformedError('truncated packed batch (length prefix)');
    const len = batch.readUInt16BE(off);
    if (off + 2 + len > batch.length) throw new ProtoMalformedError('truncated packed batch (packet)');
    out.push(batch.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return out;
}
