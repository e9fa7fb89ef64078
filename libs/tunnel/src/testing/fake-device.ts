/**
 * In-memory PacketDevices for tests of the layers above the device. They follow the same contract
 * as the real TUN (see device-compliance.ts): packed batches, asynchronous delivery, pause/resume,
 * a bounded receive queue that drops while paused and full, idempotent close.
 */
import type { DeviceMode, PacketDevice } from '../device.js';
import { unpackBatch, packBatch, packGsoBatch, VNET_HDR_BYTES } from '../device.js';
import { TunClosedError } from '../errors.js';

export interface FakeDevice extends PacketDevice {
  /** Queues packets as if the kernel had routed them into the device. */
  inject(packets: readonly Uint8Array[]): void;
  /** Every packet written to the device, in order. */
  readonly written: Buffer[];
  /** Packets dropped because the queue was full while paused. */
  readonly dropped: number;
  /** Called for every writeBatch (after `written` is updated). */
  onWrite?: (packets: Buffer[]) => void;
  /** With `offload`: the virtio_net_hdr of every packet written in a GSO batch (a zero one for plain batches). */
  readonly writtenHeaders: Buffer[];
  /** With `offload`: queues (virtio_net_hdr + packet) entries, as the kernel hands super-packets over. */
  injectGso(entries: readonly Uint8Array[]): void;
  /** GSO entries dropped because offload was off when they were read (the real device does the same). */
  readonly offloadDrops: number;
}

export interface FakeDeviceOptions {
  name?: string;
  mode?: DeviceMode;
  maxBatchPackets?: number;
  /** Packets the device queues while paused or not started, beyond which it drops. Default 1024. */
  queueLimit?: number;
  /** Behave like a device opened for offload: setOffload switches GSO batches on, writes take the GSO layout. Default false. */
  offload?: boolean;
}

const ZERO_HDR = Buffer.alloc(VNET_HDR_BYTES);

let counter = 0;

export function createFakeDevice(opts: FakeDeviceOptions = {}): FakeDevice {
  const maxBatch = opts.maxBatchPackets ?? 64;
  const queueLimit = opts.queueLimit ?? 1024;
  // entries: [header or undefined (a plain packet), packet]
  const queue: Array<[Buffer | undefined, Buffer]> = [];
  let onBatch: ((b: Buffer, gso: boolean) => void) | undefined;
  let offloadOn = false;
  let offloadDrops = 0;
  const writtenHeaders: Buffer[] = [];
  let paused = false;
  let closed = false;
  let scheduled = false;
  let dropped = 0;
  const written: Buffer[] = [];

  const pump = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      if (closed || paused || !onBatch || queue.length === 0) return;
      const batch = queue.splice(0, maxBatch);
      if (offloadOn) onBatch(packGsoBatch(batch.map(([h, p]) => Buffer.concat([h ?? ZERO_HDR, p]))), true);
      else {
        const plain = batch.filter(([h]) => h === undefined || (h[0] === 0 && h[1] === 0));
        offloadDrops += batch.length - plain.length;
        if (plain.length > 0) onBatch(packBatch(plain.map(([, p]) => p)), false);
      }
      if (queue.length > 0) pump();
    });
  };

  const dev: FakeDevice = {
    name: opts.name ?? `fake${counter++}`,
    mode: opts.mode ?? 'tun',
    get closed() {
      return closed;
    },
    get dropped() {
      return dropped;
    },
    written,
    writtenHeaders,
    get offloadDrops() {
      return offloadDrops;
    },
    // like the real device: one opened for offload switches it (a TUN per session, the HA bond's
    // TAP at start) and takes GSO-layout writes
    ...(opts.offload ? { gsoWrites: true } : {}),
    ...(opts.offload
      ? {
          offloadCapable: true,
          setOffload(on: boolean) {
            if (closed) throw new TunClosedError(`device ${dev.name} is closed`);
            offloadOn = on;
          },
        }
      : {}),
    start(cb) {
      if (closed) throw new TunClosedError(`device ${dev.name} is closed`);
      onBatch = cb;
      pump();
    },
    writeBatch(batch, gso) {
      if (closed) throw new TunClosedError(`device ${dev.name} is closed`);
      if (gso && !opts.offload) throw new TypeError('a GSO batch needs a device opened with offload');
      const entries = unpackBatch(batch, gso ?? false);
      const pkts = entries.map((e) => Buffer.from(gso ? e.subarray(VNET_HDR_BYTES) : e));
      if (opts.offload) writtenHeaders.push(...entries.map((e) => (gso ? Buffer.from(e.subarray(0, VNET_HDR_BYTES)) : ZERO_HDR)));
      written.push(...pkts);
      dev.onWrite?.(pkts);
      return pkts.length;
    },
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      pump();
    },
    setCarrier() {
      if (closed) throw new TunClosedError(`device ${dev.name} is closed`);
    },
    close() {
      closed = true;
      queue.length = 0;
      onBatch = undefined;
    },
    inject(packets) {
      if (closed) return;
      for (const p of packets) {
        if (queue.length >= queueLimit) {
          dropped++;
          continue;
        }
        queue.push([undefined, Buffer.from(p)]);
      }
      pump();
    },
    injectGso(entries) {
      if (!opts.offload) throw new TypeError('injectGso needs a device made with offload');
      if (closed) return;
      for (const e of entries) {
        if (queue.length >= queueLimit) {
          dropped++;
          continue;
        }
        queue.push([Buffer.from(e.subarray(0, VNET_HDR_BYTES)), Buffer.from(e.subarray(VNET_HDR_BYTES))]);
      }
      pump();
    },
  };
  return dev;
}

/** Two devices joined back to back: what one writes, the other reads. */
export function createFakeDevicePair(opts: FakeDeviceOptions = {}): [FakeDevice, FakeDevice] {
  const a = createFakeDevice({ ...opts, name: `${opts.name ?? 'fake'}a${counter}` });
  const b = createFakeDevice({ ...opts, name: `${opts.name ?? 'fake'}b${counter}` });
  a.onWrite = (pkts) => b.inject(pkts);
  b.onWrite = (pkts) => a.inject(pkts);
  return [a, b];
}
