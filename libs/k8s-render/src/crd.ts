/**
 * The ShootVpn custom resource: its spec is the render input (VpnSpec), its status what the operator
 * reports. The CRD is generated from this one schema (`pnpm gen-docs` writes
 * deploy/crds/shootvpns.vpn.reversed-vpn.dev.json; a test fails when the committed file drifts).
 */
import { MAPPING_MODES } from '@rvpn/config';
import type { K8sObject } from './types.js';

export const CRD_GROUP = 'vpn.reversed-vpn.dev';
export const CRD_VERSION = 'v1alpha1';
export const CRD_KIND = 'ShootVpn';
export const CRD_PLURAL = 'shootvpns';

const cidr = { type: 'string', pattern: '^[0-9a-fA-F:.]+/[0-9]{1,3}$' };
const nonEmpty = { type: 'string', minLength: 1 };

/** OpenAPI v3 schema of ShootVpn.spec (structural, as Kubernetes requires). */
export const vpnSpecSchema = {
  type: 'object',
  required: ['shoot', 'namespace', 'networks', 'highAvailability', 'endpoint', 'images'],
  properties: {
    shoot: { type: 'object', required: ['name', 'project'], properties: { name: nonEmpty, project: nonEmpty } },
    namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63, description: "The shoot's control-plane namespace in the seed." },
    networks: {
      type: 'object',
      required: ['services', 'pods', 'nodes', 'seedPods', 'ipFamilies'],
      properties: {
        services: { type: 'array', items: cidr },
        pods: { type: 'array', items: cidr },
        nodes: { type: 'array', items: cidr },
        seedPods: cidr,
        ipFamilies: { type: 'array', minItems: 1, maxItems: 2, items: { type: 'string', enum: ['IPv4', 'IPv6'] } },
        vpn: { ...cidr, description: 'IPv6 transfer network; default fd8f:6d53:b97a:1::/96.' },
        seedNodes: { type: 'array', items: cidr, description: "The seed's node networks (either family), compared with the shoot's networks like seedPods: an overlap turns on the mapping of that family (mapping.mode auto)." },
        seedServices: { type: 'array', items: cidr, description: "The seed's service networks (either family), compared likewise." },
        mapping: {
          type: 'object',
          description: "Overlapping seed and shoot networks (Gardener's double NAT): the tunnel carries seed pods as 241.0.0.0/8, shoot nodes 242.0.0.0/8, services 243.0.0.0/8, pods 244.0.0.0/8 (IPv6: the ipv6 prefixes). The operator reports the mapping in status.networkMapping and the NetworksValid condition.",
          properties: {
            mode: { type: 'string', enum: [...MAPPING_MODES], description: 'auto (default): map an IP family when a seed network overlaps a shoot network of it; always: map every family; never: map none and refuse overlaps.' },
            ipv6: {
              type: 'object',
              description: 'Where each kind appears in the tunnel when IPv6 is mapped; defaults fd6d:6170:100::/40, :200::/40, :300::/40, :400::/40.',
              properties: { seedPods: cidr, shootNodes: cidr, shootServices: cidr, shootPods: cidr },
            },
          },
        },
      },
    },
    highAvailability: {
      type: 'object',
      required: ['failureTolerance'],
      properties: { failureTolerance: { type: 'string', enum: ['none', 'node', 'zone'] } },
    },
    annotations: { type: 'object', additionalProperties: { type: 'string' }, description: "The shoot's annotations (reversed-vpn and high-availability-vpn overrides)." },
    endpoint: { ...nonEmpty, description: "FQDN of the seed's entry point the shoot dials." },
    classicEndpoint: { type: 'string', description: "Classic direction: address of vpn-shoot's LoadBalancer in the shoot." },
    images: {
      type: 'object',
      required: ['vpnSeedServer', 'vpnShoot', 'pathController'],
      properties: { vpnSeedServer: nonEmpty, vpnShoot: nonEmpty, pathController: nonEmpty },
    },
    shootAccess: {
      type: 'object',
      required: ['kubeconfigSecretRef'],
      description: 'How the operator reaches the shoot cluster. Set: the shoot side (vpn-shoot and its certificate Secret) is applied into the shoot. Unset: it is parked in the Secret vpn-shoot-resources of the namespace for a shoot-side applier.',
      properties: {
        kubeconfigSecretRef: {
          type: 'object',
          required: ['name'],
          description: "A Secret in the ShootVpn's namespace holding a kubeconfig of the shoot.",
          properties: {
            name: nonEmpty,
            key: { type: 'string', minLength: 1, default: 'kubeconfig', description: 'The key of the kubeconfig in the Secret.' },
          },
        },
      },
    },
  },
} as const;

const conditionSchema = {
  type: 'object',
  required: ['type', 'status'],
  properties: {
    type: { type: 'string', enum: ['Ready', 'TunnelConnected', 'CertificatesValid', 'ApiserverWired', 'ShootApplied', 'NetworksValid'] },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    reason: { type: 'string' },
    message: { type: 'string' },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    observedGeneration: { type: 'integer' },
  },
};

export const vpnStatusSchema = {
  type: 'object',
  properties: {
    observedGeneration: { type: 'integer' },
    reversed: { type: 'boolean' },
    ha: { type: 'boolean' },
    networkMapping: {
      type: 'object',
      description: "The mapping the tunnel apps compute from spec.networks (libs/config): per IP family whether it is translated, why, and where each network lands.",
      properties: {
        mode: { type: 'string' },
        families: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              family: { type: 'integer' },
              active: { type: 'boolean' },
              reason: { type: 'string', enum: ['overlap', 'always', 'none', 'never'] },
              networks: { type: 'array', items: { type: 'string' }, description: "'<kind> <real> -> <mapped>'" },
            },
          },
        },
      },
    },
    conditions: { type: 'array', items: conditionSchema, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] },
  },
} as const;

export function renderCrd(): K8sObject {
  const cond = (type: string) => `.status.conditions[?(@.type=="${type}")].status`;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${CRD_PLURAL}.${CRD_GROUP}`, labels: { 'app.kubernetes.io/part-of': 'reversed-vpn' } },
    spec: {
      group: CRD_GROUP,
      scope: 'Namespaced',
      names: { kind: CRD_KIND, listKind: `${CRD_KIND}List`, plural: CRD_PLURAL, singular: 'shootvpn', shortNames: ['svpn'] },
      versions: [{
        name: CRD_VERSION,
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: [
          { name: 'Reversed', type: 'boolean', jsonPath: '.status.reversed' },
          { name: 'HA', type: 'boolean', jsonPath: '.status.ha' },
          { name: 'Ready', type: 'string', jsonPath: cond('Ready') },
          { name: 'Tunnel', type: 'string', jsonPath: cond('TunnelConnected') },
          { name: 'Certificates', type: 'string', jsonPath: cond('CertificatesValid') },
          { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
        ],
        schema: { openAPIV3Schema: { type: 'object', required: ['spec'], properties: { spec: vpnSpecSchema, status: vpnStatusSchema } } },
      }],
    },
  };
}
