/** path-controller configuration (HA; a sidecar of each kube-apiserver pod). */
import type { NetworkMapping } from '../mapping.js';
import { loadConfig, t, type ConfigOf } from '../schema.js';
import { bondFields, checkNetworks, deriveNetworkMapping, networkFields, tlsFields } from './common.js';
import { parseIp } from '../net.js';

/**
 * Issue 12: the HA data path translates per `mapping`: the local proxy dials mapped shoot addresses,
 * only the mapped ranges are routed via the bond, vpn-shoot maps them back.
 */

export const pathControllerSchema = {
  ...networkFields,
  ...bondFields,
  ...tlsFields,
  seedServers: t.hostPortList({ env: 'SEED_SERVERS', default: 'vpn-seed-server-0:1194,vpn-seed-server-1:1194', defaultPort: 1194, doc: 'The HA vpn-seed-server replicas, in index order (host:port list).' }),
  haVpnClients: t.int({ env: 'HA_VPN_CLIENTS', default: '2', min: 1, max: 16, doc: 'Number of vpn-shoot replicas, i.e. paths into the shoot (vpn2 name).' }),
  probeTarget: t.hostPort({ env: 'PROBE_TARGET', default: '100.64.0.1:443', doc: 'A shoot IP address probed THROUGH each shoot pod (TCP: an accept or a refusal both prove the path); e.g. the kubernetes service ClusterIP.' }),
  probeIntervalMs: t.duration({ env: 'PROBE_INTERVAL', default: '200ms', min: 20, doc: 'How often each path is probed.' }),
  probeTimeoutMs: t.duration({ env: 'PROBE_TIMEOUT', default: '400ms', min: 10, doc: 'A probe without an answer this long is a miss.' }),
  probeMisses: t.int({ env: 'PROBE_MISSES', default: '3', min: 1, max: 100, doc: 'Consecutive misses after which a path is declared down.' }),
  probeHealthyPeriodMs: t.duration({ env: 'PROBE_HEALTHY_PERIOD', default: '3s', min: 0, doc: 'A path that failed must pass probes this long before it is used again (hysteresis).' }),
  probePortBase: t.int({ env: 'PROBE_PORT_BASE', default: '40000', min: 1024, max: 60000, doc: 'Probes through path j use local ports base+100j..base+100j+99 (marked per path by the firewall).' }),
  proxyListen: t.hostPort({ env: 'PROXY_LISTEN', default: '0.0.0.0:9443', doc: "The kube-apiserver's local CONNECT proxy (same as vpn-seed-server's in non-HA)." }),
  proxyTlsCertFile: t.file({ env: 'PROXY_TLS_CERT_FILE', required: true, doc: 'Server certificate of the local CONNECT proxy.' }),
  proxyTlsKeyFile: t.file({ env: 'PROXY_TLS_KEY_FILE', required: true, doc: 'Its key.' }),
  proxyAllowedCommonNames: t.stringList({ env: 'PROXY_ALLOWED_COMMON_NAMES', default: 'kube-apiserver-http-proxy-client', doc: 'Client certificate common names allowed to use the proxy.' }),
  proxyHoldTimeoutMs: t.duration({ env: 'PROXY_HOLD_TIMEOUT', default: '7s', min: 0, max: 9999, doc: 'How long a CONNECT waits for a usable path before 503.' }),
  proxyMaxPending: t.int({ env: 'PROXY_MAX_PENDING', default: '1000', min: 0, doc: 'Most CONNECTs held at once.' }),
  proxyDialTimeoutMs: t.duration({ env: 'PROXY_DIAL_TIMEOUT', default: '5s', min: 100, doc: 'Timeout of a dial into the shoot (then 504).' }),
  statusListen: t.hostPort({ env: 'STATUS_LISTEN', default: '0.0.0.0:15000', doc: 'Where /healthz, /readyz and /metrics are served.' }),
  nftTable: t.string({ env: 'NFT_TABLE', default: 'rvpn_path', doc: 'Name of the nftables table this process owns.' }),
  bondSlot: t.int({ env: 'BOND_SLOT', default: '-1', min: -1, max: 190, doc: 'Endpoint slot to try first (0-190); -1 draws one at random. A slot another endpoint holds is refused by the servers and redrawn either way.' }),
  routeTableBase: t.int({ env: 'ROUTE_TABLE_BASE', default: '100', min: 1, max: 250, doc: 'Policy routing tables base..base+HA_VPN_CLIENTS-1 hold the per-path probe routes.' }),
};

export type PathControllerConfig = ConfigOf<typeof pathControllerSchema> & {
  /** Where each network appears in the tunnel (identity for a family that is not mapped); see mapping.ts. */
  mapping: NetworkMapping;
  tls: { caFile: string; certFile: string; keyFile: string };
};

export function loadPathControllerConfig(env: Record<string, string | undefined>): PathControllerConfig {
  return loadConfig(pathControllerSchema, env, {
    app: 'path-controller',
    derive: (c) => ({
      mapping: deriveNetworkMapping(c), tls: { caFile: c.tlsCaFile, certFile: c.tlsCertFile, keyFile: c.tlsKeyFile } }),
    check: (c, add) => {
      checkNetworks(c, add);
      const mapping = deriveNetworkMapping(c) as NetworkMapping | undefined; // undefined when checkNetworks found why
      const probe = parseIp(c.probeTarget.host);
      if (!probe) add('PROBE_TARGET', `${c.probeTarget.host} is not an IP address: probes are routed through the bond by address and no name is resolved; name a real shoot address (e.g. the kubernetes service ClusterIP)`);
      if (mapping && probe && mapping.isActive(probe.family) && !mapping.toMapped(probe, 'shoot')) {
        add('PROBE_TARGET', `${c.probeTarget.host} is in no shoot network, but IPv${probe.family} is mapped: only the mapped shoot ranges are routed via the bond, so name a real shoot address (e.g. the kubernetes service ClusterIP)`);
      }
      if (!c.namespace) add('NAMESPACE', "is required: the shoot's control-plane namespace names the identity in the certificates");
      if (!c.podName) add('POD_NAME', 'is required: it names this endpoint on the servers');
      if (c.seedServers.length !== c.haVpnServers) add('SEED_SERVERS', `lists ${c.seedServers.length} servers but HA_VPN_SERVERS is ${c.haVpnServers}`);
      if (c.bondNetworkV4.prefix > 24) add('BOND_NETWORK_V4', 'must be a /24 or larger');
      if (c.probeTimeoutMs > c.probeIntervalMs * 5) add('PROBE_TIMEOUT', 'must not exceed five probe intervals');
    },
  }) as PathControllerConfig;
}
