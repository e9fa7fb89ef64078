/** vpn-seed-server configuration. */
import type { NetworkMapping } from '../mapping.js';
import { loadConfig, optional, t, type ConfigOf } from '../schema.js';
import { parseIp, type Cidr } from '../net.js';
import { bondFields, checkNetworks, deriveNetworkMapping, haIndexOf, networkFields, offloadFields, tlsFields } from './common.js';

/**
 * Issue 12: the data path translates per `mapping` in both directions (who dials the tunnel does not
 * change what goes into the TUN), non-HA (this process) and HA (the switch only guards its ports with
 * the mapped shoot ranges; path-controller and vpn-shoot translate).
 */

export const seedServerSchema = {
  ...networkFields,
  ...offloadFields,
  localNodeIp: t.string({ env: 'LOCAL_NODE_IP', default: '', doc: 'The node IP of this pod (informational, vpn2 compatibility).' }),
  tunnelMode: t.enumOf(['listen', 'dial'] as const, { env: 'TUNNEL_MODE', default: 'listen', doc: 'listen: the shoot dials in (reversed VPN); dial: the seed dials the shoot (classic direction).' }),
  tunnelListen: t.hostPort({ env: 'TUNNEL_LISTEN', default: '0.0.0.0:1194', doc: 'Where the tunnel listener binds (listen mode).' }),
  tunnelDialAddress: optional(t.hostPort({ env: 'TUNNEL_DIAL_ADDRESS', defaultPort: 4314, doc: "The shoot's vpn-shoot endpoint host[:port] (dial mode; default port 4314)." })),
  tunnelServerName: t.string({ env: 'TUNNEL_SERVER_NAME', default: 'vpn-shoot', doc: "Expected DNS name in vpn-shoot's server certificate (dial mode)." }),
  ...tlsFields,
  clientAllowedCommonNames: t.stringList({ env: 'CLIENT_ALLOWED_COMMON_NAMES', default: 'vpn-shoot-client,vpn-shoot-client-0,vpn-shoot-client-1', doc: "Common names a shoot client certificate may have (it must also carry this shoot's URI)." }),
  seedClientCommonNames: t.stringList({ env: 'SEED_CLIENT_COMMON_NAMES', default: 'vpn-seed-client', doc: 'HA: common names of kube-apiserver-side endpoint certificates (path-controller); they must also carry this shoot\'s URI.' }),
  tunnelMaxPendingHandshakes: t.int({ env: 'TUNNEL_MAX_PENDING_HANDSHAKES', default: '32', min: 1, max: 100000, doc: 'Tunnel connections in their handshake (TLS, then HELLO) at once. Anyone who can name the shoot\'s route reaches the listener: at the cap a new connection evicts the oldest one still in TLS (RVPN_ERR_TUNNEL_OVERLOADED), or is refused when all of them authenticated.' }),
  tunnelTlsHandshakeTimeoutMs: t.duration({ env: 'TUNNEL_TLS_HANDSHAKE_TIMEOUT', default: '5s', min: 100, max: 60_000, doc: 'Time an unauthenticated tunnel connection has to finish its TLS handshake.' }),
  tunnelHandshakeTimeoutMs: t.duration({ env: 'TUNNEL_HANDSHAKE_TIMEOUT', default: '10s', min: 100, max: 60_000, doc: 'Time an authenticated tunnel connection has to send its HELLO.' }),
  announceIntervalMs: t.duration({ env: 'ANNOUNCE_INTERVAL', default: '1s', min: 50, doc: 'HA: how often the switch catches up ports that missed an announcement of the MACs attached to it while they did not read (changes are announced at once, at most one round per 100 ms; a quiet switch sends nothing).' }),
  bondNetworkV4: { ...bondFields.bondNetworkV4, doc: `${bondFields.bondNetworkV4.doc} The HA seed server lets shoot client j send IPv4 only from its address in it (set it alike everywhere).` },
  haMaxPorts: t.int({ env: 'HA_MAX_PORTS', default: '64', min: 2, max: 4096, doc: 'HA: most endpoints (switch ports: shoot clients and apiserver endpoints) attached at once; one more is refused with RVPN_ERR_SWITCH_FULL. At most 4096, the MACs one announcement carries.' }),
  haBroadcastRate: t.int({ env: 'HA_BROADCAST_RATE', default: '200', min: 1, max: 1_000_000, doc: 'HA: broadcast, multicast and unknown-unicast frames a switch port may flood per second (ARP, neighbour discovery); the excess is dropped and counted.' }),
  proxyListen: t.hostPort({ env: 'PROXY_LISTEN', default: '0.0.0.0:9443', doc: "Where the kube-apiserver's CONNECT proxy binds." }),
  proxyTlsCaFile: t.string({ env: 'PROXY_TLS_CA_FILE', default: '', doc: 'CA for the proxy clients (default: TLS_CA_FILE).' }),
  proxyTlsCertFile: t.string({ env: 'PROXY_TLS_CERT_FILE', default: '', doc: 'Proxy server certificate (default: TLS_CERT_FILE).' }),
  proxyTlsKeyFile: t.string({ env: 'PROXY_TLS_KEY_FILE', default: '', doc: 'Proxy server key (default: TLS_KEY_FILE).' }),
  proxyAllowedCommonNames: t.stringList({ env: 'PROXY_ALLOWED_COMMON_NAMES', default: 'kube-apiserver-http-proxy-client', doc: 'Client certificate common names allowed to use the proxy.' }),
  proxyHoldTimeoutMs: t.duration({ env: 'PROXY_HOLD_TIMEOUT', default: '7s', min: 0, max: 9999, doc: "How long a CONNECT waits for a reconnecting tunnel before 503 (below the apiserver's 10 s webhook timeout)." }),
  proxyMaxPending: t.int({ env: 'PROXY_MAX_PENDING', default: '1000', min: 0, doc: 'Most CONNECTs held at once; beyond, 503 at once.' }),
  proxyDialTimeoutMs: t.duration({ env: 'PROXY_DIAL_TIMEOUT', default: '5s', min: 100, doc: 'Timeout of a dial into the shoot (then 504).' }),
  statusListen: t.hostPort({ env: 'STATUS_LISTEN', default: '0.0.0.0:15000', doc: 'Where /healthz, /readyz and /metrics are served.' }),
  probeIntervalMs: t.duration({ env: 'PROBE_INTERVAL', default: '1s', min: 50, doc: 'Interval of the data-path probe through the tunnel (readiness).' }),
  nftTable: t.string({ env: 'NFT_TABLE', default: 'rvpn_seed', doc: 'Name of the nftables table this process owns.' }),
};

