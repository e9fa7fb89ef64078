/**
 * One source of truth for the objects: for every scenario in charts/reversed-vpn/ci, `helm lint` passes
 * and every object `helm template` renders equals, object by object, what libs/k8s-render renders for
 * the same input (same kind/namespace/name set, deep-equal once the Helm-only label helm.sh/chart is
 * checked and set aside), and validates against the Kubernetes OpenAPI schemas (kubernetes-models).
 *
 * The render functions get the scenario's overrides only, never the chart's values.yaml defaults, so
 * the defaults a platform team reads in values.yaml (resources, security contexts, pull policy,
 * metrics peers…) are compared with the defaults in libs/k8s-render too. Spec inputs (the shoot's
 * identity and networks, image references, replicas) have no render-side default and come from the
 * merged values.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  imageRef, mergeValues, objectLabels, renderConnectProbe, renderCrd, renderMonitoring, renderOperator, renderSeed, renderShoot, renderShootSetup,
  renderSniProxy, renderSniProxyRoutesConfigMap, type ImageSpec, type K8sObject, type ObjectMeta, type PodOverrides, type VpnSpec,
} from '@rvpn/k8s-render';
import { planNetworkMappingFromEnv } from '@rvpn/config';
import { CHARTS, CHART_DIR, SUBCHARTS, chartDir, valuesTable, type ChartName } from './chart.js';
import { ensureHelm } from './helm.js';
import { REPO_ROOT } from './lab/paths.js';
import { run } from './lab/sh.js';

const RELEASE = 'rvpn';
const chart = join(REPO_ROOT, CHART_DIR);
type Values = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const readYaml = (path: string) => parse(readFileSync(join(REPO_ROOT, path), 'utf8')) as Values;
const defaults = Object.fromEntries(CHARTS.map((c) => [c, readYaml(`${chartDir(c)}/values.yaml`)])) as Record<ChartName, Values>;
const chartVersion = (c: ChartName) => (readYaml(`${chartDir(c)}/Chart.yaml`) as { version: string }).version;

/** A subchart's values as Helm computes them: its defaults, under the umbrella's, under the user's; globals likewise. */
function subchartValues(c: (typeof SUBCHARTS)[number], user: Values): Values {
  const v = mergeValues(mergeValues(defaults[c], defaults['reversed-vpn'][c] ?? {}), user[c] ?? {});
  v.global = mergeValues(mergeValues(defaults[c].global, defaults['reversed-vpn'].global), user.global ?? {});
  return v;
}

const enabled = (user: Values, c: (typeof SUBCHARTS)[number]): boolean => {
  const on = (k: string) => (user[k]?.enabled ?? defaults['reversed-vpn'][k]?.enabled) as boolean | null | undefined;
  if (c === 'crds') return on('crds') ?? on('operator') ?? false;
  return on(c) ?? false;
};

/** Where a scenario installs: the shoot side into kube-system, a seed side into its control-plane namespace, the rest into rvpn-system. */
function namespaceOf(user: Values): string {
  if (enabled(user, 'vpn-shoot')) return 'kube-system';
  if (enabled(user, 'vpn-seed-server')) return subchartValues('vpn-seed-server', user).global.shoot.namespace as string;
  return 'rvpn-system';
}

const image = (v: Values, i: Values): string => imageRef({ registry: v.global.imageRegistry || i.registry, repository: i.repository, tag: i.tag || undefined, digest: i.digest || undefined } as ImageSpec);
const pullSecrets = (v: Values) => [...(v.global.imagePullSecrets ?? []), ...(v.imagePullSecrets ?? [])];

/** The workload overrides as the user gave them (not values.yaml's defaults: those must equal the render defaults). */
function overrides(v: Values, o: Values, security?: Values): PodOverrides {
  return {
    imagePullPolicy: o.image?.pullPolicy, imagePullSecrets: pullSecrets(v), resources: o.resources, nodeSelector: o.nodeSelector, tolerations: o.tolerations, affinity: o.affinity,
    podSecurityContext: (security ?? o).podSecurityContext, containerSecurityContext: (security ?? o).containerSecurityContext, priorityClassName: o.priorityClassName, podAnnotations: o.podAnnotations,
  };
}

