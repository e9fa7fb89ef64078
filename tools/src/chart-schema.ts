/**
 * The values.schema.json of every chart in charts/reversed-vpn, written once here from shared pieces
 * (`pnpm gen-docs` writes them; a test fails on drift). Strict where the chart owns the shape
 * (additionalProperties false), Kubernetes-typed where a value passes through into a pod (resources,
 * affinity, tolerations, security contexts), and strict enough that what it accepts starts: the apps
 * refuse at run time what the schema lets through, so every value an app checks is checked here too
 * (CIDRs and their IP families, the IPv6 transfer network, required endpoints, HA only with the
 * reversed direction, an IPv4 seed pod network whenever the shoot speaks IPv4).
 */

import { MAPPING_MODES } from '@rvpn/config';

type Schema = Record<string, unknown>;

const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
const bool: Schema = { type: 'boolean' };
const obj = (properties: Record<string, Schema>, extra: Schema = {}): Schema => ({ type: 'object', additionalProperties: false, properties, ...extra });
const stringMap: Schema = { type: 'object', additionalProperties: { type: 'string' } };

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = `${OCTET}(\\.${OCTET}){3}`;
export const IPV4_CIDR = `^${IPV4}/(3[0-2]|[12]?[0-9])$`;
/** An IPv6 prefix (the apps also refuse host bits set, which a pattern cannot see). */
const IPV6 = `([0-9a-fA-F]{0,4}:){2,7}([0-9a-fA-F]{1,4}|${IPV4})?`;
export const IPV6_CIDR = `^${IPV6}/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$`;
const IPV6_CIDR_MAX_120 = `^${IPV6}/(120|1[01][0-9]|[1-9]?[0-9])$`;
const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const HOSTNAME = '^(([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)(\\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*|\\[[0-9a-fA-F:.]+\\])$';
const HOST_PORT = '^([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?|\\[[0-9a-fA-F:.]+\\]):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$';
const cidrOf = (pattern: string): Schema => ({ type: 'string', pattern });
/** A duration as the apps read it: `500ms`, `5s`, `1m`, `1h`, a bare number meaning milliseconds. */
const DURATION = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)?$';
const count: Schema = { type: 'integer', minimum: 1 };
const anyCidr: Schema = { type: 'string', anyOf: [{ pattern: IPV4_CIDR }, { pattern: IPV6_CIDR }] };
/** 240.0.0.0/4 holds the mapped addresses (issue 12): no real network may lie there (RVPN_ERR_MAPPING_RESERVED_RANGE). */
const MAPPED_V4: Schema = { pattern: '^(24[0-9]|25[0-5])\\.' };
/** A real seed or shoot network: a CIDR outside the mapped IPv4 region. */
const realCidr: Schema = { ...anyCidr, not: MAPPED_V4 };

/** Labels the charts add themselves may not be set again (duplicate keys, broken selectors). */
const extraLabels: Schema = { type: 'object', additionalProperties: { type: 'string' }, propertyNames: { not: { pattern: '^(app\\.kubernetes\\.io|helm\\.sh)/' } } };

const pullSecrets: Schema = { type: 'array', items: obj({ name: str({ minLength: 1 }) }, { required: ['name'] }) };