export type SeedServerConfig = ConfigOf<typeof seedServerSchema> & {
  /** Where each network appears in the tunnel (identity for a family that is not mapped); see mapping.ts. */
  mapping: NetworkMapping;
  haIndex: number | undefined;
  tls: { caFile: string; certFile: string; keyFile: string };
  proxyTls: { caFile: string; certFile: string; keyFile: string };
};

/** The shoot's networks, in the order the seed server routes and names them. */
export function shootNetworksOf(c: { shootServiceNetworks: Cidr[]; shootPodNetworks: Cidr[]; shootNodeNetworks: Cidr[] }): Cidr[] {
  return [...c.shootServiceNetworks, ...c.shootPodNetworks, ...c.shootNodeNetworks];
}

/** What the seed server routes into its TUN: the mapped shoot ranges when a family is mapped, else the real shoot networks. */
export function seedTunnelNetworks(c: { shootServiceNetworks: Cidr[]; shootPodNetworks: Cidr[]; shootNodeNetworks: Cidr[] }, mapping: NetworkMapping): Cidr[] {
  return mapping.isActive() ? mapping.tunnelCidrs('shoot') : shootNetworksOf(c);
}

export function loadSeedServerConfig(env: Record<string, string | undefined>): SeedServerConfig {
  return loadConfig(seedServerSchema, env, {
    app: 'vpn-seed-server',
    derive: (c) => ({
      mapping: deriveNetworkMapping(c),
      haIndex: haIndexOf(c.podName),
      tls: { caFile: c.tlsCaFile, certFile: c.tlsCertFile, keyFile: c.tlsKeyFile },
      proxyTls: { caFile: c.proxyTlsCaFile || c.tlsCaFile, certFile: c.proxyTlsCertFile || c.tlsCertFile, keyFile: c.proxyTlsKeyFile || c.tlsKeyFile },
    }),
    check: (c, add) => {
      checkNetworks(c, add);
      if (!c.namespace) add('NAMESPACE', "is required: the shoot's control-plane namespace binds client certificates to this shoot");
      if (c.tunnelMode === 'dial' && !env.TUNNEL_DIAL_ADDRESS) add('TUNNEL_DIAL_ADDRESS', 'is required when TUNNEL_MODE=dial');
      if (c.tunnelMode === 'dial' && c.tunnelDialAddress) {
        // the tunnel's own connection must not be routed into the tunnel
        const ip = parseIp(c.tunnelDialAddress.host);
        const mapping = deriveNetworkMapping(c);
        const inside = ip && seedTunnelNetworks(c, mapping).find((n) => n.contains(ip));
        if (inside) add('TUNNEL_DIAL_ADDRESS', `${c.tunnelDialAddress.host} lies in ${inside}, which is routed into the tunnel: dial the shoot's LoadBalancer (an address outside the shoot networks${mapping.isActive() ? ' and the mapped ranges' : ''})`);
      }
      if (c.ipFamilies.includes(4) && c.shootServiceNetworks.length + c.shootPodNetworks.length + c.shootNodeNetworks.length === 0) add('SHOOT_POD_NETWORKS', 'no shoot network configured');
      if (c.isHa && haIndexOf(c.podName) === undefined) add('POD_NAME', 'must end in -<index> in HA mode (StatefulSet pod name, e.g. vpn-seed-server-0)');
      if (c.isHa && c.tunnelMode !== 'listen') add('TUNNEL_MODE', 'must be listen in HA mode (the clients dial the servers)');
    },
  }) as SeedServerConfig;
}
