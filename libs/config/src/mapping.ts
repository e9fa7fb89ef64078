/**
 * Overlapping seed and shoot networks (Gardener's "double NAT"), as pure functions: which networks
 * overlap, whether a shoot's traffic is mapped, where each network lands, and how one address
 * translates. No packets, routes or nftables here: the data path takes `NetworkMapping.networks`
 * (real prefix → mapped prefix pairs, which nftables' `snat/dnat ip prefix to` and iptables' NETMAP
 * take as they are) and the address translations for its logs and the proxy.
 *
 * Inside the tunnel both sides speak mapped addresses, so an address there is unambiguous even when
 * the seed and the shoot use the same ranges:
 *
 *   kind            IPv4 (Gardener, fixed)   IPv6 (ours, overridable)
 *   seed pods       241.0.0.0/8              fd6d:6170:100::/40
 *   shoot nodes     242.0.0.0/8              fd6d:6170:200::/40
 *   shoot services  243.0.0.0/8              fd6d:6170:300::/40
 *   shoot pods      244.0.0.0/8              fd6d:6170:400::/40
 *
 * Gardener (gardener/vpn2 `pkg/network` NetmapSubnets) packs the networks of one kind into its range,
 * largest first (ties keep their configured order), each at the next free block of its own size: a
 * network keeps its prefix length and its host bits (NETMAP), only the network bits change. So
 * 10.96.0.0/11, 10.128.0.0/12, 10.219.45.0/26 as node networks land on 242.0.0.0/11, 242.32.0.0/12,
 * 242.48.0.0/26, and 10.96.1.2 is 242.0.1.2. Because the blocks are placed in decreasing size, each one
 * is aligned, and the networks fit exactly when their sizes add up to at most the range.
 * (Mapping every network onto the whole /8 with NETMAP, 10.250.1.2 → 242.250.1.2, would send two
 * networks that differ only above the /8 onto the same addresses; packing avoids that.)
 *
 * The IPv6 prefixes come from one ULA /32 (fd6d:6170::/32; 6d 61 70 spells "map"), far from the
 * tunnel's VPN_NETWORK fd8f:6d53:b97a:1::/96, which also holds the HA bond addresses; each /40 holds a
 * pod network as large as a /40, where Kubernetes clusters use /48 to /64.
 *
 * The mapping is decided per IP family: `auto` maps a family when any seed network (pods, nodes,
 * services) overlaps any shoot network (nodes, pods, services) of that family, `always` maps every
 * family, `never` maps none and refuses overlaps. A family that is not mapped still appears, with each
 * network mapped onto itself, so the data path has one code path.
 */
import { createHash } from 'node:crypto';
import { defineError, type RvpnError } from './errors.js';
import { Cidr, parseIp, type IpAddress, type IpFamily } from './net.js';

export const MappingNoFitError = defineError('RVPN_ERR_MAPPING_NO_FIT', "The networks of one kind do not fit their mapped range (a network larger than the range, e.g. a /7 for a /8, or several that add up to more than it): use smaller or fewer shoot networks, or, for IPv6, a larger MAPPED_*_NETWORK_V6 prefix. details.kind, details.range and details.cidrs say which.");
export const MappingReservedRangeError = defineError('RVPN_ERR_MAPPING_RESERVED_RANGE', 'A seed or shoot network lies in the range reserved for mapped addresses (IPv4: 240.0.0.0/4, as in Gardener; IPv6: the MAPPED_*_NETWORK_V6 prefixes): choose other networks, or for IPv6 other mapped prefixes.');
export const MappingOverlapNotAllowedError = defineError('RVPN_ERR_MAPPING_OVERLAP_NOT_ALLOWED', 'Seed and shoot networks overlap but NETWORK_MAPPING=never: set NETWORK_MAPPING=auto (or always), or give the shoot networks that do not overlap the seed. details.overlaps lists the pairs.');
export const MappingAmbiguousError = defineError('RVPN_ERR_MAPPING_AMBIGUOUS', 'Two networks of the same side overlap each other, so a mapped address could not be traced back to one of them: make the shoot networks (and the seed pod networks) disjoint.');
export const MappingPrefixConflictError = defineError('RVPN_ERR_MAPPING_PREFIX_CONFLICT', 'A mapped prefix is unusable: an IPv6 MAPPED_*_NETWORK_V6 that is not IPv6 or overlaps another mapped prefix, or a mapped range that overlaps VPN_NETWORK or the bond network. Choose disjoint prefixes.');
export const MappingMismatchError = defineError('RVPN_ERR_MAPPING_MISMATCH', "The two ends of a tunnel computed different network mappings (their seed and shoot networks, NETWORK_MAPPING or MAPPED_*_NETWORK_V6 differ), so each would translate addresses its own way: give every tunnel container of the shoot the same networks. While a change of the networks rolls out, the old and the new pods refuse each other until both ends run the new settings.");

