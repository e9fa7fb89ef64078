/**
 * What the operator's tests share: a seed API server (@rvpn/envtest: real kube-apiserver + etcd) with
 * the ShootVpn CRD, the prometheus-operator kinds the operator may render, the namespaces, and the
 * operator's own ServiceAccount bound to the ClusterRole/Role that libs/k8s-render renders for it;
 * KubeConfigs for the admin and for that ServiceAccount; a spec; a logger that keeps its lines.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { loadOperatorConfig, type OperatorConfig } from '@rvpn/config';
import { startEnvtest, type Envtest } from '@rvpn/envtest';
import { CRD_GROUP, CRD_KIND, CRD_PLURAL, CRD_VERSION, renderCrd, renderOperator, type K8sObject, type VpnSpec } from '@rvpn/k8s-render';
import { pino, type Logger } from 'pino';
import { Kube, type LiveObject } from '../kube.js';
import type { OperatorSettings, ShootVpnObject, ShootVpnSpec } from '../reconcile.js';

export const NS = 'shoot--dev--demo';
export const OPERATOR_NS = 'rvpn-system';
export const SA = { namespace: OPERATOR_NS, name: 'reversed-vpn-operator' };
export const OPERATOR_USER = `system:serviceaccount:${SA.namespace}:${SA.name}`;

export const spec: VpnSpec = {
  shoot: { name: 'demo', project: 'dev' },
  namespace: NS,
  networks: { services: ['100.64.0.0/13'], pods: ['100.96.0.0/11'], nodes: ['10.250.0.0/16'], seedPods: '10.1.0.0/16', ipFamilies: ['IPv4'] },
  highAvailability: { failureTolerance: 'none' },
  annotations: {},
  endpoint: 'api.demo.dev.internal.example',
  images: { vpnSeedServer: 'r/vpn-seed-server:0.1.0', vpnShoot: 'r/vpn-shoot:0.1.0', pathController: 'r/path-controller:0.1.0' },
};

export const settings: OperatorSettings = {
  fieldManager: 'reversed-vpn-operator', featureGates: { ReversedVPN: true }, sniProxy: { namespace: OPERATOR_NS, routesConfigMap: 'sni-proxy-routes' },
  monitoring: false, certValidityDays: 90, caValidityDays: 3650, kubeApiserverDeployment: 'kube-apiserver',
};

export const shootVpn = (s: ShootVpnSpec, name = 'demo', namespace = s.namespace) => ({ apiVersion: `${CRD_GROUP}/${CRD_VERSION}`, kind: CRD_KIND, metadata: { name, namespace }, spec: s });

/** Minimal prometheus-operator CRDs: the operator applies ServiceMonitors and PrometheusRules when MONITORING is on. */
export function monitoringCrds(): object[] {
  return [['ServiceMonitor', 'servicemonitors'], ['PrometheusRule', 'prometheusrules']].map(([kind, plural]) => ({
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: `${plural}.monitoring.coreos.com` },
    spec: {
      group: 'monitoring.coreos.com', scope: 'Namespaced', names: { kind, plural, listKind: `${kind}List`, singular: kind!.toLowerCase() },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } } } }],
    },
  }));
}

/** A kube-apiserver Deployment in the control-plane namespace, as a Gardener seed has it (no pods run here). */
export function apiserverDeployment(namespace = NS): K8sObject {
  const labels = { app: 'kubernetes', role: 'apiserver' };
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'kube-apiserver', namespace, labels },
    spec: {
      replicas: 1, selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: 'kube-apiserver', image: 'registry.k8s.io/kube-apiserver:v1.34.4', command: ['kube-apiserver'], args: ['--secure-port=443', '--service-cluster-ip-range=100.64.0.0/13'] }] } },
    },
  };
}

export interface SeedOptions {
  audit?: boolean;
  monitoring?: boolean;
  /** The operator's RBAC as rendered (default), or changed by the test. */
  rbac?: (objs: K8sObject[]) => K8sObject[];
}

