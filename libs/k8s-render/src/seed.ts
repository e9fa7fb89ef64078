/**
 * Seed-side objects of one shoot (in its control-plane namespace): vpn-seed-server (Deployment, or
 * StatefulSet with 2 replicas and per-replica Services in HA), Service, PDB, NetworkPolicies, the
 * kube-apiserver's egress-selector configuration and — in HA — its sidecar patch, and the sni-proxy route.
 */
import { labels, netAdminSecurity, networkEnv, podNameEnv, probes, secretMount, secretVolume, sysctlInit, tlsEnv, tunMount, tunVolume, unprivilegedSecurity } from './common.js';
import { SpecInvalidError, type VpnMode } from './mode.js';
import type { K8sObject, RenderSettings, VpnSpec } from './types.js';

export const SEED_SERVER = 'vpn-seed-server';
export const HA_SERVERS = 2;
export const HA_CLIENTS = 2;

/** The CONNECT header value sni-proxy routes to server i (undefined: non-HA). */
export const connectHeaderValue = (namespace: string, index?: number) => `outbound|1194||${SEED_SERVER}${index === undefined ? '' : `-${index}`}.${namespace}.svc.cluster.local`;

export function renderSeed(spec: VpnSpec, mode: VpnMode, settings: RenderSettings): K8sObject[] {
  const namespace = spec.namespace;
  const objs: K8sObject[] = [];
  const sel = labels(SEED_SERVER);
  if (!mode.reversed && !spec.classicEndpoint) throw new SpecInvalidError('the classic VPN (reversed off) needs classicEndpoint: the address of vpn-shoot\'s LoadBalancer in the shoot');
  const ports = [
    { name: 'tunnel', containerPort: 1194, protocol: 'TCP' },
    { name: 'http-proxy', containerPort: 9443, protocol: 'TCP' },
    { name: 'metrics', containerPort: 15000, protocol: 'TCP' },
  ];
  const env = [
    ...networkEnv(spec),
    podNameEnv,
    ...tlsEnv('vpn-seed-server-tls'),
    ...(mode.ha ? [{ name: 'IS_HA', value: 'true' }, { name: 'KEEPALIVE_INTERVAL', value: '100ms' }, { name: 'KEEPALIVE_TIMEOUT', value: '500ms' }] : []),
    ...(mode.reversed ? [] : [{ name: 'TUNNEL_MODE', value: 'dial' }, { name: 'TUNNEL_DIAL_ADDRESS', value: spec.classicEndpoint! }, { name: 'CLIENT_ALLOWED_COMMON_NAMES', value: 'vpn-shoot' }]),
  ];
  const container = {
    name: SEED_SERVER,
    image: spec.images.vpnSeedServer,
    env,
    ports: mode.ha ? ports.filter((p) => p.name !== 'http-proxy') : ports,
    ...probes(15000),
    // HA switches frames in userspace: no TUN, no capability at all
    securityContext: mode.ha ? unprivilegedSecurity : netAdminSecurity,
    volumeMounts: [secretMount('vpn-seed-server-tls'), ...(mode.ha ? [] : [tunMount])],
    resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } },
  };
  const podSpec = {
    automountServiceAccountToken: false,
    ...(mode.ha ? {} : { initContainers: [sysctlInit(spec.images.vpnSeedServer, { 'net.ipv4.ip_forward': '0', 'net.ipv4.conf.all.rp_filter': '0' })] }),
    containers: [container],
    volumes: [secretVolume('vpn-seed-server-tls'), ...(mode.ha ? [] : [tunVolume])],
    terminationGracePeriodSeconds: 30,
  };
  if (mode.ha) {
    objs.push({
      apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: SEED_SERVER, namespace, labels: sel },
      spec: {
        replicas: HA_SERVERS, serviceName: SEED_SERVER, podManagementPolicy: 'Parallel',
        selector: { matchLabels: sel },
        template: { metadata: { labels: sel }, spec: { ...podSpec, topologySpreadConstraints: [{ maxSkew: 1, topologyKey: spec.highAvailability.failureTolerance === 'zone' ? 'topology.kubernetes.io/zone' : 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: sel } }] } },
      },
    });
    for (let i = 0; i < HA_SERVERS; i++) {
      objs.push(service(`${SEED_SERVER}-${i}`, namespace, { ...sel, 'statefulset.kubernetes.io/pod-name': `${SEED_SERVER}-${i}` }, [{ name: 'tunnel', port: 1194 }, { name: 'metrics', port: 15000 }]));
    }
    objs.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: SEED_SERVER, namespace, labels: sel }, spec: { maxUnavailable: 1, selector: { matchLabels: sel } } });
  } else {
    objs.push({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: SEED_SERVER, namespace, labels: sel },
      spec: {
        replicas: 1,
        // The Service publishes not-ready addresses (the shoot must reach a new pod before it is
        // ready). With a rolling update the apiserver's CONNECTs could land on the new pod before its
        // tunnel exists; Recreate leaves one server at a time, and the egress proxy holds requests
        // (PROXY_HOLD_TIMEOUT) across the short gap instead of failing them.
        strategy: { type: 'Recreate' },
        selector: { matchLabels: sel },
        template: { metadata: { labels: sel }, spec: podSpec },
      },
    });
  }
  objs.push(service(SEED_SERVER, namespace, sel, [{ name: 'tunnel', port: 1194 }, ...(mode.ha ? [] : [{ name: 'http-proxy', port: 9443 }]), { name: 'metrics', port: 15000 }]));
  objs.push(...networkPolicies(spec, mode, settings));
  objs.push(egressSelectorConfig(namespace, mode));
  return objs;
}