/** What every chart's `global` may hold (the umbrella passes all of it to each subchart). */
const globalSchema: Schema = obj({
  imageRegistry: str(),
  imagePullSecrets: pullSecrets,
  commonLabels: extraLabels,
  mode: obj({ reversed: bool, ha: bool }, { required: ['reversed', 'ha'] }),
  shoot: obj({
    name: str({ pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$' }),
    project: str({ pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$' }),
    namespace: str({ maxLength: 63, pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$' }),
    endpoint: str({ pattern: `(${HOSTNAME})|^$` }),
    classicEndpoint: str({ pattern: `(${HOST_PORT})|^$` }),
    failureTolerance: { enum: ['none', 'node', 'zone'] },
    networks: obj({
      services: { type: 'array', minItems: 1, items: realCidr },
      pods: { type: 'array', items: realCidr },
      nodes: { type: 'array', items: realCidr },
      seedPods: { type: 'string', anyOf: [{ const: '' }, { pattern: IPV4_CIDR }, { pattern: IPV6_CIDR }], not: MAPPED_V4 },
      ipFamilies: { type: 'array', minItems: 1, maxItems: 2, uniqueItems: true, items: { enum: ['IPv4', 'IPv6'] } },
      vpn: cidrOf(IPV6_CIDR_MAX_120),
      // issue 12: the seed's other networks (either family; one not carried is ignored) and the mapping settings
      seedNodes: { type: 'array', items: realCidr },
      seedServices: { type: 'array', items: realCidr },
      mapping: obj({
        mode: { enum: [...MAPPING_MODES] },
        ipv6: obj(Object.fromEntries(['seedPods', 'shootNodes', 'shootServices', 'shootPods'].map((k) => [k, { type: 'string', anyOf: [{ const: '' }, { pattern: IPV6_CIDR }] }])), { required: ['seedPods', 'shootNodes', 'shootServices', 'shootPods'] }),
      }, { required: ['mode', 'ipv6'] }),
    }, {
      required: ['services', 'pods', 'nodes', 'seedPods', 'ipFamilies', 'vpn', 'seedNodes', 'seedServices', 'mapping'],
      allOf: [
        // every shoot network must be of a family the tunnel carries
        {
          if: { properties: { ipFamilies: { not: { contains: { const: 'IPv6' } } } } },
          then: { properties: Object.fromEntries(['services', 'pods', 'nodes'].map((k) => [k, { items: { pattern: IPV4_CIDR } }])) },
        },
        {
          if: { properties: { ipFamilies: { not: { contains: { const: 'IPv4' } } } } },
          then: { properties: Object.fromEntries(['services', 'pods', 'nodes'].map((k) => [k, { items: { pattern: IPV6_CIDR } }])) },
        },
      ],
    }),
  }),
});

const image = (): Schema => obj({
  registry: str(),
  repository: str({ minLength: 1 }),
  tag: str({ pattern: '^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$' }),
  digest: str({ pattern: '^(sha256:[a-f0-9]{64})?$' }),
  pullPolicy: { enum: ['Always', 'IfNotPresent', 'Never'] },
}, { required: ['repository', 'pullPolicy'] });

const quantity: Schema = { anyOf: [{ type: 'string', pattern: '^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]i?|Ki)?$' }, { type: 'number' }] };
const resources: Schema = obj({ requests: { type: 'object', additionalProperties: quantity }, limits: { type: 'object', additionalProperties: quantity }, claims: { type: 'array' } });

/** The overrides every workload takes (Bitnami's names); Kubernetes types pass through as objects/arrays. */
const podOverrides = (): Record<string, Schema> => ({
  imagePullSecrets: pullSecrets,
  resources,
  nodeSelector: stringMap,
  tolerations: { type: 'array', items: { type: 'object' } },
  affinity: { type: 'object' },
  podSecurityContext: { type: 'object' },
  containerSecurityContext: { type: 'object' },
  priorityClassName: str({ pattern: `(${DNS_LABEL})|^$` }),
  podAnnotations: stringMap,
});

const chartSchema = (properties: Record<string, Schema>, extra?: Schema): Schema => ({
  $schema: 'http://json-schema.org/draft-07/schema#',
  ...obj({ global: globalSchema, enabled: { type: ['boolean', 'null'] }, ...properties }),
  ...(extra ? { allOf: [extra] } : {}),
});

/** The per-shoot charts need the shoot's identity and networks; `side` adds what that side checks. */
const perShootGlobal = (side: 'seed' | 'shoot'): Schema => ({
  properties: {
    global: {
      required: ['mode', 'shoot'],
      properties: {
        mode: { if: { properties: { ha: { const: true } } }, then: { properties: { reversed: { const: true } } } },
        shoot: {
          required: ['name', 'project', 'namespace', 'endpoint', 'classicEndpoint', 'failureTolerance', 'networks'],
          properties: {
            name: { minLength: 1 },
            project: { minLength: 1 },
            ...(side === 'shoot' ? { namespace: { minLength: 1 } } : {}),
            // IPv4 replies to seed pods are routed back into the tunnel by this network (vpn-shoot refuses to start without it)
            networks: { if: { properties: { ipFamilies: { contains: { const: 'IPv4' } } } }, then: { properties: { seedPods: { pattern: IPV4_CIDR } } } },
          },
        },
      },
      // reversed: the shoot dials the entry point; classic: the seed dials vpn-shoot's LoadBalancer
      allOf: [side === 'shoot'
        ? { if: { properties: { mode: { properties: { reversed: { const: true } } } } }, then: { properties: { shoot: { properties: { endpoint: { minLength: 1 } } } } } }
        : { if: { properties: { mode: { properties: { reversed: { const: false } } } } }, then: { properties: { shoot: { properties: { classicEndpoint: { minLength: 1 } } } } } }],
    },
  },
});

export const CHART_SCHEMAS: Record<string, Schema> = {
  'reversed-vpn': chartSchema({
    crds: { type: 'object' },
    'sni-proxy': { type: 'object' },
    operator: { type: 'object' },
    'vpn-seed-server': { type: 'object' },
    'vpn-shoot': { type: 'object' },
  }),
  crds: chartSchema({}),
  'sni-proxy': chartSchema({
    fullnameOverride: str({ maxLength: 63 }),
    replicas: { type: 'integer', minimum: 1 },
    image: image(),
    proxyProtocol: { enum: ['off', 'optional', 'required'] },
    proxyProtocolTrustedNetworks: { type: 'array', items: anyCidr },
    relayMode: { enum: ['native', 'stream'] },
    limits: obj({
      maxConnections: count,
      maxConnectionsPerSource: count,
      maxConnectionsPerRoute: count,
      maxPendingConnections: count,
      maxPendingConnectionsPerSource: count,
      headerTimeout: str({ pattern: DURATION }),
      upstreamDialTimeout: str({ pattern: DURATION }),
      refusalLogInterval: str({ pattern: DURATION }),
    }),
    service: obj({
      type: { enum: ['LoadBalancer', 'NodePort'] },
      externalTrafficPolicy: { enum: ['Local', 'Cluster'] },
      loadBalancerClass: str(),
      annotations: stringMap,
    }, { required: ['type', 'externalTrafficPolicy'] }),
    routes: obj({
      sni: { type: 'object', additionalProperties: str({ pattern: HOST_PORT }) },
      connect: { type: 'object', additionalProperties: str({ pattern: HOST_PORT }) },
    }),
    operatorRoutes: obj({ enabled: bool, configMap: str({ pattern: `(${DNS_LABEL})|^$`, maxLength: 253 }) }),
    ...podOverrides(),
  }),
  operator: chartSchema({
    fullnameOverride: str({ maxLength: 63 }),
    replicas: { type: 'integer', minimum: 1 },
    image: image(),
    featureGates: obj({ ReversedVPN: bool }, { required: ['ReversedVPN'] }),
    monitoring: bool,
    kubeApiserverDeployment: str({ pattern: `(${DNS_LABEL})|^$` }),
    sniProxy: obj({ namespace: str({ pattern: `(${DNS_LABEL})|^$` }), routesConfigMap: str({ pattern: `(${DNS_LABEL})|^$`, maxLength: 253 }) }),
    ...podOverrides(),
  }),
  'vpn-seed-server': chartSchema({
    image: image(),
    pathController: obj({ image: image() }),
    sniProxy: obj({ namespace: str({ pattern: DNS_LABEL }), podLabels: { ...stringMap, minProperties: 1 } }, { required: ['namespace', 'podLabels'] }),
    metrics: obj({ from: { type: 'array', minItems: 1, items: { type: 'object' } } }),
    monitoring: obj({ enabled: bool, certificateWarningDays: { type: 'integer', minimum: 1 }, labels: extraLabels }),
    setup: obj({
      enabled: bool,
      image: image(),
      kubeApiserverDeployment: str({ pattern: `(${DNS_LABEL})|^$` }),
      shootKubeconfigSecret: str({ pattern: `(${DNS_LABEL})|^$` }),
      schedule: str({ pattern: '^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\\S+\\s+){4}\\S+)$' }),
      resources,
    }),
    test: obj({ target: str({ pattern: `(${HOST_PORT})|^$` }) }),
    ha: obj({ podSecurityContext: { type: 'object' }, containerSecurityContext: { type: 'object' } }),
    ...podOverrides(),
  }, perShootGlobal('seed')),
  'vpn-shoot': chartSchema({
    image: image(),
    ...podOverrides(),
  }, perShootGlobal('shoot')),
};
