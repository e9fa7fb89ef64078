/**
 * The real TUN/TAP device, backed by the native addon in ../native (see native/src/tun.cc for the
 * batching design). Implements PacketDevice.
 */
import type { DeviceMode, PacketDevice } from './device.js';
import { loadNativeAddon } from './addon.js';
import { TunClosedError, TunOpenError, TunCarrierError, TunOffloadError } from './errors.js';

interface NativeTun {
  readonly name: string;
  readonly fd: number;
  start(onBatch: (batch: Buffer, gso: boolean) => void): void;
  writeBatch(batch: Buffer, gso?: boolean): number;
  setOffload(on: boolean): void;
  pause(): void;
  resume(): void;
  setCarrier(up: boolean): void;
  close(): void;
  stats(): TunStats;
}

export interface TunStats {
  packetsRead: number;
  bytesRead: number;
  readBatches: number;
  readErrors: number;
  packetsWritten: number;
  bytesWritten: number;
  writeDrops: number;
  malformed: number;
  /** TCP super-packets read (offload on). */
  gsoPacketsRead: number;
  /** Super-packets still queued from before offload was switched off, dropped. */
  offloadDrops: number;
  offload: boolean;
}

function loadAddon() {
  return loadNativeAddon() as { TunDevice: new (name: string, tap: boolean, maxBatch: number, vnetHdr: boolean) => NativeTun };
}

export interface OpenTunOptions {
  /** Interface name (≤ 15 chars); empty lets the kernel pick (tunN/tapN). */
  name?: string;
  mode?: DeviceMode;
  /** Most packets per JS call. Default 64. */
  maxBatchPackets?: number;
  /**
   * Open with a virtio-net header (IFF_VNET_HDR). Checksum offload and TSO can then be switched on
   * (setOffload: a TUN per session, a TAP for the HA bond, whose links carry the super-frames or split
   * them for a peer without "gso"), and writes take the GSO layout (super-packets from the peer, or
   * TCP runs coalesced in JS, gro.ts). Default false.
   */
  offload?: boolean;
}

export interface TunDevice extends PacketDevice {
  stats(): TunStats;
  readonly offloadCapable: boolean;
  /** Checksum offload and TSO on or off (throws TypeError on a device not opened with `offload`). */
  setOffload(on: boolean): void;
}

function rethrow(err: unknown): never {
  const code = (err as { code?: string }).code;
  const msg = (err as Error).message;
  if (code === 'RVPN_ERR_TUN_OPEN') {
    throw new TunOpenError(`${msg} (needs root or CAP_NET_ADMIN and /dev/net/tun)`, { cause: err, details: { errno: (err as { errno?: number }).errno } });
  }
  if (code === 'RVPN_ERR_TUN_CLOSED') throw new TunClosedError(msg, { cause: err });
  if (code === 'RVPN_ERR_TUN_CARRIER') throw new TunCarrierError(msg, { cause: err });
  if (code === 'RVPN_ERR_TUN_OFFLOAD') throw new TunOffloadError(msg, { cause: err });
  throw err;
}

export function openTunDevice(opts: OpenTunOptions = {}): TunDevice {
  const mode = opts.mode ?? 'tun';
  const { TunDevice: Native } = loadAddon();
  let native: NativeTun;
  try {
    native = new Native(opts.name ?? '', mode === 'tap', opts.maxBatchPackets ?? 64, opts.offload ?? false);
  } catch (err) {
    rethrow(err);
  }
  let closed = false;
  return {
    name: native.name,
    mode,
    get closed() {
      return closed;
    },
    start(onBatch) {
      try { native.start(onBatch); } catch (err) { rethrow(err); }
    },
    writeBatch(batch, gso) {
      try { return native.writeBatch(batch, gso ?? false); } catch (err) { rethrow(err); }
    },
    offloadCapable: opts.offload ?? false,
    gsoWrites: opts.offload ?? false,
    setOffload(on) {
      try { native.setOffload(on); } catch (err) { rethrow(err); }
    },
    pause() {
      native.pause();
    },
    resume() {
      native.resume();
    },
    setCarrier(up) {
      try { native.setCarrier(up); } catch (err) { rethrow(err); }
    },
    close() {
      closed = true;
      native.close();
    },
    stats() {
      return native.stats();
    },
  };
}
