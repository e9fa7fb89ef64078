/**
 * Two HA seed servers and two bonded endpoints (an apiserver-side one and a shoot client), in
 * process with fake TAP devices: a stream of frames keeps flowing when one server dies or when one
 * endpoint loses its link to one server. Gaps are logged, not asserted (shared CI cores).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cidr, loadSeedServerConfig } from '@rvpn/config';
import { BondEndpoint, endpointBondAddresses, formatMac, macFromAddress, shootBondAddresses } from '@rvpn/bonding';
import { createShootPki } from '@rvpn/pki';
import { coalesceTcp, unpackBatch } from '@rvpn/tunnel';
import { createFakeDevice, tcpFrame, v6Bytes, type FakeDevice } from '@rvpn/tunnel/testing';
import { HaSeedServer } from './ha-server.js';

const NS = 'shoot--ha--failover';
const VPN = 'fd8f:6d53:b97a:1::/96';
const nets = { v6: Cidr.parse(VPN) };
const until = async (what: string, cond: () => boolean, ms = 8000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** Frames carry a sequence number so the receiver can measure gaps and losses. */
/**
 * An IPv6 packet (no next header) from one bond address to the other carrying `seq`: the switch lets
 * a shoot port send IP from its own addresses only, so the stream is what a real bond would carry.
 */
function seqFrame(dst: Buffer, src: Buffer, seq: number, from: string, to: string): Buffer {
  const f = Buffer.alloc(14 + 40 + 4);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(0x86dd, 12);
  f.writeUInt32BE(0x60000000, 14);
  f.writeUInt16BE(4, 18);
  f[20] = 59;
  f[21] = 64;
  Buffer.from(v6Bytes(from)).copy(f, 22);
  Buffer.from(v6Bytes(to)).copy(f, 38);
  f.writeUInt32BE(seq, 54);
  return f;
}

