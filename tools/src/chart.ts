/**
 * The umbrella Helm chart, generated from libs/k8s-render (one source of truth): each component's
 * templates are the render functions' output with Helm expressions in the place of the inputs, one
 * variant per mode behind `if`. `pnpm gen-docs` writes charts/reversed-vpn; a test fails when the
 * committed chart drifts, and the chart tests run `helm lint` and `helm template` for every scenario in
 * charts/reversed-vpn/ci and compare the result with k8s-render's output for the same input.
 */
import { renderCrd, renderOperator, renderSeed, renderShoot, renderSniProxy, type K8sObject, type VpnMode, type VpnSpec } from '@rvpn/k8s-render';

export const CHART_DIR = 'charts/reversed-vpn';

const V = (path: string) => `{{ .Values.${path} }}`;
const joined = (path: string) => `{{ join \`,\` .Values.${path} }}`;

/** The VpnSpec whose every input is a Helm expression over .Values.shoot / .Values.images. */
function templateSpec(): VpnSpec {
  return {
    shoot: { name: V('shoot.name'), project: V('shoot.project') },
    namespace: V('shoot.namespace'),
    networks: {
      services: [joined('shoot.networks.services')],
      pods: [joined('shoot.networks.pods')],
      nodes: [joined('shoot.networks.nodes')],
      seedPods: V('shoot.networks.seedPods'),
      ipFamilies: [joined('shoot.networks.ipFamilies')] as unknown as VpnSpec['networks']['ipFamilies'],
      vpn: V('shoot.networks.vpn'),
    },
    highAvailability: { failureTolerance: 'node' },
    annotations: {},
    endpoint: V('shoot.endpoint'),
    classicEndpoint: V('shoot.classicEndpoint'),
    images: { vpnSeedServer: V('images.vpnSeedServer'), vpnShoot: V('images.vpnShoot'), pathController: V('images.pathController') },
  };
}

const settings = { featureGates: { ReversedVPN: true }, sniProxy: { namespace: V('seedServer.sniProxyNamespace'), podLabels: { 'app.kubernetes.io/name': 'sni-proxy' } } };

const MODES: Array<{ cond: string; mode: VpnMode }> = [
  { cond: 'and .Values.reversed (not .Values.ha)', mode: { reversed: true, ha: false, reason: '' } },
  { cond: 'and .Values.reversed .Values.ha', mode: { reversed: true, ha: true, reason: '' } },
  { cond: 'not .Values.reversed', mode: { reversed: false, ha: false, reason: '' } },
];

function docs(objs: K8sObject[], post: (json: string) => string = (j) => j): string {
  return objs.map((o) => `---\n${post(JSON.stringify(o, null, 2))}\n`).join('');
}

/** HA spreads replicas over zones or nodes, as the failure tolerance says. */
const spreadKey = (json: string) => json.replaceAll('"kubernetes.io/hostname"', '"{{ ternary `topology.kubernetes.io/zone` `kubernetes.io/hostname` (eq .Values.shoot.failureTolerance `zone`) }}"');

function componentTemplate(enabled: string, render: (mode: VpnMode) => K8sObject[]): string {
  const parts = [`{{- if .Values.${enabled}.enabled }}`];
  for (const { cond, mode } of MODES) parts.push(`{{- if ${cond} }}`, docs(render(mode), spreadKey).trimEnd(), '{{- end }}');
  parts.push('{{- end }}', '');
  return parts.join('\n');
}

