/** Pieces every rendered workload shares: labels, pod overrides, security defaults, env and mounts. */
import { MAPPED_KINDS, MAPPED_V6_ENV, NETWORK_ENV, planNetworkMappingFromEnv } from '@rvpn/config';
import type { K8sObject, ObjectMeta, PodOverrides, VpnSpec } from './types.js';

export const DEFAULT_VPN_NETWORK = 'fd8f:6d53:b97a:1::/96';
export const SECRETS_DIR = '/srv/secrets';
/** app.kubernetes.io/version of everything rendered (the apps' and the chart's appVersion; a chart test compares). */
export const APP_VERSION = '0.1.0';
export const PART_OF = 'reversed-vpn';

/** The pre-RenderOptions labels (name + part-of); kept for callers that have not moved to objectLabels. */
export const labels = (app: string, extra: Record<string, string> = {}) => ({ 'app.kubernetes.io/name': app, 'app.kubernetes.io/part-of': PART_OF, ...extra });

/**
 * The standard labels of every object (Kubernetes' recommended app.kubernetes.io set). Extra labels
 * come first so they can never overwrite a standard one (the selectors depend on them).
 */
export function objectLabels(app: string, component: string, meta: ObjectMeta = {}): Record<string, string> {
  return {
    ...(meta.labels ?? {}),
    'app.kubernetes.io/name': app,
    ...(meta.instance ? { 'app.kubernetes.io/instance': meta.instance } : {}),
    'app.kubernetes.io/version': meta.version ?? APP_VERSION,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': PART_OF,
    ...(meta.managedBy ? { 'app.kubernetes.io/managed-by': meta.managedBy } : {}),
  };
}

/**
 * Selector labels: name + instance, and the component, because one chart runs several kinds of pods
 * (the seed server, its certificate jobs and its test pod must never share a Service or a PDB).
 * They never include the version: selectors are immutable and survive upgrades.
 */
export function selectorLabels(app: string, component: string, meta: ObjectMeta = {}): Record<string, string> {
  return {
    'app.kubernetes.io/name': app,
    ...(meta.instance ? { 'app.kubernetes.io/instance': meta.instance } : {}),
    'app.kubernetes.io/component': component,
  };
}

/** An image reference: registry/repository:tag, or @digest when a digest is given (it pins the bytes). */
export interface ImageSpec {
  registry?: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export function imageRef(i: ImageSpec): string {
  const name = i.registry ? `${i.registry}/${i.repository}` : i.repository;
  return i.digest ? `${name}@${i.digest}` : `${name}:${i.tag || APP_VERSION}`;
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (!isMap(v)) return v;
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, withoutNulls(x)]));
}

/**
 * Helm's values merge: `over` on top of `base`; maps merge key by key, `null` deletes a key, lists
 * and scalars replace. The chart gets this from Helm (values.yaml defaults + the user's values); the
 * render functions apply it to their defaults so both produce the same object.
 */
export function mergeValues<T>(base: T, over: unknown): T {
  if (over === undefined) return structuredClone(base);
  if (isMap(base) && isMap(over)) {
    const out: Record<string, unknown> = structuredClone(base);
    for (const [k, v] of Object.entries(over)) {
      if (v === null) delete out[k];
      else out[k] = k in out ? mergeValues(out[k], v) : withoutNulls(v);
    }
    return out as T;
  }
  return withoutNulls(over) as T;
}

/** Whether Helm's `with` would skip the value (empty map, list or string, or unset). */
const isEmpty = (v: unknown) => v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0) || (isMap(v) && Object.keys(v).length === 0);
const ifSet = <K extends string>(key: K, v: unknown): Partial<Record<K, unknown>> => (isEmpty(v) ? {} : ({ [key]: v } as Record<K, unknown>));

/** The defaults a component's main container and pod get when the caller overrides nothing. */
export interface WorkloadDefaults {
  resources: Record<string, unknown>;
  podSecurityContext: Record<string, unknown>;
  containerSecurityContext: Record<string, unknown>;
  priorityClassName?: string;
}

export const DEFAULT_PULL_POLICY = 'IfNotPresent';

/**
 * A pod template with the overrides applied: the first container of `pod.containers` is the main
 * one (resources and security context from defaults + overrides); every container and init container
 * gets the pull policy. Fields Helm's `with` would skip are left out.
 */
export function podTemplate(
  labels: Record<string, string>,
  pod: { containers: Array<Record<string, unknown>>; initContainers?: Array<Record<string, unknown>>; [key: string]: unknown },
  defaults: WorkloadDefaults,
  over: PodOverrides = {},
  annotations: Record<string, string> = {},
): { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: Record<string, unknown> } {
  const pullPolicy = over.imagePullPolicy ?? DEFAULT_PULL_POLICY;
  const [main, ...sidecars] = pod.containers;
  const containers = [
    {
      ...main,
      imagePullPolicy: pullPolicy,
      ...ifSet('resources', mergeValues(defaults.resources, over.resources)),
      ...ifSet('securityContext', mergeValues(defaults.containerSecurityContext, over.containerSecurityContext)),
    },
    ...sidecars.map((c) => ({ ...c, imagePullPolicy: pullPolicy })),
  ];
  const { containers: _c, initContainers, ...rest } = pod;
  const podAnnotations = { ...(over.podAnnotations ?? {}), ...annotations };
  return {
    metadata: { labels, ...ifSet('annotations', podAnnotations) } as { labels: Record<string, string>; annotations?: Record<string, string> },
    spec: {
      ...rest,
      ...ifSet('imagePullSecrets', over.imagePullSecrets),
      ...ifSet('priorityClassName', over.priorityClassName ?? defaults.priorityClassName),
      ...ifSet('securityContext', mergeValues(defaults.podSecurityContext, over.podSecurityContext)),
      ...ifSet('nodeSelector', over.nodeSelector),
      ...ifSet('tolerations', over.tolerations),
      ...ifSet('affinity', over.affinity),
      ...(initContainers ? { initContainers: initContainers.map((c) => ({ ...c, imagePullPolicy: pullPolicy })) } : {}),
      containers,
    },
  };
}

