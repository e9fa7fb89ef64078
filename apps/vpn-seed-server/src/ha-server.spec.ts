/**
 * The HA seed server as a layer-2 switch, in process (no root: HA mode needs no TUN): real TLS
 * sessions from two shoot clients and apiserver endpoints, frames switched between them, MAC
 * announcements, and the refusals that keep tenants apart.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cidr, computeNetworkMapping, loadSeedServerConfig } from '@rvpn/config';
import { createPortGuard, decodeMacAnnouncement, formatMac, macFromAddress, shootBondAddresses } from '@rvpn/bonding';
import { createShootPki } from '@rvpn/pki';
import { FrameType, packBatch, TunnelDialer, unpackBatch, type TunnelSession } from '@rvpn/tunnel';
import { icmp4Error, icmp6, icmpEcho, ipv6Packet, v6Bytes } from '@rvpn/tunnel/testing';
import { haForwardedSources, HaSeedServer } from './ha-server.js';

const NS = 'shoot--ha--test';
const VPN = 'fd8f:6d53:b97a:1::/96';
const net = Cidr.parse(VPN);
const BCAST = 'ffffffffffff';
/** An IPv6 packet (no next header) from `from` carrying `tag`: what a bond puts on the wire. */
const frame = (dstHex: string, src: string, tag: string, from: string) => {
  const ip = ipv6Packet(v6Bytes(from), v6Bytes('ff02::1'), Buffer.from(tag));
  return Buffer.concat([Buffer.from(dstHex.replace(/:/g, ''), 'hex'), Buffer.from(src.replace(/:/g, ''), 'hex'), Buffer.from([0x86, 0xdd]), ip]);
};
const tagOf = (f: Buffer) => f.subarray(54).toString();
const until = async (cond: () => boolean, ms = 5000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('HA port guard under a network mapping (issue 12)', () => {
  const real = { shootServiceNetworks: [Cidr.parse('100.64.0.0/13')], shootPodNetworks: [Cidr.parse('100.96.0.0/11')], shootNodeNetworks: [Cidr.parse('10.250.0.0/16')] };
  const mapping = (seedPods: string) => computeNetworkMapping({ mode: 'auto', families: [4], networks: { seedPods: [Cidr.parse(seedPods)], shootServices: real.shootServiceNetworks, shootPods: real.shootPodNetworks, shootNodes: real.shootNodeNetworks } });

  it("admits a shoot pod's replies from the mapped shoot ranges and drops the real ones (they would be forged)", () => {
    const mapped = { ...real, mapping: mapping('100.96.0.0/11') };
    expect(haForwardedSources(mapped).map(String)).toEqual(['242.0.0.0/16', '243.0.0.0/13', '244.0.0.0/11']);
    const own = shootBondAddresses({ v6: net, v4: Cidr.parse('192.168.123.0/24') }, 0);
    const mac = macFromAddress(own.v6);
    const guard = createPortGuard({ mac, addresses: [own.v6, own.v4!], forwardedSources: haForwardedSources(mapped), peers: [net, Cidr.parse('192.168.123.0/24')] });
    const eth = (ip: Buffer) => Buffer.concat([Buffer.from(BCAST, 'hex'), Buffer.from(mac), Buffer.from([0x08, 0x00]), ip]);
    expect(guard.check(eth(icmpEcho('244.0.1.10', '192.168.123.64', 1, 1, { reply: true })))).toBeUndefined();
    expect(guard.check(eth(icmpEcho('243.0.0.10', '192.168.123.64', 1, 1, { reply: true })))).toBeUndefined();
    expect(guard.check(eth(icmpEcho('100.96.1.10', '192.168.123.64', 1, 1, { reply: true })))).toBe('ip_spoofed');
    expect(guard.check(eth(icmpEcho('241.0.0.20', '192.168.123.64', 1, 1, { reply: true })))).toBe('ip_spoofed'); // the seed's mapped range is no shoot source
  });

  it('keeps the real shoot networks when nothing is mapped', () => {
    expect(haForwardedSources({ ...real, mapping: mapping('10.1.0.0/24') }).map(String)).toEqual(['100.64.0.0/13', '100.96.0.0/11', '10.250.0.0/16']);
  });
});

interface Client {
  session: TunnelSession;
  frames: Buffer[];
  macs: string[];
  mac: string;
  address: string;
}

describe('vpn-seed-server HA mode (userspace L2 switch)', () => {
  let dir: string;
  let server: HaSeedServer;
  const dialers: TunnelDialer[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rvpn-ha-spec-'));
    const pki = await createShootPki({ namespace: NS, haServers: 2, haClients: 2 });
    const other = await createShootPki({ namespace: 'shoot--other--one', haClients: 1 });
    const files: Record<string, string> = {
      'ca.crt': pki.ca.certPem, 'server.crt': pki.server.certPem, 'server.key': pki.server.keyPem,
      's0.crt': pki.shootClients[0]!.certPem, 's0.key': pki.shootClients[0]!.keyPem,
      's1.crt': pki.shootClients[1]!.certPem, 's1.key': pki.shootClients[1]!.keyPem,
      'seed.crt': pki.seedClient.certPem, 'seed.key': pki.seedClient.keyPem,
      'other.crt': other.shootClients[0]!.certPem, 'other.key': other.shootClients[0]!.keyPem,
    };
    for (const [n, c] of Object.entries(files)) writeFileSync(join(dir, n), c);
    const cfg = loadSeedServerConfig({
      IS_HA: 'true', POD_NAME: 'vpn-seed-server-1', NAMESPACE: NS, VPN_NETWORK: VPN, SEED_POD_NETWORK: '10.1.0.0/24',
      TLS_CA_FILE: join(dir, 'ca.crt'), TLS_CERT_FILE: join(dir, 'server.crt'), TLS_KEY_FILE: join(dir, 'server.key'),
      TUNNEL_LISTEN: '127.0.0.1:0', STATUS_LISTEN: '127.0.0.1:0', ANNOUNCE_INTERVAL: '200ms',
    });
    server = new HaSeedServer(cfg, { logger: pino({ level: 'silent' }), registry: new Registry() });
    await server.start();
  });
  afterEach(async () => {
    await Promise.all(dialers.splice(0).map((d) => d.stop()));
    await until(() => server.switch.portIds.length === 0);
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Connects one endpoint; resolves with its session, or rejects with the refusal code. */
  function connect(cert: string, role: 'shoot' | 'seed', address: string, identity = `${cert}-pod`, port?: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const mac = formatMac(macFromAddress(address));
      const d = new TunnelDialer({
        target: { host: '127.0.0.1', port: port ?? server.bound.tunnel! },
        tls: { ca: pem('ca.crt'), cert: pem(`${cert}.crt`), key: pem(`${cert}.key`), servername: 'vpn-seed-server' },
        hello: () => ({ role, identity, keepaliveIntervalMs: 250, keepaliveTimeoutMs: 1000, vpnNetwork: VPN, mtu: 1500, bond: { address } }),
        onSession: (session) => {
          const c: Client = { session, frames: [], macs: [], mac, address };
          session.onPackets((b) => c.frames.push(...unpackBatch(b)));
          session.onExtension((type, payload) => {
            if (type === FrameType.MAC_ANNOUNCE) c.macs = decodeMacAnnouncement(payload);
          });
          resolve(c);
        },
        onDialError: (code) => {
          void d.stop();
          reject(new Error(code));
        },
        backoff: { minMs: 10_000, maxMs: 10_000 },
      });
      dialers.push(d);
      d.start();
    });
  }
  const pem = (f: string) => readFileSync(join(dir, f));

  it('switches frames between shoot clients and apiserver endpoints and announces who is attached', async () => {
    const s0 = await connect('s0', 'shoot', shootBondAddresses({ v6: net }, 0).v6);
    const s1 = await connect('s1', 'shoot', shootBondAddresses({ v6: net }, 1).v6);
    const api = await connect('seed', 'seed', formatAddr(0x1012));
    // everyone says hello by broadcast (as ARP would): the switch floods and learns
    s0.session.sendBatch(packBatch([frame(BCAST, s0.mac, 'arp-from-s0', s0.address)]));
    s1.session.sendBatch(packBatch([frame(BCAST, s1.mac, 'arp-from-s1', s1.address)]));
    api.session.sendBatch(packBatch([frame(BCAST, api.mac, 'arp-from-api', api.address)]));
    await until(() => s0.frames.length === 2 && s1.frames.length === 2 && api.frames.length === 2);
    expect(api.frames.map(tagOf).sort()).toEqual(['arp-from-s0', 'arp-from-s1']);
    // unicast goes only to its port
    api.session.sendBatch(packBatch([frame(s1.mac, api.mac, 'to-s1', api.address)]));
    await until(() => s1.frames.length === 3);
    expect(tagOf(s1.frames[2]!)).toBe('to-s1');
    expect(s0.frames).toHaveLength(2);
    await until(() => api.macs.length === 3);
    expect(api.macs.sort()).toEqual([s0.mac, s1.mac, api.mac].sort());
    const ready = await fetch(`http://127.0.0.1:${server.bound.status}/readyz`);
    expect(ready.status).toBe(200);
  });

  it('drops frames whose source MAC is not the port\'s own (no impersonation)', async () => {
    const s0 = await connect('s0', 'shoot', shootBondAddresses({ v6: net }, 0).v6);
    const api = await connect('seed', 'seed', formatAddr(0x1020));
    s0.session.sendBatch(packBatch([frame(BCAST, api.mac, 'i-am-the-apiserver', api.address), frame(BCAST, s0.mac, 'honest', s0.address)]));
    await until(() => api.frames.length >= 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(api.frames.map(tagOf)).toEqual(['honest']);
    expect(server.switch.stats.dropped.spoofed).toBeGreaterThan(0);
  });

  it('refuses a shoot client claiming another index, another shoot\'s certificate, and an address in use', async () => {
    await expect(connect('s0', 'shoot', shootBondAddresses({ v6: net }, 1).v6)).rejects.toThrow('RVPN_ERR_BOND_ADDRESS_INVALID');
    await expect(connect('seed', 'shoot', shootBondAddresses({ v6: net }, 0).v6)).rejects.toThrow('RVPN_ERR_BOND_ADDRESS_INVALID');
    await expect(connect('other', 'shoot', shootBondAddresses({ v6: net }, 0).v6)).rejects.toThrow(/RVPN_ERR_TUNNEL/);
    await connect('seed', 'seed', formatAddr(0x1030), 'kube-apiserver-a');
    await expect(connect('seed', 'seed', formatAddr(0x1030), 'kube-apiserver-b')).rejects.toThrow('RVPN_ERR_BOND_ADDRESS_IN_USE');
  });

  it('treats other spellings of an address as the same endpoint: one port, one MAC', async () => {
    const spellings = ['fd8f:6d53:b97a:1::100', 'fd8f:6d53:b97a:1:0::100', 'FD8F:6D53:B97A:1::100', 'fd8f:6d53:b97a:1:0:0:0:100', 'fd8f:6d53:b97a:0001:0000::0100'];
    const clients: Client[] = [];
    for (const a of spellings) clients.push(await connect('s0', 'shoot', a));
    await until(() => server.switch.portIds.length === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(server.switch.portIds).toHaveLength(1);
    expect(server.switch.attachedMacs()).toEqual([formatMac(macFromAddress('fd8f:6d53:b97a:1::100'))]);
    const api = [];
    for (const a of [formatAddr(0x1050), 'fd8f:6d53:b97a:1:0:0:0:1050', 'FD8F:6D53:B97A:1::1050']) api.push(await connect('seed', 'seed', a, 'kube-apiserver-z'));
    await new Promise((r) => setTimeout(r, 100));
    expect(server.switch.portIds).toHaveLength(2);
  });

  it('lets a shoot port send only from its own addresses and the shoot networks; no redirects, no RAs', async () => {
    const s0 = await connect('s0', 'shoot', shootBondAddresses({ v6: net }, 0).v6);
    const api = await connect('seed', 'seed', formatAddr(0x1060));
    const eth = (ip: Buffer, type = 0x0800) => Buffer.concat([Buffer.from(BCAST, 'hex'), Buffer.from(s0.mac.replace(/:/g, ''), 'hex'), Buffer.from([type >> 8, type & 0xff]), ip]);
    const shootV4 = '192.168.123.16';
    const before = { ...server.switch.stats.dropped };
    s0.session.sendBatch(packBatch([
      eth(icmpEcho('10.1.0.99', '192.168.123.70', 1, 1)), // a seed address: spoofed
      eth(icmpEcho('192.168.123.64', '192.168.123.70', 1, 2)), // an apiserver endpoint's address: spoofed
      eth(ipv6Packet(v6Bytes('fd8f:6d53:b97a:1::1061'), v6Bytes('ff02::1'), Buffer.from('spoofed-v6')), 0x86dd),
      eth(ipv6Packet(v6Bytes(s0.address), v6Bytes('ff02::1'), icmp6(134, 0, Buffer.alloc(8)), 58), 0x86dd), // router advertisement
      eth(icmp4Error(shootV4, '192.168.123.70', icmpEcho('192.168.123.70', '100.96.1.10', 1, 1), { type: 5, code: 1 })), // redirect
      eth(icmpEcho('100.96.1.10', '192.168.123.70', 9, 9, { reply: true })), // a reply forwarded from the shoot: fine
      eth(icmpEcho(shootV4, '192.168.123.70', 9, 10, { reply: true })), // its own address: fine
    ]));
    await until(() => api.frames.length >= 2);
    await new Promise((r) => setTimeout(r, 100));
    expect(api.frames).toHaveLength(2);
    const d = server.switch.stats.dropped;
    expect(d.ip_spoofed - before.ip_spoofed).toBe(3);
    expect(d.icmp - before.icmp).toBe(2);
  });

  it('rate-limits what one port may flood', async () => {
    const s0 = await connect('s0', 'shoot', shootBondAddresses({ v6: net }, 0).v6);
    const api = await connect('seed', 'seed', formatAddr(0x1070));
    const before = server.switch.stats.dropped.broadcastLimit;
    s0.session.sendBatch(packBatch(Array.from({ length: 600 }, (_, i) => frame(BCAST, s0.mac, `b${i}`, s0.address))));
    await until(() => server.switch.stats.dropped.broadcastLimit > before);
    await new Promise((r) => setTimeout(r, 100));
    // HA_BROADCAST_RATE 200/s: one second's worth passes at once, the rest of the burst is dropped
    expect(api.frames.length).toBeLessThanOrEqual(210);
    expect(api.frames.length).toBeGreaterThanOrEqual(190);
  });

  it('refuses endpoints beyond HA_MAX_PORTS with RVPN_ERR_SWITCH_FULL', async () => {
    const cfg = loadSeedServerConfig({
      IS_HA: 'true', POD_NAME: 'vpn-seed-server-0', NAMESPACE: NS, VPN_NETWORK: VPN, HA_MAX_PORTS: '2',
      TLS_CA_FILE: join(dir, 'ca.crt'), TLS_CERT_FILE: join(dir, 'server.crt'), TLS_KEY_FILE: join(dir, 'server.key'),
      TUNNEL_LISTEN: '127.0.0.1:0', STATUS_LISTEN: '127.0.0.1:0',
    });
    const small = new HaSeedServer(cfg, { logger: pino({ level: 'silent' }), registry: new Registry() });
    await small.start();
    try {
      await connect('seed', 'seed', formatAddr(0x1080), 'a', small.bound.tunnel);
      await connect('seed', 'seed', formatAddr(0x1081), 'b', small.bound.tunnel);
      await expect(connect('seed', 'seed', formatAddr(0x1082), 'c', small.bound.tunnel)).rejects.toThrow('RVPN_ERR_SWITCH_FULL');
      // the same endpoint reconnecting still gets its port back
      await connect('seed', 'seed', formatAddr(0x1081), 'b', small.bound.tunnel);
      expect(small.switch.portIds.length).toBeLessThanOrEqual(2);
    } finally {
      await Promise.all(dialers.splice(0).map((d) => d.stop()));
      await small.stop();
    }
  });

  it('announces on a change and stays quiet while nothing changes (no N × N bytes every interval)', async () => {
    const s0 = await connect('s0', 'shoot', shootBondAddresses({ v6: net }, 0).v6);
    let announcements = 0;
    s0.session.onExtension((type) => { if (type === FrameType.MAC_ANNOUNCE) announcements++; });
    const api = await connect('seed', 'seed', formatAddr(0x1090));
    await until(() => announcements >= 1);
    await new Promise((r) => setTimeout(r, 300));
    const settled = announcements;
    await new Promise((r) => setTimeout(r, 1000)); // five ANNOUNCE_INTERVALs of 200 ms
    expect(announcements).toBe(settled);
    api.session.close();
    await until(() => announcements > settled);
  });

  it('lets the same endpoint reconnect and replaces its old port', async () => {
    const first = await connect('seed', 'seed', formatAddr(0x1040), 'kube-apiserver-x');
    await connect('seed', 'seed', formatAddr(0x1040), 'kube-apiserver-x');
    const end = await first.session.closed;
    expect(end.reason).toMatch(/replaced/);
    expect(server.switch.portIds).toHaveLength(1);
  });
});

function formatAddr(offset: number): string {
  return `fd8f:6d53:b97a:1::${offset.toString(16)}`;
}
