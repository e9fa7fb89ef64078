import { describe, expect, it } from 'vitest';
import { packBatch, packGsoBatch, unpackBatch } from './device.js';
import { encodeHelloForVersion, establishSession, type LocalHello, type TunnelSession } from './session.js';
import { createMemoryTransportPair } from './testing/memory-transport.js';
import { frameHeader, FrameType, PROTOCOL_MINOR } from './protocol.js';
import { tcpSuperPacket } from './testing/packets.js';

const base = { keepaliveIntervalMs: 50, keepaliveTimeoutMs: 400, vpnNetwork: 'fd8f:6d53:b97a:1::/96', mtu: 1500 };
const seedHello: LocalHello = { ...base, role: 'seed', identity: 'seed', assignment: { seedAddress: 'fd8f:6d53:b97a:1::1', shootAddress: 'fd8f:6d53:b97a:1::2', prefixLength: 96 } };
const shootHello: LocalHello = { ...base, role: 'shoot', identity: 'shoot' };

async function pair(opts: { dialerMinor?: number } = {}): Promise<[TunnelSession, TunnelSession]> {
  const [a, b] = createMemoryTransportPair();
  return Promise.all([
    establishSession(a, { side: 'dialer', hello: shootHello, ...(opts.dialerMinor !== undefined ? { protocolMinor: opts.dialerMinor } : {}) }),
    establishSession(b, { side: 'listener', hello: seedHello }),
  ]);
}

function collect(s: TunnelSession): Buffer[] {
  const got: Buffer[] = [];
  s.onPackets((b) => got.push(...unpackBatch(b)));
  return got;
}

