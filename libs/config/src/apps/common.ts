/** Fields and checks shared by the apps' schemas (vpn2 names). */
import type { Cidr, IpFamily } from '../net.js';
import { ConfigInvalidError, loadConfig, t, optional, type Field } from '../schema.js';
import {
  DEFAULT_IPV6_MAPPED_PREFIXES, MAPPING_MODES, MappingAmbiguousError, MappingNoFitError, MappingOverlapNotAllowedError, MappingPrefixConflictError,
  MappingReservedRangeError, planNetworkMapping, type MappedKind, type MappingMode, type NetworkKind, type NetworkMapping, type NetworkMappingOptions,
} from '../mapping.js';
import type { RvpnError } from '../errors.js';
import { logLevelField } from './log-level.js';

export const ipFamilies: Field<IpFamily[]> = {
  env: 'IP_FAMILIES',
  type: 'IPv4 | IPv6 | IPv4,IPv6',
  doc: 'IP families of the shoot networks carried through the tunnel.',
  default: 'IPv4',
  parse(raw) {
    const parts = raw.split(',').map((s) => s.trim()).filter(Boolean);
    const fams: IpFamily[] = [];
    for (const p of parts) {
      if (p === 'IPv4') fams.push(4);
      else if (p === 'IPv6') fams.push(6);
      else return { problem: `unknown family ${JSON.stringify(p)}; allowed: IPv4, IPv6, IPv4,IPv6` };
    }
    if (fams.length === 0 || new Set(fams).size !== fams.length) return { problem: 'must name IPv4, IPv6 or both, once each' };
    return fams;
  },
};

