/** The input of every render function: one shoot's VPN, as the operator's CRD spec carries it. */
export type IpFamilyName = 'IPv4' | 'IPv6';
export type FailureTolerance = 'none' | 'node' | 'zone';
export type MappingModeName = 'auto' | 'always' | 'never';

/** How the tunnel carries overlapping networks (libs/config mapping.ts): NETWORK_MAPPING and MAPPED_*_NETWORK_V6. */
export interface NetworkMappingSpec {
  /** auto: map an IP family when a seed network overlaps a shoot network of it; always; never (refuse overlaps). */
  mode?: MappingModeName;
  /** Where each kind appears in the tunnel when IPv6 is mapped (IPv4 is fixed: 241-244.0.0.0/8). */
  ipv6?: { seedPods?: string; shootNodes?: string; shootServices?: string; shootPods?: string };
}

export interface VpnSpec {
  shoot: { name: string; project: string };
  /** The shoot's control-plane namespace in the seed (e.g. shoot--<project>--<name>). */
  namespace: string;
  networks: {
    services: string[];
    pods: string[];
    nodes: string[];
    /** The seed's pod network (IPv4 sources of the apiserver's connections). */
    seedPods: string;
    ipFamilies: IpFamilyName[];
    /** The IPv6 transfer network; default fd8f:6d53:b97a:1::/96. */
    vpn?: string;
    /** The seed's node networks (either family); compared with the shoot's networks, as seedPods is (issue 12). */
    seedNodes?: string[];
    /** The seed's service networks (either family); compared likewise. */
    seedServices?: string[];
    /** Overlapping seed and shoot networks; unset fields keep the apps' defaults (NETWORK_MAPPING=auto, fd6d:6170:{1,2,3,4}00::/40). */
    mapping?: NetworkMappingSpec;
  };
  highAvailability: { failureTolerance: FailureTolerance };
  /** The shoot's annotations (feature-gate and HA overrides). */
  annotations: Record<string, string>;
  /** The FQDN of the seed's entry point the shoot dials (sni-proxy's load balancer). */
  endpoint: string;
  /** Classic direction only: the address (host[:port]) of vpn-shoot's LoadBalancer in the shoot. */
  classicEndpoint?: string;
  images: { vpnSeedServer: string; vpnShoot: string; pathController: string };
}

/** Operator-wide settings. */
export interface RenderSettings {
  featureGates: { ReversedVPN: boolean };
  /** Namespace and labels of the seed's sni-proxy (allowed to reach the tunnel port). */
  sniProxy: { namespace: string; podLabels: Record<string, string> };
  /**
   * NetworkPolicy peers allowed to scrape the seed server's metrics port (default: every pod of a
   * namespace labelled `networking.reversed-vpn.dev/monitoring: allowed`).
   */
  metricsFrom?: NetworkPolicyPeer[];
}

/** A NetworkPolicy `from` entry (Kubernetes' NetworkPolicyPeer). */
export interface NetworkPolicyPeer {
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

/**
 * Who renders and what the objects are labelled with, besides app.kubernetes.io/name, component and
 * part-of: Helm passes instance = the release, managedBy = Helm and the chart's extra labels; the
 * operator passes instance = the ShootVpn's name and managedBy = reversed-vpn-operator. Unset fields
 * are left out (version defaults to APP_VERSION).
 */
export interface ObjectMeta {
  /** app.kubernetes.io/instance; also a selector label (name + instance). */
  instance?: string;
  /** app.kubernetes.io/managed-by. */
  managedBy?: string;
  /** app.kubernetes.io/version (default APP_VERSION). */
  version?: string;
  /** Extra labels on every object and pod (the chart's `global.commonLabels`). */
  labels?: Record<string, string>;
}

/**
 * A platform team's overrides of one workload (the chart values of the same names). `resources` and
 * the security contexts are merged over the component's defaults the way Helm merges values (maps
 * merge key by key, `null` deletes a key, lists and scalars replace); the rest replace the default.
 */
export interface PodOverrides {
  imagePullPolicy?: string;
  imagePullSecrets?: Array<{ name: string }>;
  resources?: Record<string, unknown>;
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: Record<string, unknown>;
  podSecurityContext?: Record<string, unknown>;
  containerSecurityContext?: Record<string, unknown>;
  priorityClassName?: string;
  podAnnotations?: Record<string, string>;
}

/** The optional trailing parameter of the render functions: labels and the workload's overrides. */
export interface RenderOptions extends ObjectMeta {
  pod?: PodOverrides;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}
