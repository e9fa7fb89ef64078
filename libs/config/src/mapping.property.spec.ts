/**
 * Property tests of the network mapping (fast-check): for arbitrary disjoint shoot networks and seed
 * pod networks, translation is a bijection between each real network and its mapped one (real →
 * mapped → real and mapped → real → mapped are identities), mapped networks stay in their kind's
 * range and never overlap, packing fails exactly when the sizes do not add up, and overlap detection
 * agrees with a brute-force look at the prefixes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_IPV6_MAPPED_PREFIXES, findOverlaps, IPV4_MAPPED_PREFIXES, IPV4_MAPPING_REGION, MAPPED_KINDS, packCidrs, planNetworkMapping,
  type MappedKind, type MappingNetworks,
} from './mapping.js';
import { Cidr, type IpAddress, type IpFamily } from './net.js';

const bits = (f: IpFamily) => (f === 4 ? 32 : 128);
const reserved = (f: IpFamily) => (f === 4 ? [IPV4_MAPPING_REGION] : Object.values(DEFAULT_IPV6_MAPPED_PREFIXES));

/** A prefix of family `f` with a length in [min, max], host bits cleared. */
const cidrArb = (f: IpFamily, min: number, max: number) =>
  fc.tuple(fc.bigInt({ min: 0n, max: (1n << BigInt(bits(f))) - 1n }), fc.integer({ min, max })).map(([v, p]) => Cidr.of({ family: f, value: v }, p));

/** Keeps the prefixes that overlap neither an earlier one nor the reserved ranges. */
function disjoint(list: Cidr[], taken: Cidr[] = []): Cidr[] {
  const out: Cidr[] = [];
  for (const c of list) {
    if ([...taken, ...out, ...reserved(c.family)].some((o) => o.overlaps(c))) continue;
    out.push(c);
  }
  return out;
}

/** Disjoint shoot networks of every kind and disjoint seed pod networks (which may overlap the shoot's). */
const networksArb = (f: IpFamily, min: number, max: number) =>
  fc.tuple(
    fc.array(cidrArb(f, min, max), { maxLength: 4 }),
    fc.array(cidrArb(f, min, max), { maxLength: 4 }),
    fc.array(cidrArb(f, min, max), { maxLength: 4 }),
    fc.array(cidrArb(f, min, max), { maxLength: 3 }),
  ).map(([nodes, services, pods, seedPods]) => {
    const shootNodes = disjoint(nodes);
    const shootServices = disjoint(services, shootNodes);
    const shootPods = disjoint(pods, [...shootNodes, ...shootServices]);
    return { shootNodes, shootServices, shootPods, seedPods: disjoint(seedPods) } satisfies MappingNetworks;
  });

const offsetIn = (c: Cidr, r: number) => ((c.size - 1n) * BigInt(Math.floor(r * 1e6))) / 1_000_000n;

function checkBijection(f: IpFamily, networks: MappingNetworks, r: number) {
  const { mapping, errors } = planNetworkMapping({ mode: 'always', networks, families: [f] });
  expect(errors).toEqual([]);
  const fam = mapping!.family(f)!;
  const ranges = f === 4 ? IPV4_MAPPED_PREFIXES : DEFAULT_IPV6_MAPPED_PREFIXES;
  for (const n of fam.networks) {
    expect(n.mapped.prefix).toBe(n.real.prefix);
    expect(ranges[n.kind].contains({ family: f, value: n.mapped.network })).toBe(true);
    for (const o of fam.networks) if (o !== n) expect(o.mapped.overlaps(n.mapped), `${o.mapped} ${n.mapped}`).toBe(false);
    // an address anywhere in the network: first, last and one in between
    for (const off of [0n, n.real.size - 1n, offsetIn(n.real, r)]) {
      const real: IpAddress = n.real.address(off);
      const mapped = mapping!.toMapped(real, n.side)!;
      expect(mapped).toEqual(n.mapped.address(off)); // NETMAP: the host bits are kept
      expect(mapping!.toReal(mapped)).toEqual({ address: real, side: n.side, kind: n.kind });
      expect(mapping!.toMapped(mapping!.toReal(mapped)!.address, n.side)).toEqual(mapped);
    }
  }
}

describe('network mapping properties', () => {
  it('IPv4: real → mapped → real and mapped → real → mapped are identities; mapped networks stay apart in their range', () => {
    fc.assert(fc.property(networksArb(4, 10, 32), fc.double({ min: 0, max: 1, noNaN: true }), (networks, r) => checkBijection(4, networks, r)), { numRuns: 300 });
  });

  it('IPv6: the same with the ULA prefixes', () => {
    fc.assert(fc.property(networksArb(6, 44, 128), fc.double({ min: 0, max: 1, noNaN: true }), (networks, r) => checkBijection(6, networks, r)), { numRuns: 300 });
  });

  it('packing fits exactly when the networks add up to at most the range and none is larger than it', () => {
    fc.assert(
      fc.property(fc.array(cidrArb(4, 6, 32), { maxLength: 8 }), fc.constantFrom<MappedKind>(...MAPPED_KINDS), (list, kind) => {
        const range = IPV4_MAPPED_PREFIXES[kind];
        const fits = list.every((c) => c.prefix >= 8) && list.reduce((s, c) => s + c.size, 0n) <= range.size;
        let packed: Cidr[] | undefined;
        try {
          packed = packCidrs(list, range, kind);
        } catch (err) {
          expect((err as { code?: string }).code).toBe('RVPN_ERR_MAPPING_NO_FIT');
        }
        expect(packed !== undefined).toBe(fits);
        if (packed) {
          packed.forEach((p, i) => {
            expect(p.prefix).toBe(list[i]!.prefix);
            expect(range.contains({ family: 4, value: p.network })).toBe(true);
            packed!.forEach((q, j) => { if (i !== j) expect(p.overlaps(q)).toBe(false); });
          });
        }
      }),
      { numRuns: 500 },
    );
  });

  it('overlaps are found exactly for the seed/shoot pairs that share an address; auto maps a family exactly then', () => {
    const sharesAddress = (a: Cidr, b: Cidr) => a.family === b.family && (a.contains({ family: a.family, value: b.network }) || b.contains({ family: b.family, value: a.network }));
    fc.assert(
      fc.property(networksArb(4, 4, 24), fc.array(cidrArb(4, 4, 24), { maxLength: 3 }), fc.array(cidrArb(4, 4, 24), { maxLength: 3 }), (shoot, seedNodes, seedServices) => {
        const networks: MappingNetworks = { ...shoot, seedNodes, seedServices };
        const expected: string[] = [];
        for (const sk of ['seedPods', 'seedNodes', 'seedServices'] as const) {
          for (const hk of ['shootNodes', 'shootServices', 'shootPods'] as const) {
            for (const s of networks[sk]!) for (const h of networks[hk]!) if (sharesAddress(s, h)) expected.push(`${sk} ${s} ${hk} ${h}`);
          }
        }
        expect(findOverlaps(networks).map((o) => `${o.seed.kind} ${o.seed.cidr} ${o.shoot.kind} ${o.shoot.cidr}`).sort()).toEqual(expected.sort());
        const plan = planNetworkMapping({ mode: 'auto', networks, families: [4] });
        if (plan.mapping) expect(plan.mapping.isActive(4)).toBe(expected.length > 0);
        else expect(plan.errors.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });
});
