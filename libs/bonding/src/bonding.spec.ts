import { describe, expect, it } from 'vitest';
import { Cidr } from '@rvpn/config';
import { icmp4Error, icmp6, icmpEcho, ipv6Packet, v6Bytes } from '@rvpn/tunnel/testing';
import {
  Bond, L2Switch, announcements, canonicalAddress, createPortGuard, decodeMacAnnouncement, encodeMacAnnouncement, formatMac, gratuitousArp, linkLocalFromMac,
  macFromAddress, unsolicitedNa, ETHERTYPE_ARP, etherType, MAX_ANNOUNCED_MACS,
} from './index.js';

const A_MAC = '02:00:00:00:00:0a';
const B_MAC = '02:00:00:00:00:0b';

/** A frame from src to dst with a payload tag, so tests can tell frames apart. */
function frame(dst: string, src: string, tag: string): Buffer {
  const f = Buffer.alloc(14 + tag.length);
  Buffer.from(dst.replace(/:/g, ''), 'hex').copy(f, 0);
  Buffer.from(src.replace(/:/g, ''), 'hex').copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f.write(tag, 14);
  return f;
}
const tag = (f: Buffer) => f.subarray(14).toString();
const BCAST = 'ff:ff:ff:ff:ff:ff';

function clock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('ethernet helpers', () => {
  it('derives a stable, locally administered unicast MAC from a bond address', () => {
    const a = macFromAddress('fd8f:6d53:b97a:1::2');
    expect(formatMac(a)).toBe(formatMac(macFromAddress('fd8f:6d53:b97a:1::2')));
    expect(formatMac(a)).not.toBe(formatMac(macFromAddress('fd8f:6d53:b97a:1::3')));
    expect(a[0]! & 0x03).toBe(0x02);
  });

  it('builds a gratuitous ARP and an unsolicited NA with a valid ICMPv6 checksum', () => {
    const mac = macFromAddress('192.168.123.2');
    const arp = gratuitousArp(mac, '192.168.123.2');
    expect(etherType(arp)).toBe(ETHERTYPE_ARP);
    expect(formatMac(arp.subarray(0, 6))).toBe(BCAST);
    expect([...arp.subarray(28, 32)]).toEqual([192, 168, 123, 2]); // sender IP
    expect([...arp.subarray(38, 42)]).toEqual([192, 168, 123, 2]); // target IP
    const na = unsolicitedNa(mac, 'fd8f::2');
    expect(formatMac(na.subarray(0, 6))).toBe('33:33:00:00:00:01');
    expect(na[14 + 7]).toBe(255);
    // the checksum over pseudo-header + message (checksum included) folds to 0xffff
    const icmp = na.subarray(54);
    const pseudo = Buffer.concat([na.subarray(22, 38), na.subarray(38, 54), Buffer.from([0, 0, 0, icmp.length, 0, 0, 0, 58])]);
    let sum = 0;
    for (const p of [pseudo, icmp]) for (let i = 0; i < p.length; i += 2) sum += (p[i]! << 8) | (p[i + 1] ?? 0);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    expect(sum).toBe(0xffff);
    expect(announcements(mac, ['10.0.0.1', 'fd00::1']).map(etherType)).toEqual([0x0806, 0x86dd]);
  });

  it('encodes and decodes MAC announcements, refusing truncated ones', () => {
    const macs = ['02:00:00:00:00:01', '02:00:00:00:00:02'];
    expect(decodeMacAnnouncement(encodeMacAnnouncement(macs))).toEqual(macs);
    expect(() => decodeMacAnnouncement(encodeMacAnnouncement(macs).subarray(0, 9))).toThrow(/does not hold/);
  });
});

