/** vpn-shoot configuration. */
import type { NetworkMapping } from '../mapping.js';
import { loadConfig, t, type ConfigOf } from '../schema.js';
import { bondFields, checkNetworks, deriveNetworkMapping, haIndexOf, networkFields, offloadFields, tlsFields } from './common.js';

/**
 * Issue 12: the data path translates per `mapping` in both directions (dialing out or listening for
 * the seed), non-HA and HA (IS_HA=true: the same DNAT on the bond).
 */

export const shootSchema = {
  ...networkFields,
  ...offloadFields,
  endpoint: t.string({ env: 'ENDPOINT', default: '', doc: "Host of the seed's entry point (sni-proxy / load balancer) that vpn-shoot dials." }),
  openvpnPort: t.port({ env: 'OPENVPN_PORT', default: '8132', doc: 'Port of the CONNECT entry point (vpn2 default 8132; Gardener sets 8443).' }),
  reversedVpnHeaderKey: t.string({ env: 'REVERSED_VPN_HEADER_KEY', default: 'Reversed-VPN', doc: 'Header that routes the CONNECT (Gardener sets X-Gardener-Destination).' }),
  reversedVpnHeader: t.string({ env: 'REVERSED_VPN_HEADER', default: '', doc: 'Header value; default outbound|1194||vpn-seed-server.<NAMESPACE>.svc.cluster.local.' }),
  isShootClient: t.bool({ env: 'IS_SHOOT_CLIENT', default: 'true', doc: 'vpn2 compatibility; must be true for vpn-shoot.' }),
  vpnServerIndex: t.string({ env: 'VPN_SERVER_INDEX', default: '', doc: 'vpn2 compatibility only (a vpn2 HA client container serves one server); ignored: an HA vpn-shoot links to all HA_VPN_SERVERS itself.' }),
  tunnelMode: t.enumOf(['dial', 'listen'] as const, { env: 'TUNNEL_MODE', default: 'dial', doc: 'dial: the shoot dials out (reversed VPN); listen: the seed dials in on TUNNEL_LISTEN (classic direction).' }),
  tunnelListen: t.hostPort({ env: 'TUNNEL_LISTEN', default: '0.0.0.0:4314', doc: 'Where vpn-shoot listens in the classic direction.' }),
  directDial: t.bool({ env: 'DIRECT_DIAL', default: 'false', doc: 'Dial ENDPOINT:OPENVPN_PORT as the tunnel server itself, without CONNECT.' }),
  ...tlsFields,
  ...bondFields,
  tlsServerName: t.string({ env: 'TLS_SERVER_NAME', default: 'vpn-seed-server', doc: "Expected DNS name in the seed server's certificate." }),
  egressInterface: t.string({ env: 'EGRESS_INTERFACE', default: 'eth0', doc: 'Interface toward the shoot networks; tunnel traffic is masqueraded out of it.' }),
  reconnectMinMs: t.duration({ env: 'RECONNECT_MIN', default: '100ms', min: 1, doc: 'First reconnect backoff (exponential, full jitter).' }),
  reconnectMaxMs: t.duration({ env: 'RECONNECT_MAX', default: '5s', min: 1, doc: 'Backoff cap.' }),
  protocolMinor: t.int({ env: 'TUNNEL_PROTOCOL_MINOR', default: '2', min: 0, max: 2, doc: 'Speak an older protocol minor version (rolling upgrades; version-skew tests).' }),
  statusListen: t.hostPort({ env: 'STATUS_LISTEN', default: '0.0.0.0:15000', doc: 'Where /healthz, /readyz and /metrics are served.' }),
  nftTable: t.string({ env: 'NFT_TABLE', default: 'rvpn_shoot', doc: 'Name of the nftables table this process owns.' }),
};

export type ShootConfig = ConfigOf<typeof shootSchema> & {
  /** Where each network appears in the tunnel (identity for a family that is not mapped); see mapping.ts. */
  mapping: NetworkMapping;
  haIndex: number | undefined;
  tls: { caFile: string; certFile: string; keyFile: string };
};

export function loadShootConfig(env: Record<string, string | undefined>): ShootConfig {
  return loadConfig(shootSchema, env, {
    app: 'vpn-shoot',
    derive: (c) => ({
      mapping: deriveNetworkMapping(c),
      haIndex: haIndexOf(c.podName),
      tls: { caFile: c.tlsCaFile, certFile: c.tlsCertFile, keyFile: c.tlsKeyFile },
      reversedVpnHeader: c.reversedVpnHeader || (c.namespace ? `outbound|1194||vpn-seed-server.${c.namespace}.svc.cluster.local` : ''),
    }),
    check: (c, add) => {
      checkNetworks(c, add);
      if (c.tunnelMode === 'dial' && !c.endpoint) add('ENDPOINT', 'is required when TUNNEL_MODE=dial');
      if (c.tunnelMode === 'dial' && !c.directDial && !c.reversedVpnHeader) add('REVERSED_VPN_HEADER', 'is required (or set NAMESPACE) when dialing through the CONNECT entry point');
      if (!c.isHa && c.ipFamilies.includes(4) && !c.seedPodNetwork) add('SEED_POD_NETWORK', 'is required with IPv4: replies to seed pod addresses must be routed back into the tunnel');
      if (!c.isShootClient) add('IS_SHOOT_CLIENT', 'must be true for vpn-shoot');
      if (c.reconnectMaxMs < c.reconnectMinMs) add('RECONNECT_MAX', 'must not be below RECONNECT_MIN');
      if (c.isHa && haIndexOf(c.podName) === undefined) add('POD_NAME', 'must end in -<index> in HA mode (StatefulSet pod name, e.g. vpn-shoot-0)');
      if (c.isHa && c.tunnelMode !== 'dial') add('TUNNEL_MODE', 'must be dial in HA mode');
      if (c.isHa && c.bondNetworkV4.prefix > 24) add('BOND_NETWORK_V4', 'must be a /24 or larger');
    },
  }) as ShootConfig;
}