export const MAPPING_MODES = ['auto', 'always', 'never'] as const;
export type MappingMode = (typeof MAPPING_MODES)[number];

export type Side = 'seed' | 'shoot';
export const SEED_KINDS = ['seedPods', 'seedNodes', 'seedServices'] as const;
export const SHOOT_KINDS = ['shootNodes', 'shootServices', 'shootPods'] as const;
export type SeedKind = (typeof SEED_KINDS)[number];
export type ShootKind = (typeof SHOOT_KINDS)[number];
export type NetworkKind = SeedKind | ShootKind;
/** The kinds that get a mapped range: the seed's sources (pods) and every shoot destination. */
export const MAPPED_KINDS = ['seedPods', 'shootNodes', 'shootServices', 'shootPods'] as const;
export type MappedKind = (typeof MAPPED_KINDS)[number];

export type MappedPrefixes = Readonly<Record<MappedKind, Cidr>>;

/** The IPv4 region Gardener reserves for mapped addresses (RFC 6890 "reserved for future use"). */
export const IPV4_MAPPING_REGION: Cidr = Cidr.parse('240.0.0.0/4');
/** Gardener's mapped IPv4 ranges (vpn2 constants SeedPodNetworkMapped … ShootPodNetworkMapped). */
export const IPV4_MAPPED_PREFIXES: MappedPrefixes = Object.freeze({
  seedPods: Cidr.parse('241.0.0.0/8'),
  shootNodes: Cidr.parse('242.0.0.0/8'),
  shootServices: Cidr.parse('243.0.0.0/8'),
  shootPods: Cidr.parse('244.0.0.0/8'),
});
/** Our IPv6 equivalent (defaults of MAPPED_*_NETWORK_V6). */
export const DEFAULT_IPV6_MAPPED_PREFIXES: MappedPrefixes = Object.freeze({
  seedPods: Cidr.parse('fd6d:6170:100::/40'),
  shootNodes: Cidr.parse('fd6d:6170:200::/40'),
  shootServices: Cidr.parse('fd6d:6170:300::/40'),
  shootPods: Cidr.parse('fd6d:6170:400::/40'),
});

export type MappingNetworks = { readonly [K in NetworkKind]?: readonly Cidr[] };

export interface NetworkMappingOptions {
  mode: MappingMode;
  /** The seed's and the shoot's networks; missing kinds are empty. Only pods of the seed are mapped (they are the sources). */
  networks: MappingNetworks;
  /** Families the tunnel carries; networks of other families are ignored. Default: both. */
  families?: readonly IpFamily[];
  /** IPv6 mapped prefixes; default DEFAULT_IPV6_MAPPED_PREFIXES. */
  ipv6Prefixes?: Partial<Record<MappedKind, Cidr>>;
  /** Networks no mapped range may overlap (VPN_NETWORK, the bond networks), by name (named in errors). */
  avoid?: ReadonlyArray<{ name: string; cidr: Cidr }>;
}

export interface NetworkOverlap {
  family: IpFamily;
  seed: { kind: SeedKind; cidr: Cidr };
  shoot: { kind: ShootKind; cidr: Cidr };
}

/** One real network and where it appears inside the tunnel (`mapped` equals `real` when its family is not mapped). */
export interface MappedNetwork {
  family: IpFamily;
  side: Side;
  kind: MappedKind;
  real: Cidr;
  mapped: Cidr;
}

export interface FamilyMapping {
  family: IpFamily;
  /** Whether addresses of this family are translated. */
  active: boolean;
  /** overlap: auto found overlaps; always: forced; none: auto without overlaps; never: mapping off. */
  reason: 'overlap' | 'always' | 'none' | 'never';
  /** The mapped range of each kind. */
  prefixes: MappedPrefixes;
  /** Every seed pod and shoot network of the family, in configured order per kind. */
  networks: readonly MappedNetwork[];
}

/** Where a tunnel address really is. */
export interface RealAddress {
  address: IpAddress;
  side: Side;
  kind: MappedKind;
}

const sideOf = (k: NetworkKind): Side => (k.startsWith('seed') ? 'seed' : 'shoot');
const width = (f: IpFamily) => (f === 4 ? 32 : 128);