describe('L2Switch', () => {
  const A = '02:00:00:00:00:0a';
  const B = '02:00:00:00:00:0b';
  const C = '02:00:00:00:00:0c';
  function setup(opts: { maxMacsPerPort?: number } = {}) {
    const c = clock();
    const sent: Array<[string, string]> = [];
    const changes: string[][] = [];
    const sw = new L2Switch({ send: (p, fs) => fs.forEach((f) => sent.push([p, tag(f)])), onMacsChanged: (m) => changes.push(m), now: c.now, agingMs: 10_000, ...opts });
    for (const p of ['pa', 'pb', 'pc']) sw.addPort(p);
    return { sw, sent, changes, c };
  }

  it('floods broadcast and unknown unicast to every port but the ingress, then switches learned unicast', () => {
    const { sw, sent } = setup();
    sw.receive('pa', [frame(BCAST, A, 'arp-who-has')]);
    expect(sent).toEqual([['pb', 'arp-who-has'], ['pc', 'arp-who-has']]);
    sent.length = 0;
    sw.receive('pb', [frame(A, B, 'reply')]);
    expect(sent).toEqual([['pa', 'reply']]);
    sent.length = 0;
    sw.receive('pa', [frame(C, A, 'to-unknown')]);
    expect(sent).toEqual([['pb', 'to-unknown'], ['pc', 'to-unknown']]);
    expect(sw.attachedMacs()).toEqual([A, B]);
  });

  it('relearns a MAC on a new port at once from a gratuitous ARP', () => {
    const { sw, sent } = setup();
    sw.receive('pa', [frame(BCAST, A, 'hello')]);
    sw.receive('pb', [frame(BCAST, B, 'hello')]);
    sw.receive('pc', [gratuitousArp(Buffer.from(A.replace(/:/g, ''), 'hex'), '10.0.0.1')]);
    expect(sw.portOf(A)).toBe('pc');
    sent.length = 0;
    sw.receive('pb', [frame(A, B, 'after-move')]);
    expect(sent).toEqual([['pc', 'after-move']]);
    expect(sw.stats.moves).toBe(1);
  });

  it('forgets the MACs of a removed port and announces the change; ages entries out', () => {
    const { sw, changes, c } = setup();
    sw.receive('pa', [frame(BCAST, A, 'x')]);
    sw.receive('pb', [frame(BCAST, B, 'x')]);
    sw.removePort('pa');
    expect(changes.at(-1)).toEqual([B]);
    c.advance(10_001);
    sw.tick();
    expect(changes.at(-1)).toEqual([]);
  });

  it('switches a mixed batch frame by frame: runs of one conversation, a change of source or destination, a spoofed frame inside a run', () => {
    const { sw, sent } = setup();
    sw.addPort('pd', { allowedMacs: [A] });
    sw.receive('pb', [frame(BCAST, B, 'x')]);
    sw.receive('pc', [frame(BCAST, C, 'x')]);
    sent.length = 0;
    sw.receive('pd', [
      frame(B, A, 'b1'), frame(B, A, 'b2'), frame(C, A, 'c1'), frame(B, A, 'b3'),
      frame(B, '02:00:00:00:00:ee', 'spoofed'), frame(B, A, 'b4'), frame(BCAST, A, 'bc'), frame(C, A, 'c2'),
    ]);
    const to = (p: string) => sent.filter(([q]) => q === p).map(([, t]) => t);
    expect(to('pb')).toEqual(['b1', 'b2', 'b3', 'b4', 'bc']);
    expect(to('pc')).toEqual(['c1', 'bc', 'c2']);
    expect(to('pa')).toEqual(['bc']);
    expect(sw.stats.dropped.spoofed).toBe(1);
    expect(sw.portOf(A)).toBe('pd');
  });

  it('caps the MACs an (untrusted) port may claim', () => {
    const { sw } = setup({ maxMacsPerPort: 2 });
    for (let i = 0; i < 5; i++) sw.receive('pa', [frame(BCAST, `02:00:00:00:01:0${i}`, 'flood')]);
    expect(sw.attachedMacs()).toHaveLength(2);
    expect(sw.stats.dropped.macLimit).toBe(3);
  });
});

