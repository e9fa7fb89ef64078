/**
 * Payload of the tunnel's MAC_ANNOUNCE extension frame (type 0x80, see libs/tunnel protocol.ts):
 *   count u16 | count × MAC (6 bytes)
 * Sent by an HA seed server to every port when the set of MACs attached to it changes (and again
 * to a port that missed it while not reading), so bonds can choose a link per destination. Receivers that do not know the frame
 * type ignore it (types 0x80-0xff are optional extensions).
 */
import { ProtoMalformedError } from '@rvpn/tunnel';
import { formatMac, parseMac } from './ethernet.js';

/** MACs one announcement carries at most; a switch never holds more (SwitchOptions.maxMacs). */
export const MAX_ANNOUNCED_MACS = 4096;

/** Encodes an announcement; throws a RangeError beyond MAX_ANNOUNCED_MACS or on a malformed MAC (callers' bugs). */
export function encodeMacAnnouncement(macs: readonly string[]): Buffer {
  if (macs.length > MAX_ANNOUNCED_MACS) throw new RangeError(`at most ${MAX_ANNOUNCED_MACS} MACs per announcement`);
  const b = Buffer.alloc(2 + 6 * macs.length);
  b.writeUInt16BE(macs.length, 0);
  macs.forEach((m, i) => parseMac(m).copy(b, 2 + 6 * i));
  return b;
}

/** Decodes an announcement from a peer; anything malformed throws RVPN_ERR_PROTO_MALFORMED, nothing else. */
export function decodeMacAnnouncement(payload: Buffer): string[] {
  if (payload.length < 2) throw new ProtoMalformedError('MAC announcement too short');
  const n = payload.readUInt16BE(0);
  if (n > MAX_ANNOUNCED_MACS) throw new ProtoMalformedError(`MAC announcement of ${n} MACs exceeds ${MAX_ANNOUNCED_MACS}`);
  if (payload.length !== 2 + 6 * n) throw new ProtoMalformedError(`MAC announcement of ${payload.length} bytes does not hold ${n} MACs`);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(formatMac(payload.subarray(2 + 6 * i, 8 + 6 * i)));
  return out;
}