describe('HA: two servers, bonded endpoints', () => {
  let dir: string;
  const servers: HaSeedServer[] = [];
  const endpoints: BondEndpoint[] = [];
  const dev: Record<'api' | 'shoot', FakeDevice> = { api: createFakeDevice({ mode: 'tap', name: 'bond-api' }), shoot: createFakeDevice({ mode: 'tap', name: 'bond-shoot', offload: true }) };
  const addr = { api: endpointBondAddresses(nets, 7).v6, shoot: shootBondAddresses(nets, 0).v6 };
  const mac = { api: macFromAddress(addr.api), shoot: macFromAddress(addr.shoot) };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rvpn-ha-failover-'));
    const pki = await createShootPki({ namespace: NS, haServers: 2, haClients: 1 });
    const files: Record<string, string> = {
      'ca.crt': pki.ca.certPem, 'server.crt': pki.server.certPem, 'server.key': pki.server.keyPem,
      'shoot.crt': pki.shootClients[0]!.certPem, 'shoot.key': pki.shootClients[0]!.keyPem,
      'seed.crt': pki.seedClient.certPem, 'seed.key': pki.seedClient.keyPem,
    };
    for (const [n, c] of Object.entries(files)) writeFileSync(join(dir, n), c);
    for (const i of [0, 1]) {
      const cfg = loadSeedServerConfig({
        IS_HA: 'true', POD_NAME: `vpn-seed-server-${i}`, NAMESPACE: NS, VPN_NETWORK: VPN, SEED_POD_NETWORK: '10.1.0.0/24',
        TLS_CA_FILE: join(dir, 'ca.crt'), TLS_CERT_FILE: join(dir, 'server.crt'), TLS_KEY_FILE: join(dir, 'server.key'),
        TUNNEL_LISTEN: '127.0.0.1:0', STATUS_LISTEN: '127.0.0.1:0',
      });
      const s = new HaSeedServer(cfg, { logger: pino({ level: 'silent' }), registry: new Registry() });
      await s.start();
      servers.push(s);
    }
    const pem = (f: string) => readFileSync(join(dir, f));
    for (const who of ['api', 'shoot'] as const) {
      const e = new BondEndpoint({
        device: dev[who],
        servers: servers.map((s, i) => ({ id: `vpn-seed-server-${i}`, target: { host: '127.0.0.1', port: s.bound.tunnel! }, servername: `vpn-seed-server-${i}` })),
        tls: () => ({ ca: pem('ca.crt'), cert: pem(`${who === 'api' ? 'seed' : 'shoot'}.crt`), key: pem(`${who === 'api' ? 'seed' : 'shoot'}.key`) }),
        role: who === 'api' ? 'seed' : 'shoot',
        identity: `${who}-endpoint`,
        address: addr[who],
        addresses: [addr[who]],
        vpnNetwork: VPN,
        keepaliveIntervalMs: 100,
        keepaliveTimeoutMs: 400,
        mtu: 1500,
        // the shoot's TAP reads super-frames (BOND_OFFLOAD); the api side's is plain, as an older endpoint's
        offload: who === 'shoot',
      });
      e.start();
      endpoints.push(e);
    }
    await until('all four links', () => endpoints.every((e) => e.bond.linkUp('vpn-seed-server-0') && e.bond.linkUp('vpn-seed-server-1')));
    // both endpoints announce themselves (as their kernels would with ARP/ND) so both switches learn them
    for (const who of ['api', 'shoot'] as const) dev[who].inject([seqFrame(Buffer.from('ffffffffffff', 'hex'), mac[who], 0, addr[who], 'ff02::1')]);
    await until('MAC announcements', () => servers.every((s) => s.switch.attachedMacs().length === 2));
  });
  afterAll(async () => {
    await Promise.all(endpoints.map((e) => e.stop()));
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Streams frames api→shoot and shoot→api every 2 ms while `during` runs; returns what arrived. */
  async function stream(during: () => Promise<void>) {
    const got = { api: [] as Array<[number, number]>, shoot: [] as Array<[number, number]> };
    for (const who of ['api', 'shoot'] as const) {
      dev[who].written.length = 0;
      dev[who].onWrite = (frames) => {
        for (const f of frames) if (f.readUInt16BE(12) === 0x86dd && f.length >= 58 && f.readUInt32BE(54) > 0) got[who].push([f.readUInt32BE(54), performance.now()]);
      };
    }
    let seq = 1;
    let running = true;
    const pump = (async () => {
      while (running) {
        dev.api.inject([seqFrame(mac.shoot, mac.api, seq, addr.api, addr.shoot)]);
        dev.shoot.inject([seqFrame(mac.api, mac.shoot, seq, addr.shoot, addr.api)]);
        seq++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    await during();
    await new Promise((r) => setTimeout(r, 600));
    running = false;
    await pump;
    await new Promise((r) => setTimeout(r, 100));
    const summary = (arr: Array<[number, number]>) => {
      let gap = 0;
      for (let i = 1; i < arr.length; i++) gap = Math.max(gap, arr[i]![1] - arr[i - 1]![1]);
      return { received: new Set(arr.map(([s]) => s)).size, last: arr.at(-1)?.[0] ?? 0, gapMs: Math.round(gap) };
    };
    return { sent: seq - 1, atShoot: summary(got.shoot), atApi: summary(got.api) };
  }

  it('writes a TCP run from the bond as super-frames on a TAP opened for it, and plain frames on one that is not', async () => {
    const send = (from: 'api' | 'shoot', to: 'api' | 'shoot', n: number) =>
      Array.from({ length: n }, (_, i) => tcpFrame({ dstMac: mac[to], srcMac: mac[from], src: v6Bytes(addr[from]), dst: v6Bytes(addr[to]), seq: 1 + i * 1400, payload: 1400 }));
    const payloadOf = (frames: Buffer[]) => Buffer.concat(frames.map((f) => f.subarray(14 + 40 + 20)));
    for (const d of Object.values(dev)) {
      d.written.length = 0;
      d.writtenHeaders.length = 0;
      d.onWrite = undefined;
    }
    const [api, shoot] = endpoints as [BondEndpoint, BondEndpoint];
    const merged = { api: api.coalesce.merged, shoot: shoot.coalesce.merged };
    const runs = { toShoot: send('api', 'shoot', 20), toApi: send('shoot', 'api', 20) };
    dev.api.inject(runs.toShoot);
    dev.shoot.inject(runs.toApi);
    const bytes = (d: FakeDevice) => d.written.reduce((n, f) => n + (f.length > 100 ? f.length - 74 : 0), 0);
    await until('both runs delivered', () => bytes(dev.shoot) >= 20 * 1400 && bytes(dev.api) >= 20 * 1400);
    // the shoot's TAP (offload) got fewer, larger frames with GSO headers, the same bytes in order
    const tcpAtShoot = dev.shoot.written.filter((f) => f.length > 100);
    expect(tcpAtShoot.length).toBeLessThan(20);
    expect(shoot.coalesce.merged - merged.shoot).toBe(20 - tcpAtShoot.length);
    expect(dev.shoot.writtenHeaders.filter((h) => h[1] === 4).length).toBe(tcpAtShoot.filter((f) => f.length > 1500).length);
    expect(payloadOf(tcpAtShoot)).toEqual(payloadOf(runs.toShoot));
    // the api side's TAP (no offload) got every frame as it was sent
    expect(dev.api.written.filter((f) => f.length > 100)).toEqual(runs.toApi);
    expect(api.coalesce.merged).toBe(merged.api);
  });

  it('carries super-frames from a TAP with offload whole over "gso" links; the switch cuts them for a link without it', async () => {
    const [api, shoot] = endpoints as [BondEndpoint, BondEndpoint];
    expect(shoot.gsoLinks).toBe(2);
    expect(api.gsoLinks).toBe(0);
    for (const d of Object.values(dev)) {
      d.written.length = 0;
      d.onWrite = undefined;
    }
    // a run of 12 segments as a kernel with TSO hands it over: one super-frame (coalesceTcp builds the same)
    const segs = Array.from({ length: 12 }, (_, i) => tcpFrame({ dstMac: mac.api, srcMac: mac.shoot, src: v6Bytes(addr.shoot), dst: v6Bytes(addr.api), sport: 40100, seq: 1 + i * 1400, payload: 1400 }));
    const [superFrame, ...rest] = unpackBatch(coalesceTcp(segs, 14), true);
    expect(rest).toEqual([]);
    const split = () => servers.reduce((n, s) => n + s.offload.split, 0);
    const before = split();
    const ours = () => dev.api.written.filter((f) => f.length > 100 && f.readUInt16BE(14 + 40) === 40100);
    // (sent again each second: on a busy machine a 400 ms keepalive may take a link down for a moment)
    const again = async (what: string, entry: Buffer, cond: () => boolean) => {
      for (let i = 0; i < 8 && !cond(); i++) {
        dev.shoot.injectGso([Buffer.from(entry)]);
        await until(what, cond, 1000).catch(() => undefined);
      }
      expect(cond()).toBe(true);
    };
    await again('the run at the api side', superFrame!, () => ours().length >= 12);
    // cut back into the very segments, checksums and all
    expect(ours().slice(0, 12)).toEqual(segs);
    expect(split()).toBeGreaterThan(before);
    // a header that does not describe its frame (UDP GSO on a TCP frame) stops at the shoot port's guard
    const drops = () => servers.reduce((n, s) => n + s.switch.stats.dropped.gso_header, 0);
    const lie = Buffer.from(superFrame!);
    lie[1] = 5;
    const got = ours().length;
    await again('the guard to drop it', lie, () => drops() > 0);
    expect(ours()).toHaveLength(got);
  });

  it('keeps traffic flowing both ways when ONE endpoint loses its link to ONE server', async () => {
    const r = await stream(async () => {
      endpoints[0]!.session('vpn-seed-server-0')!.close('test: cut the api endpoint link to server 0');
    });
    console.log(`one link cut: sent ${r.sent} each way; shoot got ${r.atShoot.received} (longest gap ${r.atShoot.gapMs} ms), api got ${r.atApi.received} (longest gap ${r.atApi.gapMs} ms)`);
    expect(r.atShoot.last).toBeGreaterThan(r.sent - 50);
    expect(r.atApi.last).toBeGreaterThan(r.sent - 50);
    await until('the cut link to come back', () => endpoints[0]!.bond.linkUp('vpn-seed-server-0'));
  });

  it('keeps traffic flowing both ways when the active server dies', async () => {
    const active = endpoints[1]!.bond.active!;
    const victim = servers[Number(active.slice(-1))]!;
    const r = await stream(async () => {
      await victim.stop();
    });
    console.log(`server ${active} stopped: sent ${r.sent} each way; shoot got ${r.atShoot.received} (longest gap ${r.atShoot.gapMs} ms), api got ${r.atApi.received} (longest gap ${r.atApi.gapMs} ms)`);
    expect(endpoints.every((e) => e.bond.active !== active)).toBe(true);
    expect(r.atShoot.last).toBeGreaterThan(r.sent - 50);
    expect(r.atApi.last).toBeGreaterThan(r.sent - 50);
    expect(formatMac(mac.api)).not.toBe(formatMac(mac.shoot));
  });
});