describe('Bond (active-backup)', () => {
  const ME = macFromAddress('fd8f::10');
  const PEER = '02:00:00:00:00:99';
  function setup(opts: { primary?: string; failbackDelayMs?: number; mode?: 'active-backup' | 'balance-rr' } = {}) {
    const c = clock();
    const sent: Array<[string, string]> = [];
    const delivered: string[] = [];
    const switches: Array<{ from?: string; to?: string; reason: string }> = [];
    const bond = new Bond({
      links: ['s0', 's1'], mac: ME, addresses: ['fd8f::10'], now: c.now, ...opts,
      send: (id, fs) => fs.forEach((f) => sent.push([id, etherType(f) === 0x86dd ? 'NA' : tag(f)])),
      deliver: (fs) => fs.forEach((f) => delivered.push(tag(f))),
      onSwitch: (e) => switches.push(e),
    });
    return { bond, sent, delivered, switches, c };
  }

  it('drops while no link is healthy, takes the first healthy link and announces itself on it', () => {
    const { bond, sent } = setup();
    bond.sendFromDevice([frame(PEER, formatMac(ME), 'early')]);
    expect(bond.stats.dropped.noLink).toBe(1);
    bond.setLinkState('s0', true);
    expect(bond.active).toBe('s0');
    expect(sent).toEqual([['s0', 'NA']]);
  });

  it('fails over at once when the active link dies, and delivers frames from any healthy link', () => {
    const { bond, sent, delivered, switches } = setup();
    bond.setLinkState('s0', true);
    bond.setLinkState('s1', true);
    expect(bond.active).toBe('s0');
    bond.receiveFromLink('s1', [frame(formatMac(ME), PEER, 'via-backup')]);
    expect(delivered).toEqual(['via-backup']);
    sent.length = 0;
    bond.setLinkState('s0', false);
    expect(bond.active).toBe('s1');
    expect(sent).toEqual([['s1', 'NA']]);
    expect(switches.at(-1)).toMatchObject({ from: 's0', to: 's1', reason: 's0 went down' });
    bond.receiveFromLink('s0', [frame(formatMac(ME), PEER, 'dead-link')]);
    expect(delivered).toEqual(['via-backup']);
  });

  it('fails back to the primary only after it stayed healthy for the delay (a flapping link causes no flapping)', () => {
    const { bond, switches, c } = setup({ primary: 's0', failbackDelayMs: 2000 });
    bond.setLinkState('s1', true);
    expect(bond.active).toBe('s1');
    for (let i = 0; i < 5; i++) {
      bond.setLinkState('s0', true);
      c.advance(1000);
      bond.tick();
      bond.setLinkState('s0', false);
      c.advance(100);
      bond.tick();
    }
    expect(bond.active).toBe('s1');
    expect(switches).toHaveLength(1);
    bond.setLinkState('s0', true);
    c.advance(1999);
    bond.tick();
    expect(bond.active).toBe('s1');
    c.advance(1);
    bond.tick();
    expect(bond.active).toBe('s0');
    expect(switches.at(-1)?.reason).toMatch(/fail-back/);
  });

  it('sends unicast out of a link whose server has the destination, and group frames out of every healthy link', () => {
    const { bond, sent } = setup();
    bond.setLinkState('s0', true);
    bond.setLinkState('s1', true);
    bond.setAnnouncedMacs('s0', ['02:00:00:00:00:01']);
    bond.setAnnouncedMacs('s1', ['02:00:00:00:00:01', PEER]);
    sent.length = 0;
    bond.sendFromDevice([
      frame(PEER, formatMac(ME), 'only-on-s1'),
      frame('02:00:00:00:00:01', formatMac(ME), 'on-both'),
      frame('02:00:00:00:00:77', formatMac(ME), 'unknown'),
      frame(BCAST, formatMac(ME), 'arp'),
    ]);
    expect(sent.sort()).toEqual([['s0', 'arp'], ['s0', 'on-both'], ['s0', 'unknown'], ['s1', 'arp'], ['s1', 'only-on-s1']].sort());
    expect(bond.stats.perDestinationDetours).toBe(1);
  });

  it('chooses the link per destination in a batch that changes destination between runs', () => {
    const { bond, sent } = setup();
    bond.setLinkState('s0', true);
    bond.setLinkState('s1', true);
    bond.setAnnouncedMacs('s0', ['02:00:00:00:00:01']);
    bond.setAnnouncedMacs('s1', [PEER]);
    sent.length = 0;
    const me = formatMac(ME);
    bond.sendFromDevice([frame(PEER, me, 'p1'), frame(PEER, me, 'p2'), frame('02:00:00:00:00:01', me, 'o1'), frame(PEER, me, 'p3'), frame(BCAST, me, 'g'), frame(PEER, me, 'p4')]);
    expect(sent.filter(([id]) => id === 's1').map(([, t]) => t)).toEqual(['p1', 'p2', 'p3', 'g', 'p4']);
    expect(sent.filter(([id]) => id === 's0').map(([, t]) => t)).toEqual(['o1', 'g']);
  });

  it('balance-rr rotates unicast over the healthy links', () => {
    const { bond, sent } = setup({ mode: 'balance-rr' });
    bond.setLinkState('s0', true);
    bond.setLinkState('s1', true);
    sent.length = 0;
    bond.sendFromDevice([1, 2, 3, 4].map((i) => frame(PEER, formatMac(ME), `f${i}`)));
    expect(sent.filter(([id]) => id === 's0').map(([, t]) => t)).toEqual(['f1', 'f3']);
    expect(sent.filter(([id]) => id === 's1').map(([, t]) => t)).toEqual(['f2', 'f4']);
  });
});

