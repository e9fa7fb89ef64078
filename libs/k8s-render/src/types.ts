/** The input of every render function: one shoot's VPN, as the operator's CRD spec carries it. */
export type IpFamilyName = 'IPv4' | 'IPv6';
export type FailureTolerance = 'none' | 'node' | 'zone';

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
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}
