/**
 * The seed-wide entry point: sni-proxy behind one LoadBalancer (443 SNI passthrough, 8443 and 8132
 * CONNECT routed by header), its route ConfigMap mounted as a volume (sni-proxy follows the ..data swap
 * without dropping connections), no capabilities, non-root.
 */
import { labels, probes, unprivilegedSecurity } from './common.js';
import type { K8sObject } from './types.js';

export interface SniProxyInput {
  namespace: string;
  image: string;
  replicas: number;
  /** Header value → host:port routes (the operator keeps the ConfigMap current; see renderSniProxyRoutesConfigMap). */
  routesConfigMap: string;
  proxyProtocol: 'off' | 'optional' | 'required';
  loadBalancerAnnotations: Record<string, string>;
}

export function renderSniProxy(input: SniProxyInput): K8sObject[] {
  const sel = labels('sni-proxy');
  const ns = input.namespace;
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sni-proxy', namespace: ns, labels: sel }, automountServiceAccountToken: false },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'sni-proxy', namespace: ns, labels: sel },
      spec: {
        replicas: input.replicas,
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        selector: { matchLabels: sel },
        template: {
          metadata: { labels: sel },
          spec: {
            serviceAccountName: 'sni-proxy',
            automountServiceAccountToken: false,
            containers: [{
              name: 'sni-proxy',
              image: input.image,
              env: [
                { name: 'ROUTES_FILE', value: '/etc/sni-proxy/routes/routes.json' },
                { name: 'LISTEN_TLS', value: '0.0.0.0:8443' },
                { name: 'LISTEN_CONNECT', value: '0.0.0.0:9443' },
                { name: 'LISTEN_CONNECT_LEGACY', value: '0.0.0.0:8132' },
                { name: 'PROXY_PROTOCOL', value: input.proxyProtocol },
              ],
              // unprivileged ports inside the pod; the Service maps 443 → 8443 and 8443 → 9443
              ports: [
                { name: 'tls', containerPort: 8443, protocol: 'TCP' },
                { name: 'connect', containerPort: 9443, protocol: 'TCP' },
                { name: 'connect-legacy', containerPort: 8132, protocol: 'TCP' },
                { name: 'status', containerPort: 15021, protocol: 'TCP' },
              ],
              ...probes(15021),
              securityContext: unprivilegedSecurity,
              volumeMounts: [{ name: 'routes', mountPath: '/etc/sni-proxy/routes', readOnly: true }],
              resources: { requests: { cpu: '100m', memory: '96Mi' }, limits: { memory: '512Mi' } },
            }],
            volumes: [{ name: 'routes', configMap: { name: input.routesConfigMap } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'sni-proxy', namespace: ns, labels: sel, annotations: input.loadBalancerAnnotations },
      spec: {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Local',
        selector: sel,
        ports: [
          { name: 'tls', port: 443, targetPort: 8443, protocol: 'TCP' },
          { name: 'connect', port: 8443, targetPort: 9443, protocol: 'TCP' },
          { name: 'connect-legacy', port: 8132, targetPort: 8132, protocol: 'TCP' },
        ],
      },
    },
    { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'sni-proxy', namespace: ns, labels: sel }, spec: { maxUnavailable: 1, selector: { matchLabels: sel } } },
  ];
}
