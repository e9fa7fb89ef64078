/**
 * The lab's pods as the Kubernetes manifests give them: one VpnSpec describing the lab's networks,
 * rendered with @rvpn/k8s-render (renderSeed, renderShoot, renderSniProxy, apiserverWiring), and for
 * each app of the lab the pod spec of its workload (init containers, the container to run, volumes,
 * security contexts). The container mode of the lab (lab/containers.ts) turns these into podman runs,
 * so the images are exercised with exactly the capabilities, user, mounts and env a cluster gives them.
 *
 * What the lab cannot take from the manifests is listed here, in one place:
 *   - `labEnv`: values that name cluster DNS (the HA servers' per-replica Services) or a Service the
 *     lab's shoot does not have (`kubernetes` at the first service IP); the lab gives addresses instead;
 *   - `secretData`: which of the lab's certificate files fill which Secret key (the lab's seed server
 *     certificate also names its pod IP, because the lab's "kube-apiserver" has no cluster DNS either);
 *   - the sni-proxy Service's port mapping becomes a DNAT at the load balancer's address (lab/containers.ts).
 */
import {
  apiserverWiring, renderSeed, renderShoot, renderSniProxy,
  type K8sObject, type RenderSettings, type VpnMode, type VpnSpec,
} from '@rvpn/k8s-render';
import { imageRef } from '../images/build.js';
import { ADDR, HA_ADDR, type Role } from './topology.js';

/** The parts of a Kubernetes container the lab reads. */
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
export interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string; localhostProfile?: string };
}
export interface PodSecurityContext extends SecurityContext {
  fsGroup?: number;
  supplementalGroups?: number[];
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  securityContext?: SecurityContext;
  readinessProbe?: { httpGet?: { path: string; port: number | string } };
  resources?: { limits?: { memory?: string; cpu?: string }; requests?: { memory?: string; cpu?: string } };
  ports?: Array<{ name?: string; containerPort: number }>;
}
export interface Volume {
  name: string;
  secret?: { secretName: string; defaultMode?: number; optional?: boolean };
  configMap?: { name: string; defaultMode?: number; optional?: boolean };
  hostPath?: { path: string; type?: string };
  emptyDir?: { medium?: string; sizeLimit?: string };
}
export interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
  securityContext?: PodSecurityContext;
  terminationGracePeriodSeconds?: number;
}

/** One app of the lab as a pod of the manifests. */
export interface LabPod {
  /** The lab's name of the app (HA: with the replica index). */
  app: string;
  /** The image (app) it runs: vpn-seed-server, vpn-shoot, sni-proxy, path-controller. */
  image: string;
  /** The lab namespace the pod's network lives in. */
  role: Role;
  /** metadata.name of the pod (what the kubelet gives POD_NAME through the downward API). */
  podName: string;
  /** metadata.namespace of the pod. */
  namespace: string;
  /** The rendered pod spec; `containers` holds only the container the lab runs (the main one, or the sidecar). */
  spec: PodSpec;
  /** Lab values for env names the manifests give a cluster-only value (see the module comment). */
  labEnv: Record<string, string>;
  /** The Service in front of the pod (sni-proxy's LoadBalancer): port → targetPort. */
  servicePorts?: Array<{ port: number; targetPort: number }>;
}

/** The shoot's control-plane namespace in the lab's seed (the same as the process lab's). */
export const LAB_SHOOT_NAMESPACE = 'shoot--demo--local';
const SNI_PROXY_NAMESPACE = 'rvpn-system';
/** The static route ConfigMap of sni-proxy (its routes.json is the lab's route file). */
export const SNI_ROUTES_CONFIGMAP = 'sni-proxy-routes';

export interface LabMode {
  ha: boolean;
  direction: 'reversed' | 'classic';
}