describe('two bonds over two switches', () => {
  it('a failure of ONE link between one endpoint and one server does not cut traffic between the endpoints', () => {
    const sw: Record<string, L2Switch> = {};
    const bonds: Record<string, Bond> = {};
    const got: Record<string, string[]> = { A: [], B: [] };
    const mac = { A: macFromAddress('fd8f::a'), B: macFromAddress('fd8f::b') };
    for (const s of ['s0', 's1']) {
      sw[s] = new L2Switch({
        send: (port, fs) => bonds[port]!.receiveFromLink(s, fs),
        onMacsChanged: (macs) => { for (const b of Object.values(bonds)) b.setAnnouncedMacs(s, macs); },
      });
    }
    for (const e of ['A', 'B'] as const) {
      bonds[e] = new Bond({ links: ['s0', 's1'], mac: mac[e], addresses: [`fd8f::${e.toLowerCase()}`], send: (s, fs) => sw[s]!.receive(e, fs), deliver: (fs) => fs.filter((f) => etherType(f) === 0x0800).forEach((f) => got[e]!.push(tag(f))) });
    }
    for (const s of ['s0', 's1']) for (const e of ['A', 'B']) sw[s]!.addPort(e);
    for (const e of ['A', 'B']) for (const s of ['s0', 's1']) bonds[e]!.setLinkState(s, true);
    // both announced themselves on s0 (their active link); broadcasts teach s1 as well
    for (const e of ['A', 'B'] as const) bonds[e]!.sendFromDevice([frame(BCAST, formatMac(mac[e]), `hello-${e}`)]);
    expect(sw.s1!.attachedMacs()).toHaveLength(2);
    got.A = [];
    got.B = [];

    // cut A's link to s0: A fails over to s1, s0 forgets A; B stays active on s0
    bonds.A!.setLinkState('s0', false);
    sw.s0!.removePort('A');
    expect(bonds.A!.active).toBe('s1');
    expect(bonds.B!.active).toBe('s0');
    for (let i = 0; i < 10; i++) {
      bonds.A!.sendFromDevice([frame(formatMac(mac.B), formatMac(mac.A), `a${i}`)]);
      bonds.B!.sendFromDevice([frame(formatMac(mac.A), formatMac(mac.B), `b${i}`)]);
    }
    expect(got.B).toEqual(Array.from({ length: 10 }, (_, i) => `a${i}`));
    expect(got.A).toEqual(Array.from({ length: 10 }, (_, i) => `b${i}`));
    expect(bonds.B!.stats.perDestinationDetours).toBe(10);
  });
});

