import { describe, expect, it } from 'vitest';
import { errorCode } from './errors.js';
import {
  computeNetworkMapping, DEFAULT_IPV6_MAPPED_PREFIXES, findOverlaps, netmap, packCidrs, planNetworkMapping,
  SEED_KINDS, SHOOT_KINDS, type MappingNetworks, type NetworkMappingOptions,
} from './mapping.js';
import { Cidr, CidrSet, formatIp, parseIp } from './net.js';
import { t } from './schema.js';

const c = (s: string) => Cidr.parse(s);
const cs = (...s: string[]) => s.map(c);
const ip = (s: string) => parseIp(s)!;
const str = (a: { family: 4 | 6; value: bigint } | undefined) => (a ? formatIp(a) : undefined);
const codesOf = (opts: NetworkMappingOptions) => planNetworkMapping(opts).errors.map((e) => e.code);

/** Gardener's default ranges, used by seeds and shoots alike (the case issue 12 starts from). */
const gardenerDefaults: MappingNetworks = {
  seedPods: cs('100.96.0.0/11'), seedServices: cs('100.64.0.0/13'), seedNodes: cs('10.250.0.0/16'),
  shootPods: cs('100.96.0.0/11'), shootServices: cs('100.64.0.0/13'), shootNodes: cs('10.250.0.0/16'),
};

describe('packCidrs (Gardener vpn2 NetmapSubnets)', () => {
  it('packs largest first, each at the next free block of its size, and answers in input order', () => {
    expect(packCidrs(cs('10.1.0.0/16', '10.2.0.0/16', '10.3.1.0/24', '10.4.2.240/28'), c('242.0.0.0/8')).map(String))
      .toEqual(['242.0.0.0/16', '242.1.0.0/16', '242.2.0.0/24', '242.2.1.0/28']);
    expect(packCidrs(cs('10.219.45.0/26', '10.219.45.64/26', '10.96.0.0/11', '10.128.0.0/12'), c('242.0.0.0/8')).map(String))
      .toEqual(['242.48.0.0/26', '242.48.0.64/26', '242.0.0.0/11', '242.32.0.0/12']);
    expect(packCidrs(cs('10.3.0.15/32', '100.1.12.3/32'), c('242.0.0.0/8')).map(String)).toEqual(['242.0.0.0/32', '242.0.0.1/32']);
  });

  it('fits a whole /8, or two /9, exactly', () => {
    expect(packCidrs(cs('10.0.0.0/8'), c('244.0.0.0/8')).map(String)).toEqual(['244.0.0.0/8']);
    expect(packCidrs(cs('10.0.0.0/9', '11.0.0.0/9'), c('244.0.0.0/8')).map(String)).toEqual(['244.0.0.0/9', '244.128.0.0/9']);
  });

  it.each([
    ['a /7 for a /8', ['100.0.0.0/7']],
    ['two /8 for one /8', ['10.0.0.0/8', '11.0.0.0/8']],
    ['three /9 for a /8', ['10.0.0.0/9', '11.0.0.0/9', '12.0.0.0/9']],
    ['a /9, a /9 and one more /32', ['10.0.0.0/9', '11.0.0.0/9', '12.0.0.1/32']],
  ])('refuses %s with RVPN_ERR_MAPPING_NO_FIT', (_, list) => {
    let err: unknown;
    try {
      packCidrs(cs(...list), c('243.0.0.0/8'), 'shootServices');
    } catch (e) {
      err = e;
    }
    expect(errorCode(err)).toBe('RVPN_ERR_MAPPING_NO_FIT');
    expect((err as { details: Record<string, unknown> }).details).toMatchObject({ kind: 'shootServices', range: '243.0.0.0/8', cidrs: list });
  });
});

