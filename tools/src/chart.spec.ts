/**
 * The umbrella chart: `helm lint` and `helm template` for every scenario in charts/reversed-vpn/ci; each
 * rendered object must validate against the Kubernetes schemas and equal what libs/k8s-render produces
 * for the same input (the chart is generated from it: one source of truth).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderOperator, renderSeed, renderShoot, renderSniProxy, renderSniProxyRoutesConfigMap, type K8sObject, type VpnSpec } from '@rvpn/k8s-render';
import { CHART_DIR } from './chart.js';
import { ensureHelm } from './helm.js';
import { REPO_ROOT } from './lab/stack.js';
import { run } from './lab/sh.js';

type Values = {
  images: Record<'operator' | 'sniProxy' | 'vpnSeedServer' | 'vpnShoot' | 'pathController', string>;
  operator: { enabled: boolean; featureGates: string; monitoring: boolean; sniProxyNamespace: string };
  reversed: boolean;
  ha: boolean;
  shoot: { name: string; project: string; namespace: string; endpoint: string; classicEndpoint: string; failureTolerance: 'none' | 'node' | 'zone'; networks: VpnSpec['networks'] & { vpn: string } };
  sniProxy: { enabled: boolean; replicas: number; proxyProtocol: 'off' | 'optional' | 'required'; routesConfigMap: string; routes: Record<string, string>; loadBalancerAnnotations: Record<string, string> };
  seedServer: { enabled: boolean; sniProxyNamespace: string };
  shootSide: { enabled: boolean };
};

const chart = join(REPO_ROOT, CHART_DIR);
const defaults = JSON.parse(JSON.stringify(parseDefaults())) as Values;

/** values.yaml is plain YAML; the defaults are restated here from the schema-checked ci files' base. */
function parseDefaults(): Values {
  return {
    operator: { enabled: false, featureGates: 'ReversedVPN=true', monitoring: false, sniProxyNamespace: 'rvpn-system' },
    images: { operator: 'reversed-vpn/operator:0.1.0', sniProxy: 'reversed-vpn/sni-proxy:0.1.0', vpnSeedServer: 'reversed-vpn/vpn-seed-server:0.1.0', vpnShoot: 'reversed-vpn/vpn-shoot:0.1.0', pathController: 'reversed-vpn/path-controller:0.1.0' },
    reversed: true,
    ha: false,
    shoot: { name: '', project: '', namespace: '', endpoint: '', classicEndpoint: 'unset:4314', failureTolerance: 'none', networks: { services: ['100.64.0.0/13'], pods: ['100.96.0.0/11'], nodes: [], seedPods: '', ipFamilies: ['IPv4'], vpn: 'fd8f:6d53:b97a:1::/96' } },
    sniProxy: { enabled: false, replicas: 2, proxyProtocol: 'off', routesConfigMap: 'sni-proxy-routes', routes: {}, loadBalancerAnnotations: {} },
    seedServer: { enabled: false, sniProxyNamespace: 'rvpn-system' },
    shootSide: { enabled: false },
  };
}

function merge<T>(a: T, b: unknown): T {
  if (typeof b !== 'object' || b === null || Array.isArray(b)) return b as T;
  const out = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b)) out[k] = k in out ? merge(out[k], v) : v;
  return out as T;
}

/** What k8s-render produces for the same input. */
function expected(v: Values, releaseNamespace: string): K8sObject[] {
  const spec: VpnSpec = {
    shoot: { name: v.shoot.name, project: v.shoot.project }, namespace: v.shoot.namespace,
    networks: { ...v.shoot.networks }, highAvailability: { failureTolerance: v.shoot.failureTolerance }, annotations: {},
    endpoint: v.shoot.endpoint, classicEndpoint: v.shoot.classicEndpoint,
    images: { vpnSeedServer: v.images.vpnSeedServer, vpnShoot: v.images.vpnShoot, pathController: v.images.pathController },
  };
  const mode = { reversed: v.reversed, ha: v.ha, reason: '' };
  const out: K8sObject[] = [];
  if (v.operator.enabled) out.push(...renderOperator({ namespace: releaseNamespace, image: v.images.operator, featureGates: v.operator.featureGates, monitoring: v.operator.monitoring, sniProxyNamespace: v.operator.sniProxyNamespace }));
  if (v.sniProxy.enabled) {
    out.push(...renderSniProxy({ namespace: releaseNamespace, image: v.images.sniProxy, replicas: v.sniProxy.replicas, routesConfigMap: v.sniProxy.routesConfigMap, proxyProtocol: v.sniProxy.proxyProtocol, loadBalancerAnnotations: v.sniProxy.loadBalancerAnnotations }));
    // with the operator enabled, the operator owns the route ConfigMap
    if (!v.operator.enabled) out.push(renderSniProxyRoutesConfigMap(v.sniProxy.routes, releaseNamespace, v.sniProxy.routesConfigMap));
  }
  const settings = { featureGates: { ReversedVPN: true }, sniProxy: { namespace: v.seedServer.sniProxyNamespace, podLabels: { 'app.kubernetes.io/name': 'sni-proxy' } } };
  if (v.seedServer.enabled) out.push(...renderSeed(spec, mode, settings));
  if (v.shootSide.enabled) out.push(...renderShoot(spec, mode));
  return out;
}

const key = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

async function validate(obj: K8sObject): Promise<void> {
  const path = obj.apiVersion.includes('/') ? obj.apiVersion : 'v1';
  const mod = (await import(`kubernetes-models/${path}`)) as Record<string, new (o: unknown) => { validate(): void }>;
  new mod[obj.kind]!(obj).validate();
}

describe('umbrella chart', () => {
  const scenarios = readdirSync(join(chart, 'ci')).filter((f) => f.endsWith('.yaml')).sort();
  it('has scenarios', () => expect(scenarios.length).toBeGreaterThanOrEqual(6));

  for (const file of scenarios) {
    it(`${file}: helm lint passes; helm template equals k8s-render and validates`, async () => {
      const helm = await ensureHelm();
      const valuesFile = join(chart, 'ci', file);
      const lint = await run([helm, 'lint', chart, '-f', valuesFile], { allowFail: true });
      expect(lint.code, lint.stdout + lint.stderr).toBe(0);
      const t = await run([helm, 'template', 'rvpn', chart, '-n', 'rvpn-system', '-f', valuesFile]);
      const got = t.stdout.split(/^---\s*$/m)
        .map((d) => d.split('\n').filter((l) => !l.startsWith('#')).join('\n').trim())
        .filter(Boolean)
        .map((d) => JSON.parse(d) as K8sObject);
      const want = expected(merge(defaults, JSON.parse(readFileSync(valuesFile, 'utf8'))), 'rvpn-system');
      expect(got.length).toBeGreaterThan(0);
      // the sni-proxy route file is rendered by Helm's toPrettyJson: compare its parsed content
      const norm = (o: K8sObject) => (o.kind === 'ConfigMap' && (o.data as Record<string, string> | undefined)?.['routes.json'] ? { ...o, data: { 'routes.json': JSON.parse((o.data as Record<string, string>)['routes.json']!) } } : o);
      expect(new Map(got.map((o) => [key(o), norm(o)]))).toEqual(new Map(want.map((o) => [key(o), norm(o)])));
      for (const o of got) await validate(o);
    }, 60_000);
  }

  it('values.schema.json refuses bad values with a clear message', async () => {
    const helm = await ensureHelm();
    const r = await run([helm, 'template', 'rvpn', chart, '--set', 'shoot.failureTolerance=region'], { allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/failureTolerance/);
  });
});