function sniProxyTemplate(): string {
  const objs = renderSniProxy({
    namespace: '{{ .Release.Namespace }}',
    image: V('images.sniProxy'),
    replicas: '__REPLICAS__' as unknown as number,
    routesConfigMap: V('sniProxy.routesConfigMap'),
    proxyProtocol: V('sniProxy.proxyProtocol') as 'off',
    loadBalancerAnnotations: { __LB_ANNOTATIONS__: '' },
  });
  const post = (j: string) => j.replace('"__REPLICAS__"', '{{ .Values.sniProxy.replicas }}').replace(/\{\s*"__LB_ANNOTATIONS__": ""\s*\}/, '{{ toJson .Values.sniProxy.loadBalancerAnnotations }}');
  const routes = {
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: V('sniProxy.routesConfigMap'), namespace: '{{ .Release.Namespace }}', labels: { 'app.kubernetes.io/name': 'sni-proxy', 'app.kubernetes.io/part-of': 'reversed-vpn' } },
    data: { 'routes.json': '__ROUTES__' },
  };
  const routesDoc = `---\n${JSON.stringify(routes, null, 2).replace('"__ROUTES__"', '{{ dict "connect" .Values.sniProxy.routes | toPrettyJson | quote }}')}\n`;
  // with the operator, the operator owns the route ConfigMap (it publishes every ShootVpn's route)
  return ['{{- if .Values.sniProxy.enabled }}', docs(objs, post).trimEnd(), '{{- if not .Values.operator.enabled }}', routesDoc.trimEnd(), '{{- end }}', '{{- end }}', ''].join('\n');
}

function operatorTemplate(): string {
  const objs = renderOperator({ namespace: '{{ .Release.Namespace }}', image: V('images.operator'), featureGates: V('operator.featureGates'), monitoring: '__MON__' as unknown as boolean, sniProxyNamespace: V('operator.sniProxyNamespace') });
  const post = (j: string) => j.replace('"value": "true"', '"value": "{{ ternary `true` `false` .Values.operator.monitoring }}"');
  // renderOperator turns the truthy sentinel into "true"; the post-processing puts the value back
  return ['{{- if .Values.operator.enabled }}', docs(objs, post).trimEnd(), '{{- end }}', ''].join('\n');
}

const CHART_YAML = `apiVersion: v2
name: reversed-vpn
description: The reversed VPN between hosted Kubernetes control planes and their clusters (seed entry point, per-shoot seed server, shoot side).
type: application
version: 0.1.0
appVersion: "0.1.0"
`;

const VALUES_YAML = `# Values of the reversed-vpn umbrella chart. Every component is off unless enabled.
# The seed's shared entry point installs once per seed; seedServer once per shoot (in the shoot's
# control-plane namespace, without the operator); shoot goes into each shoot cluster (kube-system).

images:
  operator: reversed-vpn/operator:0.1.0
  sniProxy: reversed-vpn/sni-proxy:0.1.0
  vpnSeedServer: reversed-vpn/vpn-seed-server:0.1.0
  vpnShoot: reversed-vpn/vpn-shoot:0.1.0
  pathController: reversed-vpn/path-controller:0.1.0

# The direction and HA of this shoot's VPN (the operator derives them from its feature gate and the
# shoot's annotations; with the chart they are set here).
reversed: true
ha: false

# This shoot's VPN (seedServer and shoot components).
shoot:
  name: ""
  project: ""
  # control-plane namespace in the seed
  namespace: ""
  # FQDN of the seed's entry point that vpn-shoot dials (port 8443)
  endpoint: ""
  # classic direction only: address of vpn-shoot's LoadBalancer (host:port)
  classicEndpoint: "unset:4314"
  failureTolerance: none
  networks:
    services: [100.64.0.0/13]
    pods: [100.96.0.0/11]
    nodes: []
    seedPods: ""
    ipFamilies: [IPv4]
    vpn: fd8f:6d53:b97a:1::/96

# the seed-wide operator (reconciles ShootVpn resources; the CRD is in crds/)
operator:
  enabled: false
  featureGates: ReversedVPN=true
  monitoring: false
  sniProxyNamespace: rvpn-system

sniProxy:
  enabled: false
  replicas: 2
  proxyProtocol: "off"
  routesConfigMap: sni-proxy-routes
  # header value -> host:port (the operator maintains these; static here)
  routes: {}
  loadBalancerAnnotations: {}

seedServer:
  enabled: false
  # namespace of sni-proxy, allowed to reach the tunnel port
  sniProxyNamespace: rvpn-system

shootSide:
  enabled: false
`;

