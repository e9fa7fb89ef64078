/** sni-proxy configuration. */
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
  proxyProtocol: t.enumOf(['off', 'optional', 'required'] as const, { env: 'PROXY_PROTOCOL', default: 'off', doc: 'PROXY protocol v1/v2 on input (from a load balancer).' }),
  maxHeaderBytes: t.int({ env: 'MAX_HEADER_BYTES', default: '8192', min: 256, max: 1048576, doc: 'Largest CONNECT request head (431 beyond).' }),
  headerTimeoutMs: t.duration({ env: 'HEADER_TIMEOUT', default: '5s', min: 10, doc: 'Time a client has to send its request head or ClientHello (408).' }),
  maxConnections: t.int({ env: 'MAX_CONNECTIONS', default: '10000', min: 1, doc: 'Concurrent connections across listeners; beyond, refused at once.' }),
  idleTimeoutMs: t.duration({ env: 'IDLE_TIMEOUT', default: '1h', min: 1000, doc: 'A piped connection idle this long is closed.' }),
  allowPatterns: t.regexList({ env: 'ALLOW_PATTERNS', default: DEFAULT_ALLOW_PATTERNS.join(';;'), doc: "Regular expressions (separated by ';;' or newlines) a CONNECT header value must match." }),
  logLevel: t.enumOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const, { env: 'LOG_LEVEL', default: 'info', doc: 'Level of the structured JSON logs.' }),
};

export type SniProxyConfig = ConfigOf<typeof sniProxySchema>;

export function loadSniProxyConfig(env: Record<string, string | undefined>): SniProxyConfig {
  return loadConfig(sniProxySchema, env, { app: 'sni-proxy' });
}