export const networkFields = {
  ipFamilies,
  vpnNetwork: t.cidr({ env: 'VPN_NETWORK', default: 'fd8f:6d53:b97a:1::/96', doc: 'IPv6 transfer network of the tunnel (carries IPv4 and IPv6 payloads); the seed side takes ::1, the shoot client ::2.' }),
  shootServiceNetworks: t.cidrList({ env: 'SHOOT_SERVICE_NETWORKS', default: '100.64.0.0/13', doc: "The shoot's service networks (comma list)." }),
  shootPodNetworks: t.cidrList({ env: 'SHOOT_POD_NETWORKS', default: '100.96.0.0/11', doc: "The shoot's pod networks (comma list)." }),
  shootNodeNetworks: t.cidrList({ env: 'SHOOT_NODE_NETWORKS', default: '', doc: "The shoot's node networks (comma list)." }),
  seedPodNetwork: optional(t.cidr({ env: 'SEED_POD_NETWORK', doc: "The seed's pod network: IPv4 connections from the seed carry these sources, routed back through the tunnel. When it overlaps a shoot network, NETWORK_MAPPING decides." })),
  seedNodeNetworks: t.cidrList({ env: 'SEED_NODE_NETWORKS', default: '', doc: "The seed's node networks (comma list, either family); only compared with the shoot networks: an overlap turns on the mapping of that family (NETWORK_MAPPING=auto)." }),
  seedServiceNetworks: t.cidrList({ env: 'SEED_SERVICE_NETWORKS', default: '', doc: "The seed's service networks (comma list, either family); only compared with the shoot networks: an overlap turns on the mapping of that family (NETWORK_MAPPING=auto)." }),
  networkMapping: t.enumOf(MAPPING_MODES, { env: 'NETWORK_MAPPING', default: 'auto', doc: "Gardener's double NAT for overlapping networks, per IP family. auto: map a family when any seed network (pods, nodes, services) overlaps any shoot network (nodes, services, pods) of it; always: map every family; never: map none and refuse overlaps. Mapped, seed pods appear in the tunnel as 241.0.0.0/8, shoot nodes 242.0.0.0/8, services 243.0.0.0/8, pods 244.0.0.0/8 (IPv6: MAPPED_*_NETWORK_V6), packed largest first with host bits kept; real networks may not use 240.0.0.0/4. Every data path translates: reversed and classic, non-HA and HA (IS_HA=true with path-controller; give the seed networks to every app, the HA seed servers too: their port guards admit the mapped shoot ranges)." }),
  mappedSeedPodNetworkV6: t.cidr({ env: 'MAPPED_SEED_POD_NETWORK_V6', default: String(DEFAULT_IPV6_MAPPED_PREFIXES.seedPods), doc: 'Where the seed pod networks appear in the tunnel when IPv6 is mapped (the IPv6 counterpart of 241.0.0.0/8); must avoid VPN_NETWORK and the other mapped prefixes.' }),
  mappedShootNodeNetworkV6: t.cidr({ env: 'MAPPED_SHOOT_NODE_NETWORK_V6', default: String(DEFAULT_IPV6_MAPPED_PREFIXES.shootNodes), doc: 'Where the shoot node networks appear in the tunnel when IPv6 is mapped (counterpart of 242.0.0.0/8).' }),
  mappedShootServiceNetworkV6: t.cidr({ env: 'MAPPED_SHOOT_SERVICE_NETWORK_V6', default: String(DEFAULT_IPV6_MAPPED_PREFIXES.shootServices), doc: 'Where the shoot service networks appear in the tunnel when IPv6 is mapped (counterpart of 243.0.0.0/8).' }),
  mappedShootPodNetworkV6: t.cidr({ env: 'MAPPED_SHOOT_POD_NETWORK_V6', default: String(DEFAULT_IPV6_MAPPED_PREFIXES.shootPods), doc: 'Where the shoot pod networks appear in the tunnel when IPv6 is mapped (counterpart of 244.0.0.0/8).' }),
  namespace: t.string({ env: 'NAMESPACE', default: '', doc: "The shoot's control-plane namespace in the seed; names the shoot identity (urn:rvpn:shoot:<namespace>)." }),
  podName: t.string({ env: 'POD_NAME', default: '', doc: 'Pod name; a trailing -N is the HA index.' }),
  isHa: t.bool({ env: 'IS_HA', default: 'false', doc: 'High-availability mode. vpn-seed-server: a userspace layer-2 switch between bonded endpoints (no TUN). vpn-shoot: one link to each seed server, bonded into one TAP device.' }),
  tunDevice: t.string({ env: 'TUN_DEVICE', default: 'tun0', doc: 'Name of the TUN device to create (at most 15 characters).' }),
  mtu: t.int({ env: 'MTU', default: '1500', min: 1280, max: 65535, doc: 'MTU of the TUN device.' }),
  keepaliveIntervalMs: t.duration({ env: 'KEEPALIVE_INTERVAL', default: '250ms', min: 10, doc: 'How often a keepalive PING is sent.' }),
  keepaliveTimeoutMs: t.duration({ env: 'KEEPALIVE_TIMEOUT', default: '1000ms', min: 50, doc: 'A peer that sent nothing for this long is declared dead (Gardener: 30-60 s).' }),
  logLevel: logLevelField,
};

/** The non-HA TUN's offload (vpn-seed-server, vpn-shoot). */
export const offloadFields = {
  tunnelOffload: t.bool({ env: 'TUNNEL_OFFLOAD', default: 'true', doc: 'Non-HA TUN: open the device with a virtio-net header and, when the peer offers it too (HELLO feature "gso", protocol 1.2), turn on checksum offload and TSO so TCP super-packets of up to 64 KiB cross the tunnel whole (one read, frame and write per 64 KiB). Headers from the peer are validated before the kernel sees them. An HA seed server (no TUN) offers "gso" to the bond endpoints with it: its switch carries their super-frames whole, and cuts them for a port without the feature. false: plain packets only.' }),
};

