/**
 * The seed-wide entry point: sni-proxy behind one LoadBalancer (443 SNI passthrough, 8443 and 8132
 * CONNECT routed by header), no capabilities, non-root. It reads two route files (ROUTES_FILE is a
 * comma list, merged in order): the chart's static routes and the operator's, each a ConfigMap volume
 * of its own (sni-proxy follows each ..data swap without dropping connections); the operator's is
 * optional, so sni-proxy starts before the operator has published it.
 */
import { sniProxySchema } from '@rvpn/config';
import { nonRootContainerSecurity, nonRootPodSecurity, objectLabels, podTemplate, probes, selectorLabels, type WorkloadDefaults } from './common.js';
import type { K8sObject, RenderOptions } from './types.js';

export const SNI_PROXY = 'sni-proxy';
export const SNI_PROXY_COMPONENT = 'entry-point';
export const ROUTES_DIR = '/etc/sni-proxy/routes';

export const SNI_PROXY_DEFAULTS: WorkloadDefaults = {
  resources: { requests: { cpu: '100m', memory: '96Mi' }, limits: { memory: '512Mi' } },
  podSecurityContext: nonRootPodSecurity,
  containerSecurityContext: nonRootContainerSecurity,
};

/**
 * The caps on what anyone can hold open (see docs/configuration.md). Defaults: sni-proxy's own (its
 * config schema is the one table), so an unset value renders the default the app would use anyway.
 */
export interface SniProxyLimits {
  maxConnections: number;
  maxConnectionsPerSource: number;
  maxConnectionsPerRoute: number;
  maxPendingConnections: number;
  maxPendingConnectionsPerSource: number;
  /** Durations as the app reads them: `5s`, `500ms`. */
  headerTimeout: string;
  upstreamDialTimeout: string;
  refusalLogInterval: string;
}

const d = (f: { default?: string }) => f.default!;
export const SNI_PROXY_LIMIT_DEFAULTS: SniProxyLimits = {
  maxConnections: Number(d(sniProxySchema.maxConnections)),
  maxConnectionsPerSource: Number(d(sniProxySchema.maxConnectionsPerSource)),
  maxConnectionsPerRoute: Number(d(sniProxySchema.maxConnectionsPerRoute)),
  maxPendingConnections: Number(d(sniProxySchema.maxPendingConnections)),
  maxPendingConnectionsPerSource: Number(d(sniProxySchema.maxPendingConnectionsPerSource)),
  headerTimeout: d(sniProxySchema.headerTimeoutMs),
  upstreamDialTimeout: d(sniProxySchema.upstreamDialTimeoutMs),
  refusalLogInterval: d(sniProxySchema.refusalLogIntervalMs),
};

export interface SniProxyInput {
  namespace: string;
  /** Name of its objects (the chart: the release's fullname); default sni-proxy. */
  name?: string;
  image: string;
  replicas: number;
  /** The static route ConfigMap (renderSniProxyRoutesConfigMap with sni and connect entries). */
  routesConfigMap: string;
  /** The operator's route ConfigMap (SNI_PROXY_ROUTES_CONFIGMAP of the operator); unset: none. */
  operatorRoutesConfigMap?: string;
  proxyProtocol: 'off' | 'optional' | 'required';
  /** PROXY_PROTOCOL_TRUSTED_NETWORKS: the load balancer's networks (default none). */
  proxyProtocolTrustedNetworks?: readonly string[];
  /** RELAY_MODE: native (default: bytes copied in the addon) or stream (Node stream pipes). */
  relayMode?: 'native' | 'stream';
  /** Caps; each unset one is sni-proxy's default. */
  limits?: Partial<SniProxyLimits>;
  loadBalancerAnnotations: Record<string, string>;
  /**
   * The Service (default LoadBalancer with externalTrafficPolicy Local, which keeps client addresses: the
   * per-source caps count them; with Cluster they see node addresses unless a trusted PROXY header names the client).
   */
  service?: { type?: 'LoadBalancer' | 'NodePort'; externalTrafficPolicy?: 'Local' | 'Cluster'; loadBalancerClass?: string };
}