function service(name: string, namespace: string, selector: Record<string, string>, ports: Array<{ name: string; port: number }>): K8sObject {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace, labels: labels(SEED_SERVER) },
    spec: { type: 'ClusterIP', publishNotReadyAddresses: true, selector, ports: ports.map((p) => ({ ...p, targetPort: p.port, protocol: 'TCP' })) },
  };
}

function networkPolicies(spec: VpnSpec, mode: VpnMode, settings: RenderSettings): K8sObject[] {
  const namespace = spec.namespace;
  const sel = labels(SEED_SERVER);
  const ingress: unknown[] = [];
  if (mode.reversed) {
    ingress.push({
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': settings.sniProxy.namespace } }, podSelector: { matchLabels: settings.sniProxy.podLabels } }],
      ports: [{ protocol: 'TCP', port: 1194 }],
    });
  }
  ingress.push({ from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'kube-apiserver' } } }], ports: [{ protocol: 'TCP', port: mode.ha ? 1194 : 9443 }] });
  ingress.push({ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 15000 }] });
  return [{
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: `${SEED_SERVER}-ingress`, namespace, labels: sel },
    spec: { podSelector: { matchLabels: sel }, policyTypes: ['Ingress'], ingress },
  }];
}

/** The kube-apiserver's --egress-selector-config-file (HTTPConnect for the cluster egress), as a ConfigMap. */
export function egressSelectorConfig(namespace: string, mode: VpnMode): K8sObject {
  const url = mode.ha ? 'https://127.0.0.1:9443' : `https://${SEED_SERVER}.${namespace}.svc.cluster.local:9443`;
  const dir = '/srv/secrets/kube-apiserver-http-proxy-client';
  const yaml = [
    'apiVersion: apiserver.k8s.io/v1beta1',
    'kind: EgressSelectorConfiguration',
    'egressSelections:',
    '- name: cluster',
    '  connection:',
    '    proxyProtocol: HTTPConnect',
    '    transport:',
    '      tcp:',
    `        url: ${url}`,
    '        tlsConfig:',
    `          caBundle: ${dir}/ca.crt`,
    `          clientCert: ${dir}/tls.crt`,
    `          clientKey: ${dir}/tls.key`,
    '- name: controlplane',
    '  connection:',
    '    proxyProtocol: Direct',
    '- name: etcd',
    '  connection:',
    '    proxyProtocol: Direct',
    '',
  ].join('\n');
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kube-apiserver-egress-selector-configuration', namespace, labels: labels('kube-apiserver') }, data: { 'egress-selector-configuration.yaml': yaml } };
}

export interface ApiserverSidecar {
  initContainers: Array<Record<string, unknown>>;
  containers: Array<Record<string, unknown>>;
  volumes: Array<Record<string, unknown>>;
}

/**
 * HA: what to add to the kube-apiserver pod template (the path-controller sidecar, its sysctl init
 * container and volumes). The caller merges it into the apiserver's Deployment (the chart and the
 * operator both do; a strategic-merge patch of `spec.template.spec` carries exactly these lists).
 */
export function apiserverSidecarPatch(spec: VpnSpec, mode: VpnMode): ApiserverSidecar | undefined {
  if (!mode.ha) return undefined;
  const env = [
    ...networkEnv(spec),
    podNameEnv,
    ...tlsEnv('vpn-seed-client'),
    { name: 'IS_HA', value: 'true' },
    { name: 'HA_VPN_SERVERS', value: String(HA_SERVERS) },
    { name: 'HA_VPN_CLIENTS', value: String(HA_CLIENTS) },
    { name: 'SEED_SERVERS', value: Array.from({ length: HA_SERVERS }, (_, i) => `${SEED_SERVER}-${i}:1194`).join(',') },
    { name: 'KEEPALIVE_INTERVAL', value: '100ms' },
    { name: 'KEEPALIVE_TIMEOUT', value: '500ms' },
    { name: 'PROXY_LISTEN', value: '127.0.0.1:9443' },
    { name: 'PROXY_TLS_CERT_FILE', value: '/srv/secrets/kube-apiserver-http-proxy/tls.crt' },
    { name: 'PROXY_TLS_KEY_FILE', value: '/srv/secrets/kube-apiserver-http-proxy/tls.key' },
    { name: 'STATUS_LISTEN', value: '0.0.0.0:15001' },
  ];
  return {
    initContainers: [sysctlInit(spec.images.pathController, { 'net.ipv4.conf.all.rp_filter': '0' })],
    containers: [{
      name: 'path-controller', image: spec.images.pathController, env, ...probes(15001),
      ports: [{ name: 'path-metrics', containerPort: 15001, protocol: 'TCP' }],
      securityContext: netAdminSecurity,
      volumeMounts: [secretMount('vpn-seed-client'), secretMount('kube-apiserver-http-proxy'), tunMount],
      resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } },
    }],
    volumes: [secretVolume('vpn-seed-client'), secretVolume('kube-apiserver-http-proxy'), tunVolume],
  };
}

/** The sni-proxy route entries of this shoot (header value → upstream), for the operator to publish. */
export function sniProxyRoutes(spec: VpnSpec, mode: VpnMode): Record<string, string> {
  if (!mode.reversed) return {};
  const svc = (name: string) => `${name}.${spec.namespace}.svc.cluster.local:1194`;
  if (!mode.ha) return { [connectHeaderValue(spec.namespace)]: svc(SEED_SERVER) };
  return Object.fromEntries(Array.from({ length: HA_SERVERS }, (_, i) => [connectHeaderValue(spec.namespace, i), svc(`${SEED_SERVER}-${i}`)]));
}
