/**
 * In-memory PacketDevices for tests of the layers above the device. They follow the same contract
 * as the real TUN (see device-compliance.ts): packed batches, asynchronous delivery, pause/resume,
 * a bounded receive queue that drops while paused and full, idempotent close.
 */
import type { DeviceMode, PacketDevice } from '../device.js';
import { unpackBatch, packBatch } from '../device.js';
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
}

export interface FakeDeviceOptions {
  name?: string;
  mode?: DeviceMode;
  maxBatchPackets?: number;
  /** Packets the device queues while paused or not started, beyond which it drops. Default 1024. */
  queueLimit?: number;
}

let counter = 0;

export function createFakeDevice(opts: FakeDeviceOptions = {}): FakeDevice {
  const maxBatch = opts.maxBatchPackets ?? 64;
  const queueLimit = opts.queueLimit ?? 1024;
  const queue: Buffer[] = [];
  let onBatch: ((b: Buffer) => void) | undefined;
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
      onBatch(packBatch(batch));
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
    start(cb) {
      if (closed) throw new TunClosedError(`device ${dev.name} is closed`);
      onBatch = cb;
      pump();
    },
    writeBatch(batch) {
      if (closed) throw new TunClosedError(`device ${dev.name} is closed`);
      const pkts = unpackBatch(batch).map((p) => Buffer.from(p));
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
        queue.push(Buffer.from(p));
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