function specOf(v: Values, ns: string, side: 'seed' | 'shoot'): VpnSpec {
  const s = v.global.shoot;
  return {
    shoot: { name: s.name, project: s.project }, namespace: s.namespace || ns, networks: s.networks,
    highAvailability: { failureTolerance: s.failureTolerance }, annotations: {}, endpoint: s.endpoint, ...(s.classicEndpoint ? { classicEndpoint: s.classicEndpoint } : {}),
    images: {
      // the seed chart names the shoot's image only in the setup job's spec file (the job does not run it); the shoot chart the other two
      vpnSeedServer: side === 'seed' ? image(v, v.image) : '',
      vpnShoot: side === 'shoot' ? image(v, v.image) : image(v, { registry: v.image.registry, repository: 'reversed-vpn/vpn-shoot' }),
      pathController: side === 'seed' ? image(v, v.pathController.image) : '',
    },
  } as VpnSpec;
}

/** What libs/k8s-render renders for the scenario. */
function expected(user: Values, ns: string): K8sObject[] {
  const out: K8sObject[] = [];
  const metaOf = (v: Values): ObjectMeta => ({ instance: RELEASE, managedBy: 'Helm', labels: v.global.commonLabels });
  if (enabled(user, 'crds')) {
    const crd = renderCrd();
    crd.metadata.labels = objectLabels('reversed-vpn-crds', 'crds', metaOf(subchartValues('crds', user)));
    crd.metadata.annotations = { 'helm.sh/resource-policy': 'keep' };
    out.push(crd);
  }
  if (enabled(user, 'sni-proxy')) {
    const v = subchartValues('sni-proxy', user);
    const o = user['sni-proxy'] ?? {};
    const name = v.fullnameOverride || `${RELEASE}-sni-proxy`;
    out.push(...renderSniProxy({
      namespace: ns, name, image: image(v, v.image), replicas: v.replicas, routesConfigMap: `${name}-routes`,
      operatorRoutesConfigMap: v.operatorRoutes.enabled ? v.operatorRoutes.configMap || `${RELEASE}-sni-proxy-operator-routes` : undefined,
      proxyProtocol: v.proxyProtocol, loadBalancerAnnotations: v.service.annotations, service: v.service,
      // the user's own: the values.yaml defaults must equal the render (and so the app) defaults
      proxyProtocolTrustedNetworks: o.proxyProtocolTrustedNetworks, limits: o.limits, relayMode: o.relayMode,
    }, { ...metaOf(v), pod: overrides(v, o) }));
    out.push(renderSniProxyRoutesConfigMap(v.routes.connect, ns, `${name}-routes`, { sni: v.routes.sni }, metaOf(v)));
  }
  if (enabled(user, 'operator')) {
    const v = subchartValues('operator', user);
    out.push(...renderOperator({
      namespace: ns, name: v.fullnameOverride || `${RELEASE}-operator`, image: image(v, v.image), featureGates: `ReversedVPN=${v.featureGates.ReversedVPN}`,
      monitoring: v.monitoring, sniProxyNamespace: v.sniProxy.namespace || ns, sniProxyRoutesConfigMap: v.sniProxy.routesConfigMap || `${RELEASE}-sni-proxy-operator-routes`,
      kubeApiserverDeployment: v.kubeApiserverDeployment, replicas: v.replicas,
    }, { ...metaOf(v), pod: overrides(v, user.operator ?? {}) }));
  }
  if (enabled(user, 'vpn-seed-server')) {
    const v = subchartValues('vpn-seed-server', user);
    const o = user['vpn-seed-server'] ?? {};
    const spec = specOf(v, ns, 'seed');
    const mode = { ...v.global.mode, reason: 'chart' };
    const settings = { featureGates: { ReversedVPN: true }, sniProxy: v.sniProxy, metricsFrom: o.metrics?.from };
    out.push(...renderSeed(spec, mode, settings, { ...metaOf(v), pod: overrides(v, o, mode.ha ? (o.ha ?? {}) : o) }));
    const scheduling: PodOverrides = { imagePullSecrets: pullSecrets(v), nodeSelector: o.nodeSelector, tolerations: o.tolerations, affinity: o.affinity };
    if (v.setup.enabled) {
      out.push(...renderShootSetup(spec, mode, {
        image: image(v, v.setup.image), kubeApiserverDeployment: v.setup.kubeApiserverDeployment, shootKubeconfigSecret: v.setup.shootKubeconfigSecret || undefined, schedule: v.setup.schedule,
      }, { ...metaOf(v), pod: { ...scheduling, imagePullPolicy: o.setup?.image?.pullPolicy, resources: o.setup?.resources } }));
    }
    out.push(...renderConnectProbe(spec, mode, { image: spec.images.vpnSeedServer, target: v.test.target || undefined }, { ...metaOf(v), pod: { ...scheduling, imagePullPolicy: o.image?.pullPolicy } }));
    if (v.monitoring.enabled) out.push(...renderMonitoring(spec, mode, { certificateWarningDays: v.monitoring.certificateWarningDays, labels: v.monitoring.labels }, metaOf(v)));
  }
  if (enabled(user, 'vpn-shoot')) {
    const v = subchartValues('vpn-shoot', user);
    out.push(...renderShoot(specOf(v, ns, 'shoot'), { ...v.global.mode, reason: 'chart' }, { ...metaOf(v), namespace: ns, pod: overrides(v, user['vpn-shoot'] ?? {}) }));
  }
  return out;
}