/** Fields of the HA bond (vpn-shoot in HA mode, path-controller). */
export const bondFields = {
  bondDevice: t.string({ env: 'BOND_DEVICE', default: 'bond0', doc: 'HA: name of the TAP device that presents the bonded links (at most 15 characters).' }),
  bondCoalesce: t.bool({ env: 'BOND_COALESCE', default: 'true', doc: 'HA: open the bond TAP with a virtio-net header and coalesce consecutive TCP segments that arrive from the links into super-frames of up to 64 KiB before writing them (one write and one trip through the kernel per super-frame instead of per 1.5 KiB frame; every merged segment\'s checksums are verified first). false: one write per frame.' }),
  bondOffload: t.bool({ env: 'BOND_OFFLOAD', default: 'true', doc: 'HA: turn on checksum offload and TSO on the bond TAP, so it reads TCP super-frames of up to 64 KiB, and offer "gso" (protocol 1.2) on the links: a link whose seed server offers it too carries them whole (one read, frame and write per 64 KiB), one whose server does not gets them cut into frames here. Headers from the links are validated before the kernel sees them. false: one read per 1.5 KiB frame.' }),
  bondNetworkV4: t.cidr({ env: 'BOND_NETWORK_V4', default: '192.168.123.0/24', doc: 'HA: IPv4 bond network (a /24 or larger) so IPv4 flows keep their source on the bond; shoot j takes .16+j, apiserver endpoints .64-.254.' }),
  bondingMode: t.enumOf(['active-backup', 'balance-rr'] as const, { env: 'BONDING_MODE', default: 'active-backup', doc: 'HA: how the bond uses its links (vpn2 name).' }),
  bondFailbackDelayMs: t.duration({ env: 'BOND_FAILBACK_DELAY', default: '2s', min: 0, doc: 'HA: the bond returns to the link of server 0 only after it stayed healthy this long.' }),
  haVpnServers: t.int({ env: 'HA_VPN_SERVERS', default: '2', min: 1, max: 5, doc: 'HA: number of vpn-seed-server replicas (vpn2 name).' }),
};

export const tlsFields = {
  tlsCaFile: t.file({ env: 'TLS_CA_FILE', required: true, doc: "The shoot's VPN CA (ca-vpn) bundle; during rotation it holds old and new CA." }),
  tlsCertFile: t.file({ env: 'TLS_CERT_FILE', required: true, doc: 'This side’s tunnel certificate (PEM).' }),
  tlsKeyFile: t.file({ env: 'TLS_KEY_FILE', required: true, doc: 'This side’s tunnel private key (PEM).' }),
};

export interface NetworkCheckable {
  ipFamilies: IpFamily[];
  vpnNetwork: Cidr;
  shootServiceNetworks: Cidr[];
  shootPodNetworks: Cidr[];
  shootNodeNetworks: Cidr[];
  seedPodNetwork: Cidr | undefined;
  seedNodeNetworks: Cidr[];
  seedServiceNetworks: Cidr[];
  networkMapping: MappingMode;
  mappedSeedPodNetworkV6: Cidr;
  mappedShootNodeNetworkV6: Cidr;
  mappedShootServiceNetworkV6: Cidr;
  mappedShootPodNetworkV6: Cidr;
  bondNetworkV4?: Cidr;
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  tunDevice: string;
}

/** The variable that holds each kind of network. */
export const NETWORK_ENV: Readonly<Record<NetworkKind, string>> = {
  seedPods: 'SEED_POD_NETWORK', seedNodes: 'SEED_NODE_NETWORKS', seedServices: 'SEED_SERVICE_NETWORKS',
  shootNodes: 'SHOOT_NODE_NETWORKS', shootServices: 'SHOOT_SERVICE_NETWORKS', shootPods: 'SHOOT_POD_NETWORKS',
};
/** The variable that holds each IPv6 mapped prefix. */
export const MAPPED_V6_ENV: Readonly<Record<MappedKind, string>> = {
  seedPods: 'MAPPED_SEED_POD_NETWORK_V6', shootNodes: 'MAPPED_SHOOT_NODE_NETWORK_V6', shootServices: 'MAPPED_SHOOT_SERVICE_NETWORK_V6', shootPods: 'MAPPED_SHOOT_POD_NETWORK_V6',
};

/** The mapping's input from a config: its networks, mode, IPv6 prefixes, and what the mapped ranges must avoid. */
export function networkMappingOptions(c: NetworkCheckable): NetworkMappingOptions {
  return {
    mode: c.networkMapping,
    families: c.ipFamilies,
    networks: {
      seedPods: c.seedPodNetwork ? [c.seedPodNetwork] : [], seedNodes: c.seedNodeNetworks, seedServices: c.seedServiceNetworks,
      shootNodes: c.shootNodeNetworks, shootServices: c.shootServiceNetworks, shootPods: c.shootPodNetworks,
    },
    ipv6Prefixes: { seedPods: c.mappedSeedPodNetworkV6, shootNodes: c.mappedShootNodeNetworkV6, shootServices: c.mappedShootServiceNetworkV6, shootPods: c.mappedShootPodNetworkV6 },
    avoid: [{ name: 'VPN_NETWORK', cidr: c.vpnNetwork }, ...(c.bondNetworkV4 ? [{ name: 'BOND_NETWORK_V4', cidr: c.bondNetworkV4 }] : [])],
  };
}

