/**
 * Offload on the HA path (issue 11): Ethernet frames with a virtio_net_hdr through the bond and the
 * switch.
 *
 * An endpoint whose TAP has offload on (BOND_OFFLOAD) reads TCP super-frames of up to 64 KiB, each
 * after its 10-byte virtio_net_hdr, the way the plain path's TUN does. Every link (endpoint ↔ HA
 * seed server) whose two HELLOs offered "gso" carries them whole as DATA_GSO_BATCH; the switch
 * forwards them whole between such ports; the endpoint on the far side writes them whole into its
 * TAP. Where one side lacks the feature (an older minor version, or offload switched off) the frames
 * are cut in userspace (splitGso) for that link or port alone, and plain frames get a zero header to
 * join a GSO link. A header from a peer is checked (checkFrameHeader) before a kernel sees it: by
 * the switch's guard on every shoot port, and by each endpoint before its TAP write.
 *
 * The bond and the switch take `hdr`, the bytes in front of each frame: VNET_HDR_BYTES in the GSO
 * layout, 0 for plain frames.
 */
import { checkVnetHeader, packBatch, packGsoBatch, splitGso, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_HDR_BYTES, type SessionSender } from '@rvpn/tunnel';
import { ETH_HEADER, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from './ethernet.js';


/**
 * Whether the virtio_net_hdr in front of an Ethernet frame (`entry`: header, then frame) may be
 * handed to a kernel: an IPv4 or IPv6 frame as checkVnetHeader (filter.ts) sees it, with csum_start
 * counted from the frame; anything else (ARP) with no offload asked. Clears DATA_VALID ("checksum
 * verified" is not the peer's to say) on a header that passes.
 */
export function checkFrameHeader(entry: Buffer): boolean {
  if (entry.length < VNET_HDR_BYTES + ETH_HEADER) return false;
  const f = VNET_HDR_BYTES;
  const type = entry.readUInt16BE(f + 12);
  let ok: boolean;
  if (type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6) {
    ok = checkVnetHeader(entry, 0, f + ETH_HEADER, entry.length - f - ETH_HEADER, ETH_HEADER);
  } else {
    ok = (entry[0]! & ~VNET_F_DATA_VALID) === 0 && entry[1] === 0;
  }
  if (ok) entry[0] = entry[0]! & ~VNET_F_DATA_VALID;
  return ok;
}

/** Whether an entry asks for offload (GSO or a checksum to complete); a zero header does not. */
export const asksOffload = (entry: Buffer): boolean => (entry[0]! & VNET_F_NEEDS_CSUM) !== 0 || entry[1] !== 0;

/** Packs frames (`hdr` bytes in front of each: 0 or VNET_HDR_BYTES) in the GSO layout: plain ones get a zero header. */
export function packForGso(frames: readonly Buffer[], hdr: number): Buffer {
  if (hdr === VNET_HDR_BYTES) return packGsoBatch(frames);
  let total = 0;
  for (const f of frames) total += 2 + VNET_HDR_BYTES + f.length;
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (const f of frames) {
    if (f.length > 0xffff) throw new RangeError(`frame of ${f.length} bytes exceeds 65535`);
    out.writeUInt16BE(f.length, off);
    out.fill(0, off + 2, off + 2 + VNET_HDR_BYTES);
    out.set(f, off + 2 + VNET_HDR_BYTES);
    off += 2 + VNET_HDR_BYTES + f.length;
  }
  return out;
}

/**
 * Packs frames in the plain layout for a peer without "gso": entries with a header are cut or have
 * their checksum completed (splitGso); `stats.split` counts the super-frames cut.
 */
export function packPlain(frames: readonly Buffer[], hdr: number, stats?: { split: number }): Buffer {
  if (hdr === 0) return packBatch(frames);
  const plain: Buffer[] = [];
  for (const e of frames) {
    if (!asksOffload(e)) {
      plain.push(e.subarray(VNET_HDR_BYTES));
      continue;
    }
    const parts = splitGso(e, ETH_HEADER);
    if (stats && parts.length > 1) stats.split++;
    for (const p of parts) plain.push(p);
  }
  return packBatch(plain);
}

/**
 * Sends frames (`hdr` bytes in front of each) into one link's or port's sender: a sender with "gso"
 * takes every frame in the GSO layout, one without gets plain frames, super-frames cut (packPlain).
 */
export function sendFrames(sender: SessionSender, frames: readonly Buffer[], hdr: number, stats?: { split: number }): void {
  if (sender.gso) sender.send(packForGso(frames, hdr), true);
  else sender.send(packPlain(frames, hdr, stats));
}
