/**
 * One node of a test cluster: containerd (own root, state, socket, runc root, CNI dirs), the kubelet
 * (own root dir, pod log dir and cgroup root, cgroupfs driver), kube-proxy (iptables mode, no global
 * conntrack sysctls) and CoreDNS (the cluster DNS, bound to a node-local address inside the service
 * network, with the lab's public zone and no forwarding to the host's resolver). Shared directories
 * would let one node clean up the other's pods, so nothing is shared.
 */
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, waitFor } from '../lab/sh.js';
import { BIN_DIR, DATA, IMAGES, PUBLIC_ZONE, cgroupRoot, containerdSock, kubeconfigPath, nodeDir, nodeRun, type NodeSpec } from './config.js';
import { startDaemon } from './daemons.js';
import { pkiDir } from './pki.js';

export const publicHostsFile = join(DATA, 'public-zone.hosts');

export function containerdConfig(n: NodeSpec): string {
  const run = nodeRun(n.name);
  const dir = nodeDir(n.name);
  return `version = 2
root = "${dir}/containerd"
state = "${run}/containerd"
oom_score = 0

[grpc]
  address = "${containerdSock(n.name)}"

[ttrpc]
  address = "${containerdSock(n.name)}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    # built locally and imported under this exact name: no image pull ever succeeds here
    sandbox_image = "${IMAGES.pause}"
    # no CAP_SYS_RESOURCE: an oom_score_adj below the current one (the kubelet asks -998) is refused
    restrict_oom_score_adj = true
    # pod network namespaces under this node's state dir, not the shared /run/netns
    netns_mounts_under_state_dir = true
    disable_apparmor = true
    enable_selinux = false
    max_container_log_line_size = 16384
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "${run}/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "${dir}/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "${dir}/opt"
`;
}

export function cniConfig(n: NodeSpec): string {
  return `${JSON.stringify({
    cniVersion: '1.0.0',
    name: `rvtb-${n.name}`,
    plugins: [
      {
        type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: n.podCidr, gateway: n.podGateway }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(nodeDir(n.name), 'cni', 'ipam') },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2)}\n`;
}

export async function startContainerd(n: NodeSpec): Promise<void> {
  const dir = nodeDir(n.name);
  for (const d of [join(dir, 'containerd'), join(dir, 'cni', 'net.d'), join(dir, 'cni', 'ipam'), join(dir, 'opt'), nodeRun(n.name)]) mkdirSync(d, { recursive: true });
  writeFileSync(join(dir, 'containerd.toml'), containerdConfig(n));
  writeFileSync(join(dir, 'cni', 'net.d', '10-rvtb.conflist'), cniConfig(n));
  await startDaemon({ name: `${n.name}-containerd`, ns: n.ns, argv: ['containerd', '--config', join(dir, 'containerd.toml')] });
  await waitFor(`${n.name} containerd`, async () => (await ctr(n, ['version'], true)).code === 0, 30_000, 200);
}

export function ctr(n: NodeSpec, args: string[], allowFail = false, input?: string) {
  return run(['ctr', '--address', containerdSock(n.name), '--namespace', 'k8s.io', ...args], { allowFail, timeoutMs: 600_000, ...(input !== undefined ? { input } : {}) });
}

export interface KubeletInput {
  node: NodeSpec;
  /** The API server as this kubelet reaches it (the shoot's: through the seed's entry point by SNI). */
  kubeconfig: string;
}