describe('netmap', () => {
  it('keeps the host bits below the target prefix', () => {
    expect(str(netmap(ip('192.168.1.100'), c('10.0.0.0/8')))).toBe('10.168.1.100');
    expect(str(netmap(ip('172.16.5.10'), c('192.168.0.0/16')))).toBe('192.168.5.10');
    expect(str(netmap(ip('10.96.1.2'), c('242.0.0.0/11'), c('10.96.0.0/11')))).toBe('242.0.1.2');
    expect(str(netmap(ip('fd00:10:244:1::5'), c('fd6d:6170:400::/56')))).toBe('fd6d:6170:400:1::5');
  });
  it('refuses another family or an address outside the source prefix', () => {
    expect(() => netmap(ip('2001:db8::1'), c('10.0.0.0/8'))).toThrow(RangeError);
    expect(() => netmap(ip('10.1.0.1'), c('242.0.0.0/16'), c('10.2.0.0/16'))).toThrow(RangeError);
  });
});

describe('findOverlaps', () => {
  const seedNets = { seedPods: c('10.1.0.0/16'), seedNodes: c('10.2.0.0/16'), seedServices: c('10.3.0.0/16') };
  const shootNets = { shootNodes: c('10.11.0.0/16'), shootServices: c('10.12.0.0/16'), shootPods: c('10.13.0.0/16') };
  const pairs = SEED_KINDS.flatMap((s) => SHOOT_KINDS.map((h) => [s, h] as const));

  it.each(pairs)('finds %s overlapping %s, and only that pair', (seedKind, shootKind) => {
    // the shoot network of this kind moves into the seed network of this kind; the others stay apart
    const networks: MappingNetworks = {
      ...Object.fromEntries(SEED_KINDS.map((k) => [k, [seedNets[k]]])),
      ...Object.fromEntries(SHOOT_KINDS.map((k) => [k, [k === shootKind ? c(`${formatIp({ family: 4, value: seedNets[seedKind].network })}/24`) : shootNets[k]]])),
    };
    const o = findOverlaps(networks);
    expect(o.map((x) => [x.seed.kind, x.shoot.kind])).toEqual([[seedKind, shootKind]]);
    expect(o[0]!.family).toBe(4);
    const m = computeNetworkMapping({ mode: 'auto', networks, families: [4] });
    expect(m.family(4)).toMatchObject({ active: true, reason: 'overlap' });
  });

  it('compares per family: an IPv4 and an IPv6 network never overlap', () => {
    expect(findOverlaps({ seedPods: cs('0.0.0.0/0'), shootPods: cs('fd00::/8') })).toEqual([]);
    expect(findOverlaps({ seedNodes: cs('fd00:10::/32'), shootNodes: cs('fd00:10:1::/48', '10.0.0.0/8') }).map((o) => [o.family, String(o.shoot.cidr)]))
      .toEqual([[6, 'fd00:10:1::/48']]);
  });

  it('ignores families the tunnel does not carry', () => {
    expect(findOverlaps({ seedPods: cs('fd00::/8'), shootPods: cs('fd00:1::/64') }, [4])).toEqual([]);
  });
});

