/**
 * Seed-side objects of one shoot (in its control-plane namespace): vpn-seed-server (Deployment, or
 * StatefulSet with 2 replicas and per-replica Services in HA), Service, PDB, NetworkPolicies, the
 * kube-apiserver's egress-selector configuration and — in HA — its sidecar patch, and the sni-proxy route.
 */
import {
  mergeValues, netAdminPodSecurity, netAdminSecurity, networkEnv, nonRootContainerSecurity, nonRootPodSecurity, objectLabels, podNameEnv, podTemplate, probes,
  secretMount, secretVolume, selectorLabels, sysctlInit, tlsEnv, tunMount, tunVolume, type WorkloadDefaults,
} from './common.js';
import { SpecInvalidError, type VpnMode } from './mode.js';
import type { K8sObject, NetworkPolicyPeer, RenderOptions, RenderSettings, VpnSpec } from './types.js';

export const SEED_SERVER = 'vpn-seed-server';
export const SEED_SERVER_COMPONENT = 'seed-server';
export const HA_SERVERS = 2;
export const HA_CLIENTS = 2;
/** Classic direction: the 9443 proxy's server certificate (the tunnel certificate is a client one there). */
export const SEED_PROXY_TLS_SECRET = 'vpn-seed-server-proxy-tls';
export const SEED_SERVER_TLS_SECRET = 'vpn-seed-server-tls';

/** The label the kube-apiserver's pods get from the wiring; the seed server's NetworkPolicy admits it. */
export const APISERVER_WIRING_LABEL = { 'networking.reversed-vpn.dev/to-vpn-seed-server': 'allowed' } as const;
/** Namespaces with this label may scrape the seed servers' metrics (the default of RenderSettings.metricsFrom). */
export const DEFAULT_METRICS_FROM: NetworkPolicyPeer[] = [{ namespaceSelector: { matchLabels: { 'networking.reversed-vpn.dev/monitoring': 'allowed' } } }];

/** The CONNECT header value sni-proxy routes to server i (undefined: non-HA). */
export const connectHeaderValue = (namespace: string, index?: number) => `outbound|1194||${SEED_SERVER}${index === undefined ? '' : `-${index}`}.${namespace}.svc.cluster.local`;

/** The seed server's defaults: NET_ADMIN as root with a TUN device, or (HA) a userspace switch as 65532. */
export function seedServerDefaults(mode: Pick<VpnMode, 'ha'>): WorkloadDefaults {
  return {
    resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } },
    podSecurityContext: mode.ha ? nonRootPodSecurity : netAdminPodSecurity,
    containerSecurityContext: mode.ha ? nonRootContainerSecurity : netAdminSecurity,
  };
}

export function renderSeed(spec: VpnSpec, mode: VpnMode, settings: RenderSettings, options: RenderOptions = {}): K8sObject[] {
  const namespace = spec.namespace;
  const objs: K8sObject[] = [];
  const meta = objectLabels(SEED_SERVER, SEED_SERVER_COMPONENT, options);
  const sel = selectorLabels(SEED_SERVER, SEED_SERVER_COMPONENT, options);
  if (!mode.reversed && !spec.classicEndpoint) throw new SpecInvalidError('the classic VPN (reversed off) needs classicEndpoint: the address of vpn-shoot\'s LoadBalancer in the shoot');
  if (mode.ha && !mode.reversed) throw new SpecInvalidError('HA needs the reversed VPN');
  const ports = [
    { name: 'tunnel', containerPort: 1194, protocol: 'TCP' },
    { name: 'http-proxy', containerPort: 9443, protocol: 'TCP' },
    { name: 'metrics', containerPort: 15000, protocol: 'TCP' },
  ];
  const env = [
    ...networkEnv(spec),
    podNameEnv,
    ...tlsEnv(SEED_SERVER_TLS_SECRET),
    ...(mode.ha ? [{ name: 'IS_HA', value: 'true' }, { name: 'KEEPALIVE_INTERVAL', value: '100ms' }, { name: 'KEEPALIVE_TIMEOUT', value: '500ms' }] : []),
    ...(mode.reversed
      ? []
      : [
          { name: 'TUNNEL_MODE', value: 'dial' },
          { name: 'TUNNEL_DIAL_ADDRESS', value: spec.classicEndpoint! },
          { name: 'CLIENT_ALLOWED_COMMON_NAMES', value: 'vpn-shoot' },
          // the tunnel certificate is a client one here; the apiserver needs a server name on 9443
          ...tlsEnv(SEED_PROXY_TLS_SECRET, 'PROXY_TLS_'),
        ]),
  ];
  const secrets = [SEED_SERVER_TLS_SECRET, ...(mode.reversed ? [] : [SEED_PROXY_TLS_SECRET])];
  const container = {
    name: SEED_SERVER,
    image: spec.images.vpnSeedServer,
    env,
    ports: mode.ha ? ports.filter((p) => p.name !== 'http-proxy') : ports,
    ...probes(15000),
    volumeMounts: [...secrets.map((s) => secretMount(s)), ...(mode.ha ? [] : [tunMount])],
  };
  const pod = {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    // HA switches frames in userspace: no TUN, no sysctls, no capability at all
    ...(mode.ha ? {} : { initContainers: [sysctlInit(spec.images.vpnSeedServer)] }),
    containers: [container],
    volumes: [...secrets.map((s) => secretVolume(s)), ...(mode.ha ? [] : [tunVolume])],
    terminationGracePeriodSeconds: 30,
    ...(mode.ha
      ? { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: spec.highAvailability.failureTolerance === 'zone' ? 'topology.kubernetes.io/zone' : 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: sel } }] }
      : {}),
  };
  const template = podTemplate({ ...meta }, pod, seedServerDefaults(mode), options.pod);
  if (mode.ha) {
    objs.push({
      apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: SEED_SERVER, namespace, labels: meta },
      spec: { replicas: HA_SERVERS, serviceName: SEED_SERVER, podManagementPolicy: 'Parallel', selector: { matchLabels: sel }, template },
    });
    for (let i = 0; i < HA_SERVERS; i++) {
      objs.push(service(`${SEED_SERVER}-${i}`, namespace, meta, { ...sel, 'statefulset.kubernetes.io/pod-name': `${SEED_SERVER}-${i}` }, [{ name: 'tunnel', port: 1194 }, { name: 'metrics', port: 15000 }]));
    }
    objs.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: SEED_SERVER, namespace, labels: meta }, spec: { maxUnavailable: 1, selector: { matchLabels: sel } } });
  } else {
    objs.push({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: SEED_SERVER, namespace, labels: meta },
      spec: {
        replicas: 1,
        // The Service publishes not-ready addresses (the shoot must reach a new pod before it is
        // ready). With a rolling update the apiserver's CONNECTs could land on the new pod before its
        // tunnel exists; Recreate leaves one server at a time, and the egress proxy holds requests
        // (PROXY_HOLD_TIMEOUT) across the short gap instead of failing them.
        strategy: { type: 'Recreate' },
        selector: { matchLabels: sel },
        template,
      },
    });
  }
  objs.push(service(SEED_SERVER, namespace, meta, sel, [{ name: 'tunnel', port: 1194 }, ...(mode.ha ? [] : [{ name: 'http-proxy', port: 9443 }]), { name: 'metrics', port: 15000 }]));
  objs.push(networkPolicy(spec, mode, settings, meta, sel));
  objs.push(egressSelectorConfig(namespace, mode, options));
  return objs;
}