export function kubeletConfig(n: NodeSpec): string {
  const dir = nodeDir(n.name);
  const pki = pkiDir(n.name);
  return `${JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: join(pki, 'ca.crt') } },
    authorization: { mode: 'Webhook' },
    cgroupDriver: 'cgroupfs',
    cgroupRoot: cgroupRoot(n.name),
    cgroupsPerQOS: true,
    clusterDNS: [n.dnsIp],
    clusterDomain: 'cluster.local',
    containerRuntimeEndpoint: `unix://${containerdSock(n.name)}`,
    failSwapOn: false,
    // pods' resolv.conf for dnsPolicy Default: the cluster DNS, never the host's resolver
    resolvConf: join(dir, 'resolv.conf'),
    podLogsDir: join(dir, 'pod-logs'),
    tlsCertFile: join(pki, 'kubeletServing.crt'),
    tlsPrivateKeyFile: join(pki, 'kubeletServing.key'),
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    readOnlyPort: 0,
    serializeImagePulls: false,
    // the kubelet would lower its own oom_score_adj to -999, which is refused here
    oomScoreAdj: 0,
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '3%', 'imagefs.available': '3%' },
    imageGCHighThresholdPercent: 97,
    imageGCLowThresholdPercent: 95,
    maxPods: 60,
    rotateCertificates: false,
    serverTLSBootstrap: false,
    shutdownGracePeriod: '0s',
  }, null, 2)}\n`;
}

/**
 * The kubelet (cgroupfs driver, cgroup v1 here) wants its cgroup root to exist in every hierarchy;
 * a new cpuset cgroup starts with no CPUs and no memory nodes, so those are copied from the parent.
 */
export function createCgroupRoot(n: NodeSpec): void {
  const base = '/sys/fs/cgroup';
  for (const c of readdirSync(base)) {
    if (c === 'unified' || !statSync(join(base, c)).isDirectory()) continue;
    const dir = join(base, c, cgroupRoot(n.name));
    mkdirSync(dir, { recursive: true });
    if (c === 'cpuset') {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(dir, f), readFileSync(join(base, c, f), 'utf8').trim() || '0');
    }
  }
}

export async function startKubelet(k: KubeletInput): Promise<void> {
  const n = k.node;
  createCgroupRoot(n);
  const dir = nodeDir(n.name);
  mkdirSync(join(dir, 'kubelet'), { recursive: true });
  mkdirSync(join(dir, 'pod-logs'), { recursive: true });
  writeFileSync(join(dir, 'resolv.conf'), `nameserver ${n.dnsIp}\nsearch cluster.local\n`);
  writeFileSync(join(dir, 'kubelet.yaml'), kubeletConfig(n));
  writeFileSync(join(dir, 'kubelet.kubeconfig'), k.kubeconfig);
  await startDaemon({
    name: `${n.name}-kubelet`, ns: n.ns,
    argv: [join(BIN_DIR, 'kubelet'), `--config=${join(dir, 'kubelet.yaml')}`, `--kubeconfig=${join(dir, 'kubelet.kubeconfig')}`, `--root-dir=${join(dir, 'kubelet')}`,
      `--hostname-override=${n.nodeName}`, `--node-ip=${n.nodeIp}`, '--v=1'],
  });
}

export async function startKubeProxy(n: NodeSpec, kubeconfig: string): Promise<void> {
  const dir = nodeDir(n.name);
  writeFileSync(join(dir, 'kube-proxy.kubeconfig'), kubeconfig);
  writeFileSync(join(dir, 'kube-proxy.yaml'), `${JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: join(dir, 'kube-proxy.kubeconfig') },
    // IPVS is not in this kernel
    mode: 'iptables',
    clusterCIDR: n.clusterPodCidr,
    hostnameOverride: n.nodeName,
    // nf_conntrack_max is global (not per namespace) and may not be raised here: leave conntrack alone
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    metricsBindAddress: '127.0.0.1:10249',
    healthzBindAddress: '0.0.0.0:10256',
  }, null, 2)}\n`);
  await startDaemon({ name: `${n.name}-kube-proxy`, ns: n.ns, argv: [join(BIN_DIR, 'kube-proxy'), `--config=${join(dir, 'kube-proxy.yaml')}`, '--v=1'] });
}

/** CoreDNS as the cluster DNS of this node's cluster (a process in the node's namespace, one per cluster). */
export async function startCoreDns(n: NodeSpec, kubeconfig: string): Promise<void> {
  const dir = nodeDir(n.name);
  writeFileSync(join(dir, 'coredns.kubeconfig'), kubeconfig);
  writeFileSync(join(dir, 'Corefile'), `.:53 {
    bind ${n.dnsIp}
    errors
    # the lab's stand-in for public DNS (the seed's entry point); nothing is forwarded to the host's resolver
    hosts ${publicHostsFile} ${PUBLIC_ZONE} {
        reload 1s
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${join(dir, 'coredns.kubeconfig')}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
`);
  await startDaemon({ name: `${n.name}-coredns`, ns: n.ns, argv: [join(BIN_DIR, 'coredns'), '-conf', join(dir, 'Corefile')] });
}

/** CoreDNS's read access (its own user, not the admin). */
export const CORE_DNS_RBAC = [
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'rvtb:coredns' }, rules: [
    { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
  ] },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'rvtb:coredns' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'rvtb:coredns' }, subjects: [{ kind: 'User', name: 'rvtb-coredns', apiGroup: 'rbac.authorization.k8s.io' }] },
  // the API server's identity towards the kubelets (logs, exec, port-forward)
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'rvtb:kube-apiserver-kubelet-client' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:kubelet-api-admin' }, subjects: [{ kind: 'User', name: 'kube-apiserver-kubelet-client', apiGroup: 'rbac.authorization.k8s.io' }] },
];

export { kubeconfigPath };
