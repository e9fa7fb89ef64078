/**
 * Installing and removing one shoot's VPN with the umbrella chart, as a platform team would without the
 * operator: the entry point's static route for the shoot (release rvpn in rvpn-system), the seed side in
 * the shoot's control-plane namespace (its setup hook issues the certificates, applies the shoot's
 * certificate Secret into the shoot through the shoot access Secret, and wires the kube-apiserver), and
 * the shoot side in the shoot's kube-system — all with the same `global` values.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '@rvpn/tools';
import { NODES, SHOOT, SNI_PROXY, waitApiReady } from '@rvpn/tools/testbed';
import { getJson, helm, k } from './harness.js';

export const CHART = join(REPO_ROOT, 'charts', 'reversed-vpn');
export type Mode = 'reversed' | 'ha' | 'classic';
export const SEED_RELEASE = 'vpn-demo';
export const SHOOT_RELEASE = 'vpn-shoot';

export function globalValues(mode: Mode, classicEndpoint?: string) {
  return {
    mode: { reversed: mode !== 'classic', ha: mode === 'ha' },
    shoot: {
      name: SHOOT.name, project: SHOOT.project, namespace: SHOOT.namespace, endpoint: SHOOT.apiHost,
      ...(classicEndpoint ? { classicEndpoint } : {}),
      failureTolerance: mode === 'ha' ? 'node' : 'none',
      networks: testbedNetworks(),
    },
  };
}

/**
 * The networks of the test bed's shoot and seed as a platform team would give them (chart values and
 * ShootVpn spec alike). Both clusters use Gardener's default ranges, so every seed network overlaps a
 * shoot network and the tunnel maps (mapping.mode auto).
 */
export function testbedNetworks() {
  return {
    services: [NODES.shoot.serviceCidr], pods: [NODES.shoot.clusterPodCidr], nodes: [NODES.shoot.nodeNetwork],
    seedPods: NODES.seed.clusterPodCidr, seedServices: [NODES.seed.serviceCidr], seedNodes: [NODES.seed.nodeNetwork],
    ipFamilies: ['IPv4'],
  };
}

/** Writes Helm values to a file for `use`, and removes it afterwards (each install wrote one and left it). */
async function withValuesFile<T>(name: string, values: unknown, use: (file: string) => Promise<T>): Promise<T> {
  const f = join(tmpdir(), `rvtb-e2e-${name}-${process.pid}.json`);
  writeFileSync(f, JSON.stringify(values, null, 2));
  try {
    return await use(f);
  } finally {
    rmSync(f, { force: true });
  }
}

const connectKey = (server: string) => `outbound|1194||${server}.${SHOOT.namespace}.svc.cluster.local`;
const upstream = (server: string) => `${server}.${SHOOT.namespace}.svc.cluster.local:1194`;

/** The entry point's static CONNECT routes: the shoot's API server (apiserver-proxy) and, without the operator, its seed servers. */
export async function setEntryRoutes(mode: Mode | 'none'): Promise<void> {
  const connect: Record<string, string> = { [`outbound|443||kube-apiserver.${SHOOT.namespace}.svc.cluster.local`]: `kube-apiserver.${SHOOT.namespace}.svc.cluster.local:443` };
  if (mode === 'reversed') connect[connectKey('vpn-seed-server')] = upstream('vpn-seed-server');
  if (mode === 'ha') for (const i of [0, 1]) connect[connectKey(`vpn-seed-server-${i}`)] = upstream(`vpn-seed-server-${i}`);
  await withValuesFile('routes', { 'sni-proxy': { routes: { connect } } }, (f) =>
    helm('seed', ['upgrade', SNI_PROXY.release, CHART, '-n', SNI_PROXY.namespace, '--reuse-values', '-f', f, '--wait', '--timeout', '3m']));
}

export async function installSeedSide(mode: Mode, classicEndpoint?: string): Promise<void> {
  // no --wait: the seed server is ready only once the shoot side has dialed in
  await withValuesFile('seed', { global: globalValues(mode, classicEndpoint), 'vpn-seed-server': { enabled: true, setup: { shootKubeconfigSecret: 'shoot-access-admin' } } }, (f) =>
    helm('seed', ['upgrade', '--install', SEED_RELEASE, CHART, '-n', SHOOT.namespace, '-f', f, '--timeout', '5m']));
}

export async function installShootSide(mode: Mode): Promise<void> {
  await withValuesFile('shoot', { global: globalValues(mode), 'vpn-shoot': { enabled: true } }, (f) =>
    helm('shoot', ['upgrade', '--install', SHOOT_RELEASE, CHART, '-n', 'kube-system', '-f', f, '--timeout', '5m']));
}

export async function uninstallAll(): Promise<void> {
  await helm('shoot', ['uninstall', SHOOT_RELEASE, '-n', 'kube-system', '--wait', '--ignore-not-found'], { allowFail: true });
  await helm('seed', ['uninstall', SEED_RELEASE, '-n', SHOOT.namespace, '--wait', '--ignore-not-found'], { allowFail: true });
  // the unwiring rolls the kube-apiserver: the next suite starts on a settled one
  await apiserverRolledOut();
  await waitApiReady('shoot');
}

/** Names of the objects of some kinds in a namespace (to compare before an install and after the uninstall). */
export async function inventory(cluster: 'seed' | 'shoot', namespace: string): Promise<string[]> {
  const kinds = 'deployments,statefulsets,services,configmaps,secrets,networkpolicies,poddisruptionbudgets,serviceaccounts,roles,rolebindings,jobs,cronjobs,pods';
  const l = await getJson<{ items: Array<{ kind: string; metadata: { name: string; deletionTimestamp?: string } }> }>(cluster, [kinds, '-n', namespace]);
  return (l?.items ?? []).filter((o) => !o.metadata.deletionTimestamp).map((o) => `${o.kind}/${o.metadata.name}`)
    // the platform's own pods come and go with their ReplicaSets
    .filter((n) => !/^Pod\/(kube-apiserver|kube-controller-manager|kube-scheduler|etcd-main)-/.test(n)).sort();
}

/** The kube-apiserver Deployment's container command and the wiring's traces on it. */
export async function apiserverWiring(): Promise<{ flag: boolean; label: boolean; sidecar: boolean; replicas: number }> {
  const d = await getJson<{ spec: { replicas: number; template: { metadata: { labels?: Record<string, string> }; spec: { containers: Array<{ name: string; command?: string[]; args?: string[] }> } } } }>('seed', ['deployment', 'kube-apiserver', '-n', SHOOT.namespace]);
  if (!d) throw new Error('no kube-apiserver Deployment');
  const c = d.spec.template.spec.containers.find((x) => x.name === 'kube-apiserver');
  const argv = [...(c?.command ?? []), ...(c?.args ?? [])];
  return {
    flag: argv.some((a) => a.startsWith('--egress-selector-config-file=')),
    label: Object.keys(d.spec.template.metadata.labels ?? {}).some((l) => l.startsWith('networking.reversed-vpn.dev/')),
    sidecar: d.spec.template.spec.containers.some((x) => x.name === 'path-controller'),
    replicas: d.spec.replicas,
  };
}

/** Waits until every kube-apiserver pod runs the current template (the wiring restarts them). */
export async function apiserverRolledOut(): Promise<void> {
  await k('seed', ['rollout', 'status', '-n', SHOOT.namespace, 'deployment/kube-apiserver', '--timeout=300s'], { timeoutMs: 320_000 });
}
