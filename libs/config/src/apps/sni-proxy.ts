/** sni-proxy configuration. */
import { logLevelField } from './log-level.js';
import { loadConfig, t, type ConfigOf } from '../schema.js';

/** Gardener's allow-list for the CONNECT routing header. */
export const DEFAULT_ALLOW_PATTERNS = [
  '^outbound\\|1194\\|\\|vpn-seed-server(-[0-4])?\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.svc\\.cluster\\.local$',
  '^outbound\\|443\\|\\|kube-apiserver\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.svc\\.cluster\\.local$',
];

export const sniProxySchema = {
  routesFiles: t.fileList({ env: 'ROUTES_FILE', required: true, doc: 'JSON route table(s): { "sni": { host: "ip:port" }, "connect": { headerValue: "ip:port" }, "allow": [regex] }; a comma list is merged (the first file must exist, later ones count as empty until they appear; on a key in two files the first file wins); reloaded on change and SIGHUP.' }),
  listen443: t.hostPort({ env: 'LISTEN_TLS', default: '0.0.0.0:443', doc: 'TLS passthrough listener, routed by SNI.' }),
  listen8443: t.hostPort({ env: 'LISTEN_CONNECT', default: '0.0.0.0:8443', doc: 'CONNECT listener routed by X-Gardener-Destination.' }),
  listen8132: t.hostPort({ env: 'LISTEN_CONNECT_LEGACY', default: '0.0.0.0:8132', doc: 'Legacy CONNECT listener routed by Reversed-VPN.' }),
  statusListen: t.hostPort({ env: 'STATUS_LISTEN', default: '0.0.0.0:15021', doc: 'Where /healthz, /readyz and /metrics are served.' }),
  proxyProtocol: t.enumOf(['off', 'optional', 'required'] as const, { env: 'PROXY_PROTOCOL', default: 'off', doc: 'PROXY protocol v1/v2 on input (from a load balancer). Logs carry the peer address and the claimed one; which one the per-source caps count is PROXY_PROTOCOL_TRUSTED_NETWORKS\'s decision.' }),
  proxyProtocolTrustedNetworks: t.cidrList({ env: 'PROXY_PROTOCOL_TRUSTED_NETWORKS', default: '', doc: 'Peers (the load balancer) whose PROXY header names the source that per-source caps count; from anyone else the claim is only logged and the peer address counts. Empty: nobody with PROXY_PROTOCOL=optional, every peer with required (all must come through the load balancer).' }),
  maxHeaderBytes: t.int({ env: 'MAX_HEADER_BYTES', default: '8192', min: 256, max: 1048576, doc: 'Largest CONNECT request head (431 beyond).' }),
  headerTimeoutMs: t.duration({ env: 'HEADER_TIMEOUT', default: '5s', min: 10, doc: 'Time a client has from connecting until its route is known: PROXY header plus request head or ClientHello (408 on CONNECT, closed on 443).' }),
  maxConnections: t.int({ env: 'MAX_CONNECTIONS', default: '10000', min: 1, doc: 'Client connections open at once across all three listeners; beyond, a new one is closed at once.' }),
  maxConnectionsPerSource: t.int({ env: 'MAX_CONNECTIONS_PER_SOURCE', default: '2000', min: 1, doc: 'Client connections open at once from one source: an IPv4 address (IPv4-mapped IPv6 counts as IPv4) or an IPv6 /64. Raise it for shoots with many nodes behind one NAT address.' }),
  maxConnectionsPerRoute: t.int({ env: 'MAX_CONNECTIONS_PER_ROUTE', default: '5000', min: 1, doc: 'Piped connections at once to one route (a CONNECT header value, or the upstream of an SNI name); beyond, 503 on CONNECT and closed on 443.' }),
  maxPendingConnections: t.int({ env: 'MAX_PENDING_CONNECTIONS', default: '1000', min: 1, doc: 'Connections whose route is not known yet (PROXY header, request head or ClientHello in progress) at once; beyond, a new one is closed at once.' }),
  maxPendingConnectionsPerSource: t.int({ env: 'MAX_PENDING_CONNECTIONS_PER_SOURCE', default: '100', min: 1, doc: 'The same per source (IPv4 address or IPv6 /64), so that one source cannot take every pending slot.' }),
  upstreamDialTimeoutMs: t.duration({ env: 'UPSTREAM_DIAL_TIMEOUT', default: '10s', min: 100, max: 120_000, doc: 'Time an upstream has to accept the connection (then 504 on CONNECT, closed on 443).' }),
  relayReceiveBufferBytes: t.int({ env: 'RELAY_RECEIVE_BUFFER', default: '65536', min: 0, max: 16777216, doc: "SO_RCVBUF of both sockets of a piped connection, in bytes (the kernel doubles it; autotuning stops). A tunnel's standing queue then stays in the tunnel endpoints' flow-fair queues, not in this relay's kernel (at 2 Gbit/s: 10-40 ms of ping delay uncapped, about 10 ms with 128 KiB; 64 KiB took another 0.7 ms off the plain path's ping under load and 1 ms off the HA path's, whose endpoints cap their own sockets at 32 KiB, at the same throughput, on a 1.4 Gbit/s machine). 0: kernel autotuning." }),
  relayNotSentLowatBytes: t.int({ env: 'RELAY_NOTSENT_LOWAT', default: '32768', min: 0, max: 16777216, doc: 'TCP_NOTSENT_LOWAT of both sockets of a piped connection, in bytes: unsent data the kernel holds beyond the peer window before the relay stops writing. 0: the kernel default (no limit).' }),
  relayMode: t.enumOf(['native', 'stream'] as const, { env: 'RELAY_MODE', default: 'native', doc: "How a routed connection's bytes are copied. native: in the native addon on the event loop (recv/send per socket readiness, no JavaScript per chunk; the JS sockets are handed over and closed). stream: Node stream pipes. native falls back to stream for a connection it cannot take over (logged once, RVPN_ERR_RELAY_HANDOVER)." }),
  idleTimeoutMs: t.duration({ env: 'IDLE_TIMEOUT', default: '1h', min: 1000, doc: 'A piped connection idle this long is closed.' }),
  refusalLogIntervalMs: t.duration({ env: 'REFUSAL_LOG_INTERVAL', default: '10s', min: 100, max: 3_600_000, doc: 'Refusals and accept errors are logged once per interval and kind, with the count of those not logged (the metrics count every one).' }),
  allowPatterns: t.regexList({ env: 'ALLOW_PATTERNS', default: DEFAULT_ALLOW_PATTERNS.join(';;'), doc: "Regular expressions (separated by ';;' or newlines) a CONNECT header value must match." }),
  logLevel: logLevelField,
};

export type SniProxyConfig = ConfigOf<typeof sniProxySchema>;

export function loadSniProxyConfig(env: Record<string, string | undefined>): SniProxyConfig {
  // the caps are independent: one above MAX_CONNECTIONS simply never binds first
  return loadConfig(sniProxySchema, env, { app: 'sni-proxy' });
}