export function networkEnv(spec: VpnSpec): Array<{ name: string; value: string }> {
  const n = spec.networks;
  return [
    { name: 'IP_FAMILIES', value: n.ipFamilies.join(',') },
    { name: 'VPN_NETWORK', value: n.vpn ?? DEFAULT_VPN_NETWORK },
    { name: 'SHOOT_SERVICE_NETWORKS', value: n.services.join(',') },
    { name: 'SHOOT_POD_NETWORKS', value: n.pods.join(',') },
    { name: 'SHOOT_NODE_NETWORKS', value: n.nodes.join(',') },
    { name: 'SEED_POD_NETWORK', value: n.seedPods },
    ...mappingEnv(spec),
    { name: 'NAMESPACE', value: spec.namespace },
  ];
}

/**
 * The seed's other networks and the mapping settings (issue 12), only those set: unset, the apps keep
 * their defaults. Every tunnel container gets the same, as both ends compute the same mapping.
 */
export function mappingEnv(spec: VpnSpec): Array<{ name: string; value: string }> {
  const n = spec.networks;
  const out: Array<{ name: string; value: string }> = [];
  if (n.seedNodes?.length) out.push({ name: NETWORK_ENV.seedNodes, value: n.seedNodes.join(',') });
  if (n.seedServices?.length) out.push({ name: NETWORK_ENV.seedServices, value: n.seedServices.join(',') });
  if (n.mapping?.mode) out.push({ name: 'NETWORK_MAPPING', value: n.mapping.mode });
  for (const k of MAPPED_KINDS) {
    const v = n.mapping?.ipv6?.[k];
    if (v) out.push({ name: MAPPED_V6_ENV[k], value: v });
  }
  return out;
}

/**
 * The mapping the tunnel apps will compute from what networkEnv gives them (libs/config's functions on
 * the same variables), or the coded errors (RVPN_ERR_MAPPING_*, RVPN_ERR_CONFIG_INVALID) they would
 * refuse to start with. The operator reports it.
 */
export function networkMappingOf(spec: VpnSpec): ReturnType<typeof planNetworkMappingFromEnv> {
  return planNetworkMappingFromEnv(Object.fromEntries(networkEnv(spec).map((e) => [e.name, e.value])));
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

/**
 * Secret files are 0400. With a pod fsGroup the kubelet makes them group-owned and adds group read
 * (0440), so a non-root container (the HA seed server, 65532) can read its key; without one only root can.
 */
export const secretVolume = (secret: string, name = secret) => ({ name, secret: { secretName: secret, defaultMode: 0o400 } });
export const secretMount = (secret: string, name = secret) => ({ name, mountPath: `${SECRETS_DIR}/${secret}`, readOnly: true });
export const tunVolume = { name: 'dev-net-tun', hostPath: { path: '/dev/net/tun', type: 'CharDevice' } };
export const tunMount = { name: 'dev-net-tun', mountPath: '/dev/net/tun' };

export const RUNTIME_DEFAULT_SECCOMP = { seccompProfile: { type: 'RuntimeDefault' } };
export const NON_ROOT_UID = 65532;

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

/** The pod of a NET_ADMIN app: only the seccomp profile at pod level (its init container runs privileged as root). */
export const netAdminPodSecurity = { ...RUNTIME_DEFAULT_SECCOMP };

/** A container that needs nothing: non-root, no capabilities (the pre-pod-securityContext form, used by renderOperator). */
export const unprivilegedSecurity = {
  runAsUser: NON_ROOT_UID,
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

/** Pod level of an unprivileged app: 65532 for every container, fsGroup so it reads its Secret files. */
export const nonRootPodSecurity = {
  runAsNonRoot: true,
  runAsUser: NON_ROOT_UID,
  runAsGroup: NON_ROOT_UID,
  fsGroup: NON_ROOT_UID,
  ...RUNTIME_DEFAULT_SECCOMP,
};

/** Container level of an unprivileged app (the user comes from the pod). */
export const nonRootContainerSecurity = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

/**
 * Kubernetes calls ip_forward and rp_filter unsafe sysctls, so a privileged init container sets them
 * in the pod's network namespace before the NET_ADMIN-only main container starts: the app's own image
 * with the single argument `--init` writes the app's sysctl table and exits (no shell, no procps).
 */
export function sysctlInit(image: string) {
  return {
    name: 'sysctls',
    image,
    args: ['--init'],
    securityContext: { privileged: true, runAsUser: 0, runAsNonRoot: false },
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
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