/**
 * The mapping for a loaded config (`derive`). Undefined only when it cannot be built, and then
 * checkNetworks lists why, so a config that loads always carries one.
 */
export function deriveNetworkMapping(c: NetworkCheckable): NetworkMapping {
  return planNetworkMapping(networkMappingOptions(c)).mapping as NetworkMapping;
}

/**
 * The mapping the tunnel apps compute from these variables, for whoever configures them (the operator
 * reports it in a ShootVpn's status): only the network variables are read, the rest keep their
 * defaults. `errors` lists why it cannot be built: RVPN_ERR_CONFIG_INVALID when a variable does not
 * parse, else the RVPN_ERR_MAPPING_* errors the apps would refuse to start with (the HA bond network is
 * not avoided here; HA checks it itself).
 */
export function planNetworkMappingFromEnv(env: Record<string, string | undefined>): { mapping: NetworkMapping | undefined; errors: RvpnError[] } {
  let c: NetworkCheckable;
  try {
    c = loadConfig(networkFields, env, { app: 'network mapping' });
  } catch (err) {
    if (ConfigInvalidError.is(err)) return { mapping: undefined, errors: [err as RvpnError] };
    throw err;
  }
  return planNetworkMapping(networkMappingOptions(c));
}

/** Which variable a mapping error is about. */
function mappingErrorEnv(e: RvpnError): string {
  const kind = e.details?.kind as NetworkKind | undefined;
  if (MappingPrefixConflictError.is(e)) return kind ? MAPPED_V6_ENV[kind as MappedKind] : String(e.details?.avoid);
  if (MappingOverlapNotAllowedError.is(e)) return 'NETWORK_MAPPING';
  if ((MappingReservedRangeError.is(e) || MappingNoFitError.is(e) || MappingAmbiguousError.is(e)) && kind) return NETWORK_ENV[kind];
  return 'NETWORK_MAPPING';
}

/** Cross-field checks every tunnel app shares. */
export function checkNetworks(c: NetworkCheckable, add: (env: string, problem: string) => void): void {
  if (c.vpnNetwork.family !== 6) add('VPN_NETWORK', 'must be an IPv6 network (it carries IPv4 and IPv6 payloads)');
  else if (c.vpnNetwork.prefix > 120) add('VPN_NETWORK', 'must be /120 or larger');
  const lists: Array<[string, Cidr[]]> = [
    ['SHOOT_SERVICE_NETWORKS', c.shootServiceNetworks],
    ['SHOOT_POD_NETWORKS', c.shootPodNetworks],
    ['SHOOT_NODE_NETWORKS', c.shootNodeNetworks],
  ];
  for (const [env, list] of lists) {
    for (const n of list) {
      if (!c.ipFamilies.includes(n.family)) add(env, `${n} is IPv${n.family}, but IP_FAMILIES allows only ${c.ipFamilies.map((f) => `IPv${f}`).join(',')}`);
    }
  }
  const { errors } = planNetworkMapping(networkMappingOptions(c));
  for (const e of errors) add(mappingErrorEnv(e), `${e.message} (${e.code})`);
  if (c.keepaliveTimeoutMs <= 2 * c.keepaliveIntervalMs) add('KEEPALIVE_TIMEOUT', `must be more than twice KEEPALIVE_INTERVAL (${c.keepaliveIntervalMs} ms)`);
  if (c.tunDevice.length > 15 || !/^[A-Za-z0-9_.-]+$/.test(c.tunDevice)) add('TUN_DEVICE', 'must be 1-15 characters of letters, digits, . _ -');
}

/** The HA index from a StatefulSet pod name (`vpn-seed-server-1` → 1). */
export function haIndexOf(podName: string): number | undefined {
  const m = /-(\d+)$/.exec(podName);
  return m ? Number(m[1]) : undefined;
}