const cidrs = { type: 'array', items: { type: 'string', pattern: '^[0-9a-fA-F:.]+/[0-9]{1,3}$' } };
const VALUES_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  additionalProperties: false,
  required: ['images', 'reversed', 'ha', 'shoot', 'operator', 'sniProxy', 'seedServer', 'shootSide'],
  properties: {
    images: { type: 'object', additionalProperties: false, required: ['operator', 'sniProxy', 'vpnSeedServer', 'vpnShoot', 'pathController'], properties: Object.fromEntries(['operator', 'sniProxy', 'vpnSeedServer', 'vpnShoot', 'pathController'].map((k) => [k, { type: 'string', minLength: 1 }])) },
    operator: {
      type: 'object', additionalProperties: false, required: ['enabled', 'featureGates', 'monitoring', 'sniProxyNamespace'],
      properties: { enabled: { type: 'boolean' }, featureGates: { type: 'string', pattern: '^(ReversedVPN=(true|false))?$' }, monitoring: { type: 'boolean' }, sniProxyNamespace: { type: 'string', minLength: 1 } },
    },
    reversed: { type: 'boolean' },
    ha: { type: 'boolean' },
    shoot: {
      type: 'object', additionalProperties: false,
      required: ['name', 'project', 'namespace', 'endpoint', 'classicEndpoint', 'failureTolerance', 'networks'],
      properties: {
        name: { type: 'string', pattern: '^[a-z0-9-]*$' },
        project: { type: 'string', pattern: '^[a-z0-9-]*$' },
        namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$|^$' },
        endpoint: { type: 'string', pattern: '^[a-zA-Z0-9.-]*$' },
        classicEndpoint: { type: 'string', pattern: '^[a-zA-Z0-9.:\\[\\]-]+$' },
        failureTolerance: { type: 'string', enum: ['none', 'node', 'zone'] },
        networks: {
          type: 'object', additionalProperties: false,
          required: ['services', 'pods', 'nodes', 'seedPods', 'ipFamilies', 'vpn'],
          properties: { services: cidrs, pods: cidrs, nodes: cidrs, seedPods: { type: 'string' }, ipFamilies: { type: 'array', minItems: 1, items: { enum: ['IPv4', 'IPv6'] } }, vpn: { type: 'string' } },
        },
      },
    },
    sniProxy: {
      type: 'object', additionalProperties: false,
      required: ['enabled', 'replicas', 'proxyProtocol', 'routesConfigMap', 'routes', 'loadBalancerAnnotations'],
      properties: {
        enabled: { type: 'boolean' },
        replicas: { type: 'integer', minimum: 1 },
        proxyProtocol: { enum: ['off', 'optional', 'required'] },
        routesConfigMap: { type: 'string', minLength: 1 },
        routes: { type: 'object', additionalProperties: { type: 'string', pattern: '^[^\\s]+:[0-9]{1,5}$' } },
        loadBalancerAnnotations: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
    seedServer: { type: 'object', additionalProperties: false, required: ['enabled', 'sniProxyNamespace'], properties: { enabled: { type: 'boolean' }, sniProxyNamespace: { type: 'string' } } },
    shootSide: { type: 'object', additionalProperties: false, required: ['enabled'], properties: { enabled: { type: 'boolean' } } },
  },
};

/** Every file of the chart, path → content. */
export function renderChartFiles(): Record<string, string> {
  const spec = templateSpec();
  return {
    [`${CHART_DIR}/Chart.yaml`]: CHART_YAML,
    [`${CHART_DIR}/values.yaml`]: VALUES_YAML,
    [`${CHART_DIR}/values.schema.json`]: `${JSON.stringify(VALUES_SCHEMA, null, 2)}\n`,
    [`${CHART_DIR}/crds/shootvpns.vpn.reversed-vpn.dev.yaml`]: `${JSON.stringify(renderCrd(), null, 2)}\n`,
    [`${CHART_DIR}/templates/operator/objects.yaml`]: operatorTemplate(),
    [`${CHART_DIR}/templates/sni-proxy/objects.yaml`]: sniProxyTemplate(),
    [`${CHART_DIR}/templates/seed-server/objects.yaml`]: componentTemplate('seedServer', (mode) => renderSeed(spec, mode, settings)),
    [`${CHART_DIR}/templates/shoot/objects.yaml`]: componentTemplate('shootSide', (mode) => renderShoot(spec, mode)),
  };
}