const key = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** Checks and removes helm.sh/chart (the one label only Helm sets) from every label map of the object. */
function takeHelmChartLabel(o: K8sObject, chartName: string): void {
  expect(o.metadata.labels?.['helm.sh/chart'], `${key(o)}: helm.sh/chart`).toBe(chartName);
  const walk = (x: unknown): void => {
    if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === 'object') {
      for (const [k, v] of Object.entries(x)) {
        if (k === 'labels' && v && typeof v === 'object' && 'helm.sh/chart' in v) {
          expect((v as Record<string, string>)['helm.sh/chart']).toBe(chartName);
          delete (v as Record<string, string>)['helm.sh/chart'];
        } else walk(v);
      }
    }
  };
  walk(o);
}

async function validate(obj: K8sObject): Promise<void> {
  // ServiceMonitor/PrometheusRule: equal to k8s-render's, whose own test validates them with the prometheus-operator models
  if (obj.apiVersion.startsWith('monitoring.coreos.com/')) return;
  const path = obj.apiVersion.includes('/') ? obj.apiVersion : 'v1';
  const mod = (await import(`kubernetes-models/${path}`)) as Record<string, new (o: unknown) => { validate(): void }>;
  new mod[obj.kind]!(obj).validate();
}

async function template(valuesFile: string, ns: string, extra: string[] = []) {
  const helm = await ensureHelm();
  return run([helm, 'template', RELEASE, chart, '-n', ns, '-f', valuesFile, ...extra], { allowFail: true });
}

const scenarios = readdirSync(join(chart, 'ci')).filter((f) => f.endsWith('.yaml')).sort();