/** Every pair of a seed network and a shoot network of one family that share addresses. */
export function findOverlaps(networks: MappingNetworks, families: readonly IpFamily[] = [4, 6]): NetworkOverlap[] {
  const out: NetworkOverlap[] = [];
  for (const sk of SEED_KINDS) {
    for (const s of networks[sk] ?? []) {
      if (!families.includes(s.family)) continue;
      for (const hk of SHOOT_KINDS) {
        for (const h of networks[hk] ?? []) {
          if (s.overlaps(h)) out.push({ family: s.family, seed: { kind: sk, cidr: s }, shoot: { kind: hk, cidr: h } });
        }
      }
    }
  }
  return out;
}

/**
 * NETMAP: keeps the host bits of `addr` below `to`'s prefix and takes the network bits of `to`.
 * `from`, when given, must contain the address (a guard for callers that pair real and mapped prefixes).
 */
export function netmap(addr: IpAddress, to: Cidr, from?: Cidr): IpAddress {
  if (addr.family !== to.family) throw new RangeError(`cannot map an IPv${addr.family} address into ${to}`);
  if (from && !from.contains(addr)) throw new RangeError(`address is outside ${from}`);
  const all = (1n << BigInt(width(to.family))) - 1n;
  return { family: to.family, value: (addr.value & (all ^ to.mask)) | to.network };
}

/**
 * Packs `cidrs` into `range` as Gardener does: largest first (stable for equal sizes), each at the next
 * free block of its own size. Returns the mapped prefix of each input, in input order. Throws
 * RVPN_ERR_MAPPING_NO_FIT when a network is larger than the range or the sum does not fit.
 */
export function packCidrs(cidrs: readonly Cidr[], range: Cidr, kind: MappedKind | string = 'networks'): Cidr[] {
  const order = cidrs.map((c, i) => ({ c, i })).sort((a, b) => a.c.prefix - b.c.prefix || a.i - b.i);
  const out: Cidr[] = new Array<Cidr>(cidrs.length);
  const end = range.network + range.size;
  const list = cidrs.map(String).join(', ');
  let cursor = range.network;
  for (const { c, i } of order) {
    if (c.family !== range.family) throw new RangeError(`${c} is not IPv${range.family}`);
    if (c.prefix < range.prefix) {
      throw new MappingNoFitError(`${kind}: ${c} is larger than its mapped range ${range}`, { details: { kind, family: c.family, range: String(range), cidrs: cidrs.map(String), cidr: String(c) } });
    }
    const size = c.size;
    if (cursor + size > end) {
      throw new MappingNoFitError(`${kind}: ${list} do not fit together into their mapped range ${range} (${c} is left without room)`, { details: { kind, family: c.family, range: String(range), cidrs: cidrs.map(String), cidr: String(c) } });
    }
    out[i] = Cidr.of({ family: c.family, value: cursor }, c.prefix);
    cursor += size;
  }
  return out;
}

/**
 * The mapping of one shoot: per family whether it is active and where each network lands, and the
 * translations. Immutable; build it with `computeNetworkMapping` or `planNetworkMapping`.
 */
export class NetworkMapping {
  readonly mode: MappingMode;
  readonly overlaps: readonly NetworkOverlap[];
  readonly families: readonly FamilyMapping[];
  /** Every network of every family (seed pods and shoot networks). */
  readonly networks: readonly MappedNetwork[];

  constructor(mode: MappingMode, overlaps: readonly NetworkOverlap[], families: readonly FamilyMapping[]) {
    this.mode = mode;
    this.overlaps = overlaps;
    this.families = families;
    this.networks = families.flatMap((f) => f.networks);
  }

  /** The mapping of one family, or undefined when the tunnel does not carry it. */
  family(f: IpFamily): FamilyMapping | undefined {
    return this.families.find((x) => x.family === f);
  }

  /** Whether addresses of `family` (default: any family) are translated. */
  isActive(family?: IpFamily): boolean {
    return this.families.some((f) => f.active && (family === undefined || f.family === family));
  }

  /**
   * A real address of `side` as it appears in the tunnel (the seed: the source of a seed pod; the
   * shoot: the destination the kube-apiserver dialed). Unchanged when the family is not mapped;
   * undefined when the address is in none of that side's networks (not allowed into the tunnel).
   */
  toMapped(addr: IpAddress | string, side: Side): IpAddress | undefined {
    const a = typeof addr === 'string' ? parseIp(addr) : addr;
    if (!a) return undefined;
    const n = this.networks.find((x) => x.side === side && x.real.contains(a));
    return n ? netmap(a, n.mapped, n.real) : undefined;
  }