describe('computeNetworkMapping', () => {
  it("maps Gardener's default ranges on a seed that uses the same ranges (IPv4, auto)", () => {
    const m = computeNetworkMapping({ mode: 'auto', networks: gardenerDefaults, families: [4] });
    expect(m.isActive()).toBe(true);
    expect(m.family(4)).toMatchObject({ active: true, reason: 'overlap' });
    expect(m.overlaps.map((o) => `${o.seed.kind}/${o.shoot.kind}`).sort()).toEqual(['seedNodes/shootNodes', 'seedPods/shootPods', 'seedServices/shootServices']);
    expect(m.networks.map((n) => `${n.side} ${n.kind} ${n.real} -> ${n.mapped}`)).toEqual([
      'seed seedPods 100.96.0.0/11 -> 241.0.0.0/11',
      'shoot shootNodes 10.250.0.0/16 -> 242.0.0.0/16',
      'shoot shootServices 100.64.0.0/13 -> 243.0.0.0/13',
      'shoot shootPods 100.96.0.0/11 -> 244.0.0.0/11',
    ]);
    // the same real address means different things on each side, and differs in the tunnel
    expect(str(m.toMapped('100.96.3.4', 'shoot'))).toBe('244.0.3.4');
    expect(str(m.toMapped('100.96.3.4', 'seed'))).toBe('241.0.3.4');
    expect(str(m.toMapped('100.64.0.1', 'shoot'))).toBe('243.0.0.1');
    expect(str(m.toMapped('10.250.7.8', 'shoot'))).toBe('242.0.7.8');
    expect(m.toMapped('10.250.7.8', 'seed')).toBeUndefined(); // seed nodes are not sources in the tunnel
    expect(m.toMapped('192.0.2.1', 'shoot')).toBeUndefined();
    expect(m.toMapped('not an address', 'shoot')).toBeUndefined();
    const back = m.toReal('244.0.3.4')!;
    expect([str(back.address), back.side, back.kind]).toEqual(['100.96.3.4', 'shoot', 'shootPods']);
    const seed = m.toReal('241.0.3.4')!;
    expect([str(seed.address), seed.side, seed.kind]).toEqual(['100.96.3.4', 'seed', 'seedPods']);
    expect(m.toReal('244.32.0.0')).toBeUndefined(); // past the /11
    expect(m.tunnelCidrs().map(String)).toEqual(['242.0.0.0/16', '243.0.0.0/13', '244.0.0.0/11']);
    expect(m.tunnelCidrs('seed').map(String)).toEqual(['241.0.0.0/11']);
    expect(m.toJSON()).toEqual({
      mode: 'auto',
      families: [{ family: 4, active: true, reason: 'overlap', networks: [
        'seedPods 100.96.0.0/11 -> 241.0.0.0/11', 'shootNodes 10.250.0.0/16 -> 242.0.0.0/16', 'shootServices 100.64.0.0/13 -> 243.0.0.0/13', 'shootPods 100.96.0.0/11 -> 244.0.0.0/11',
      ] }],
    });
  });

  it('leaves a family without overlaps as it is: every network maps onto itself', () => {
    const m = computeNetworkMapping({ mode: 'auto', networks: { seedPods: cs('10.1.0.0/16'), shootPods: cs('100.96.0.0/11'), shootServices: cs('100.64.0.0/13') }, families: [4] });
    expect(m.isActive()).toBe(false);
    expect(m.family(4)).toMatchObject({ active: false, reason: 'none' });
    expect(str(m.toMapped('100.96.3.4', 'shoot'))).toBe('100.96.3.4');
    expect(m.toReal('100.96.3.4')).toMatchObject({ side: 'shoot', kind: 'shootPods' });
    expect(m.toReal('10.1.0.9')).toMatchObject({ side: 'seed', kind: 'seedPods' });
    expect(m.tunnelCidrs().map(String)).toEqual(['100.64.0.0/13', '100.96.0.0/11']);
    expect(m.family(6)).toBeUndefined();
  });

  it('maps without overlaps when forced (always), and refuses overlaps when mapping is off (never)', () => {
    const apart: MappingNetworks = { seedPods: cs('10.1.0.0/16'), shootPods: cs('100.96.0.0/11') };
    const always = computeNetworkMapping({ mode: 'always', networks: apart, families: [4, 6] });
    expect(always.families.map((f) => [f.family, f.active, f.reason])).toEqual([[4, true, 'always'], [6, true, 'always']]);
    expect(str(always.toMapped('100.96.0.1', 'shoot'))).toBe('244.0.0.1');
    expect(str(always.toMapped('10.1.2.3', 'seed'))).toBe('241.0.2.3');

    const never = computeNetworkMapping({ mode: 'never', networks: apart, families: [4] });
    expect(never.family(4)).toMatchObject({ active: false, reason: 'never' });

    const { mapping, errors } = planNetworkMapping({ mode: 'never', networks: gardenerDefaults, families: [4] });
    expect(mapping).toBeUndefined();
    expect(errors.map((e) => e.code)).toEqual(['RVPN_ERR_MAPPING_OVERLAP_NOT_ALLOWED']);
    expect((errors[0]!.details!.overlaps as unknown[]).length).toBe(3);
    expect(() => computeNetworkMapping({ mode: 'never', networks: gardenerDefaults, families: [4] })).toThrow(expect.objectContaining({ code: 'RVPN_ERR_MAPPING_OVERLAP_NOT_ALLOWED' }));
  });

  it('decides per family: dual stack with only IPv4 overlapping maps IPv4 only', () => {
    const m = computeNetworkMapping({
      mode: 'auto', families: [4, 6],
      networks: { ...gardenerDefaults, seedPods: cs('100.96.0.0/11', 'fd00:1::/56'), shootPods: cs('100.96.0.0/11', 'fd00:2::/56') },
    });
    expect(m.families.map((f) => [f.family, f.active])).toEqual([[4, true], [6, false]]);
    expect(str(m.toMapped('fd00:2::1', 'shoot'))).toBe('fd00:2::1');
    expect(str(m.toMapped('100.96.0.1', 'shoot'))).toBe('244.0.0.1');
    expect(m.tunnelCidrs().map(String)).toEqual(['242.0.0.0/16', '243.0.0.0/13', '244.0.0.0/11', 'fd00:2::/56']);
  });

  it('maps IPv6 into the documented ULA prefixes, host bits kept', () => {
    const networks: MappingNetworks = {
      seedPods: cs('fd00:10:244::/56'), seedServices: cs('fd00:10:96::/112'),
      shootPods: cs('fd00:10:244::/56'), shootServices: cs('fd00:10:96::/112'), shootNodes: cs('2001:db8:1::/64', '2001:db8:2::/64'),
    };
    const m = computeNetworkMapping({ mode: 'auto', networks, families: [6] });
    expect(m.family(6)).toMatchObject({ active: true, reason: 'overlap' });
    expect(m.networks.map((n) => `${n.kind} ${n.real} -> ${n.mapped}`)).toEqual([
      'seedPods fd00:10:244::/56 -> fd6d:6170:100::/56',
      'shootNodes 2001:db8:1::/64 -> fd6d:6170:200::/64',
      'shootNodes 2001:db8:2::/64 -> fd6d:6170:200:1::/64',
      'shootServices fd00:10:96::/112 -> fd6d:6170:300::/112',
      'shootPods fd00:10:244::/56 -> fd6d:6170:400::/56',
    ]);
    expect(str(m.toMapped('fd00:10:244:1::5', 'shoot'))).toBe('fd6d:6170:400:1::5');
    expect(str(m.toMapped('fd00:10:244:1::5', 'seed'))).toBe('fd6d:6170:100:1::5');
    expect(str(m.toMapped('2001:db8:2::a', 'shoot'))).toBe('fd6d:6170:200:1::a');
    expect(str(m.toReal('fd6d:6170:300::a')!.address)).toBe('fd00:10:96::a');
  });

  it('takes IPv6 mapped prefixes from the options', () => {
    const m = computeNetworkMapping({ mode: 'always', families: [6], networks: { shootPods: cs('fd00:2::/64') }, ipv6Prefixes: { shootPods: c('fdaa:bb::/48') } });
    expect(String(m.family(6)!.prefixes.shootPods)).toBe('fdaa:bb::/48');
    expect(String(m.family(6)!.prefixes.shootNodes)).toBe(String(DEFAULT_IPV6_MAPPED_PREFIXES.shootNodes));
    expect(str(m.toMapped('fd00:2::9', 'shoot'))).toBe('fdaa:bb::9');
  });

  it('the default IPv6 prefixes avoid the default VPN_NETWORK (which holds the HA bond addresses) and each other', () => {
    expect(codesOf({ mode: 'always', networks: {}, avoid: [{ name: 'VPN_NETWORK', cidr: c('fd8f:6d53:b97a:1::/96') }, { name: 'BOND_NETWORK_V4', cidr: c('192.168.123.0/24') }] })).toEqual([]);
  });

  it('refuses unusable mapped prefixes (RVPN_ERR_MAPPING_PREFIX_CONFLICT)', () => {
    const conflict = (opts: Partial<NetworkMappingOptions>) => planNetworkMapping({ mode: 'auto', networks: {}, ...opts }).errors.map((e) => [e.code, e.details?.kind ?? e.details?.avoid]);
    expect(conflict({ ipv6Prefixes: { shootPods: c('fd6d:6170:200::/48') } })).toEqual([['RVPN_ERR_MAPPING_PREFIX_CONFLICT', 'shootPods']]);
    expect(conflict({ ipv6Prefixes: { seedPods: c('10.0.0.0/8') } })).toEqual([['RVPN_ERR_MAPPING_PREFIX_CONFLICT', 'seedPods']]);
    expect(conflict({ ipv6Prefixes: { shootNodes: c('fd8f:6d53:b97a::/48') }, avoid: [{ name: 'VPN_NETWORK', cidr: c('fd8f:6d53:b97a:1::/96') }] }))
      .toEqual([['RVPN_ERR_MAPPING_PREFIX_CONFLICT', 'shootNodes']]);
    expect(conflict({ avoid: [{ name: 'BOND_NETWORK_V4', cidr: c('242.1.0.0/24') }] })).toEqual([['RVPN_ERR_MAPPING_PREFIX_CONFLICT', 'BOND_NETWORK_V4']]);
  });

  it('refuses real networks in the mapped ranges (RVPN_ERR_MAPPING_RESERVED_RANGE), mapped or not', () => {
    for (const [kind, cidr] of [['shootPods', '244.0.0.0/16'], ['shootNodes', '240.1.0.0/16'], ['shootServices', '224.0.0.0/3'], ['seedPods', '255.255.255.0/24'], ['seedNodes', '241.0.0.0/8'], ['shootPods', 'fd6d:6170:400::/64'], ['seedServices', 'fd6d:6170::/32']] as const) {
      const { errors } = planNetworkMapping({ mode: 'auto', networks: { [kind]: cs(cidr) } });
      expect(errors.map((e) => [e.code, e.details?.kind, e.details?.cidr]), `${kind} ${cidr}`).toEqual([['RVPN_ERR_MAPPING_RESERVED_RANGE', kind, cidr]]);
    }
    expect(codesOf({ mode: 'always', networks: { shootPods: cs('239.255.0.0/16'), shootNodes: cs('fd6d:6171::/64') } })).toEqual([]);
  });

  it('refuses networks that do not fit their range (RVPN_ERR_MAPPING_NO_FIT), with what and where', () => {
    const { errors } = planNetworkMapping({ mode: 'always', families: [4, 6], networks: { shootPods: cs('100.0.0.0/7'), shootNodes: cs('10.0.0.0/9', '11.0.0.0/9', '12.0.0.0/24'), shootServices: cs('fd00::/32') } });
    expect(errors.map((e) => [e.code, e.details?.kind, e.details?.range])).toEqual([
      ['RVPN_ERR_MAPPING_NO_FIT', 'shootNodes', '242.0.0.0/8'],
      ['RVPN_ERR_MAPPING_NO_FIT', 'shootPods', '244.0.0.0/8'],
      ['RVPN_ERR_MAPPING_NO_FIT', 'shootServices', 'fd6d:6170:300::/40'],
    ]);
    // the same networks are fine while nothing is mapped
    expect(codesOf({ mode: 'auto', families: [4, 6], networks: { shootPods: cs('100.0.0.0/7'), shootServices: cs('fd00::/32') } })).toEqual([]);
  });

  it('refuses, when mapping, shoot networks that overlap each other (RVPN_ERR_MAPPING_AMBIGUOUS)', () => {
    const networks: MappingNetworks = { seedPods: cs('10.96.0.0/11'), shootNodes: cs('10.0.0.0/8'), shootPods: cs('10.96.0.0/11') };
    expect(codesOf({ mode: 'auto', networks, families: [4] })).toEqual(['RVPN_ERR_MAPPING_AMBIGUOUS']);
    expect(codesOf({ mode: 'always', networks: { shootPods: cs('10.96.0.0/11', '10.96.0.0/11') }, families: [4] })).toEqual(['RVPN_ERR_MAPPING_AMBIGUOUS']);
    expect(codesOf({ mode: 'always', networks: { seedPods: cs('10.0.0.0/16', '10.0.1.0/24') }, families: [4] })).toEqual(['RVPN_ERR_MAPPING_AMBIGUOUS']);
    // without mapping an address keeps its meaning on its side, as before
    expect(codesOf({ mode: 'auto', networks: { shootNodes: cs('10.0.0.0/8'), shootPods: cs('10.96.0.0/11') }, families: [4] })).toEqual([]);
  });

  it('lists every problem in planNetworkMapping; computeNetworkMapping throws the first, with its code', () => {
    const opts: NetworkMappingOptions = { mode: 'never', families: [4], networks: { ...gardenerDefaults, shootNodes: cs('242.0.0.0/16') }, ipv6Prefixes: { shootPods: c('fd6d:6170:100::/48') } };
    expect(codesOf(opts)).toEqual(['RVPN_ERR_MAPPING_PREFIX_CONFLICT', 'RVPN_ERR_MAPPING_RESERVED_RANGE', 'RVPN_ERR_MAPPING_OVERLAP_NOT_ALLOWED']);
    expect(() => computeNetworkMapping(opts)).toThrow(expect.objectContaining({ code: 'RVPN_ERR_MAPPING_PREFIX_CONFLICT' }));
  });
});