/** The lab's networks as one shoot's VPN spec (what the operator would get from Gardener). */
export function labVpnSpec(mode: LabMode): VpnSpec {
  return {
    shoot: { name: 'demo', project: 'local' },
    namespace: LAB_SHOOT_NAMESPACE,
    networks: {
      services: [ADDR.shootServiceNetworks],
      pods: [ADDR.shootPodNetworks, ADDR.shootPodNetworkV6],
      nodes: [ADDR.shootNodeNetworks],
      seedPods: ADDR.seedPodNetwork,
      ipFamilies: ['IPv4', 'IPv6'],
    },
    highAvailability: { failureTolerance: mode.ha ? 'node' : 'none' },
    annotations: {},
    // the load balancer's address: the lab has no DNS, and an address is a valid ENDPOINT
    endpoint: ADDR.lbWan,
    classicEndpoint: `${ADDR.nodeWan}:4314`,
    images: { vpnSeedServer: imageRef('vpn-seed-server'), vpnShoot: imageRef('vpn-shoot'), pathController: imageRef('path-controller') },
  };
}

const SETTINGS: RenderSettings = { featureGates: { ReversedVPN: true }, sniProxy: { namespace: SNI_PROXY_NAMESPACE, podLabels: { 'app.kubernetes.io/name': 'sni-proxy' } } };

function workload(objs: K8sObject[], kind: string, name: string): { template: { spec: PodSpec } } {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`k8s-render gave no ${kind}/${name} (got ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')})`);
  return o.spec as { template: { spec: PodSpec } };
}

/** The pod spec with only the named container (sidecars of the real pod are not the lab's to run). */
function only(spec: PodSpec, container: string): PodSpec {
  const c = spec.containers.find((x) => x.name === container);
  if (!c) throw new Error(`the rendered pod has no container ${container}`);
  return { ...spec, containers: [c] };
}

/**
 * Every pod of the lab in start order: sni-proxy (reversed), the seed server(s), vpn-shoot pod(s),
 * and in HA the path-controller sidecars of the two kube-apiserver pods.
 */