  /** An address seen in the tunnel traced back to the side and network it really belongs to; undefined when in none. */
  toReal(addr: IpAddress | string): RealAddress | undefined {
    const a = typeof addr === 'string' ? parseIp(addr) : addr;
    if (!a) return undefined;
    const n = this.networks.find((x) => x.mapped.contains(a));
    return n ? { address: netmap(a, n.real, n.mapped), side: n.side, kind: n.kind } : undefined;
  }

  /**
   * The prefixes of `side` as they appear in the tunnel. `shoot` (default): what the seed routes into
   * the tunnel and the egress proxy admits after translation; `seed`: the sources vpn-shoot routes back.
   */
  tunnelCidrs(side: Side = 'shoot'): Cidr[] {
    return this.networks.filter((n) => n.side === side).map((n) => n.mapped);
  }

  /** For logs and status: `{ mode, families: [{ family, active, reason, networks: ['shootPods 100.96.0.0/11 -> 244.0.0.0/11', …] }] }`. */
  /**
   * A short digest of what the tunnel carries translated (per active family, every network and where
   * it lands), sent in HELLO so both ends can check they agree. Networks of a family that is not
   * translated do not count: each end may know a different subset of them without harm.
   */
  fingerprint(): string {
    const active = this.families.filter((f) => f.active).map((f) => `${f.family}:${f.networks.map((n) => `${n.kind} ${n.real}>${n.mapped}`).join(',')}`);
    return createHash('sha256').update(active.length ? active.join(';') : 'none').digest('hex').slice(0, 16);
  }

  /** Throws RVPN_ERR_MAPPING_MISMATCH when a peer's HELLO names another fingerprint (a peer without one is older: nothing to compare). */
  assertSameAs(peerFingerprint: unknown, peer: string): void {
    if (peerFingerprint === undefined) return;
    const own = this.fingerprint();
    if (peerFingerprint === own) return;
    const theirs = typeof peerFingerprint === 'string' ? peerFingerprint.slice(0, 16).replace(/[^0-9a-f]/g, '?') : typeof peerFingerprint;
    const described = this.families.filter((f) => f.active).map((f) => `IPv${f.family}: ${f.networks.map((n) => `${n.real} -> ${n.mapped}`).join(', ')}`).join('; ') || 'no family translated';
    throw new MappingMismatchError(`${peer} translates networks differently (mapping ${theirs}, this side ${own}: ${described})`, { details: { peer: theirs, own } });
  }

  toJSON(): { mode: MappingMode; families: Array<{ family: IpFamily; active: boolean; reason: FamilyMapping['reason']; networks: string[] }> } {
    return {
      mode: this.mode,
      families: this.families.map((f) => ({ family: f.family, active: f.active, reason: f.reason, networks: f.networks.map((n) => `${n.kind} ${n.real} -> ${n.mapped}`) })),
    };
  }
}

/**
 * Computes the mapping and collects every reason it cannot be built (coded errors, in a stable
 * order); `mapping` is undefined when there is any. Configuration uses this to list all problems.
 */
