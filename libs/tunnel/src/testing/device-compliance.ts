/**
 * One compliance suite for every PacketDevice (the real TUN and the in-memory fake): the layers
 * above rely on exactly these behaviours.
 *
 * The harness speaks ICMP echo: the suite writes echo requests into the device and expects the
 * "kernel" behind it (the real one, or the fake's responder) to answer each with an echo reply that
 * comes back out of the device.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PacketDevice } from '../device.js';
import { packBatch, unpackBatch } from '../device.js';
import { icmpEcho, parseIcmpEcho } from './packets.js';

export interface DeviceHarness {
  device: PacketDevice;
  /** The address the kernel side owns (destination of requests). */
  localAddress: string;
  /** The address requests come from (the far end, routed through the device). */
  peerAddress: string;
  maxBatchPackets: number;
  cleanup(): Promise<void>;
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not met in time');
    await wait(10);
  }
}

export function describeDeviceCompliance(name: string, setup: () => Promise<DeviceHarness>, opts: { skip?: string } = {}): void {
  describe.skipIf(!!opts.skip)(`PacketDevice compliance: ${name}${opts.skip ? ` (skipped: ${opts.skip})` : ''}`, () => {
    let h: DeviceHarness | undefined;
    afterEach(async () => {
      await h?.cleanup();
      h = undefined;
    });

    const requests = (hh: DeviceHarness, id: number, n: number) =>
      packBatch(Array.from({ length: n }, (_, i) => icmpEcho(hh.peerAddress, hh.localAddress, id, i)));

    it('delivers answers as packed batches no larger than the batch bound', async () => {
      h = await setup();
      const hh = h;
      const batches: Buffer[][] = [];
      hh.device.start((b) => batches.push(unpackBatch(b)));
      expect(hh.device.writeBatch(requests(hh, 0x4242, 200))).toBe(200);
      await until(() => batches.flat().filter((p) => parseIcmpEcho(p)?.id === 0x4242).length >= 200);
      const replies = batches.flat().map(parseIcmpEcho).filter((e) => e?.id === 0x4242);
      expect(replies.every((e) => e!.type === 0 && e!.src === hh.localAddress && e!.dst === hh.peerAddress)).toBe(true);
      expect(new Set(replies.map((e) => e!.seq)).size).toBe(200);
      expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(hh.maxBatchPackets);
    });

    it('stops delivering while paused and resumes afterwards', async () => {
      h = await setup();
      const hh = h;
      const got: Buffer[] = [];
      hh.device.start((b) => got.push(...unpackBatch(b)));
      hh.device.pause();
      hh.device.writeBatch(requests(hh, 0x1111, 5));
      await wait(200);
      expect(got.filter((p) => parseIcmpEcho(p)?.id === 0x1111)).toHaveLength(0);
      hh.device.resume();
      await until(() => got.filter((p) => parseIcmpEcho(p)?.id === 0x1111).length === 5);
    });

    it('closes idempotently and rejects writes afterwards', async () => {
      h = await setup();
      const hh = h;
      hh.device.start(() => undefined);
      hh.device.close();
      hh.device.close();
      expect(hh.device.closed).toBe(true);
      expect(() => hh.device.writeBatch(requests(hh, 1, 1))).toThrow(expect.objectContaining({ code: 'RVPN_ERR_TUN_CLOSED' }));
    });

    it('writes an empty batch as zero packets', async () => {
      h = await setup();
      expect(h.device.writeBatch(Buffer.alloc(0))).toBe(0);
    });
  });
}