function service(name: string, namespace: string, labels: Record<string, string>, selector: Record<string, string>, ports: Array<{ name: string; port: number }>): K8sObject {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace, labels },
    spec: { type: 'ClusterIP', publishNotReadyAddresses: true, selector, ports: ports.map((p) => ({ ...p, targetPort: p.port, protocol: 'TCP' })) },
  };
}

function networkPolicy(spec: VpnSpec, mode: VpnMode, settings: RenderSettings, labels: Record<string, string>, sel: Record<string, string>): K8sObject {
  const ingress: unknown[] = [];
  if (mode.reversed) {
    ingress.push({
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': settings.sniProxy.namespace } }, podSelector: { matchLabels: settings.sniProxy.podLabels } }],
      ports: [{ protocol: 'TCP', port: 1194 }],
    });
  }
  // the kube-apiserver pods carry this label once wired (HA: their path-controller dials the tunnel port)
  ingress.push({ from: [{ podSelector: { matchLabels: { ...APISERVER_WIRING_LABEL } } }], ports: [{ protocol: 'TCP', port: mode.ha ? 1194 : 9443 }] });
  ingress.push({ from: mergeValues(DEFAULT_METRICS_FROM, settings.metricsFrom), ports: [{ protocol: 'TCP', port: 15000 }] });
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: `${SEED_SERVER}-ingress`, namespace: spec.namespace, labels },
    spec: { podSelector: { matchLabels: sel }, policyTypes: ['Ingress'], ingress },
  };
}

/** Where the wiring mounts the kube-apiserver's egress client certificate (the egress file names these paths). */
export const PROXY_CLIENT_SECRET = 'kube-apiserver-http-proxy-client';
export const EGRESS_SELECTOR_CONFIGMAP = 'kube-apiserver-egress-selector-configuration';
export const EGRESS_SELECTOR_FILE = 'egress-selector-configuration.yaml';

/**
 * The kube-apiserver's --egress-selector-config-file as a ConfigMap: `HTTPConnect` over TCP with mutual
 * TLS for the `cluster` selection (logs, exec, port-forward, webhooks and aggregated APIs reached by
 * Service), `Direct` for the control plane and etcd. HA: the path-controller beside each apiserver.
 */
export function egressSelectorConfig(namespace: string, mode: Pick<VpnMode, 'ha'>, options: RenderOptions = {}): K8sObject {
  const url = mode.ha ? 'https://127.0.0.1:9443' : `https://${SEED_SERVER}.${namespace}.svc.cluster.local:9443`;
  const dir = `/srv/secrets/${PROXY_CLIENT_SECRET}`;
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
  return {
    apiVersion: 'v1', kind: 'ConfigMap',
    metadata: { name: EGRESS_SELECTOR_CONFIGMAP, namespace, labels: objectLabels(SEED_SERVER, 'apiserver-wiring', options) },
    data: { [EGRESS_SELECTOR_FILE]: yaml },
  };
}

/** The sni-proxy route entries of this shoot (header value → upstream), for the operator to publish. */
export function sniProxyRoutes(spec: VpnSpec, mode: VpnMode): Record<string, string> {
  if (!mode.reversed) return {};
  const svc = (name: string) => `${name}.${spec.namespace}.svc.cluster.local:1194`;
  if (!mode.ha) return { [connectHeaderValue(spec.namespace)]: svc(SEED_SERVER) };
  return Object.fromEntries(Array.from({ length: HA_SERVERS }, (_, i) => [connectHeaderValue(spec.namespace, i), svc(`${SEED_SERVER}-${i}`)]));
}