export function planNetworkMapping(opts: NetworkMappingOptions): { mapping: NetworkMapping | undefined; errors: RvpnError[] } {
  const families = opts.families ?? [4, 6];
  const errors: RvpnError[] = [];
  const v6: Record<MappedKind, Cidr> = { ...DEFAULT_IPV6_MAPPED_PREFIXES, ...(opts.ipv6Prefixes ?? {}) };
  const prefixesOf = (f: IpFamily): MappedPrefixes => (f === 4 ? IPV4_MAPPED_PREFIXES : v6);

  // The mapped prefixes must be usable whatever the overlaps: they are configuration.
  for (const k of MAPPED_KINDS) {
    const p = v6[k];
    if (p.family !== 6) {
      errors.push(new MappingPrefixConflictError(`${k}: the IPv6 mapped prefix ${p} is not IPv6`, { details: { kind: k, cidr: String(p) } }));
      v6[k] = DEFAULT_IPV6_MAPPED_PREFIXES[k]; // go on checking the rest against the default
    }
  }
  for (const [i, a] of MAPPED_KINDS.entries()) {
    for (const b of MAPPED_KINDS.slice(i + 1)) {
      if (v6[a].overlaps(v6[b])) errors.push(new MappingPrefixConflictError(`${b}: the IPv6 mapped prefix ${v6[b]} overlaps the one of ${a} (${v6[a]})`, { details: { kind: b, other: a, cidr: String(v6[b]) } }));
    }
  }
  for (const { name, cidr } of opts.avoid ?? []) {
    if (cidr.family === 4) {
      if (cidr.overlaps(IPV4_MAPPING_REGION)) errors.push(new MappingPrefixConflictError(`${name} ${cidr} overlaps ${IPV4_MAPPING_REGION}, the IPv4 mapped region`, { details: { avoid: name, cidr: String(cidr), range: String(IPV4_MAPPING_REGION) } }));
      continue;
    }
    for (const k of MAPPED_KINDS) {
      if (cidr.overlaps(v6[k])) errors.push(new MappingPrefixConflictError(`${k}: the IPv6 mapped prefix ${v6[k]} overlaps ${name} ${cidr}`, { details: { kind: k, avoid: name, cidr: String(v6[k]), range: String(cidr) } }));
    }
  }

  // No real network may sit where mapped addresses live (Gardener refuses 240/4 for shoot ranges).
  const all = (k: NetworkKind) => (opts.networks[k] ?? []).filter((c) => families.includes(c.family));
  for (const k of [...SEED_KINDS, ...SHOOT_KINDS]) {
    for (const c of all(k)) {
      const reserved = c.family === 4 ? [IPV4_MAPPING_REGION] : MAPPED_KINDS.map((m) => v6[m]);
      const hit = reserved.find((r) => r.overlaps(c));
      if (hit) errors.push(new MappingReservedRangeError(`${k}: ${c} lies in ${hit}, which is reserved for mapped addresses`, { details: { kind: k, cidr: String(c), range: String(hit) } }));
    }
  }

  const overlaps = findOverlaps(opts.networks, families);
  const result: FamilyMapping[] = [];
  for (const family of families) {
    const famOverlaps = overlaps.filter((o) => o.family === family);
    const active = opts.mode === 'always' || (opts.mode === 'auto' && famOverlaps.length > 0);
    const reason: FamilyMapping['reason'] = opts.mode === 'always' ? 'always' : opts.mode === 'never' ? 'never' : active ? 'overlap' : 'none';
    if (opts.mode === 'never' && famOverlaps.length > 0) {
      const pairs = famOverlaps.map((o) => `${o.shoot.kind} ${o.shoot.cidr} overlaps ${o.seed.kind} ${o.seed.cidr}`);
      errors.push(new MappingOverlapNotAllowedError(`IPv${family}: ${pairs.join('; ')}, and NETWORK_MAPPING=never`, { details: { family, overlaps: famOverlaps.map((o) => ({ seed: o.seed.kind, seedCidr: String(o.seed.cidr), shoot: o.shoot.kind, shootCidr: String(o.shoot.cidr) })) } }));
    }
    const prefixes = prefixesOf(family);
    const networks: MappedNetwork[] = [];
    if (active) {
      // A mapped address must trace back to one network: each side's mapped networks must be disjoint.
      for (const side of ['seed', 'shoot'] as const) {
        const list = MAPPED_KINDS.filter((k) => sideOf(k) === side).flatMap((k) => all(k).map((c) => ({ k, c })));
        for (const [i, a] of list.entries()) {
          for (const b of list.slice(i + 1)) {
            if (a.c.overlaps(b.c)) errors.push(new MappingAmbiguousError(`${b.k}: ${b.c} overlaps ${a.k} ${a.c}; mapped, an address of both could not be traced back`, { details: { family, kind: b.k, cidr: String(b.c), other: a.k, otherCidr: String(a.c) } }));
          }
        }
      }
    }
    for (const k of MAPPED_KINDS) {
      const real = all(k).filter((c) => c.family === family);
      let mapped = real;
      if (active) {
        try {
          mapped = packCidrs(real, prefixes[k], k);
        } catch (err) {
          if (!MappingNoFitError.is(err)) throw err;
          errors.push(err);
          continue;
        }
      }
      real.forEach((c, i) => networks.push({ family, side: sideOf(k), kind: k, real: c, mapped: mapped[i]! }));
    }
    result.push({ family, active, reason, prefixes, networks });
  }
  return { mapping: errors.length === 0 ? new NetworkMapping(opts.mode, overlaps, result) : undefined, errors };
}

/** Like planNetworkMapping, but throws the first coded error (see planNetworkMapping for all of them). */
export function computeNetworkMapping(opts: NetworkMappingOptions): NetworkMapping {
  const { mapping, errors } = planNetworkMapping(opts);
  if (!mapping) throw errors[0]!;
  return mapping;
}
