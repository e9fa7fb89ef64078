/**
 * The test bed's fixed layout: a SEED cluster and a SHOOT cluster of upstream Kubernetes on one
 * machine, each node in its own network namespace.
 *
 *   root namespace  rvtb0 198.18.0.1/24 ─┐ (kubectl, helm and the tests run here)
 *                                        │  br0 in rvtb-wan: the lab's "internet" 198.18.0.0/24
 *   rvtb-seed  eth0 198.18.0.2 ──────────┤  seed node: etcd, kube-apiserver :6443, kcm, scheduler,
 *     node IP 10.250.0.3 (on lo)         │  containerd, kubelet, kube-proxy, CoreDNS on 100.64.0.10;
 *     pods 100.96.0.0/24 (cni0)          │  LoadBalancer pool 198.18.0.128/26 (routed here)
 *     services 100.64.0.0/13             │
 *   rvtb-shoot eth0 198.18.0.20 ─────────┘  shoot node: containerd, kubelet, kube-proxy, CoreDNS on
 *     node IP 10.250.0.10 (on lo)           100.64.0.10, the apiserver-proxy on 10.250.0.2:443;
 *     pods 100.96.0.0/24 (cni0)             outbound only: masquerade out of eth0, nothing from the
 *     services 100.64.0.0/13                wan may open a connection (classic mode: its LoadBalancer
 *                                           address, pool 198.18.0.64/26, and that port only)
 *
 * Both clusters use Gardener's default ranges (nodes 10.250.0.0/16, pods 100.96.0.0/11, services
 * 100.64.0.0/13), as real landscapes do: the seed's networks overlap the shoot's, so the VPN carries
 * the shoot's traffic mapped (issue 12; docs/architecture.md, "the mapped path"). Only the addresses of
 * the two nodes differ (a seed pod that dialed the shoot node's address would otherwise reach its own).
 *
 * The shoot's control plane (etcd, kube-apiserver, kcm, scheduler) runs as pods in the seed, in the
 * namespace shoot--tb--demo, as Gardener runs it. The shoot's kubelet, kube-proxy and CoreDNS reach it
 * through the seed's entry point (sni-proxy) by SNI; pods in the shoot through the apiserver-proxy.
 */
import { join } from 'node:path';

export const K8S_VERSION = 'v1.34.4';
export const BIN_DIR = join(process.env.RVPN_TESTBED_CACHE ?? '/var/cache/reversed-vpn/testbed', 'bin');
export const DATA = process.env.RVTB_DATA ?? '/var/lib/rvtb';
export const RUN = process.env.RVTB_RUN ?? '/run/rvtb';
export const STATE_FILE = join(RUN, 'state.json');
export const LOG_DIR = join(DATA, 'logs');
export const PKI_DIR = join(DATA, 'pki');

export const WAN = { ns: 'rvtb-wan', bridge: 'br0', cidr: '198.18.0.0/24', prefix: 24, host: '198.18.0.1', hostIf: 'rvtb0' } as const;

export type NodeName = 'seed' | 'shoot';

export interface NodeSpec {
  name: NodeName;
  /** Kubernetes node name. */
  nodeName: string;
  ns: string;
  wanIp: string;
  /** The node's InternalIP, on lo (this kernel has no dummy interfaces); the node is reached from outside at wanIp. */
  nodeIp: string;
  /** The cluster's node network, which holds nodeIp. */
  nodeNetwork: string;
  podCidr: string;
  podGateway: string;
  clusterPodCidr: string;
  serviceCidr: string;
  /** The `kubernetes` Service IP (first host of the service network). */
  kubernetesIp: string;
  dnsIp: string;
  lbPool: string;
}

export const NODES: Record<NodeName, NodeSpec> = {
  seed: {
    name: 'seed', nodeName: 'seed-node', ns: 'rvtb-seed', wanIp: '198.18.0.2', nodeIp: '10.250.0.3', nodeNetwork: '10.250.0.0/16',
    podCidr: '100.96.0.0/24', podGateway: '100.96.0.1', clusterPodCidr: '100.96.0.0/11',
    serviceCidr: '100.64.0.0/13', kubernetesIp: '100.64.0.1', dnsIp: '100.64.0.10', lbPool: '198.18.0.128/26',
  },
  shoot: {
    name: 'shoot', nodeName: 'shoot-node', ns: 'rvtb-shoot', wanIp: '198.18.0.20', nodeIp: '10.250.0.10', nodeNetwork: '10.250.0.0/16',
    podCidr: '100.96.0.0/24', podGateway: '100.96.0.1', clusterPodCidr: '100.96.0.0/11',
    serviceCidr: '100.64.0.0/13', kubernetesIp: '100.64.0.1', dnsIp: '100.64.0.10', lbPool: '198.18.0.64/26',
  },
};

export const SHOOT = {
  name: 'demo',
  project: 'tb',
  namespace: 'shoot--tb--demo',
  /** The public name of the shoot's API server; vpn-shoot dials the same name (Gardener: api.<shoot>.<project>.<domain>). */
  apiHost: 'api.demo.tb.example',
  /** The `kubernetes` Service endpoint in the shoot: the apiserver-proxy on the shoot node. */
  advertiseAddress: '10.250.0.2',
} as const;

/** The lab's stand-in for public DNS: names in this zone resolve to the seed's entry point. */
export const PUBLIC_ZONE = 'tb.example';

export const SNI_PROXY = { namespace: 'rvpn-system', release: 'rvpn' } as const;

export const IMAGES = {
  kubernetes: `localhost/rvtb/kubernetes:${K8S_VERSION}`,
  workload: 'localhost/rvtb/workload:0.1.0',
  /** containerd's sandbox_image: the static pause binary built from the Kubernetes module. */
  pause: 'registry.k8s.io/pause:3.10',
} as const;

export const kubeconfigPath = (cluster: NodeName) => join(DATA, `${cluster}.kubeconfig`);
export const nodeDir = (n: NodeName) => join(DATA, n);
export const nodeRun = (n: NodeName) => join(RUN, n);
export const containerdSock = (n: NodeName) => join(nodeRun(n), 'containerd.sock');
/** The kubelet's cgroup root, one per node (cgroupfs driver; cgroup v1 on this host). */
export const cgroupRoot = (n: NodeName) => `/rvtb-${n}`;