/** The seed: envtest with OwnerReferencesPermissionEnforcement (so blockOwnerDeletion needs shootvpns/finalizers, as on hardened seeds). */
export async function startSeed(opts: SeedOptions = {}): Promise<Envtest> {
  const env = await startEnvtest({ audit: opts.audit ?? false, apiserverArgs: ['--enable-admission-plugins=OwnerReferencesPermissionEnforcement'] });
  try {
    await env.installCrds([renderCrd(), ...(opts.monitoring ? monitoringCrds() : [])]);
    await env.ensureNamespaces(NS, OPERATOR_NS);
    await applyAdmin(env, operatorRbac({ monitoring: !!opts.monitoring }, opts.rbac));
    return env;
  } catch (err) {
    await env.stop();
    throw err;
  }
}

/** The ServiceAccount, ClusterRole(s), Role(s) and bindings renderOperator makes (not its Deployment). */
export function operatorRbac(input: { monitoring: boolean }, change: (objs: K8sObject[]) => K8sObject[] = (o) => o): K8sObject[] {
  const objs = renderOperator({ namespace: OPERATOR_NS, image: 'r/operator:0.1.0', featureGates: 'ReversedVPN=true', monitoring: input.monitoring, sniProxyNamespace: OPERATOR_NS });
  return change(objs.filter((o) => o.kind !== 'Deployment'));
}

const PLURAL: Record<string, string> = {
  ServiceAccount: 'serviceaccounts', ClusterRole: 'clusterroles', ClusterRoleBinding: 'clusterrolebindings', Role: 'roles', RoleBinding: 'rolebindings',
  Deployment: 'deployments', Secret: 'secrets', ConfigMap: 'configmaps', Namespace: 'namespaces', [CRD_KIND]: CRD_PLURAL,
};

export function restPath(o: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }): string {
  const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  const plural = PLURAL[o.kind];
  if (!plural) throw new Error(`no plural for ${o.kind} in the test harness`);
  return `${base}${o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : ''}/${plural}/${o.metadata.name}`;
}

/** Server-side apply as the admin (field manager `test-admin`). */
export async function applyAdmin(env: Envtest, objs: K8sObject[], fieldManager = 'test-admin'): Promise<void> {
  for (const o of objs) {
    const r = await env.request('PATCH', `${restPath(o)}?fieldManager=${fieldManager}&force=true`, o, { contentType: 'application/apply-patch+yaml' });
    if (r.status !== 200 && r.status !== 201) throw new Error(`apply ${o.kind}/${o.metadata.name}: ${r.status} ${JSON.stringify(r.body)}`);
  }
}

export function kubeConfigFromFile(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export const adminKube = (env: Envtest) => new Kube(kubeConfigFromFile(env.kubeconfigPath));

/** A KubeConfig of the operator's ServiceAccount (a real token, or an impersonating admin). */
export async function operatorKubeConfig(env: Envtest, via: 'token' | 'impersonation' = 'token'): Promise<KubeConfig> {
  return kubeConfigFromFile(await env.serviceAccountKubeconfig(SA, { via }));
}

/** Every ShootVpn, by LIST (the controller uses its informer cache instead). */
export const listShootVpns = (kube: Kube) => async () => ((await kube.custom.listClusterCustomObject({ group: CRD_GROUP, version: CRD_VERSION, plural: CRD_PLURAL })) as { items: ShootVpnObject[] }).items;

export interface Captured {
  logger: Logger;
  lines: Array<Record<string, unknown> & { msg?: string; level: number }>;
}

/** A pino logger that keeps every line (tests look for statuses and messages). */
export function captureLogger(level = 'debug'): Captured {
  const lines: Captured['lines'] = [];
  const logger = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

export const silentLogger = () => pino({ level: 'silent' });

/** Polls `cond` (generously: the host may be busy) and fails with `what` when it never holds. */
export async function waitFor<T>(what: string, cond: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The operator's config for tests: the given kubeconfig file, an ephemeral status port, quick leader election. */
export function testConfig(env: Record<string, string>): OperatorConfig {
  return loadOperatorConfig({
    KUBERNETES_SERVICE_HOST: 'unused-in-tests', STATUS_LISTEN: '127.0.0.1:0', POD_NAMESPACE: OPERATOR_NS,
    LEADER_ELECTION_LEASE_DURATION: '3s', LEADER_ELECTION_RENEW_DEADLINE: '2s', LEADER_ELECTION_RETRY_PERIOD: '300ms', ...env,
  });
}

export type { LiveObject };