describe('the mapping fingerprint both ends compare in HELLO', () => {
  const mapped = (networks: MappingNetworks, mode: 'auto' | 'never' | 'always' = 'auto') => computeNetworkMapping({ mode, networks, families: [4] });

  it('is the same for the same translation and changes with any mapped network', () => {
    const a = mapped(gardenerDefaults);
    expect(a.fingerprint()).toMatch(/^[0-9a-f]{16}$/);
    expect(mapped({ ...gardenerDefaults }).fingerprint()).toBe(a.fingerprint());
    // a node network more: 10.250.0.0/16 moves from 242.0.0.0/16 to 242.16.0.0/16
    const moved = mapped({ ...gardenerDefaults, shootNodes: cs('172.16.0.0/12', '10.250.0.0/16') });
    expect(moved.fingerprint()).not.toBe(a.fingerprint());
    expect(() => moved.assertSameAs(a.fingerprint(), 'vpn-shoot/x')).toThrow(expect.objectContaining({
      code: 'RVPN_ERR_MAPPING_MISMATCH',
      message: expect.stringMatching(/^vpn-shoot\/x translates networks differently \(mapping [0-9a-f]{16}, this side [0-9a-f]{16}: IPv4: 100\.96\.0\.0\/11 -> 241\.0\.0\.0\/11, 172\.16\.0\.0\/12 -> 242\.0\.0\.0\/12, 10\.250/),
    }));
    expect(() => a.assertSameAs(a.fingerprint(), 'peer')).not.toThrow();
  });

  it('counts only translated families: networks each end knows apart do not matter when nothing is mapped', () => {
    const apart = mapped({ seedPods: cs('10.1.0.0/16'), shootPods: cs('100.96.0.0/11') });
    const more = mapped({ seedPods: cs('10.1.0.0/16'), seedNodes: cs('10.2.0.0/16'), shootPods: cs('100.96.0.0/11'), shootNodes: cs('10.250.0.0/16') });
    expect(apart.isActive()).toBe(false);
    expect(more.fingerprint()).toBe(apart.fingerprint());
    // one end mapping and the other not is a mismatch
    expect(() => mapped(gardenerDefaults).assertSameAs(apart.fingerprint(), 'p')).toThrow(expect.objectContaining({ code: 'RVPN_ERR_MAPPING_MISMATCH' }));
    expect(() => apart.assertSameAs(mapped(gardenerDefaults).fingerprint(), 'p')).toThrow(/this side [0-9a-f]{16}: no family translated/);
  });

  it('accepts a peer without one (older than the fingerprint) and names a malformed one safely', () => {
    const a = mapped(gardenerDefaults);
    expect(() => a.assertSameAs(undefined, 'old peer')).not.toThrow();
    expect(() => a.assertSameAs('zz\n' + 'f'.repeat(100), 'p')).toThrow(/mapping \?{3}f{13}, /);
    expect(() => a.assertSameAs(42, 'p')).toThrow(/mapping number, /);
  });
});

describe('validators accept the 240.0.0.0/4 region where mapped ranges are written', () => {
  it('parses mapped addresses and prefixes', () => {
    expect(String(c('240.0.0.0/4'))).toBe('240.0.0.0/4');
    expect(str(ip('244.255.255.254'))).toBe('244.255.255.254');
    expect((t.cidrList({ env: 'X', doc: 'x' }).parse('241.0.0.0/8, 244.0.0.0/11') as Cidr[]).map(String)).toEqual(['241.0.0.0/8', '244.0.0.0/11']);
    expect(String(t.cidr({ env: 'X', doc: 'x' }).parse('243.0.0.0/13'))).toBe('243.0.0.0/13');
  });
  it('matches mapped addresses in packet headers (the top bit set)', () => {
    const set = new CidrSet(computeNetworkMapping({ mode: 'auto', networks: gardenerDefaults, families: [4] }).tunnelCidrs());
    expect(set.matchV4(Buffer.from([244, 1, 2, 3]), 0)).toBe(true);
    expect(set.matchV4(Buffer.from([243, 8, 0, 0]), 0)).toBe(false);
    expect(set.matchV4(Buffer.from([100, 96, 0, 1]), 0)).toBe(false);
  });
});

describe('planNetworkMappingFromEnv (what the operator reports; the apps compute the same)', () => {
  it('reads the network variables as the apps do and maps an overlap', async () => {
    const { planNetworkMappingFromEnv } = await import('./apps/common.js');
    const env = { SHOOT_POD_NETWORKS: '100.96.0.0/11', SHOOT_SERVICE_NETWORKS: '100.64.0.0/13', SHOOT_NODE_NETWORKS: '10.250.0.0/16', SEED_POD_NETWORK: '10.1.0.0/16', SEED_NODE_NETWORKS: '10.250.0.0/16' };
    const { mapping, errors } = planNetworkMappingFromEnv(env);
    expect(errors).toEqual([]);
    expect(mapping!.toJSON().families[0]).toMatchObject({ family: 4, active: true, reason: 'overlap' });
    expect(planNetworkMappingFromEnv({ ...env, SEED_NODE_NETWORKS: '' }).mapping!.isActive()).toBe(false);
  });
  it('returns the coded errors: a mapping that cannot be built, and variables that do not parse', async () => {
    const { planNetworkMappingFromEnv } = await import('./apps/common.js');
    expect(planNetworkMappingFromEnv({ SHOOT_POD_NETWORKS: '100.96.0.0/11', SEED_POD_NETWORK: '100.96.0.0/11', NETWORK_MAPPING: 'never' }).errors.map((e) => e.code)).toEqual(['RVPN_ERR_MAPPING_OVERLAP_NOT_ALLOWED']);
    expect(planNetworkMappingFromEnv({ SHOOT_POD_NETWORKS: '8.0.0.0/6', SEED_POD_NETWORK: '10.0.0.0/16', NETWORK_MAPPING: 'always' }).errors.map((e) => e.code)).toEqual(['RVPN_ERR_MAPPING_NO_FIT']);
    expect(planNetworkMappingFromEnv({ NETWORK_MAPPING: 'sometimes' }).errors.map((e) => e.code)).toEqual(['RVPN_ERR_CONFIG_INVALID']);
  });
});