export function renderSniProxy(input: SniProxyInput, options: RenderOptions = {}): K8sObject[] {
  const name = input.name ?? SNI_PROXY;
  const meta = objectLabels(SNI_PROXY, SNI_PROXY_COMPONENT, options);
  const sel = selectorLabels(SNI_PROXY, SNI_PROXY_COMPONENT, options);
  const ns = input.namespace;
  const limits = { ...SNI_PROXY_LIMIT_DEFAULTS, ...input.limits };
  const files = [`${ROUTES_DIR}/static/routes.json`, ...(input.operatorRoutesConfigMap ? [`${ROUTES_DIR}/operator/routes.json`] : [])];
  const pod = {
    serviceAccountName: name,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    containers: [{
      name: SNI_PROXY,
      image: input.image,
      env: [
        // merged in order: the static routes win a key both define
        { name: 'ROUTES_FILE', value: files.join(',') },
        { name: 'LISTEN_TLS', value: '0.0.0.0:8443' },
        { name: 'LISTEN_CONNECT', value: '0.0.0.0:9443' },
        { name: 'LISTEN_CONNECT_LEGACY', value: '0.0.0.0:8132' },
        { name: 'PROXY_PROTOCOL', value: input.proxyProtocol },
        { name: 'PROXY_PROTOCOL_TRUSTED_NETWORKS', value: (input.proxyProtocolTrustedNetworks ?? []).join(',') },
        { name: 'RELAY_MODE', value: input.relayMode ?? 'native' },
        // the caps (every refusal counted in rvpn_sni_proxy_refused_total and logged once per interval)
        { name: 'MAX_CONNECTIONS', value: String(limits.maxConnections) },
        { name: 'MAX_CONNECTIONS_PER_SOURCE', value: String(limits.maxConnectionsPerSource) },
        { name: 'MAX_CONNECTIONS_PER_ROUTE', value: String(limits.maxConnectionsPerRoute) },
        { name: 'MAX_PENDING_CONNECTIONS', value: String(limits.maxPendingConnections) },
        { name: 'MAX_PENDING_CONNECTIONS_PER_SOURCE', value: String(limits.maxPendingConnectionsPerSource) },
        { name: 'HEADER_TIMEOUT', value: limits.headerTimeout },
        { name: 'UPSTREAM_DIAL_TIMEOUT', value: limits.upstreamDialTimeout },
        { name: 'REFUSAL_LOG_INTERVAL', value: limits.refusalLogInterval },
      ],
      // unprivileged ports inside the pod; the Service maps 443 → 8443 and 8443 → 9443
      ports: [
        { name: 'tls', containerPort: 8443, protocol: 'TCP' },
        { name: 'connect', containerPort: 9443, protocol: 'TCP' },
        { name: 'connect-legacy', containerPort: 8132, protocol: 'TCP' },
        { name: 'status', containerPort: 15021, protocol: 'TCP' },
      ],
      ...probes(15021),
      volumeMounts: [
        { name: 'static-routes', mountPath: `${ROUTES_DIR}/static`, readOnly: true },
        ...(input.operatorRoutesConfigMap ? [{ name: 'operator-routes', mountPath: `${ROUTES_DIR}/operator`, readOnly: true }] : []),
      ],
    }],
    volumes: [
      { name: 'static-routes', configMap: { name: input.routesConfigMap } },
      ...(input.operatorRoutesConfigMap ? [{ name: 'operator-routes', configMap: { name: input.operatorRoutesConfigMap, optional: true } }] : []),
    ],
  };
  const svc = input.service ?? {};
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns, labels: meta }, automountServiceAccountToken: false },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: ns, labels: meta },
      spec: {
        replicas: input.replicas,
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        selector: { matchLabels: sel },
        template: podTemplate({ ...meta }, pod, SNI_PROXY_DEFAULTS, options.pod),
      },
    },
    {
      apiVersion: 'v1', kind: 'Service',
      metadata: { name, namespace: ns, labels: meta, ...(Object.keys(input.loadBalancerAnnotations).length > 0 ? { annotations: input.loadBalancerAnnotations } : {}) },
      spec: {
        type: svc.type ?? 'LoadBalancer',
        externalTrafficPolicy: svc.externalTrafficPolicy ?? 'Local',
        ...(svc.loadBalancerClass ? { loadBalancerClass: svc.loadBalancerClass } : {}),
        selector: sel,
        ports: [
          { name: 'tls', port: 443, targetPort: 8443, protocol: 'TCP' },
          { name: 'connect', port: 8443, targetPort: 9443, protocol: 'TCP' },
          { name: 'connect-legacy', port: 8132, targetPort: 8132, protocol: 'TCP' },
        ],
      },
    },
    { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name, namespace: ns, labels: meta }, spec: { maxUnavailable: 1, selector: { matchLabels: sel } } },
  ];
}
