/**
 * Shoot-side objects (kube-system of the shoot): vpn-shoot (Deployment, or StatefulSet with 2
 * replicas and a PDB in HA), its ServiceAccount and NetworkPolicy, and in the classic direction the
 * LoadBalancer Service the seed dials on 4314. The main container gets NET_ADMIN only (+ /dev/net/tun);
 * the unsafe sysctls are set by a privileged init container, as Gardener does.
 */
import {
  SECRETS_DIR, netAdminPodSecurity, netAdminSecurity, networkEnv, objectLabels, podNameEnv, podTemplate, probes, secretMount, secretVolume, selectorLabels,
  sysctlInit, tlsEnv, tunMount, tunVolume, type WorkloadDefaults,
} from './common.js';
import type { VpnMode } from './mode.js';
import { HA_CLIENTS, HA_SERVERS, connectHeaderValue } from './seed.js';
import type { K8sObject, RenderOptions, VpnSpec } from './types.js';

export const SHOOT_NAMESPACE = 'kube-system';
export const VPN_SHOOT = 'vpn-shoot';
export const VPN_SHOOT_COMPONENT = 'shoot-side';

/** vpn-shoot's defaults: NET_ADMIN as root with a TUN device, critical to the cluster. */
export const VPN_SHOOT_DEFAULTS: WorkloadDefaults = {
  resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } },
  podSecurityContext: netAdminPodSecurity,
  containerSecurityContext: netAdminSecurity,
  priorityClassName: 'system-cluster-critical',
};

/** The shoot-side certificate Secret vpn-shoot mounts (in its namespace in the shoot). */
export const shootSecretName = (mode: Pick<VpnMode, 'reversed'>) => (mode.reversed ? 'vpn-shoot-client' : 'vpn-shoot-server');

export interface ShootRenderOptions extends RenderOptions {
  /** Namespace in the shoot (default kube-system). */
  namespace?: string;
}

export function renderShoot(spec: VpnSpec, mode: VpnMode, options: ShootRenderOptions = {}): K8sObject[] {
  const namespace = options.namespace ?? SHOOT_NAMESPACE;
  const meta = objectLabels(VPN_SHOOT, VPN_SHOOT_COMPONENT, options);
  const sel = selectorLabels(VPN_SHOOT, VPN_SHOOT_COMPONENT, options);
  const secret = shootSecretName(mode);
  const env = [
    ...networkEnv(spec),
    podNameEnv,
    // HA: one Secret holds the certificate of every index, named after the pod (vpn-shoot-<i>.crt)
    ...(mode.ha
      ? [
          { name: 'TLS_CA_FILE', value: `${SECRETS_DIR}/${secret}/ca.crt` },
          { name: 'TLS_CERT_FILE', value: `${SECRETS_DIR}/${secret}/$(POD_NAME).crt` },
          { name: 'TLS_KEY_FILE', value: `${SECRETS_DIR}/${secret}/$(POD_NAME).key` },
        ]
      : tlsEnv(secret)),
    { name: 'EGRESS_INTERFACE', value: 'eth0' },
    ...(mode.reversed
      ? [
          { name: 'ENDPOINT', value: spec.endpoint },
          { name: 'OPENVPN_PORT', value: '8443' },
          { name: 'REVERSED_VPN_HEADER_KEY', value: 'X-Gardener-Destination' },
          { name: 'REVERSED_VPN_HEADER', value: connectHeaderValue(spec.namespace) },
        ]
      : [{ name: 'TUNNEL_MODE', value: 'listen' }, { name: 'TUNNEL_LISTEN', value: '0.0.0.0:4314' }]),
    ...(mode.ha
      ? [
          { name: 'IS_HA', value: 'true' },
          { name: 'HA_VPN_SERVERS', value: String(HA_SERVERS) },
          { name: 'HA_VPN_CLIENTS', value: String(HA_CLIENTS) },
          { name: 'KEEPALIVE_INTERVAL', value: '100ms' },
          { name: 'KEEPALIVE_TIMEOUT', value: '500ms' },
        ]
      : []),
  ];
  const container = {
    name: VPN_SHOOT,
    image: spec.images.vpnShoot,
    env,
    ports: [{ name: 'metrics', containerPort: 15000, protocol: 'TCP' }, ...(mode.reversed ? [] : [{ name: 'tunnel', containerPort: 4314, protocol: 'TCP' }])],
    ...probes(15000),
    volumeMounts: [secretMount(secret), tunMount],
  };
  const pod = {
    serviceAccountName: VPN_SHOOT,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    initContainers: [sysctlInit(spec.images.vpnShoot)],
    containers: [container],
    volumes: [secretVolume(secret), tunVolume],
  };
  const template = podTemplate({ ...meta }, pod, VPN_SHOOT_DEFAULTS, options.pod);
  const objs: K8sObject[] = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: VPN_SHOOT, namespace, labels: meta }, automountServiceAccountToken: false },
  ];
  if (mode.ha) {
    objs.push({
      apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: VPN_SHOOT, namespace, labels: meta },
      spec: { replicas: HA_CLIENTS, serviceName: VPN_SHOOT, podManagementPolicy: 'Parallel', selector: { matchLabels: sel }, template },
    });
    objs.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: VPN_SHOOT, namespace, labels: meta }, spec: { maxUnavailable: 1, selector: { matchLabels: sel } } });
  } else {
    objs.push({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: VPN_SHOOT, namespace, labels: meta },
      spec: { replicas: 1, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } }, selector: { matchLabels: sel }, template },
    });
  }
  if (!mode.reversed) {
    objs.push({
      apiVersion: 'v1', kind: 'Service', metadata: { name: VPN_SHOOT, namespace, labels: meta },
      spec: { type: 'LoadBalancer', publishNotReadyAddresses: true, selector: sel, ports: [{ name: 'tunnel', port: 4314, targetPort: 4314, protocol: 'TCP' }] },
    });
  }
  objs.push({
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: VPN_SHOOT, namespace, labels: meta },
    spec: {
      podSelector: { matchLabels: sel },
      policyTypes: ['Ingress', 'Egress'],
      // reversed: nothing may connect in (the pod only dials out); classic: the seed dials 4314
      ingress: mode.reversed ? [] : [{ ports: [{ protocol: 'TCP', port: 4314 }] }],
      egress: [{}],
    },
  });
  return objs;
}