export function labPods(mode: LabMode): LabPod[] {
  const spec = labVpnSpec(mode);
  const vpnMode: VpnMode = { reversed: mode.direction === 'reversed', ha: mode.ha, reason: 'the lab' };
  if (mode.ha && !vpnMode.reversed) throw new Error('the HA lab is reversed only');
  const seed = renderSeed(spec, vpnMode, SETTINGS);
  const shoot = renderShoot(spec, vpnMode);
  const pods: LabPod[] = [];
  if (vpnMode.reversed) {
    const objs = renderSniProxy({
      namespace: SNI_PROXY_NAMESPACE, image: imageRef('sni-proxy'), replicas: 1, routesConfigMap: SNI_ROUTES_CONFIGMAP, proxyProtocol: 'off', loadBalancerAnnotations: {},
    });
    const svc = objs.find((o) => o.kind === 'Service')!.spec as { ports: Array<{ port: number; targetPort: number }> };
    pods.push({
      app: 'sni-proxy', image: 'sni-proxy', role: 'lb', podName: 'sni-proxy-6c8d4', namespace: SNI_PROXY_NAMESPACE,
      spec: only(workload(objs, 'Deployment', 'sni-proxy').template.spec, 'sni-proxy'), labEnv: {},
      servicePorts: svc.ports.map((p) => ({ port: p.port, targetPort: p.targetPort })),
    });
  }
  const seedKind = mode.ha ? 'StatefulSet' : 'Deployment';
  const seedSpec = only(workload(seed, seedKind, 'vpn-seed-server').template.spec, 'vpn-seed-server');
  const shootSpec = only(workload(shoot, seedKind, 'vpn-shoot').template.spec, 'vpn-shoot');
  if (!mode.ha) {
    pods.push({ app: 'vpn-seed-server', image: 'vpn-seed-server', role: 'srv', podName: 'vpn-seed-server-7d9c', namespace: LAB_SHOOT_NAMESPACE, spec: seedSpec, labEnv: {} });
    pods.push({ app: 'vpn-shoot', image: 'vpn-shoot', role: 'vsh', podName: 'vpn-shoot-5f6b', namespace: 'kube-system', spec: shootSpec, labEnv: {} });
    return pods;
  }
  for (const i of [0, 1] as const) {
    pods.push({ app: `vpn-seed-server-${i}`, image: 'vpn-seed-server', role: i === 0 ? 'srv0' : 'srv1', podName: `vpn-seed-server-${i}`, namespace: LAB_SHOOT_NAMESPACE, spec: seedSpec, labEnv: {} });
  }
  for (const i of [0, 1] as const) {
    pods.push({ app: `vpn-shoot-${i}`, image: 'vpn-shoot', role: i === 0 ? 'vsh0' : 'vsh1', podName: `vpn-shoot-${i}`, namespace: 'kube-system', spec: shootSpec, labEnv: {} });
  }
  const wiring = apiserverWiring(spec, vpnMode);
  const sidecar = wiring.containers.find((c) => c.name === 'path-controller') as unknown as Container | undefined;
  if (!sidecar) throw new Error('apiserverWiring gave no path-controller sidecar in HA');
  const mounted = new Set([...(sidecar.volumeMounts ?? []), ...(wiring.initContainers as unknown as Container[]).flatMap((c) => c.volumeMounts ?? [])].map((m) => m.name));
  const pcSpec: PodSpec = {
    initContainers: wiring.initContainers as unknown as Container[],
    containers: [sidecar],
    volumes: (wiring.volumes as unknown as Volume[]).filter((v) => mounted.has(v.name)),
  };
  for (const i of [0, 1] as const) {
    pods.push({
      app: `path-controller-${i}`, image: 'path-controller', role: i === 0 ? 'kapi0' : 'kapi1', podName: `kube-apiserver-${i}`, namespace: LAB_SHOOT_NAMESPACE, spec: pcSpec,
      labEnv: {
        // the manifests name the per-replica Services (cluster DNS); the lab dials the pod addresses
        SEED_SERVERS: `${HA_ADDR.srv[0]}:1194,${HA_ADDR.srv[1]}:1194`,
        // the manifests probe the `kubernetes` Service of the shoot; the lab's shoot serves 100.64.0.10:80
        PROBE_TARGET: `${ADDR.service}:${ADDR.servicePort}`,
      },
    });
  }
  return pods;
}

/** The lab's route file of sni-proxy in the ConfigMap's key (reversed; HA also routes per replica). */
export const ROUTES_KEY = 'routes.json';

/**
 * Which of the lab's certificate files (names in Stack.pkiFiles / the HA stack's pki directory) fill
 * each key of each Secret the manifests mount. A Secret the manifests mount and this table lacks is
 * an error at start, so a new mount in k8s-render shows up here instead of silently missing.
 */
export function secretData(mode: LabMode): Record<string, Record<string, string>> {
  const tls = (crt: string) => ({ 'ca.crt': 'ca.crt', 'tls.crt': `${crt}.crt`, 'tls.key': `${crt}.key` });
  if (mode.ha) {
    return {
      'vpn-seed-server-tls': tls('server'),
      'vpn-shoot-client': { 'ca.crt': 'ca.crt', 'vpn-shoot-0.crt': 'shoot-0.crt', 'vpn-shoot-0.key': 'shoot-0.key', 'vpn-shoot-1.crt': 'shoot-1.crt', 'vpn-shoot-1.key': 'shoot-1.key' },
      'vpn-seed-client': tls('seed-client'),
      'kube-apiserver-http-proxy': tls('proxy-server'),
    };
  }
  if (mode.direction === 'classic') {
    return {
      'vpn-seed-server-tls': tls('seed-dialer'),
      'vpn-seed-server-proxy-tls': tls('proxy-server'),
      'vpn-shoot-server': tls('shoot-server'),
    };
  }
  return {
    // one certificate for the tunnel and the 9443 proxy, as in the manifests; the lab's also names
    // the pod IP, which its "kube-apiserver" dials (a cluster's dials the Service name)
    'vpn-seed-server-tls': tls('proxy-server'),
    'vpn-shoot-client': tls('shoot-client'),
  };
}