describe('charts/reversed-vpn against libs/k8s-render', () => {
  it('has a scenario for each case (reversed, HA, classic, seed entry, operator, shoot side, shoot HA, overrides, monitoring, overlapping networks)', () => {
    for (const s of ['seed-server', 'seed-server-ha', 'classic-seed', 'classic-shoot', 'seed-entry', 'seed-operator', 'shoot', 'shoot-ha', 'overrides-seed', 'overrides-seed-server', 'overrides-shoot', 'monitoring', 'overlap-seed-server', 'overlap-shoot']) {
      expect(scenarios).toContain(`${s}-values.yaml`);
    }
  });

  for (const file of scenarios) {
    it(`${file}: helm lint passes; every object of helm template equals k8s-render's and validates`, async () => {
      const helm = await ensureHelm();
      const valuesFile = join(chart, 'ci', file);
      const user = parse(readFileSync(valuesFile, 'utf8')) as Values;
      const ns = namespaceOf(user);
      const lint = await run([helm, 'lint', chart, '--namespace', ns, '-f', valuesFile], { allowFail: true });
      expect(lint.code, lint.stdout + lint.stderr).toBe(0);
      const t = await template(valuesFile, ns);
      expect(t.code, t.stderr).toBe(0);
      // each document's `# Source: reversed-vpn/charts/<subchart>/…` names the chart whose helm.sh/chart label it must carry
      const docs = t.stdout.split(/^---$/m).map((d) => ({ source: /^# Source: reversed-vpn\/charts\/([a-z-]+)\//m.exec(d)?.[1], obj: parse(d) as K8sObject | null })).filter((d) => d.obj !== null);
      const got = docs.map((d) => d.obj!);
      expect(got.length).toBeGreaterThan(0);
      for (const d of docs) {
        expect(d.source, `${key(d.obj!)}: rendered by a subchart`).toBeDefined();
        takeHelmChartLabel(d.obj!, `${d.source}-${chartVersion(d.source as (typeof SUBCHARTS)[number])}`);
      }
      const want = expected(user, ns);
      expect(new Set(got.map(key))).toEqual(new Set(want.map(key)));
      const wantByKey = new Map(want.map((o) => [key(o), JSON.parse(JSON.stringify(o)) as K8sObject]));
      for (const o of got) expect(o, key(o)).toEqual(wantByKey.get(key(o)));
      for (const o of got) await validate(o);
    }, 60_000);
  }
});

describe('values', () => {
  it('every value of every chart is documented in values.yaml (the README tables come from those comments)', () => {
    for (const c of CHARTS) expect(valuesTable(readFileSync(join(REPO_ROOT, chartDir(c), 'values.yaml'), 'utf8')).undocumented, c).toEqual([]);
  });

  it('the default images are the ones `pnpm images` builds and the test clusters import: localhost/reversed-vpn/<app>:<version>', () => {
    const version = (app: string) => (JSON.parse(readFileSync(join(REPO_ROOT, 'apps', app, 'package.json'), 'utf8')) as { version: string }).version;
    const v = (c: ChartName) => mergeValues(defaults[c], {}) as Values;
    const ref = (c: ChartName, i: Values) => image({ global: v(c).global }, i);
    expect(ref('sni-proxy', v('sni-proxy').image)).toBe(`localhost/reversed-vpn/sni-proxy:${version('sni-proxy')}`);
    expect(ref('operator', v('operator').image)).toBe(`localhost/reversed-vpn/operator:${version('operator')}`);
    expect(ref('vpn-seed-server', v('vpn-seed-server').image)).toBe(`localhost/reversed-vpn/vpn-seed-server:${version('vpn-seed-server')}`);
    expect(ref('vpn-seed-server', v('vpn-seed-server').pathController.image)).toBe(`localhost/reversed-vpn/path-controller:${version('path-controller')}`);
    expect(ref('vpn-seed-server', v('vpn-seed-server').setup.image)).toBe(`localhost/reversed-vpn/operator:${version('operator')}`);
    expect(ref('vpn-shoot', v('vpn-shoot').image)).toBe(`localhost/reversed-vpn/vpn-shoot:${version('vpn-shoot')}`);
  });

  // values the apps would refuse at run time must not get past the schema
  const refused: Array<[string, string, string[], RegExp]> = [
    ['seedPods "" with IPv4 (vpn-shoot needs it)', 'shoot-values.yaml', ['--set', 'global.shoot.networks.seedPods='], /seedPods/],
    ['seedPods "" with IPv4 (seed side)', 'seed-server-values.yaml', ['--set', 'global.shoot.networks.seedPods='], /seedPods/],
    ['a seed pod network with host bits out of range', 'seed-server-values.yaml', ['--set', 'global.shoot.networks.seedPods=10.1.0.0/33'], /seedPods/],
    ['an IPv6 service network with only IPv4 carried', 'seed-server-values.yaml', ['--set-json', 'global.shoot.networks.services=["fd00:10:96::/112"]'], /services/],
    ['no service network', 'seed-server-values.yaml', ['--set-json', 'global.shoot.networks.services=[]'], /services/],
    ['an IPv4 transfer network', 'seed-server-values.yaml', ['--set', 'global.shoot.networks.vpn=10.9.0.0/16'], /vpn/],
    ['HA without the reversed direction', 'seed-server-values.yaml', ['--set', 'global.mode.ha=true', '--set', 'global.mode.reversed=false', '--set', 'global.shoot.classicEndpoint=1.2.3.4:4314'], /reversed/],
    ['classic without the shoot LoadBalancer address', 'classic-seed-values.yaml', ['--set', 'global.shoot.classicEndpoint='], /classicEndpoint/],
    ['reversed without the entry point (shoot side)', 'shoot-values.yaml', ['--set', 'global.shoot.endpoint='], /endpoint/],
    ['the shoot side without the control-plane namespace', 'shoot-values.yaml', ['--set', 'global.shoot.namespace='], /namespace/],
    ['a shoot without a name', 'seed-server-values.yaml', ['--set', 'global.shoot.name='], /name/],
    ['an unknown value', 'seed-server-values.yaml', ['--set', 'vpn-seed-server.replicas=3'], /replicas/],
    ['a common label over a standard one', 'seed-entry-values.yaml', ['--set', 'global.commonLabels.app\\.kubernetes\\.io/name=x'], /propertyName 'app\.kubernetes\.io\/name'/],
    ['a failure tolerance that does not exist', 'seed-server-values.yaml', ['--set', 'global.shoot.failureTolerance=region'], /failureTolerance/],
    ['a malformed digest', 'seed-entry-values.yaml', ['--set', 'sni-proxy.image.digest=latest'], /digest/],
    ['a zero connection cap', 'seed-entry-values.yaml', ['--set', 'sni-proxy.limits.maxConnectionsPerSource=0'], /maxConnectionsPerSource/],
    ['a duration the app cannot read', 'seed-entry-values.yaml', ['--set', 'sni-proxy.limits.headerTimeout=soon'], /headerTimeout/],
    ['a trusted PROXY network that is no CIDR', 'seed-entry-values.yaml', ['--set-json', 'sni-proxy.proxyProtocolTrustedNetworks=["lb.example"]'], /proxyProtocolTrustedNetworks/],
    ['a seed server in another namespace than the release', 'seed-server-values.yaml', ['--set', 'global.shoot.namespace=other'], /release namespace/],
    // issue 12: the seed's networks and the mapping settings
    ['a seed node network that is no CIDR', 'overlap-shoot-values.yaml', ['--set-json', 'global.shoot.networks.seedNodes=["10.250.0.0"]'], /seedNodes/],
    ['a seed service network with its prefix out of range', 'overlap-seed-server-values.yaml', ['--set-json', 'global.shoot.networks.seedServices=["100.64.0.0/40"]'], /seedServices/],
    ['a mapping mode that does not exist', 'overlap-seed-server-values.yaml', ['--set', 'global.shoot.networks.mapping.mode=sometimes'], /mode/],
    ['an IPv4 prefix as a mapped IPv6 prefix', 'overlap-shoot-values.yaml', ['--set', 'global.shoot.networks.mapping.ipv6.shootNodes=242.0.0.0/8'], /shootNodes/],
    ['a shoot network in the mapped region 240.0.0.0/4', 'shoot-values.yaml', ['--set-json', 'global.shoot.networks.pods=["244.0.0.0/11"]'], /pods/],
    ['an unknown mapping setting', 'overlap-seed-server-values.yaml', ['--set', 'global.shoot.networks.mapping.ipv4=x'], /ipv4/],
  ];
  for (const [what, file, args, message] of refused) {
    it(`refuses ${what}`, async () => {
      const ns = file.startsWith('shoot') || file.startsWith('classic-shoot') ? 'kube-system' : file.startsWith('seed-entry') ? 'rvpn-system' : 'shoot--dev--demo';
      const r = await template(join(chart, 'ci', file), ns, args);
      expect(r.code, r.stdout.slice(0, 200)).not.toBe(0);
      expect(r.stderr).toMatch(message);
    }, 30_000);
  }

  it('NOTES tell each component\'s next step (umbrella: the enabled subcharts\' notes)', async () => {
    const helm = await ensureHelm();
    const notes = async (file: string, ns: string) => {
      const r = await run([helm, 'install', '--dry-run=client', RELEASE, chart, '-n', ns, '-f', join(chart, 'ci', file)]);
      return r.stdout.slice(r.stdout.indexOf('NOTES:'));
    };
    const seed = await notes('seed-operator-values.yaml', 'rvpn-system');
    expect(seed).toMatch(/get service rvpn-sni-proxy[\s\S]*loadBalancer\.ingress/);
    expect(seed).toMatch(/global\.shoot\.endpoint/);
    expect(seed).toMatch(/ConfigMap rvpn-system\/rvpn-sni-proxy-operator-routes/);
    const server = await notes('seed-server-values.yaml', 'shoot--dev--demo');
    expect(server).toMatch(/Wired by the same job: Deployment kube-apiserver/);
    expect(server).toMatch(/get secret vpn-shoot-certificates -o jsonpath='\{\.data\.objects\\\.json\}'/);
    expect(server).toMatch(/"outbound\|1194\|\|vpn-seed-server\.shoot--dev--demo\.svc\.cluster\.local": "vpn-seed-server\.shoot--dev--demo\.svc\.cluster\.local:1194"/);
    expect(server).toMatch(/helm test rvpn -n shoot--dev--demo/);
    const manual = await notes('overrides-seed-server-values.yaml', 'shoot--dev--demo');
    expect(manual).toMatch(/Not wired by this chart[\s\S]*--egress-selector-config-file=\/etc\/reversed-vpn\/egress-selector\/egress-selector-configuration\.yaml/);
    const shoot = await notes('shoot-values.yaml', 'kube-system');
    expect(shoot).toMatch(/dials api\.demo\.dev\.internal\.example:8443/);
    expect(shoot).toMatch(/logs deployment\/vpn-shoot/);
    expect(shoot).not.toMatch(/Network mapping is forced/);
    for (const [file, ns] of [['overlap-seed-server-values.yaml', 'shoot--dev--demo'], ['overlap-shoot-values.yaml', 'kube-system']] as const) {
      const forced = await notes(file, ns);
      expect(forced, file).toMatch(/Network mapping is forced[\s\S]*241\.0\.0\.0\/8[\s\S]*244\.0\.0\.0\/8 \(IPv6: fd6d:6170:100::\/40, fd6d:6170:200::\/40, fd6d:6170:300::\/40, fd6d:6170:4400::\/40\)/);
      expect(forced, file).not.toMatch(/WARNING: the classic direction/);
    }
  }, 60_000);

  it('overlapping networks: both sides get the same mapping env, and it is a mapping the apps accept', async () => {
    type Container = { name: string; env?: Array<{ name: string; value?: string }> };
    const envOf = async (file: string, ns: string, container: string) => {
      const t = await template(join(chart, 'ci', file), ns);
      expect(t.code, t.stderr).toBe(0);
      const workload = t.stdout.split(/^---$/m).map((d) => parse(d) as (K8sObject & { spec?: { template?: { spec?: { containers?: Container[] } } } }) | null)
        .find((o) => o?.kind === 'Deployment' && o.metadata.name === container)!;
      const c = workload.spec!.template!.spec!.containers!.find((x) => x.name === container)!;
      return Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined && !['POD_NAME'].includes(e.name) && /NETWORK|MAPPING|IP_FAMILIES|NAMESPACE/.test(e.name)).map((e) => [e.name, e.value!]));
    };
    const seed = await envOf('overlap-seed-server-values.yaml', 'shoot--dev--demo', 'vpn-seed-server');
    const shoot = await envOf('overlap-shoot-values.yaml', 'kube-system', 'vpn-shoot');
    expect(seed).toMatchObject({ SEED_NODE_NETWORKS: '10.250.0.0/16', SEED_SERVICE_NETWORKS: '100.64.0.0/13', NETWORK_MAPPING: 'always', MAPPED_SHOOT_POD_NETWORK_V6: 'fd6d:6170:4400::/40' });
    expect(seed).not.toHaveProperty('MAPPED_SEED_POD_NETWORK_V6'); // empty in values: the app's default
    expect(shoot).toEqual(seed);
    const { mapping, errors } = planNetworkMappingFromEnv(shoot);
    expect(errors.map((e) => e.message)).toEqual([]);
    expect(mapping!.toJSON().families.map((f) => [f.family, f.active, f.reason])).toEqual([[4, true, 'always'], [6, true, 'always']]);
    expect(mapping!.toJSON().families[1]!.networks).toContain('shootPods fd00:10:244::/56 -> fd6d:6170:4400::/56');
  }, 60_000);
});
