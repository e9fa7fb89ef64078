/**
 * nftables rules that apply a NetworkMapping (Gardener's "double NAT", issue 12) on the TUN, as
 * prefix translations (NETMAP: the network bits change, the host bits stay), one rule per family
 * with every translated network in one map:
 *
 *   seed:  postrouting, out of the TUN:  seed pod source  100.96.0.20 -> 241.0.0.20   (snat ip prefix)
 *   shoot: prerouting, in from the TUN:  mapped shoot dst 244.0.1.10  -> 100.96.1.10  (dnat ip prefix)
 *
 * Each side translates its own addresses, once: the seed hides its pods behind their mapped range, the
 * shoot turns mapped destinations back into its real ones. The destination the kube-apiserver named
 * is mapped by the egress proxy when it dials (so the seed needs no DNAT, and the real shoot ranges
 * are never routed into the seed's TUN). Conntrack undoes both on the replies. A family that is not
 * mapped, or a network that maps onto itself, gets no rule, so an unmapped tunnel has none at all.
 */
import type { Cidr, IpFamily, MappedNetwork, NetworkMapping } from '@rvpn/config';
import { NetToolMissingError } from './errors.js';
import type { NetConfig, NetLogger } from './netconfig.js';

const kw = (f: IpFamily) => (f === 4 ? 'ip' : 'ip6');

/** The networks of `side` that are really translated (active family, real ≠ mapped), per family. */
export function translatedNetworks(mapping: NetworkMapping, side: 'seed' | 'shoot'): MappedNetwork[] {
  return mapping.networks.filter((n) => n.side === side && mapping.isActive(n.family) && String(n.real) !== String(n.mapped));
}

function byFamily(list: readonly MappedNetwork[]): Array<[IpFamily, MappedNetwork[]]> {
  return ([4, 6] as const).map((f) => [f, list.filter((n) => n.family === f)] as [IpFamily, MappedNetwork[]]).filter(([, l]) => l.length > 0);
}

/**
 * The seed server's chain (for its own inet table): sources of the seed pod network leaving through
 * the TUN take their mapped range. Empty when nothing is translated.
 */
export function seedMappingChain(tun: string, mapping: NetworkMapping): string[] {
  const nets = byFamily(translatedNetworks(mapping, 'seed'));
  if (nets.length === 0) return [];
  return [
    'chain mapping_snat {',
    '  type nat hook postrouting priority srcnat; policy accept;',
    ...nets.map(([f, l]) => `  oifname "${tun}" ${kw(f)} saddr { ${l.map((n) => n.real).join(', ')} } snat ${kw(f)} prefix to ${kw(f)} saddr map { ${l.map((n) => `${n.real} : ${n.mapped}`).join(', ')} } comment "seed pods appear in the tunnel by their mapped range"`),
    '}',
  ];
}

/**
 * vpn-shoot's chain (for its own inet table): destinations in the mapped shoot ranges arriving from
 * the TUN go to the real shoot addresses. Empty when nothing is translated.
 */
export function shootMappingChain(tun: string, mapping: NetworkMapping): string[] {
  const nets = byFamily(translatedNetworks(mapping, 'shoot'));
  if (nets.length === 0) return [];
  return [
    'chain mapping_dnat {',
    '  type nat hook prerouting priority dstnat; policy accept;',
    ...nets.map(([f, l]) => `  iifname "${tun}" ${kw(f)} daddr { ${l.map((n) => n.mapped).join(', ')} } dnat ${kw(f)} prefix to ${kw(f)} daddr map { ${l.map((n) => `${n.mapped} : ${n.real}`).join(', ')} } comment "mapped shoot addresses back to the real ones"`),
    '}',
  ];
}

/**
 * vpn-shoot's forward rules (for its filter chain, before it accepts what comes from the TUN or bond):
 * of a mapped family, a new flow from the seed side must have been addressed to a mapped shoot range,
 * i.e. translated by shootMappingChain. A real shoot address (the seed's own networks, to the seed)
 * is no way in. Empty when nothing is translated.
 */
export function shootMappingForwardRules(tun: string, mapping: NetworkMapping): string[] {
  return byFamily(translatedNetworks(mapping, 'shoot')).map(([f]) => `  iifname "${tun}" meta nfproto ipv${f} ct state new ct status ! dnat counter drop comment "mapped family: only mapped shoot destinations"`);
}

/**
 * What conntrack must forget when a (re)started side installs a mapping: flows whose original
 * destination lies in a mapped shoot range of an active family. The whole range of each kind, not
 * only today's networks: a shoot whose networks changed left entries bound to the old translation.
 */
export function conntrackFlushTargets(mapping: NetworkMapping): string[] {
  return mapping.families.filter((f) => f.active).flatMap((f) => [f.prefixes.shootNodes, f.prefixes.shootServices, f.prefixes.shootPods].map(String));
}

/**
 * The seed pod network as it appears in the tunnel (its mapped range when that family is mapped): the
 * seed filter's destinations and vpn-shoot's return route and filter sources.
 */
export function seedPodTunnelNetwork(mapping: NetworkMapping, seedPodNetwork: Cidr): Cidr {
  return mapping.networks.find((n) => n.side === 'seed' && String(n.real) === String(seedPodNetwork))?.mapped ?? seedPodNetwork;
}

/**
 * Deletes the conntrack entries of the mapped ranges (conntrackFlushTargets). Without conntrack(8)
 * (an image built before it was added) it warns once and goes on: stale flows then only live until
 * their conntrack timeout, which is no reason to keep the tunnel down.
 */
export async function flushMappedConntrack(net: NetConfig, mapping: NetworkMapping, log?: NetLogger): Promise<void> {
  for (const dst of conntrackFlushTargets(mapping)) {
    try {
      await net.flushConntrack(dst);
    } catch (err) {
      if (!NetToolMissingError.is(err)) throw err;
      log?.warn({ err: (err as Error).message }, 'conntrack(8) is missing: flows of an earlier network mapping are not flushed (they end with their conntrack timeout)');
      return;
    }
  }
}