describe('bond network addresses', () => {
  it('gives shoot clients fixed addresses and endpoints slots, in both families, and maps them back', async () => {
    const { Cidr } = await import('@rvpn/config');
    const { shootBondAddresses, endpointBondAddresses, shootIndexOf, endpointSlotOf, randomEndpointSlot, ENDPOINT_SLOTS } = await import('./index.js');
    const nets = { v6: Cidr.parse('fd8f:6d53:b97a:1::/96'), v4: Cidr.parse('192.168.123.0/24') };
    expect(shootBondAddresses(nets, 1)).toEqual({ v6: 'fd8f:6d53:b97a:1::101', v4: '192.168.123.17' });
    expect(endpointBondAddresses(nets, 0)).toEqual({ v6: 'fd8f:6d53:b97a:1::1000', v4: '192.168.123.64' });
    expect(endpointBondAddresses(nets, ENDPOINT_SLOTS - 1).v4).toBe('192.168.123.254');
    expect(shootIndexOf(nets.v6, 'fd8f:6d53:b97a:1::101')).toBe(1);
    expect(shootIndexOf(nets.v6, 'fd8f:6d53:b97a:1::1000')).toBeUndefined();
    expect(endpointSlotOf(nets.v6, 'fd8f:6d53:b97a:1::10be')).toBe(190);
    expect(endpointSlotOf(nets.v6, 'fd8f:6d53:b97a:1::10bf')).toBeUndefined();
    expect(() => endpointBondAddresses(nets, ENDPOINT_SLOTS)).toThrow(RangeError);
    expect(randomEndpointSlot(() => 0.999999)).toBe(ENDPOINT_SLOTS - 1);
  });
});

describe('Bond.attachedAnywhere', () => {
  it('tells whether any healthy link announced a MAC, and knows when it cannot tell', () => {
    const bond = new Bond({ links: ['s0', 's1'], mac: macFromAddress('fd00::1'), addresses: [], send: () => undefined, deliver: () => undefined });
    expect(bond.attachedAnywhere('02:00:00:00:00:01')).toBeUndefined();
    bond.setLinkState('s0', true);
    bond.setLinkState('s1', true);
    expect(bond.attachedAnywhere('02:00:00:00:00:01')).toBeUndefined(); // nothing announced yet
    bond.setAnnouncedMacs('s0', ['02:00:00:00:00:01']);
    bond.setAnnouncedMacs('s1', ['02:00:00:00:00:02']);
    expect(bond.attachedAnywhere('02:00:00:00:00:01')).toBe(true);
    bond.setAnnouncedMacs('s0', ['02:00:00:00:00:03']);
    expect(bond.attachedAnywhere('02:00:00:00:00:01')).toBe(false);
  });
});

describe('L2Switch pinned ports', () => {
  it('announces a pinned MAC as soon as its port exists, never ages it, and drops it with the port', () => {
    let t = 0;
    const changes: string[][] = [];
    const sw = new L2Switch({ send: () => undefined, onMacsChanged: (m) => changes.push(m), now: () => t, agingMs: 1000 });
    sw.addPort('shoot-0', { allowedMacs: ['02:00:00:00:00:01'] });
    expect(changes.at(-1)).toEqual(['02:00:00:00:00:01']);
    t += 5000;
    sw.tick();
    expect(sw.attachedMacs()).toEqual(['02:00:00:00:00:01']);
    sw.removePort('shoot-0');
    expect(changes.at(-1)).toEqual([]);
  });
});

