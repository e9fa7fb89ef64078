import { describe, expect, it } from 'vitest';
import { Cidr, CidrSet } from '@rvpn/config';
import { packGsoBatch, unpackBatch } from './device.js';
import { TunnelDataPath, type TunnelDataPathOptions } from './datapath.js';
import { establishSession, type LocalHello, type TunnelSession } from './session.js';
import { createFakeDevice } from './testing/fake-device.js';
import { createMemoryTransportPair } from './testing/memory-transport.js';
import { icmpEcho, ipv4Packet, tcpSuperPacket } from './testing/packets.js';
import { FEATURE_GSO } from './protocol.js';

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

describe('TunnelDataPath with offload (GSO)', () => {
  async function offloadPair(o: { seedGso: boolean; stallSeed?: boolean }) {
    const [a, b] = createMemoryTransportPair();
    const [shoot, seed]: [TunnelSession, TunnelSession] = await Promise.all([
      establishSession(a, { side: 'dialer', hello: { ...shootHello, features: [FEATURE_GSO] } }),
      establishSession(b, { side: 'listener', hello: { ...seedHello, ...(o.seedGso ? { features: [FEATURE_GSO] } : {}) } }),
    ]);
    const shootDev = createFakeDevice({ offload: true });
    const seedDev = createFakeDevice({ offload: true });
    const offloads: boolean[] = [];
    const set = shootDev.setOffload!.bind(shootDev);
    shootDev.setOffload = (on) => {
      offloads.push(on);
      set(on);
    };
    const shootDp = new TunnelDataPath({ device: shootDev });
    const seedDp = new TunnelDataPath({ device: seedDev, inboundFilter: { allowSource: new CidrSet([Cidr.parse('100.96.0.0/11')]) } });
    shootDp.start();
    seedDp.start();
    shootDp.attach(shoot);
    seedDp.attach(seed);
    const close = () => {
      shootDp.stop();
      seedDp.stop();
      shoot.close();
      seed.close();
    };
    return { shoot, seed, shootDev, seedDev, shootDp, seedDp, offloads, close };
  }

  it('turns offload on for a session that negotiated gso: super-packets cross whole, headers and all', async () => {
    const t = await offloadPair({ seedGso: true });
    expect(t.shootDp.offloadActive).toBe(true);
    expect(t.offloads).toEqual([true]);
    const entries = [tcpSuperPacket('100.96.1.10', '10.1.0.20', 60_000), tcpSuperPacket('100.96.1.10', '10.1.0.20', 1000)];
    t.shootDev.injectGso(entries);
    t.shootDev.inject([icmpEcho('100.96.1.10', '10.1.0.20', 1, 1)]);
    await until(() => t.seedDev.written.length === 3);
    expect(t.seedDev.written.map((p) => p.length)).toEqual([20 + 20 + 60_000, 20 + 20 + 1000, icmpEcho('100.96.1.10', '10.1.0.20', 1, 1).length]);
    expect(t.seedDev.writtenHeaders.map((h) => [h[1], h.readUInt16LE(4)])).toEqual([[1, 1400], [1, 1400], [0, 0]]);
    expect(t.shoot.stats.packetsOut).toBe(3); // three entries, not 45 segments
    t.shootDp.detach();
    expect(t.offloads).toEqual([true, false]);
    t.close();
  });

  it("drops a peer's super-packet whose header lies (gso_header) and writes the rest", async () => {
    const t = await offloadPair({ seedGso: true });
    const lying = tcpSuperPacket('100.96.1.10', '10.1.0.20', 60_000);
    lying.writeUInt16LE(8, 4); // gso_size 8: 7,500 segments
    t.shoot.sendBatch(packGsoBatch([lying, tcpSuperPacket('100.96.1.10', '10.1.0.20', 2000)]), true);
    await until(() => t.seedDev.written.length === 1);
    expect(t.seedDp.drops.gso_header).toBe(1);
    t.close();
  });

  it('keeps offload off with a peer that does not offer gso (an older minor): plain packets only', async () => {
    const t = await offloadPair({ seedGso: false });
    expect(t.shootDp.offloadActive).toBe(false);
    expect(t.offloads).toEqual([]);
    // a super-packet read just before the switch is not sent to a peer that cannot take it
    t.shootDev.injectGso([tcpSuperPacket('100.96.1.10', '10.1.0.20', 60_000)]);
    t.shootDev.inject([icmpEcho('100.96.1.10', '10.1.0.20', 1, 1)]);
    await until(() => t.seedDev.written.length === 1);
    expect(t.shootDev.offloadDrops).toBe(1);
    expect(t.seedDev.writtenHeaders.map((h) => h[1])).toEqual([0]);
    t.close();
  });
});
