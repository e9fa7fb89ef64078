import { describe, expect, it } from 'vitest';
import { createFakeDevice, createFakeDevicePair } from './fake-device.js';
import { describeDeviceCompliance } from './device-compliance.js';
import { icmpEcho, parseIcmpEcho } from './packets.js';
import { packBatch, unpackBatch } from '../device.js';

describeDeviceCompliance('fake device', async () => {
  const device = createFakeDevice({ maxBatchPackets: 16 });
  // The fake's "kernel": answer every echo request addressed to 10.9.0.1.
  device.onWrite = (pkts) => {
    for (const p of pkts) {
      const e = parseIcmpEcho(p);
      if (e && e.type === 8 && e.dst === '10.9.0.1') device.inject([icmpEcho(e.dst, e.src, e.id, e.seq, { reply: true })]);
    }
  };
  return { device, localAddress: '10.9.0.1', peerAddress: '10.9.0.2', maxBatchPackets: 16, cleanup: async () => device.close() };
});

describe('fake device pair', () => {
  it('carries what one side writes to the other side', async () => {
    const [a, b] = createFakeDevicePair();
    const got = new Promise<Buffer[]>((r) => b.start((batch) => r(unpackBatch(batch))));
    a.writeBatch(packBatch([icmpEcho('1.1.1.1', '2.2.2.2', 1, 1)]));
    expect(parseIcmpEcho((await got)[0]!)).toMatchObject({ src: '1.1.1.1', dst: '2.2.2.2' });
  });
  it('drops beyond its queue limit while paused', () => {
    const d = createFakeDevice({ queueLimit: 3 });
    d.pause();
    d.inject([Buffer.alloc(1), Buffer.alloc(1), Buffer.alloc(1), Buffer.alloc(1), Buffer.alloc(1)]);
    expect(d.dropped).toBe(2);
  });
});