describe('L2Switch limits', () => {
  const mac = (i: number) => `02:00:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

  it('refuses a port beyond maxPorts with RVPN_ERR_SWITCH_FULL, and re-adding an existing one is fine', () => {
    const sw = new L2Switch({ send: () => undefined, maxPorts: 2 });
    sw.addPort('a');
    sw.addPort('b');
    expect(() => sw.addPort('c')).toThrow(expect.objectContaining({ code: 'RVPN_ERR_SWITCH_FULL' }));
    expect(() => sw.addPort('b')).not.toThrow();
    expect(sw.stats.refusedPorts).toBe(1);
  });

  it('never holds more MACs than one announcement carries, so announcing never throws', () => {
    const sw = new L2Switch({ send: () => undefined, maxMacsPerPort: 100_000, maxMacs: 100_000 });
    sw.addPort('flood');
    for (let i = 0; i < MAX_ANNOUNCED_MACS + 1000; i++) sw.receive('flood', [frame(BCAST, mac(i), 'x')]);
    expect(sw.attachedMacs()).toHaveLength(MAX_ANNOUNCED_MACS);
    expect(sw.stats.dropped.macLimit).toBe(1000);
    expect(() => encodeMacAnnouncement(sw.attachedMacs())).not.toThrow();
  });

  it('lets each port flood at most broadcastRate frames per second (a bucket one second deep)', () => {
    const c = clock();
    let delivered = 0;
    const sw = new L2Switch({ send: (_p, fs) => (delivered += fs.length), broadcastRate: 10, now: c.now });
    for (const p of ['pa', 'pb', 'pc']) sw.addPort(p);
    sw.receive('pa', Array.from({ length: 50 }, (_, i) => frame(BCAST, A_MAC, `b${i}`)));
    expect(delivered).toBe(10 * 2); // to pb and pc
    expect(sw.stats.dropped.broadcastLimit).toBe(40);
    sw.receive('pb', [frame(BCAST, B_MAC, 'other port has its own bucket')]);
    expect(delivered).toBe(22);
    c.advance(500);
    sw.receive('pa', Array.from({ length: 50 }, (_, i) => frame(BCAST, A_MAC, `c${i}`)));
    expect(delivered).toBe(22 + 5 * 2);
    // unicast to a known MAC is not limited
    sw.receive('pa', Array.from({ length: 50 }, () => frame(B_MAC, A_MAC, 'u')));
    expect(delivered).toBe(32 + 50);
  });
});

describe('port guard (a shoot client on an HA server)', () => {
  const SHOOT_V6 = 'fd8f:6d53:b97a:1::100';
  const SHOOT_V4 = '192.168.123.16';
  const me = macFromAddress(SHOOT_V6);
  const guard = createPortGuard({
    mac: me,
    addresses: [SHOOT_V6, SHOOT_V4],
    forwardedSources: [Cidr.parse('100.96.0.0/11'), Cidr.parse('fd10:96::/32')],
    peers: [Cidr.parse('fd8f:6d53:b97a:1::/96'), Cidr.parse('192.168.123.0/24')],
  });
  const eth = (payload: Buffer, type: number, src = me) => Buffer.concat([Buffer.from(BCAST.replace(/:/g, ''), 'hex'), Buffer.from(src), Buffer.from([type >> 8, type & 0xff]), payload]);
  const ip4 = (src: string, dst: string) => eth(icmpEcho(src, dst, 1, 1, { reply: true }), 0x0800);
  const ip6 = (src: string, dst: string, next = 59, payload: Buffer = Buffer.alloc(0)) => eth(ipv6Packet(v6Bytes(src), v6Bytes(dst), payload, next), 0x86dd);
  /** NS/NA body: 4 reserved/flags bytes are in the ICMP header word; target; one link-layer option. */
  const nd = (type: 135 | 136, target: string, llMac: Uint8Array) => icmp6(type, 0, Buffer.concat([Buffer.from(v6Bytes(target)), Buffer.from([type === 135 ? 1 : 2, 1]), Buffer.from(llMac)]), type === 136 ? 0x20000000 : 0);

  it('passes what a vpn-shoot bond sends: its own addresses, replies from the shoot, its GARP and NA', () => {
    expect(guard.check(ip4(SHOOT_V4, '192.168.123.64'))).toBeUndefined();
    expect(guard.check(ip4('100.96.1.10', '192.168.123.64'))).toBeUndefined();
    expect(guard.check(ip6(SHOOT_V6, 'fd8f:6d53:b97a:1::1000'))).toBeUndefined();
    expect(guard.check(ip6('fd10:96:1::10', 'fd8f:6d53:b97a:1::1000'))).toBeUndefined();
    for (const f of announcements(me, [SHOOT_V6, SHOOT_V4])) expect(guard.check(f)).toBeUndefined();
    expect(guard.check(ip6(linkLocalFromMac(me), 'ff02::1:ff00:1000', 58, nd(135, 'fd8f:6d53:b97a:1::1000', me)))).toBeUndefined();
    expect(guard.check(ip6('::', 'ff02::1:ff00:100', 58, nd(135, SHOOT_V6, me)))).toBeUndefined();
  });

  it('drops spoofed IP sources', () => {
    expect(guard.check(ip4('10.1.0.20', '192.168.123.64'))).toBe('ip_spoofed');
    expect(guard.check(ip4('192.168.123.17', '192.168.123.64'))).toBe('ip_spoofed'); // the other shoot pod
    expect(guard.check(ip6('fd8f:6d53:b97a:1::1000', 'ff02::1'))).toBe('ip_spoofed');
    expect(guard.check(ip6('fe80::1', 'ff02::1'))).toBe('ip_spoofed');
  });

  it('inspects ARP and neighbour discovery: only its own addresses at its own MAC', () => {
    expect(guard.check(gratuitousArp(me, '192.168.123.64'))).toBe('arp_spoofed');
    const otherMac = macFromAddress('x');
    const lying = gratuitousArp(me, SHOOT_V4);
    Buffer.from(otherMac).copy(lying, 14 + 8); // sender hardware address is not the frame's
    expect(guard.check(lying)).toBe('arp_spoofed');
    expect(guard.check(ip6(SHOOT_V6, 'ff02::1', 58, nd(136, 'fd8f:6d53:b97a:1::1000', me)))).toBe('nd_spoofed');
    expect(guard.check(ip6(SHOOT_V6, 'ff02::1', 58, nd(136, SHOOT_V6, otherMac)))).toBe('nd_spoofed');
    expect(guard.check(ip6(SHOOT_V6, 'ff02::1:ff00:1000', 58, nd(135, 'fd8f:6d53:b97a:1::1000', otherMac)))).toBe('nd_spoofed');
    expect(guard.check(ip6(linkLocalFromMac(me), 'ff02::2', 58, icmp6(133, 0)))).toBe('nd_spoofed');
  });

  it('drops router advertisements, redirects, unmatched ICMP errors and other EtherTypes', () => {
    expect(guard.check(ip6(linkLocalFromMac(me), 'ff02::1', 58, icmp6(134, 0, Buffer.alloc(8))))).toBe('icmp');
    expect(guard.check(ip6(SHOOT_V6, 'fd8f:6d53:b97a:1::1000', 58, icmp6(137, 0, Buffer.alloc(32))))).toBe('icmp');
    const quotedSeed = icmpEcho('10.1.0.20', '100.96.1.10', 1, 1);
    expect(guard.check(eth(icmp4Error(SHOOT_V4, '192.168.123.64', quotedSeed, { mtu: 576 }), 0x0800))).toBe('icmp');
    const quotedOurs = icmpEcho('192.168.123.64', '100.96.1.10', 1, 1);
    expect(guard.check(eth(icmp4Error(SHOOT_V4, '192.168.123.64', quotedOurs, { mtu: 1400 }), 0x0800))).toBeUndefined();
    expect(guard.check(eth(Buffer.alloc(40), 0x8100))).toBe('ethertype');
    expect(guard.check(eth(Buffer.alloc(3), 0x0800))).toBe('malformed');
  });
});

describe('canonical bond addresses', () => {
  it('spells every form of an address one way and refuses what is none', () => {
    for (const a of ['fd8f:6d53:b97a:1::100', 'FD8F:6D53:B97A:1::100', 'fd8f:6d53:b97a:1:0:0:0:100', 'fd8f:6d53:b97a:0001::0100']) expect(canonicalAddress(a)).toBe('fd8f:6d53:b97a:1::100');
    expect(canonicalAddress('192.168.123.016')).toBeUndefined();
    expect(canonicalAddress('nope')).toBeUndefined();
    expect(canonicalAddress('f'.repeat(1000))).toBeUndefined();
  });
});
