/**
 * The seed's control plane as host processes in the seed node's namespace (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler), and the shoot's control plane as pods IN THE SEED (etcd,
 * kube-apiserver, kube-controller-manager, kube-scheduler in shoot--tb--demo), as Gardener runs it.
 * CPU budget for two clusters on 2 cores: etcd without fsync, no leader election for kcm/scheduler.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN_DIR, IMAGES, NODES, SHOOT, nodeDir, type NodeName } from './config.js';
import { startDaemon } from './daemons.js';
import { kubeconfig, pkiDir } from './pki.js';

const pem = (cluster: NodeName, name: string) => readFileSync(join(pkiDir(cluster), name), 'utf8');

/** kube-apiserver flags both clusters share (paths under `pki`). */
function apiserverFlags(cluster: NodeName, pki: string, etcd: string): string[] {
  const n = NODES[cluster];
  return [
    `--etcd-servers=${etcd}`,
    `--service-cluster-ip-range=${n.serviceCidr}`,
    `--client-ca-file=${pki}/ca.crt`,
    `--tls-cert-file=${pki}/apiserver.crt`,
    `--tls-private-key-file=${pki}/apiserver.key`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki}/sa.pub`,
    `--service-account-signing-key-file=${pki}/sa.key`,
    // tokens expire when they say so: the operator's token refresh is really exercised
    '--service-account-extend-token-expiration=false',
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    '--allow-privileged=true',
    `--kubelet-client-certificate=${pki}/kubeletClient.crt`,
    `--kubelet-client-key=${pki}/kubeletClient.key`,
    `--kubelet-certificate-authority=${pki}/ca.crt`,
    '--kubelet-preferred-address-types=InternalIP',
    '--profiling=false',
    '--v=1',
  ];
}

/** Every write to the seed's API (who wrote what): the e2e checks that an idle operator writes nothing. */
export const SEED_AUDIT_LOG = join(nodeDir('seed'), 'audit.log');
const AUDIT_POLICY = {
  apiVersion: 'audit.k8s.io/v1', kind: 'Policy', omitStages: ['RequestReceived'],
  rules: [{ level: 'Metadata', verbs: ['create', 'update', 'patch', 'delete', 'deletecollection'] }, { level: 'None' }],
};

export async function startSeedControlPlane(): Promise<void> {
  const n = NODES.seed;
  const dir = nodeDir('seed');
  const pki = pkiDir('seed');
  writeFileSync(join(dir, 'audit-policy.json'), JSON.stringify(AUDIT_POLICY));
  await startDaemon({
    name: 'seed-etcd', ns: n.ns,
    argv: [join(BIN_DIR, 'etcd'), '--name=seed', `--data-dir=${join(dir, 'etcd')}`, '--listen-client-urls=http://127.0.0.1:2379', '--advertise-client-urls=http://127.0.0.1:2379',
      '--listen-peer-urls=http://127.0.0.1:2380', '--initial-advertise-peer-urls=http://127.0.0.1:2380', '--initial-cluster=seed=http://127.0.0.1:2380', '--unsafe-no-fsync', '--log-level=warn'],
  });
  await startDaemon({
    name: 'seed-kube-apiserver', ns: n.ns,
    argv: [join(BIN_DIR, 'kube-apiserver'), ...apiserverFlags('seed', pki, 'http://127.0.0.1:2379'), '--bind-address=0.0.0.0', '--secure-port=6443', `--advertise-address=${n.nodeIp}`,
      `--audit-policy-file=${join(dir, 'audit-policy.json')}`, `--audit-log-path=${SEED_AUDIT_LOG}`, '--audit-log-maxsize=100', '--audit-log-maxbackup=1'],
  });
}

export async function startSeedControllers(): Promise<void> {
  const n = NODES.seed;
  const dir = nodeDir('seed');
  const pki = pkiDir('seed');
  await startDaemon({
    name: 'seed-kube-controller-manager', ns: n.ns,
    argv: [join(BIN_DIR, 'kube-controller-manager'), `--kubeconfig=${join(dir, 'kcm.kubeconfig')}`, `--authentication-kubeconfig=${join(dir, 'kcm.kubeconfig')}`, `--authorization-kubeconfig=${join(dir, 'kcm.kubeconfig')}`,
      '--leader-elect=false', '--use-service-account-credentials=true', `--root-ca-file=${pki}/ca.crt`, `--service-account-private-key-file=${pki}/sa.key`,
      `--service-cluster-ip-range=${n.serviceCidr}`, '--bind-address=127.0.0.1', '--v=1'],
  });
  await startDaemon({
    name: 'seed-kube-scheduler', ns: n.ns,
    argv: [join(BIN_DIR, 'kube-scheduler'), `--kubeconfig=${join(dir, 'scheduler.kubeconfig')}`, `--authentication-kubeconfig=${join(dir, 'scheduler.kubeconfig')}`, `--authorization-kubeconfig=${join(dir, 'scheduler.kubeconfig')}`, '--leader-elect=false', '--bind-address=127.0.0.1', '--v=1'],
  });
}

type Obj = Record<string, unknown>;
const ns = SHOOT.namespace;
const labels = (app: string) => ({ app: 'rvtb-shoot-control-plane', role: app });
const PKI_MOUNT = '/srv/kubernetes/pki';

/** The Secrets of the shoot's control plane (its PKI and the in-seed kubeconfigs). */
export function shootControlPlaneSecrets(): Obj[] {
  const file = (name: string) => Buffer.from(pem('shoot', name)).toString('base64');
  const names = ['ca.crt', 'apiserver.crt', 'apiserver.key', 'kubeletClient.crt', 'kubeletClient.key', 'sa.key', 'sa.pub'];
  const inSeed = `https://kube-apiserver.${ns}.svc.cluster.local:443`;
  const kc = (user: string) => Buffer.from(kubeconfig({ server: inSeed, caPem: pem('shoot', 'ca.crt'), user: { certPem: pem('shoot', `${user}.crt`), keyPem: pem('shoot', `${user}.key`) } })).toString('base64');
  return [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'rvtb-shoot-pki', namespace: ns }, type: 'Opaque', data: Object.fromEntries(names.map((n) => [n, file(n)])) },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'rvtb-shoot-kubeconfigs', namespace: ns }, type: 'Opaque', data: { 'controller-manager': kc('controllerManager'), scheduler: kc('scheduler'), admin: kc('admin') } },
    // what in-seed controllers (the VPN operator's shoot side) use to reach the shoot (Gardener's shoot access Secret)
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'shoot-access-admin', namespace: ns }, type: 'Opaque', data: { kubeconfig: kc('admin') } },
  ];
}

