/**
 * The operator against the HTTP fake of the Kubernetes API (src/testing/fake-api.ts; see there what it
 * does and does not implement): reconcile creates, converges, switches modes and prunes, reports bad
 * specs as terminal conditions, cleans up after deletion; the loop follows watches and 410s.
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOperatorConfig } from '@rvpn/config';
import type { VpnSpec } from '@rvpn/k8s-render';
import { KubeClient, resourcePath } from './kube.js';
import { Operator } from './operator.js';
import { OWNER_LABEL, reconcile, type OperatorSettings } from './reconcile.js';
import { FakeKubeApi } from './testing/fake-api.js';

const NS = 'shoot--dev--demo';
const spec: VpnSpec = {
  shoot: { name: 'demo', project: 'dev' },
  namespace: NS,
  networks: { services: ['100.64.0.0/13'], pods: ['100.96.0.0/11'], nodes: ['10.250.0.0/16'], seedPods: '10.1.0.0/16', ipFamilies: ['IPv4'] },
  highAvailability: { failureTolerance: 'none' },
  annotations: {},
  endpoint: 'api.demo.dev.internal.example',
  images: { vpnSeedServer: 'r/vpn-seed-server:0.1.0', vpnShoot: 'r/vpn-shoot:0.1.0', pathController: 'r/path-controller:0.1.0' },
};
const settings: OperatorSettings = { fieldManager: 'reversed-vpn-operator', featureGates: { ReversedVPN: true }, sniProxy: { namespace: 'rvpn-system', routesConfigMap: 'sni-proxy-routes' }, monitoring: false, certValidityDays: 90, caValidityDays: 3650 };
const cr = (s: VpnSpec) => ({ apiVersion: 'vpn.reversed-vpn.dev/v1alpha1', kind: 'ShootVpn', metadata: { name: 'demo', namespace: NS }, spec: s });

describe('operator reconcile against the fake API', () => {
  let api: FakeKubeApi;
  let client: KubeClient;
  beforeEach(async () => {
    api = new FakeKubeApi();
    client = new KubeClient({ server: await api.start() });
  });
  afterEach(async () => {
    await api.stop();
  });
  const names = (kind: string) => api.objects(kind).filter((o) => o.metadata.namespace === NS).map((o) => o.metadata.name).sort();
  const status = () => api.objects('ShootVpn')[0]!.status as { observedGeneration: number; conditions: Array<{ type: string; status: string; reason: string }>; ha: boolean };
  const routes = () => JSON.parse((api.objects('ConfigMap').find((c) => c.metadata.name === 'sni-proxy-routes')!.data as Record<string, string>)['routes.json']!) as { connect: Record<string, string> };

  it('creates the seed side with owner labels and references, the shoot bundle, certificates, routes and status', async () => {
    await client.apply(cr(spec), 'test');
    const r = await reconcile(client, { namespace: NS, name: 'demo' }, settings);
    expect(r).toMatchObject({ result: 'applied', certificatesIssued: true });
    expect(names('Deployment')).toEqual(['vpn-seed-server']);
    expect(names('Secret')).toEqual(['ca-vpn', 'kube-apiserver-http-proxy-client', 'vpn-certificates', 'vpn-seed-server-tls', 'vpn-shoot-resources']);
    for (const o of api.objects().filter((x) => x.metadata.namespace === NS && x.kind !== 'ShootVpn')) {
      expect(o.metadata.labels?.[OWNER_LABEL], `${o.kind}/${o.metadata.name}`).toBe('demo');
      expect((o.metadata.managedFields as Array<{ manager: string }>)[0]!.manager).toBe('reversed-vpn-operator');
    }
    expect(Object.keys(routes().connect)).toEqual([`outbound|1194||vpn-seed-server.${NS}.svc.cluster.local`]);
    const st = status();
    expect(st.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Applied' });
    expect(st.conditions.find((c) => c.type === 'CertificatesValid')).toMatchObject({ status: 'True', reason: 'Issued' });
    expect(st.conditions.find((c) => c.type === 'TunnelConnected')).toMatchObject({ status: 'Unknown' });
    const bundle = JSON.parse(Buffer.from((api.objects('Secret').find((s) => s.metadata.name === 'vpn-shoot-resources')!.data as Record<string, string>)['objects.json']!, 'base64').toString()) as { items: Array<{ kind: string; metadata: { name: string } }> };
    expect(bundle.items.map((i) => `${i.kind}/${i.metadata.name}`)).toEqual(expect.arrayContaining(['Deployment/vpn-shoot', 'Secret/vpn-shoot-client']));
  });

  it('converges: a second reconcile changes nothing and issues no certificate', async () => {
    await client.apply(cr(spec), 'test');
    await reconcile(client, { namespace: NS, name: 'demo' }, settings);
    const before = new Map(api.objects().filter((o) => o.kind !== 'ShootVpn').map((o) => [`${o.kind}/${o.metadata.name}`, o.metadata.resourceVersion]));
    const r = await reconcile(client, { namespace: NS, name: 'demo' }, settings);
    expect(r).toMatchObject({ result: 'applied', certificatesIssued: false, pruned: 0 });
    for (const o of api.objects().filter((x) => x.kind !== 'ShootVpn')) expect(o.metadata.resourceVersion, `${o.kind}/${o.metadata.name}`).toBe(before.get(`${o.kind}/${o.metadata.name}`));
  });

  it('switches to HA when the failure tolerance changes, pruning what it no longer renders', async () => {
    await client.apply(cr(spec), 'test');
    await reconcile(client, { namespace: NS, name: 'demo' }, settings);
    await client.apply(cr({ ...spec, highAvailability: { failureTolerance: 'zone' } }), 'test');
    const r = await reconcile(client, { namespace: NS, name: 'demo' }, settings);
    expect(r).toMatchObject({ result: 'applied', certificatesIssued: true });
    expect(names('Deployment')).toEqual([]);
    expect(names('StatefulSet')).toEqual(['vpn-seed-server']);
    expect(names('Service')).toEqual(['vpn-seed-server', 'vpn-seed-server-0', 'vpn-seed-server-1']);
    expect(names('Secret')).toEqual(expect.arrayContaining(['vpn-seed-client', 'kube-apiserver-http-proxy']));
    expect(Object.keys(routes().connect).sort()).toEqual([0, 1].map((i) => `outbound|1194||vpn-seed-server-${i}.${NS}.svc.cluster.local`));
    expect(status()).toMatchObject({ ha: true, observedGeneration: 2 });
  });

  it('reports a spec it cannot render as a terminal condition and touches nothing', async () => {
    await client.apply(cr({ ...spec, annotations: { 'alpha.featuregates.shoot.gardener.cloud/reversed-vpn': 'maybe' } }), 'test');
    const r = await reconcile(client, { namespace: NS, name: 'demo' }, settings);
    expect(r.result).toBe('invalid');
    expect(status().conditions[0]).toMatchObject({ type: 'Ready', status: 'False', reason: 'SpecInvalid' });
    expect(names('Deployment')).toEqual([]);
  });

  it('prunes everything it owns when the ShootVpn is gone, and drops its route', async () => {
    await client.apply(cr(spec), 'test');
    await reconcile(client, { namespace: NS, name: 'demo' }, settings);
    await client.delete(resourcePath('vpn.reversed-vpn.dev/v1alpha1', 'ShootVpn', NS, 'demo'));
    const r = await reconcile(client, { namespace: NS, name: 'demo' }, settings);
    expect(r.result).toBe('deleted');
    expect(api.objects().filter((o) => o.metadata.namespace === NS)).toEqual([]);
    expect(routes().connect).toEqual({});
  });

  it('renews leaf certificates at 80 % and rotates the CA with an overlap in every bundle (fake clock)', async () => {
    let t = Date.now();
    const s = { ...settings, certValidityDays: 10, caValidityDays: 100, caRotationGraceMs: 2 * 86_400_000, now: () => new Date(t) };
    const day = 86_400_000;
    const secret = (name: string) => api.objects('Secret').find((x) => x.metadata.name === name)!;
    const caOf = (name: string) => (secret(name).stringData as Record<string, string>)['ca.crt']!;
    const certs = (pem: string) => pem.match(/BEGIN CERTIFICATE/g)?.length ?? 0;
    await client.apply(cr(spec), 'test');
    expect(await reconcile(client, { namespace: NS, name: 'demo' }, s)).toMatchObject({ certificatesIssued: true });
    const firstLeaf = (secret('vpn-seed-server-tls').stringData as Record<string, string>)['tls.crt'];
    t += 5 * day; // 50 % of a leaf: nothing to do
    expect(await reconcile(client, { namespace: NS, name: 'demo' }, s)).toMatchObject({ certificatesIssued: false });
    t += 3.5 * day; // 85 %: renewed from the same CA
    expect(await reconcile(client, { namespace: NS, name: 'demo' }, s)).toMatchObject({ certificatesIssued: true });
    expect((secret('vpn-seed-server-tls').stringData as Record<string, string>)['tls.crt']).not.toBe(firstLeaf);
    expect(certs(caOf('vpn-seed-server-tls'))).toBe(1);
    t += 80 * day; // past 80 % of the CA: a new CA, and both CAs in every bundle
    expect(await reconcile(client, { namespace: NS, name: 'demo' }, s)).toMatchObject({ certificatesIssued: true });
    expect(certs(caOf('vpn-seed-server-tls'))).toBe(2);
    expect(certs(caOf('kube-apiserver-http-proxy-client'))).toBe(2);
    t += 3 * day; // after the grace period the old CA leaves the bundles (the leaves are 3 days old: kept)
    expect(await reconcile(client, { namespace: NS, name: 'demo' }, s)).toMatchObject({ certificatesIssued: false });
    expect(certs(caOf('vpn-seed-server-tls'))).toBe(1);
  });

  it('the fake answers a stale update with 409 and an expired watch with 410', async () => {
    await client.apply(cr(spec), 'test');
    const path = resourcePath('vpn.reversed-vpn.dev/v1alpha1', 'ShootVpn', NS, 'demo');
    const res = await fetch(new URL(path, (client as unknown as { opts: { server: string } }).opts.server), { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...cr(spec), metadata: { ...cr(spec).metadata, resourceVersion: '1' } }) });
    expect(res.status).toBe(409);
    api.compact();
    const events: string[] = [];
    await client.watch(resourcePath('vpn.reversed-vpn.dev/v1alpha1', 'ShootVpn'), '1', (e) => events.push(`${e.type}:${(e.object as { code?: number }).code}`), new AbortController().signal);
    expect(events).toEqual(['ERROR:410']);
  });
});

describe('operator loop', () => {
  it('follows the watch: a new ShootVpn is reconciled, a deleted one pruned; a 410 leads to a fresh list', async () => {
    const api = new FakeKubeApi();
    const server = await api.start();
    const cfg = loadOperatorConfig({ KUBE_API_SERVER: server, STATUS_LISTEN: '127.0.0.1:0', RESYNC: '60s' });
    const op = new Operator(cfg, { logger: pino({ level: 'silent' }), registry: new Registry() });
    const client = new KubeClient({ server });
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
      expect(cond()).toBe(true);
    };
    try {
      await op.start();
      await until(() => api.objects('ConfigMap').some((c) => c.metadata.name === 'sni-proxy-routes')); // published before any ShootVpn
      await client.apply(cr(spec), 'test');
      await until(() => api.objects('Deployment').length === 1 && !!api.objects('ShootVpn')[0]?.status);
      const ready = await fetch(`http://127.0.0.1:${op.bound.status}/readyz`);
      expect(ready.status).toBe(200);
      await client.delete(resourcePath('vpn.reversed-vpn.dev/v1alpha1', 'ShootVpn', NS, 'demo'));
      await until(() => api.objects('Deployment').length === 0);
    } finally {
      await op.stop();
      await api.stop();
    }
  });
});
