/** Pieces every rendered workload shares. */
import type { K8sObject, VpnSpec } from './types.js';

export const DEFAULT_VPN_NETWORK = 'fd8f:6d53:b97a:1::/96';
export const SECRETS_DIR = '/srv/secrets';

export const labels = (app: string, extra: Record<string, string> = {}) => ({ 'app.kubernetes.io/name': app, 'app.kubernetes.io/part-of': 'reversed-vpn', ...extra });

export function networkEnv(spec: VpnSpec): Array<{ name: string; value: string }> {
  const n = spec.networks;
  return [
    { name: 'IP_FAMILIES', value: n.ipFamilies.join(',') },
    { name: 'VPN_NETWORK', value: n.vpn ?? DEFAULT_VPN_NETWORK },
    { name: 'SHOOT_SERVICE_NETWORKS', value: n.services.join(',') },
    { name: 'SHOOT_POD_NETWORKS', value: n.pods.join(',') },
    { name: 'SHOOT_NODE_NETWORKS', value: n.nodes.join(',') },
    { name: 'SEED_POD_NETWORK', value: n.seedPods },
    { name: 'NAMESPACE', value: spec.namespace },
  ];
}

export const podNameEnv = { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } };

/** TLS env for a certificate Secret mounted at /srv/secrets/<secret>. */
export function tlsEnv(secret: string, prefix = 'TLS_'): Array<{ name: string; value: string }> {
  return [
    { name: `${prefix}CA_FILE`, value: `${SECRETS_DIR}/${secret}/ca.crt` },
    { name: `${prefix}CERT_FILE`, value: `${SECRETS_DIR}/${secret}/tls.crt` },
    { name: `${prefix}KEY_FILE`, value: `${SECRETS_DIR}/${secret}/tls.key` },
  ];
}

export const secretVolume = (secret: string) => ({ name: secret, secret: { secretName: secret, defaultMode: 0o400 } });
export const secretMount = (secret: string) => ({ name: secret, mountPath: `${SECRETS_DIR}/${secret}`, readOnly: true });
export const tunVolume = { name: 'dev-net-tun', hostPath: { path: '/dev/net/tun', type: 'CharDevice' } };
export const tunMount = { name: 'dev-net-tun', mountPath: '/dev/net/tun' };

/**
 * A container that needs NET_ADMIN: a non-root UID gets no capabilities in a pod, so it runs as UID 0
 * with every capability but NET_ADMIN dropped, no privilege escalation, a read-only root filesystem.
 */
export const netAdminSecurity = {
  runAsUser: 0,
  runAsNonRoot: false,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] },
};

/** A container that needs nothing: non-root, no capabilities. */
export const unprivilegedSecurity = {
  runAsUser: 65532,
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

/**
 * Kubernetes calls ip_forward and rp_filter unsafe sysctls, so a privileged init container sets them
 * in the pod's network namespace before the unprivileged-but-NET_ADMIN main container starts (the app
 * reads them first and writes only what differs).
 */
export function sysctlInit(image: string, settings: Record<string, string>) {
  return {
    name: 'sysctls',
    image,
    command: ['sh', '-c', Object.entries(settings).map(([k, v]) => `sysctl -w ${k}=${v}`).join(' && ')],
    securityContext: { privileged: true, runAsUser: 0, runAsNonRoot: false },
    resources: { requests: { cpu: '10m', memory: '8Mi' }, limits: { memory: '32Mi' } },
  };
}

export const probes = (port: number) => ({
  readinessProbe: { httpGet: { path: '/readyz', port }, periodSeconds: 2, failureThreshold: 2 },
  livenessProbe: { httpGet: { path: '/healthz', port }, periodSeconds: 10, failureThreshold: 3 },
});

export function ns(obj: K8sObject, namespace: string): K8sObject {
  obj.metadata.namespace = namespace;
  return obj;
}