const container = (name: string, command: string[], extra: Obj = {}): Obj => ({
  name, image: IMAGES.kubernetes, imagePullPolicy: 'IfNotPresent', command,
  volumeMounts: [{ name: 'pki', mountPath: PKI_MOUNT, readOnly: true }, { name: 'kubeconfigs', mountPath: '/srv/kubernetes/kubeconfigs', readOnly: true }],
  resources: { requests: { cpu: '20m', memory: '64Mi' } },
  ...extra,
});

const volumes = [{ name: 'pki', secret: { secretName: 'rvtb-shoot-pki', defaultMode: 0o400 } }, { name: 'kubeconfigs', secret: { secretName: 'rvtb-shoot-kubeconfigs', defaultMode: 0o400 } }];

function deployment(name: string, replicas: number, podSpec: Obj, podLabels: Record<string, string> = {}): Obj {
  const sel = labels(name);
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: ns, labels: sel },
    spec: { replicas, selector: { matchLabels: sel }, template: { metadata: { labels: { ...sel, ...podLabels } }, spec: { automountServiceAccountToken: false, enableServiceLinks: false, ...podSpec } } },
  };
}

/**
 * The shoot's `default/kubernetes` endpoints, written once by the test bed as Gardener does it: every
 * kube-apiserver replica advertises the same address (the apiserver-proxy's on each shoot node), so the
 * lease reconciler of a replica that shuts down (each wiring or unwiring of the VPN rolls them) deletes
 * the address its successor had just written, and the shoot's `kubernetes` Service is without endpoints
 * — kube-proxy rejects connections to it — until the next reconcile. Hence `--endpoint-reconciler-type=none`
 * and these two static objects.
 */
export function shootKubernetesEndpoints(): Obj[] {
  const port = { name: 'https', port: 443, protocol: 'TCP' };
  return [
    {
      apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'kubernetes', namespace: 'default', labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } },
      subsets: [{ addresses: [{ ip: SHOOT.advertiseAddress }], ports: [port] }],
    },
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'rvtb.testbed' } },
      addressType: 'IPv4', endpoints: [{ addresses: [SHOOT.advertiseAddress], conditions: { ready: true } }], ports: [port],
    },
  ];
}

/**
 * The shoot's control plane in the seed. The kube-apiserver Deployment is the platform's (Gardener's
 * role here): it knows nothing of the VPN — the VPN's chart or operator wires it (egress selector,
 * proxy client certificate, the label the seed server's NetworkPolicy admits; in HA the path-controller).
 */