const until = async (cond: () => boolean, ms = 5000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('TunnelSession', () => {
  it('handshakes, carries the seed assignment and moves packets both ways', async () => {
    const [shoot, seed] = await pair();
    expect(shoot.peerHello.assignment?.shootAddress).toBe('fd8f:6d53:b97a:1::2');
    expect(shoot.negotiatedMinor).toBe(PROTOCOL_MINOR);
    const atSeed = collect(seed);
    const atShoot = collect(shoot);
    shoot.sendBatch(packBatch([Buffer.from('a'), Buffer.from('bb')]));
    seed.sendBatch(packBatch([Buffer.from('ccc')]));
    await until(() => atSeed.length === 2 && atShoot.length === 1);
    expect(atSeed.map(String)).toEqual(['a', 'bb']);
    expect(atShoot.map(String)).toEqual(['ccc']);
    expect(shoot.stats).toMatchObject({ packetsOut: 2, bytesOut: 3 });
    await until(() => (shoot.stats.rttSmoothedMs ?? -1) >= 0);
    shoot.close('done');
    expect((await seed.closed).reason).toMatch(/peer closed: done/);
  });

  it('talks to a peer one minor version older with single-packet DATA frames', async () => {
    const [shoot, seed] = await pair({ dialerMinor: 0 });
    expect(shoot.negotiatedMinor).toBe(0);
    expect(seed.negotiatedMinor).toBe(0);
    const atShoot = collect(shoot);
    seed.sendBatch(packBatch([Buffer.from('x'), Buffer.from('yy'), Buffer.from('zzz')]));
    await until(() => atShoot.length === 3);
    expect(seed.stats.framesOut).toBeGreaterThanOrEqual(3);
    expect(atShoot.map(String)).toEqual(['x', 'yy', 'zzz']);
    shoot.close();
  });

  it('refuses another major version with RVPN_ERR_PROTO_VERSION on both sides', async () => {
    const [a, b] = createMemoryTransportPair();
    const listener = establishSession(b, { side: 'listener', hello: seedHello });
    const answer = new Promise<string>((resolve) => {
      let buf = Buffer.alloc(0);
      a.on('data', (d: Buffer) => { buf = Buffer.concat([buf, d]); if (buf.length > 4) resolve(buf.subarray(4).toString()); });
    });
    a.write(encodeHelloForVersion(shootHello, 2, 0));
    await expect(listener).rejects.toMatchObject({ code: 'RVPN_ERR_PROTO_VERSION' });
    expect(await answer).toMatch(/RVPN_ERR_PROTO_VERSION.*protocol 2\.0, this side 1\.2/);
  });

  it('reports the peer refusal code to the dialer', async () => {
    const [a, b] = createMemoryTransportPair();
    const dialer = establishSession(a, { side: 'dialer', hello: shootHello });
    const listener = establishSession(b, {
      side: 'listener', hello: seedHello,
      validatePeerHello: () => { throw Object.assign(new Error('VPN_NETWORK differs'), { code: 'RVPN_ERR_TUNNEL_CONFIG_MISMATCH' }); },
    });
    await expect(listener).rejects.toMatchObject({ code: 'RVPN_ERR_TUNNEL_CONFIG_MISMATCH' });
    await expect(dialer).rejects.toMatchObject({ code: 'RVPN_ERR_TUNNEL_CONFIG_MISMATCH' });
  });

  it('carries extension frames to a listener and lets peers without one ignore them', async () => {
    const [shoot, seed] = await pair();
    const got: Array<[number, string]> = [];
    seed.onExtension((type, payload) => got.push([type, payload.toString()]));
    shoot.sendExtension(0x80, Buffer.from('macs'));
    seed.sendExtension(0x9f, Buffer.from('nobody listens')); // the shoot ignores it and stays up
    shoot.sendExtension(0x80, Buffer.from('again'));
    await until(() => got.length === 2);
    expect(got).toEqual([[0x80, 'macs'], [0x80, 'again']]);
    expect(() => shoot.sendExtension(0x07, Buffer.alloc(0))).toThrow(/0x80-0xff/);
    const atShoot = collect(shoot);
    seed.sendBatch(packBatch([Buffer.from('still up')]));
    await until(() => atShoot.length === 1);
    shoot.close();
    seed.close();
  });

  it('declares a silent peer dead', async () => {
    const [a, b] = createMemoryTransportPair();
    const [shoot, seed] = await Promise.all([
      establishSession(a, { side: 'dialer', hello: shootHello }),
      establishSession(b, { side: 'listener', hello: seedHello }),
    ]);
    // The shoot side goes silent: nothing it writes reaches the wire any more.
    a.write = (() => true) as typeof a.write;
    const end = await seed.closed;
    expect(end.code).toBe('RVPN_ERR_TUNNEL_PEER_DEAD');
    shoot.close();
  });

  it('counts data as liveness while the peer sends no pings', async () => {
    const [a, b] = createMemoryTransportPair();
    const [shoot, seed] = await Promise.all([
      establishSession(a, { side: 'dialer', hello: { ...shootHello, keepaliveIntervalMs: 10_000 } }),
      establishSession(b, { side: 'listener', hello: seedHello }),
    ]);
    collect(seed);
    let ended = false;
    void seed.closed.then(() => (ended = true));
    const t0 = Date.now();
    while (Date.now() - t0 < 1200) {
      shoot.sendBatch(packBatch([Buffer.alloc(1000)]));
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(ended).toBe(false);
    shoot.close();
  });

  it('closes on a malformed frame with RVPN_ERR_PROTO_MALFORMED', async () => {
    const [a, b] = createMemoryTransportPair();
    const [, seed] = await Promise.all([
      establishSession(a, { side: 'dialer', hello: shootHello }),
      establishSession(b, { side: 'listener', hello: seedHello }),
    ]);
    a.write(Buffer.from([0x33, 0, 0, 0]));
    expect((await seed.closed).code).toBe('RVPN_ERR_PROTO_MALFORMED');
  });

  it('reports backpressure when the peer stops reading', async () => {
    const [a, b] = createMemoryTransportPair({ highWaterMark: 16 * 1024 });
    const [shoot] = await Promise.all([
      establishSession(a, { side: 'dialer', hello: shootHello, writeBufferCap: 64 * 1024 }),
      establishSession(b, { side: 'listener', hello: seedHello }),
    ]);
    b.pause();
    let accepted = true;
    for (let i = 0; i < 200 && accepted; i++) accepted = shoot.sendBatch(packBatch([Buffer.alloc(1400)]));
    expect(accepted).toBe(false);
    const drained = new Promise<void>((r) => shoot.onDrain(r));
    b.resume();
    await drained;
    expect(shoot.writable).toBe(true);
    shoot.close();
  });
});

describe('TunnelSession against a hostile peer', () => {
  /** A listener session whose peer is the raw stream `a` (the test speaks for the peer). */
  async function rawPeer(opts: { keepaliveTimeoutMs?: number; writeBufferCap?: number; highWaterMark?: number } = {}) {
    const [a, b] = createMemoryTransportPair(opts.highWaterMark ? { highWaterMark: opts.highWaterMark } : {});
    const hello = { ...seedHello, keepaliveIntervalMs: 10_000, keepaliveTimeoutMs: opts.keepaliveTimeoutMs ?? 60_000 };
    const listener = establishSession(b, { side: 'listener', hello, ...(opts.writeBufferCap ? { writeBufferCap: opts.writeBufferCap } : {}) });
    a.write(encodeHelloForVersion(shootHello, 1, 1));
    const seed = await listener;
    return { a, b, seed };
  }

  it('closes at once with RVPN_ERR_PROTO_FRAME_TOO_LARGE on a frame above the limit after the handshake', async () => {
    const { a, seed } = await rawPeer();
    let answer = Buffer.alloc(0);
    a.on('data', (d: Buffer) => (answer = Buffer.concat([answer, d])));
    a.write(Buffer.from([FrameType.DATA_BATCH, 0x10, 0x00, 0x01])); // 1 MiB + 1
    const end = await Promise.race([seed.closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000))]);
    expect(end?.code).toBe('RVPN_ERR_PROTO_FRAME_TOO_LARGE');
    await until(() => answer.includes('RVPN_ERR_PROTO_FRAME_TOO_LARGE'));
  });

  it('refuses a HELLO above 64 KiB before reading it', async () => {
    const [a, b] = createMemoryTransportPair();
    const listener = establishSession(b, { side: 'listener', hello: seedHello });
    a.write(Buffer.from([FrameType.HELLO, 0x01, 0x00, 0x01])); // 64 KiB + 1, payload never sent
    await expect(listener).rejects.toMatchObject({ code: 'RVPN_ERR_PROTO_FRAME_TOO_LARGE' });
  });

  it('does not echo PINGs while the peer does not read: the write buffer stays bounded', async () => {
    const cap = 64 * 1024;
    const { a, b, seed } = await rawPeer({ writeBufferCap: cap, highWaterMark: 16 * 1024 });
    a.pause(); // the peer never reads
    const ping = Buffer.concat([Buffer.from([FrameType.PING, 0x04, 0x00, 0x00]), Buffer.alloc(256 * 1024)]);
    for (let i = 0; i < 40; i++) {
      a.write(ping);
      await new Promise((r) => setImmediate(r));
    }
    await until(() => seed.stats.framesIn >= 40);
    // one PONG may go out while under the cap; 40 × 256 KiB would be 10 MiB
    expect(b.writableLength).toBeLessThanOrEqual(cap + ping.length);
    expect(seed.stats.pongsDropped).toBeGreaterThan(30);
    seed.close();
  });

  it('drops extension frames while the peer does not read', async () => {
    const cap = 32 * 1024;
    const { a, b, seed } = await rawPeer({ writeBufferCap: cap, highWaterMark: 16 * 1024 });
    a.pause();
    let sent = 0;
    for (let i = 0; i < 100; i++) if (seed.sendExtension(0x80, Buffer.alloc(8 * 1024))) sent++;
    expect(sent).toBeLessThan(10);
    expect(seed.stats.extensionDrops).toBe(100 - sent);
    expect(b.writableLength).toBeLessThanOrEqual(cap + 8 * 1024 + 4);
    seed.close();
  });

  it('maps an unknown ERROR code to `other` and truncates peer text', async () => {
    const { a, seed } = await rawPeer();
    const code = 'RVPN_ERR_MADE_UP_' + 'X'.repeat(5000);
    const json = Buffer.from(JSON.stringify({ code, message: 'm\u0000\n'.repeat(100_000) }));
    a.write(Buffer.concat([Buffer.from([FrameType.ERROR, json.length >> 16, (json.length >> 8) & 0xff, json.length & 0xff]), json]));
    const end = await seed.closed;
    expect(end.code).toBe('other');
    expect(end.reason.length).toBeLessThan(600);
    expect(end.reason).not.toMatch(/[\u0000\n]/);
  });

  it('keeps a known ERROR code', async () => {
    const { a, seed } = await rawPeer();
    const json = Buffer.from(JSON.stringify({ code: 'RVPN_ERR_TUNNEL_CONFIG_MISMATCH', message: 'x' }));
    a.write(Buffer.concat([Buffer.from([FrameType.ERROR, 0, 0, json.length]), json]));
    expect((await seed.closed).code).toBe('RVPN_ERR_TUNNEL_CONFIG_MISMATCH');
  });

  describe('GSO (1.2, feature "gso")', () => {
    const gsoPair = async (o: { shootFeatures?: string[]; seedFeatures?: string[]; shootMinor?: number }) => {
      const [a, b] = createMemoryTransportPair();
      return Promise.all([
        establishSession(a, { side: 'dialer', hello: { ...shootHello, ...(o.shootFeatures ? { features: o.shootFeatures } : {}) }, ...(o.shootMinor !== undefined ? { protocolMinor: o.shootMinor } : {}) }),
        establishSession(b, { side: 'listener', hello: { ...seedHello, ...(o.seedFeatures ? { features: o.seedFeatures } : {}) } }),
      ]);
    };

    it('is on only when both ends list it and speak 1.2', async () => {
      const cases: Array<[Parameters<typeof gsoPair>[0], boolean]> = [
        [{ shootFeatures: ['gso'], seedFeatures: ['gso'] }, true],
        [{ shootFeatures: ['gso'] }, false],
        [{ seedFeatures: ['gso'] }, false],
        [{ shootFeatures: ['gso'], seedFeatures: ['gso'], shootMinor: 1 }, false],
      ];
      for (const [o, want] of cases) {
        const [shoot, seed] = await gsoPair(o);
        expect([shoot.gso, seed.gso]).toEqual([want, want]);
        shoot.close();
      }
    });

    it('carries super-packets of up to 64 KiB with their headers as DATA_GSO_BATCH, split below the frame limit', async () => {
      const [shoot, seed] = await gsoPair({ shootFeatures: ['gso'], seedFeatures: ['gso'] });
      const got: Array<[Buffer[], boolean]> = [];
      seed.onPackets((b, gso) => got.push([unpackBatch(b, gso), gso]));
      const entries = Array.from({ length: 20 }, (_, i) => tcpSuperPacket('100.96.1.10', '10.1.0.20', 65_000 + i));
      shoot.sendBatch(packGsoBatch(entries), true);
      shoot.sendBatch(packBatch([Buffer.from('plain')]));
      await until(() => got.reduce((n, [e]) => n + e.length, 0) === 21);
      const gsoEntries = got.filter(([, g]) => g).flatMap(([e]) => e);
      expect(gsoEntries.map((e) => Buffer.compare(e, entries[gsoEntries.indexOf(e)]!))).toEqual(entries.map(() => 0));
      expect(got.filter(([, g]) => !g).flatMap(([e]) => e).map(String)).toEqual(['plain']);
      // 20 × ~65 KiB does not fit one 1 MiB frame
      expect(shoot.stats.framesOut).toBeGreaterThanOrEqual(3);
      expect(shoot.stats).toMatchObject({ packetsOut: 21, bytesOut: entries.reduce((n, e) => n + e.length - 10, 0) + 5 });
      shoot.close();
    });

    it('refuses to send a GSO batch without the feature, and ends a session whose peer sends one anyway', async () => {
      const [shoot, seed] = await gsoPair({ shootFeatures: ['gso'] });
      expect(() => shoot.sendBatch(packGsoBatch([tcpSuperPacket('100.96.1.10', '10.1.0.20', 3000)]), true)).toThrow(RangeError);
      // a peer that ignores the negotiation: the raw frame
      const payload = packGsoBatch([tcpSuperPacket('100.96.1.10', '10.1.0.20', 3000)]);
      (shoot as unknown as { stream: { write(b: Buffer): void } }).stream.write(Buffer.concat([frameHeader(FrameType.DATA_GSO_BATCH, payload.length), payload]));
      const end = await seed.closed;
      expect(end).toMatchObject({ code: 'RVPN_ERR_PROTO_MALFORMED' });
      expect(end.reason).toMatch(/DATA_GSO_BATCH on a session without the gso feature/);
    });

    it('ends the session on a truncated DATA_GSO_BATCH', async () => {
      const [shoot, seed] = await gsoPair({ shootFeatures: ['gso'], seedFeatures: ['gso'] });
      const payload = packGsoBatch([tcpSuperPacket('100.96.1.10', '10.1.0.20', 3000)]).subarray(0, 100);
      (shoot as unknown as { stream: { write(b: Buffer): void } }).stream.write(Buffer.concat([frameHeader(FrameType.DATA_GSO_BATCH, payload.length), payload]));
      expect((await seed.closed).reason).toMatch(/DATA_GSO_BATCH with a truncated packet/);
    });
  });
});
