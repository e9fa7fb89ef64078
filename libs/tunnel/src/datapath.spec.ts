import { describe, expect, it } from 'vitest';
import { unpackBatch } from './device.js';
import { TunnelDataPath, type TunnelDataPathOptions } from './datapath.js';
import { establishSession, type LocalHello, type TunnelSession } from './session.js';
import { createFakeDevice } from './testing/fake-device.js';
import { createMemoryTransportPair } from './testing/memory-transport.js';
import { icmpEcho, ipv4Packet } from './testing/packets.js';

const base = { keepaliveIntervalMs: 1000, keepaliveTimeoutMs: 10_000, vpnNetwork: 'fd8f:6d53:b97a:1::/96', mtu: 1500 };
const seedHello: LocalHello = { ...base, role: 'seed', identity: 'seed', assignment: { seedAddress: 'fd8f:6d53:b97a:1::1', shootAddress: 'fd8f:6d53:b97a:1::2', prefixLength: 96 } };
const shootHello: LocalHello = { ...base, role: 'shoot', identity: 'shoot' };

const until = async (cond: () => boolean, ms = 5000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 5));
  }
};

function bulk(i: number): Buffer {
  const seg = Buffer.alloc(1380);
  seg.writeUInt16BE(40000, 0);
  seg.writeUInt16BE(5201, 2);
  seg.writeUInt32BE(i, 20);
  return ipv4Packet('10.0.0.1', '10.0.0.2', 6, seg);
}

/**
 * A shoot-side data path on a fake device, attached to a session whose seed peer `seedStream` can
 * stall (`seedStream.pause()`); `paused()` counts the device's pauses.
 */
async function stalledPeerSetup(queue: TunnelDataPathOptions['queue'], writeBufferCap?: number) {
  const [a, seedStream] = createMemoryTransportPair();
  const [shoot, seed]: [TunnelSession, TunnelSession] = await Promise.all([
    establishSession(a, { side: 'dialer', hello: shootHello, ...(writeBufferCap !== undefined ? { writeBufferCap } : {}) }),
    establishSession(seedStream, { side: 'listener', hello: seedHello }),
  ]);
  const dev = createFakeDevice({ queueLimit: 10_000 });
  let pauses = 0;
  const pause = dev.pause.bind(dev);
  dev.pause = () => {
    pauses++;
    pause();
  };
  const dp = new TunnelDataPath({ device: dev, queue });
  const close = () => {
    dp.stop();
    shoot.close();
    seed.close();
  };
  return { seedStream, shoot, seed, dev, dp, paused: () => pauses, close };
}

describe('TunnelDataPath with its fair queue', () => {
  it('keeps reading the device while the peer stalls, and a ping overtakes the bulk backlog', async () => {
    // CoDel out of the way (a stalled test peer is not a standing queue): this is about order and loss
    const { seedStream: b, shoot, seed, dev, dp, paused, close } = await stalledPeerSetup({ targetMs: 60_000 });
    const got: Buffer[] = [];
    seed.onPackets((batch) => got.push(...unpackBatch(batch).map((p) => Buffer.from(p))));
    dp.start();
    dp.attach(shoot);

    b.pause(); // the seed stops reading: the shoot side's buffers fill
    dev.inject(Array.from({ length: 500 }, (_, i) => bulk(i)));
    await until(() => dp.queue!.stats.enqueued >= 300);
    const before = dp.queue!.stats.enqueued;
    dev.inject([icmpEcho('10.0.0.1', '10.0.0.2', 9, 1)]);
    await until(() => dp.queue!.stats.enqueued > before); // the ping waits in the queue, behind the backlog
    await new Promise((r) => setTimeout(r, 50));
    expect(paused()).toBe(0); // read all the time: nothing waits in the device
    expect(shoot.bufferedBytes).toBeLessThan(256 * 1024); // the session's buffer stays short

    b.resume();
    await until(() => got.length === 501);
    const pingAt = got.findIndex((p) => p[9] === 1);
    // only what was already in the session's buffer and the transport goes before it
    expect(pingAt).toBeGreaterThanOrEqual(0);
    expect(pingAt).toBeLessThan(150);
    const order = got.filter((p) => p[9] === 6).map((p) => p.readUInt32BE(40));
    expect(order).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(dp.drops).toMatchObject({ queue_full: 0, codel: 0, backpressure: 0 });
    close();
  });

  it('drops what waited for a session that went away (counted as no_session)', async () => {
    const { seedStream: b, shoot, dev, dp, close } = await stalledPeerSetup({ targetMs: 60_000 });
    dp.start();
    dp.attach(shoot);
    b.pause();
    dev.inject(Array.from({ length: 300 }, (_, i) => bulk(i)));
    await until(() => dp.queue!.stats.backlogPackets > 0 && dp.queue!.stats.enqueued > 100);
    await new Promise((r) => setTimeout(r, 20));
    const q = dp.queue!;
    const waiting = q.stats.backlogPackets;
    dp.detach();
    expect(dp.drops.no_session).toBe(waiting);
    expect(q.empty).toBe(true);
    expect(dp.queue).toBeUndefined();
    close();
  });

  it('without a queue (queue: false) pauses the device on backpressure, as before', async () => {
    const { seedStream: b, shoot, dev, dp, paused, close } = await stalledPeerSetup(false, 64 * 1024);
    expect(dp.queue).toBeUndefined();
    dp.start();
    dp.attach(shoot);
    b.pause();
    dev.inject(Array.from({ length: 500 }, (_, i) => bulk(i)));
    await until(() => paused() > 0);
    close();
  });
});