export function shootControlPlane(opts: { apiserverReplicas?: number } = {}): Obj[] {
  const shoot = NODES.shoot;
  const apiserver = deployment('kube-apiserver', opts.apiserverReplicas ?? 1, {
    containers: [container('kube-apiserver', ['/usr/local/bin/kube-apiserver', ...apiserverFlags('shoot', PKI_MOUNT, `http://etcd-main-client.${ns}.svc.cluster.local:2379`),
      '--bind-address=0.0.0.0', '--secure-port=443', `--advertise-address=${SHOOT.advertiseAddress}`, '--endpoint-reconciler-type=none',
      // as Gardener's: a replica being replaced keeps serving while kube-proxy drops it from the Service
      // (without, each rollout of the wiring refused the first connections: `Unable to connect: EOF`)
      '--shutdown-delay-duration=5s'], {
      ports: [{ name: 'https', containerPort: 443, protocol: 'TCP' }],
      readinessProbe: { httpGet: { path: '/readyz', port: 443, scheme: 'HTTPS' }, periodSeconds: 2, failureThreshold: 3 },
      livenessProbe: { httpGet: { path: '/livez', port: 443, scheme: 'HTTPS' }, periodSeconds: 10, failureThreshold: 6, initialDelaySeconds: 15 },
      resources: { requests: { cpu: '100m', memory: '256Mi' } },
    })],
    volumes,
  }, { 'app.kubernetes.io/name': 'kube-apiserver' });
  // kube-apiserver's /readyz needs anonymous access to health endpoints: the probes authenticate as nobody
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'gardener.cloud/role': 'shoot' } } },
    ...shootControlPlaneSecrets(),
    deployment('etcd-main', 1, {
      containers: [{
        name: 'etcd', image: IMAGES.kubernetes, imagePullPolicy: 'IfNotPresent',
        command: ['/usr/local/bin/etcd', '--name=etcd-main', '--data-dir=/var/etcd/data', '--listen-client-urls=http://0.0.0.0:2379', `--advertise-client-urls=http://etcd-main-client.${ns}.svc.cluster.local:2379`,
          '--listen-peer-urls=http://127.0.0.1:2380', '--initial-advertise-peer-urls=http://127.0.0.1:2380', '--initial-cluster=etcd-main=http://127.0.0.1:2380', '--unsafe-no-fsync', '--log-level=warn'],
        ports: [{ name: 'client', containerPort: 2379, protocol: 'TCP' }],
        readinessProbe: { httpGet: { path: '/health', port: 2379 }, periodSeconds: 2 },
        volumeMounts: [{ name: 'data', mountPath: '/var/etcd' }],
        resources: { requests: { cpu: '50m', memory: '128Mi' } },
      }],
      volumes: [{ name: 'data', emptyDir: {} }],
    }),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'etcd-main-client', namespace: ns }, spec: { selector: labels('etcd-main'), ports: [{ name: 'client', port: 2379, targetPort: 2379 }] } },
    apiserver,
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-apiserver', namespace: ns, labels: labels('kube-apiserver') }, spec: { selector: labels('kube-apiserver'), ports: [{ name: 'https', port: 443, targetPort: 443 }] } },
    deployment('kube-controller-manager', 1, {
      containers: [container('kube-controller-manager', ['/usr/local/bin/kube-controller-manager', '--kubeconfig=/srv/kubernetes/kubeconfigs/controller-manager',
        '--authentication-kubeconfig=/srv/kubernetes/kubeconfigs/controller-manager', '--authorization-kubeconfig=/srv/kubernetes/kubeconfigs/controller-manager',
        '--leader-elect=false', '--use-service-account-credentials=true', `--root-ca-file=${PKI_MOUNT}/ca.crt`, `--service-account-private-key-file=${PKI_MOUNT}/sa.key`,
        `--service-cluster-ip-range=${shoot.serviceCidr}`, '--v=1'])],
      volumes,
    }),
    deployment('kube-scheduler', 1, {
      containers: [container('kube-scheduler', ['/usr/local/bin/kube-scheduler', '--kubeconfig=/srv/kubernetes/kubeconfigs/scheduler',
        '--authentication-kubeconfig=/srv/kubernetes/kubeconfigs/scheduler', '--authorization-kubeconfig=/srv/kubernetes/kubeconfigs/scheduler', '--leader-elect=false', '--v=1'])],
      volumes,
    }),
  ];
}
