/**
 * The operator's own objects (seed-wide): ServiceAccount, ClusterRole with exactly the verbs it uses,
 * ClusterRoleBinding, Deployment (one replica, unprivileged).
 */
import { labels, probes, unprivilegedSecurity } from './common.js';
import { CRD_GROUP } from './crd.js';
import type { K8sObject } from './types.js';

export interface OperatorInput {
  namespace: string;
  image: string;
  featureGates: string;
  monitoring: boolean;
  sniProxyNamespace: string;
}

export function renderOperator(input: OperatorInput): K8sObject[] {
  const sel = labels('reversed-vpn-operator');
  const manage = ['get', 'list', 'watch', 'create', 'patch', 'delete'];
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reversed-vpn-operator', namespace: input.namespace, labels: sel } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'reversed-vpn-operator', labels: sel },
      rules: [
        { apiGroups: [CRD_GROUP], resources: ['shootvpns'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [CRD_GROUP], resources: ['shootvpns/status'], verbs: ['get', 'patch'] },
        { apiGroups: ['apps'], resources: ['deployments', 'statefulsets'], verbs: manage },
        { apiGroups: [''], resources: ['services', 'configmaps', 'secrets'], verbs: manage },
        { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: manage },
        { apiGroups: ['policy'], resources: ['poddisruptionbudgets'], verbs: manage },
        { apiGroups: ['monitoring.coreos.com'], resources: ['servicemonitors', 'prometheusrules'], verbs: manage },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'reversed-vpn-operator', labels: sel },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'reversed-vpn-operator' },
      subjects: [{ kind: 'ServiceAccount', name: 'reversed-vpn-operator', namespace: input.namespace }],
    },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'reversed-vpn-operator', namespace: input.namespace, labels: sel },
      spec: {
        replicas: 1,
        // one writer at a time: a rolling update would briefly run two reconcilers
        strategy: { type: 'Recreate' },
        selector: { matchLabels: sel },
        template: {
          metadata: { labels: sel },
          spec: {
            serviceAccountName: 'reversed-vpn-operator',
            containers: [{
              name: 'operator',
              image: input.image,
              env: [
                { name: 'FEATURE_GATES', value: input.featureGates },
                { name: 'MONITORING', value: input.monitoring ? 'true' : 'false' },
                { name: 'SNI_PROXY_NAMESPACE', value: input.sniProxyNamespace },
              ],
              ports: [{ name: 'status', containerPort: 15000, protocol: 'TCP' }],
              ...probes(15000),
              securityContext: unprivilegedSecurity,
              resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '512Mi' } },
            }],
          },
        },
      },
    },
  ];
}
