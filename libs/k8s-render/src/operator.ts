/**
 * The operator's own objects (seed-wide): ServiceAccount; a ClusterRole with exactly the calls the
 * operator makes (apps/operator's RBAC test lists them with `kubectl auth can-i --list` against a
 * committed list and shows each rule and verb is needed); a Role in its namespace for its leader
 * election Lease; the bindings; the Deployment (leader election lets replicas overlap, so it rolls).
 *
 * What each rule is for:
 *   shootvpns get/list/watch        the informer and the reconcile's fresh read
 *   shootvpns patch                 adding and removing the finalizer vpn.reversed-vpn.dev/cleanup
 *   shootvpns/status patch          status, written only when it changes
 *   shootvpns/finalizers update     ownerReferences with blockOwnerDeletion to a ShootVpn (admission
 *                                   plugin OwnerReferencesPermissionEnforcement asks for it)
 *   the kinds it renders            get (compare the applied hash), list/watch (informers, prune),
 *                                   create/patch (server-side apply), delete (prune, cleanup);
 *                                   deployments patch also wires the shoot's kube-apiserver
 *   events.k8s.io events create     Events on ShootVpns
 *   leases (Role)                   create the Lease; get/update only the operator's own one
 */
import { nonRootContainerSecurity, nonRootPodSecurity, objectLabels, podTemplate, probes, selectorLabels, type WorkloadDefaults } from './common.js';
import { CRD_GROUP, CRD_PLURAL } from './crd.js';
import type { K8sObject, RenderOptions } from './types.js';

export const OPERATOR = 'reversed-vpn-operator';
export const OPERATOR_COMPONENT = 'operator';

export const OPERATOR_DEFAULTS: WorkloadDefaults = {
  resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '512Mi' } },
  podSecurityContext: nonRootPodSecurity,
  containerSecurityContext: nonRootContainerSecurity,
};

export interface OperatorInput {
  namespace: string;
  /** Name of its objects and of its Lease (the chart: the release's fullname); default reversed-vpn-operator. */
  name?: string;
  image: string;
  featureGates: string;
  monitoring: boolean;
  sniProxyNamespace: string;
  /** SNI_PROXY_ROUTES_CONFIGMAP (default sni-proxy-routes). */
  sniProxyRoutesConfigMap?: string;
  /** KUBE_APISERVER_DEPLOYMENT: the shoot kube-apiserver's Deployment in each control-plane namespace ('' : do not wire). */
  kubeApiserverDeployment?: string;
  /** Replicas (default 1); with leader election only one reconciles, the others stand by. */
  replicas?: number;
}

/** The ClusterRole's rules (exported for the RBAC test, which drops them one by one). */
export function operatorClusterRules(input: Pick<OperatorInput, 'monitoring'>) {
  const manage = ['get', 'list', 'watch', 'create', 'patch', 'delete'];
  return [
    { apiGroups: [CRD_GROUP], resources: [CRD_PLURAL], verbs: ['get', 'list', 'watch', 'patch'] },
    { apiGroups: [CRD_GROUP], resources: [`${CRD_PLURAL}/status`], verbs: ['patch'] },
    { apiGroups: [CRD_GROUP], resources: [`${CRD_PLURAL}/finalizers`], verbs: ['update'] },
    { apiGroups: ['apps'], resources: ['deployments', 'statefulsets'], verbs: manage },
    { apiGroups: [''], resources: ['configmaps', 'secrets', 'services'], verbs: manage },
    { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: manage },
    { apiGroups: ['policy'], resources: ['poddisruptionbudgets'], verbs: manage },
    ...(input.monitoring ? [{ apiGroups: ['monitoring.coreos.com'], resources: ['prometheusrules', 'servicemonitors'], verbs: manage }] : []),
    { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create'] },
  ];
}

/** The Role's rules in the operator's namespace: its Lease only (create cannot be limited by name). */
export function operatorLeaseRules(leaseName: string) {
  return [
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [leaseName], verbs: ['get', 'update'] },
  ];
}

export function renderOperator(input: OperatorInput, options: RenderOptions = {}): K8sObject[] {
  const name = input.name ?? OPERATOR;
  const meta = objectLabels(OPERATOR, OPERATOR_COMPONENT, options);
  const sel = selectorLabels(OPERATOR, OPERATOR_COMPONENT, options);
  const ns = input.namespace;
  const fieldRef = (path: string) => ({ valueFrom: { fieldRef: { fieldPath: path } } });
  const pod = {
    serviceAccountName: name,
    enableServiceLinks: false,
    containers: [{
      name: 'operator',
      image: input.image,
      env: [
        { name: 'FEATURE_GATES', value: input.featureGates },
        { name: 'MONITORING', value: input.monitoring ? 'true' : 'false' },
        { name: 'SNI_PROXY_NAMESPACE', value: input.sniProxyNamespace },
        ...(input.sniProxyRoutesConfigMap ? [{ name: 'SNI_PROXY_ROUTES_CONFIGMAP', value: input.sniProxyRoutesConfigMap }] : []),
        ...(input.kubeApiserverDeployment !== undefined ? [{ name: 'KUBE_APISERVER_DEPLOYMENT', value: input.kubeApiserverDeployment || '-' }] : []),
        { name: 'LEADER_ELECTION_LEASE', value: name },
        { name: 'POD_NAMESPACE', ...fieldRef('metadata.namespace') },
        { name: 'POD_NAME', ...fieldRef('metadata.name') },
      ],
      ports: [{ name: 'status', containerPort: 15000, protocol: 'TCP' }],
      ...probes(15000),
    }],
  };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns, labels: { ...meta } } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels: { ...meta } }, rules: operatorClusterRules(input) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name, labels: { ...meta } },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: `${name}-leader-election`, namespace: ns, labels: { ...meta } }, rules: operatorLeaseRules(name) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: `${name}-leader-election`, namespace: ns, labels: { ...meta } },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${name}-leader-election` },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: ns, labels: { ...meta } },
      spec: {
        replicas: input.replicas ?? 1,
        // the Lease keeps a second replica from reconciling, so a rolling update is safe
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        selector: { matchLabels: sel },
        template: podTemplate({ ...meta }, pod, OPERATOR_DEFAULTS, options.pod),
      },
    },
  ];
}
