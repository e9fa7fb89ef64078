/**
 * Reconcile against a real kube-apiserver + etcd (@rvpn/envtest), as the operator's ServiceAccount with
 * the RBAC libs/k8s-render renders: it creates the seed side with server-side apply (field manager,
 * per-field ownership), converges without writing, takes back a field another manager changed but
 * leaves that manager's own fields alone, switches modes and prunes (Secrets lose removed keys), reports
 * a bad spec as a terminal condition, writes status only on change, keeps a finalizer and cleans up
 * through it, wires the kube-apiserver Deployment, rotates certificates (fake clock).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Envtest } from '@rvpn/envtest';
import { CRD_KIND, type K8sObject } from '@rvpn/k8s-render';
import { HASH_ANNOTATION } from './applier.js';
import { Kube } from './kube.js';
import { API_VERSION, FINALIZER, OWNER_LABEL, Reconciler, type ShootVpnObject } from './reconcile.js';
import {
  NS, OPERATOR_NS, adminKube, apiserverDeployment, applyAdmin, listShootVpns, operatorKubeConfig, restPath, settings, shootVpn, silentLogger, spec, startSeed,
} from './testing/harness.js';

let env: Envtest;
let admin: Kube;
let op: Kube;
beforeAll(async () => {
  env = await startSeed();
  admin = adminKube(env);
  op = new Kube(await operatorKubeConfig(env));
});
afterAll(async () => {
  await env?.stop();
});

const key = { namespace: NS, name: 'demo' };
const reconciler = (s = settings) => new Reconciler(op, s, { logger: silentLogger(), listShootVpns: listShootVpns(op) });
const get = (kind: string, name: string, namespace = NS) => admin.get({ apiVersion: kind === 'Deployment' || kind === 'StatefulSet' ? 'apps/v1' : kind === 'NetworkPolicy' ? 'networking.k8s.io/v1' : kind === 'PodDisruptionBudget' ? 'policy/v1' : 'v1', kind, metadata: { namespace, name } });
const names = async (apiVersion: string, kind: string) => (await admin.list(apiVersion, kind, { namespace: NS, labelSelector: `${OWNER_LABEL}=demo` })).map((o) => o.metadata.name).sort();
const cr = async () => (await admin.get<ShootVpnObject>({ apiVersion: API_VERSION, kind: CRD_KIND, metadata: key }))!;
const condition = async (type: string) => (await cr()).status?.conditions?.find((c) => c.type === type);
const secretData = async (name: string, namespace = NS) => Object.fromEntries(Object.entries(((await get('Secret', name, namespace)) as K8sObject & { data?: Record<string, string> }).data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
const routes = async () => JSON.parse(((await get('ConfigMap', 'sni-proxy-routes', OPERATOR_NS)) as K8sObject & { data: Record<string, string> }).data['routes.json']!) as { connect: Record<string, string> };
const createCr = async (s = spec) => applyAdmin(env, [shootVpn(s) as K8sObject]);
const deleteCr = async () => {
  await env.request('DELETE', restPath(shootVpn(spec) as K8sObject));
};
/** Removes a ShootVpn for good (our finalizer included) and everything the operator left. */
const reset = async () => {
  await deleteCr();
  await reconciler().reconcile(key);
  expect(await admin.get({ apiVersion: API_VERSION, kind: CRD_KIND, metadata: key })).toBeUndefined();
};

describe('reconcile against a real API server', () => {
  it('creates the seed side by server-side apply with owner labels, references, a finalizer, certificates, routes and status', async () => {
    await applyAdmin(env, [apiserverDeployment()]);
    await createCr();
    const r = await reconciler().reconcile(key);
    expect(r).toMatchObject({ result: 'applied', certificatesIssued: true, statusWritten: true });
    expect(await names('apps/v1', 'Deployment')).toEqual(['vpn-seed-server']);
    expect(await names('v1', 'Secret')).toEqual(['ca-vpn', 'kube-apiserver-http-proxy-client', 'vpn-certificates', 'vpn-seed-server-tls', 'vpn-shoot-resources']);
    expect(await names('v1', 'Service')).toEqual(['vpn-seed-server']);
    const svpn = await cr();
    expect(svpn.metadata.finalizers).toEqual([FINALIZER]);
    for (const [apiVersion, kind] of [['apps/v1', 'Deployment'], ['v1', 'Secret'], ['v1', 'ConfigMap'], ['networking.k8s.io/v1', 'NetworkPolicy']] as const) {
      for (const o of await admin.list(apiVersion, kind, { namespace: NS, labelSelector: `${OWNER_LABEL}=demo` })) {
        expect(o.metadata.labels, `${kind}/${o.metadata.name}`).toMatchObject({ 'app.kubernetes.io/managed-by': 'reversed-vpn-operator', 'app.kubernetes.io/instance': 'demo' });
        expect(o.metadata.ownerReferences, `${kind}/${o.metadata.name}`).toEqual([expect.objectContaining({ kind: 'ShootVpn', name: 'demo', uid: svpn.metadata.uid, controller: true, blockOwnerDeletion: true })]);
        const managers = (o.metadata.managedFields ?? []).map((m) => `${m.manager}/${m.operation}`);
        expect(managers, `${kind}/${o.metadata.name}`).toEqual(['reversed-vpn-operator/Apply']);
        expect(o.metadata.annotations?.[HASH_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/);
      }
    }
    // every field arrives as rendered: client-node 1.4's models would drop a NetworkPolicy's `from` (kubernetes-client/javascript#2825)
    const np = (await get('NetworkPolicy', 'vpn-seed-server-ingress')) as K8sObject & { spec: { ingress: Array<{ from?: unknown[] }> } };
    expect(np.spec.ingress.map((r) => r.from?.length)).toEqual([1, 1, 1]);
    // Secrets are written with data (no stringData): the server stores exactly those keys
    expect(Object.keys(await secretData('vpn-seed-server-tls')).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect(Object.keys((await routes()).connect)).toEqual([`outbound|1194||vpn-seed-server.${NS}.svc.cluster.local`]);
    expect(svpn.status).toMatchObject({ observedGeneration: 1, reversed: true, ha: false });
    expect(svpn.status?.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'True', 'Applied'], ['TunnelConnected', 'Unknown', 'NoServerStatus'], ['CertificatesValid', 'True', 'Valid'], ['ApiserverWired', 'True', 'Wired'], ['NetworksValid', 'True', 'NotMapped'],
    ]);
    expect(svpn.status?.networkMapping).toEqual({ mode: 'auto', families: [{ family: 4, active: false, reason: 'none', networks: expect.arrayContaining(['shootPods 100.96.0.0/11 -> 100.96.0.0/11']) }] });
    const parked = JSON.parse((await secretData('vpn-shoot-resources'))['objects.json']!) as { items: K8sObject[] };
    expect(parked.items.map((i) => `${i.kind}/${i.metadata.name}`)).toEqual(expect.arrayContaining(['Deployment/vpn-shoot', 'Secret/vpn-shoot-client']));
  });

  it('wires the kube-apiserver Deployment (egress selector, proxy client Secret, label, checksum) with a JSON patch', async () => {
    const d = (await get('Deployment', 'kube-apiserver')) as K8sObject & { spec: { template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: { containers: Array<{ args: string[]; volumeMounts?: Array<{ name: string }> }>; volumes: Array<{ name: string }> } } } };
    const c = d.spec.template.spec.containers[0]!;
    expect(c.args).toContain('--egress-selector-config-file=/etc/reversed-vpn/egress-selector/egress-selector-configuration.yaml');
    expect(c.args).toContain('--secure-port=443'); // the Deployment's own flags stay
    expect(d.spec.template.spec.volumes.map((v) => v.name)).toEqual(['vpn-egress-selector', 'vpn-http-proxy-client']);
    expect(d.spec.template.metadata.labels).toMatchObject({ 'networking.reversed-vpn.dev/to-vpn-seed-server': 'allowed', app: 'kubernetes' });
    expect(d.spec.template.metadata.annotations?.['vpn.reversed-vpn.dev/proxy-client-checksum']).toMatch(/^[0-9a-f]{64}$/);
    // the wiring does not take the Deployment over: the admin still owns what it applied
    expect((d.metadata as unknown as { managedFields: Array<{ manager: string; operation: string }> }).managedFields.map((m) => `${m.manager}/${m.operation}`).sort()).toEqual(['reversed-vpn-operator/Update', 'test-admin/Apply']);
  });

  it('converges: a second reconcile sends no write at all (every resourceVersion stays)', async () => {
    const before = await snapshot();
    const r = await reconciler().reconcile(key);
    expect(r).toEqual({ result: 'applied', changed: [], pruned: [], certificatesIssued: false, statusWritten: false });
    expect(await snapshot()).toEqual(before);
  });

  it('takes back a field another manager changed, and leaves that manager\'s own fields alone', async () => {
    // someone scales the seed server and adds a label of their own (an Update: ownership of replicas moves to them)
    const path = restPath({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { namespace: NS, name: 'vpn-seed-server' } });
    const p = await env.request('PATCH', `${path}?fieldManager=kubectl-scale`, { spec: { replicas: 3 }, metadata: { labels: { team: 'night-shift' } } }, { contentType: 'application/merge-patch+json' });
    expect(p.status).toBe(200);
    const r = await reconciler().reconcile(key);
    expect(r).toMatchObject({ result: 'applied', changed: ['Deployment/vpn-seed-server'] });
    const d = (await get('Deployment', 'vpn-seed-server')) as K8sObject & { spec: { replicas: number } };
    expect(d.spec.replicas).toBe(1);
    expect(d.metadata.labels?.team).toBe('night-shift');
    // and the next reconcile is quiet again: the foreign label does not make it re-apply
    expect(await reconciler().reconcile(key)).toMatchObject({ changed: [], statusWritten: false });
  });

  it('a different manager applying a field the operator owns gets a conflict from the API server', async () => {
    const path = restPath({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { namespace: NS, name: 'vpn-seed-server' } });
    const body = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'vpn-seed-server', namespace: NS }, spec: { strategy: { type: 'RollingUpdate' } } };
    const r = await env.request<{ reason: string; details: { causes: Array<{ message: string }> } }>('PATCH', `${path}?fieldManager=helm`, body, { contentType: 'application/apply-patch+yaml' });
    expect(r.status).toBe(409);
    expect(r.body.reason).toBe('Conflict');
    expect(r.body.details.causes[0]!.message).toMatch(/conflict with "reversed-vpn-operator"/);
  });

  it('status is written only when it changes: lastTransitionTime moves only with the condition status', async () => {
    const ready1 = await condition('Ready');
    await new Promise((res) => setTimeout(res, 1100)); // timestamps have seconds resolution
    expect(await reconciler().reconcile(key)).toMatchObject({ statusWritten: false });
    expect(await condition('Ready')).toEqual(ready1);
    // the seed server becomes ready (no controller-manager here: the test writes the Deployment's status)
    const path = restPath({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { namespace: NS, name: 'vpn-seed-server' } });
    await env.request('PATCH', `${path}/status`, { status: { replicas: 1, readyReplicas: 1 } }, { contentType: 'application/merge-patch+json' });
    expect(await reconciler().reconcile(key)).toMatchObject({ statusWritten: true, changed: [] });
    const tunnel = await condition('TunnelConnected');
    expect(tunnel).toMatchObject({ status: 'True', reason: 'ServerReady', observedGeneration: 1 });
    expect(Date.parse(tunnel!.lastTransitionTime)).toBeGreaterThan(Date.parse(ready1!.lastTransitionTime));
    expect(await condition('Ready')).toEqual(ready1);
  });

  it('switches to HA: new objects, prunes what it no longer renders, a Secret loses the keys no longer rendered', async () => {
    const before = JSON.parse((await secretData('vpn-shoot-resources'))['objects.json']!) as { items: Array<K8sObject & { data: Record<string, string> }> };
    expect(Object.keys(before.items.find((i) => i.metadata.name === 'vpn-shoot-client')!.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    await createCr({ ...spec, highAvailability: { failureTolerance: 'zone' } });
    const r = await reconciler().reconcile(key);
    expect(r).toMatchObject({ result: 'applied', certificatesIssued: true });
    expect(await names('apps/v1', 'Deployment')).toEqual([]);
    expect(await names('apps/v1', 'StatefulSet')).toEqual(['vpn-seed-server']);
    expect(await names('v1', 'Service')).toEqual(['vpn-seed-server', 'vpn-seed-server-0', 'vpn-seed-server-1']);
    expect(await names('policy/v1', 'PodDisruptionBudget')).toEqual(['vpn-seed-server']);
    expect(await names('v1', 'Secret')).toEqual(expect.arrayContaining(['vpn-seed-client', 'kube-apiserver-http-proxy']));
    expect(Object.keys((await routes()).connect).sort()).toEqual([0, 1].map((i) => `outbound|1194||vpn-seed-server-${i}.${NS}.svc.cluster.local`));
    expect((await cr()).status).toMatchObject({ ha: true, observedGeneration: 2 });
    const after = JSON.parse((await secretData('vpn-shoot-resources'))['objects.json']!) as { items: Array<K8sObject & { data: Record<string, string> }> };
    expect(Object.keys(after.items.find((i) => i.metadata.name === 'vpn-shoot-client')!.data).sort()).toEqual(['ca.crt', 'vpn-shoot-0.crt', 'vpn-shoot-0.key', 'vpn-shoot-1.crt', 'vpn-shoot-1.key']);
    // the apiserver now has the path-controller beside it; back to non-HA takes it out again
    const d = (await get('Deployment', 'kube-apiserver')) as K8sObject & { spec: { template: { spec: { containers: Array<{ name: string }> } } } };
    expect(d.spec.template.spec.containers.map((c) => c.name)).toEqual(['kube-apiserver', 'path-controller']);
    await createCr(spec);
    await reconciler().reconcile(key);
    const d2 = (await get('Deployment', 'kube-apiserver')) as K8sObject & { spec: { template: { spec: { containers: Array<{ name: string }> } } } };
    expect(d2.spec.template.spec.containers.map((c) => c.name)).toEqual(['kube-apiserver']);
    expect(await names('apps/v1', 'StatefulSet')).toEqual([]);
  });

  it('reports a spec it cannot render as a terminal condition, writes it once, and touches nothing else', async () => {
    await createCr({ ...spec, annotations: { 'alpha.featuregates.shoot.gardener.cloud/reversed-vpn': 'maybe' } });
    const before = await snapshot();
    const r = await reconciler().reconcile(key);
    expect(r).toMatchObject({ result: 'invalid', statusWritten: true });
    expect(await condition('Ready')).toMatchObject({ status: 'False', reason: 'SpecInvalid', observedGeneration: 4 });
    const after = await snapshot();
    expect((await routes()).connect).toEqual({}); // its route is withdrawn
    for (const k of ['ConfigMap/sni-proxy-routes', 'ShootVpn/demo']) {
      expect(after[k]).not.toEqual(before[k]);
      delete before[k];
      delete after[k];
    }
    expect(after).toEqual(before);
    // the next reconcile of the same generation writes nothing at all
    const settled = await snapshot();
    expect(await reconciler().reconcile(key)).toMatchObject({ result: 'invalid', statusWritten: false });
    expect(await snapshot()).toEqual(settled);
    // a ShootVpn without spec.annotations (optional in the CRD) is valid again
    await env.request('PATCH', restPath(shootVpn(spec) as K8sObject), { spec: { annotations: null } }, { contentType: 'application/merge-patch+json' });
    expect(await reconciler().reconcile(key)).toMatchObject({ result: 'applied' });
    expect(await condition('Ready')).toMatchObject({ status: 'True', observedGeneration: 5 });
  });

  it('overlapping networks (issue 12): status shows the mapping in effect; one the apps would refuse is a terminal NetworksValid=False with its code', async () => {
    const overlapping = { ...spec, networks: { ...spec.networks, seedPods: '100.96.0.0/11', seedNodes: ['10.250.0.0/16'] } };
    await createCr(overlapping);
    expect(await reconciler().reconcile(key)).toMatchObject({ result: 'applied', statusWritten: true });
    expect(await condition('NetworksValid')).toMatchObject({ status: 'True', reason: 'Mapped', message: expect.stringContaining('shootPods 100.96.0.0/11 -> 244.0.0.0/11') });
    expect((await cr()).status?.networkMapping).toMatchObject({ mode: 'auto', families: [{ family: 4, active: true, reason: 'overlap' }] });
    const env = ((await get('Deployment', 'vpn-seed-server')) as K8sObject & { spec: { template: { spec: { containers: Array<{ name: string; env: Array<{ name: string; value?: string }> }> } } } })
      .spec.template.spec.containers.find((c) => c.name === 'vpn-seed-server')!.env;
    expect(env).toContainEqual({ name: 'SEED_NODE_NETWORKS', value: '10.250.0.0/16' });

    await createCr({ ...overlapping, networks: { ...overlapping.networks, mapping: { mode: 'never' } } });
    const before = await snapshot();
    expect(await reconciler().reconcile(key)).toMatchObject({ result: 'invalid', statusWritten: true });
    expect(await condition('Ready')).toMatchObject({ status: 'False', reason: 'NetworksInvalid' });
    const refused = await condition('NetworksValid');
    expect(refused).toMatchObject({ status: 'False', reason: 'MappingOverlapNotAllowed' });
    expect(refused!.message).toMatch(/^RVPN_ERR_MAPPING_OVERLAP_NOT_ALLOWED: /);
    expect((await cr()).status?.networkMapping).toBeUndefined();
    expect((await routes()).connect).toEqual({}); // not applied, its route withdrawn, as for an invalid spec
    const after = await snapshot();
    for (const k of ['ConfigMap/sni-proxy-routes', 'ShootVpn/demo']) {
      delete before[k];
      delete after[k];
    }
    expect(after).toEqual(before);

    await createCr(spec);
    expect(await reconciler().reconcile(key)).toMatchObject({ result: 'applied' });
    expect(await condition('NetworksValid')).toMatchObject({ status: 'True', reason: 'NotMapped' });
    expect(await condition('Ready')).toMatchObject({ status: 'True' });
  });

  it('deleting the ShootVpn: the finalizer holds it until the seed objects, the wiring and the route are gone', async () => {
    await deleteCr();
    const held = await cr();
    expect(held.metadata.deletionTimestamp).toBeDefined(); // held by our finalizer
    const r = await reconciler().reconcile(key);
    expect(r).toMatchObject({ result: 'cleaned-up' });
    expect(await admin.get({ apiVersion: API_VERSION, kind: CRD_KIND, metadata: key })).toBeUndefined();
    for (const [apiVersion, kind] of [['apps/v1', 'Deployment'], ['apps/v1', 'StatefulSet'], ['v1', 'Secret'], ['v1', 'Service'], ['v1', 'ConfigMap'], ['networking.k8s.io/v1', 'NetworkPolicy']] as const) {
      expect(await names(apiVersion, kind), kind).toEqual([]);
    }
    expect((await routes()).connect).toEqual({});
    const d = (await get('Deployment', 'kube-apiserver')) as K8sObject & { spec: { template: { metadata: { labels: Record<string, string>; annotations?: unknown }; spec: { containers: Array<{ args: string[] }>; volumes?: unknown } } } };
    expect(d.spec.template.spec.containers[0]!.args).toEqual(['--secure-port=443', '--service-cluster-ip-range=100.64.0.0/13']);
    expect(d.spec.template.spec.volumes).toBeUndefined();
    expect(d.spec.template.metadata.labels).toEqual({ app: 'kubernetes', role: 'apiserver' });
    expect(d.spec.template.metadata.annotations).toBeUndefined();
  });

  it('renews leaf certificates at 80 % and rotates the CA with an overlap in every bundle (fake clock)', async () => {
    let t = Date.now();
    const day = 86_400_000;
    const s = { ...settings, certValidityDays: 10, caValidityDays: 100, caRotationGraceMs: 2 * day, now: () => new Date(t) };
    const certs = (pem: string) => pem.match(/BEGIN CERTIFICATE/g)?.length ?? 0;
    await createCr();
    expect(await reconciler(s).reconcile(key)).toMatchObject({ certificatesIssued: true });
    const firstLeaf = (await secretData('vpn-seed-server-tls'))['tls.crt'];
    t += 5 * day; // 50 % of a leaf: nothing to do, nothing written
    expect(await reconciler(s).reconcile(key)).toMatchObject({ certificatesIssued: false, changed: [] });
    t += 3.5 * day; // 85 %: renewed from the same CA
    expect(await reconciler(s).reconcile(key)).toMatchObject({ certificatesIssued: true });
    expect((await secretData('vpn-seed-server-tls'))['tls.crt']).not.toBe(firstLeaf);
    expect(certs((await secretData('vpn-seed-server-tls'))['ca.crt']!)).toBe(1);
    t += 80 * day; // past 80 % of the CA: a new CA, and both CAs in every bundle
    expect(await reconciler(s).reconcile(key)).toMatchObject({ certificatesIssued: true });
    expect(certs((await secretData('vpn-seed-server-tls'))['ca.crt']!)).toBe(2);
    expect(certs((await secretData('kube-apiserver-http-proxy-client'))['ca.crt']!)).toBe(2);
    expect(Object.keys(await secretData('ca-vpn')).sort()).toEqual(['ca.crt', 'ca.key', 'previous.crt', 'rotated-at']);
    expect(await condition('CertificatesValid')).toMatchObject({ status: 'True', reason: 'CARotating' });
    t += 3 * day; // after the grace period the old CA leaves the bundles, and ca-vpn loses its rotation keys
    expect(await reconciler(s).reconcile(key)).toMatchObject({ certificatesIssued: false });
    expect(certs((await secretData('vpn-seed-server-tls'))['ca.crt']!)).toBe(1);
    expect(Object.keys(await secretData('ca-vpn')).sort()).toEqual(['ca.crt', 'ca.key']);
    await reset();
  });
});

/** resourceVersion of every object in the namespace, the ShootVpn included. */
async function snapshot(): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const [apiVersion, kind] of [['apps/v1', 'Deployment'], ['apps/v1', 'StatefulSet'], ['v1', 'Secret'], ['v1', 'Service'], ['v1', 'ConfigMap'], ['networking.k8s.io/v1', 'NetworkPolicy'], ['policy/v1', 'PodDisruptionBudget'], [API_VERSION, CRD_KIND]] as const) {
    for (const o of await admin.list(apiVersion, kind, { namespace: NS })) out[`${kind}/${o.metadata.name}`] = o.metadata.resourceVersion;
  }
  const routesCm = await get('ConfigMap', 'sni-proxy-routes', OPERATOR_NS);
  out['ConfigMap/sni-proxy-routes'] = (routesCm as { metadata: { resourceVersion?: string } } | undefined)?.metadata.resourceVersion;
  return out;
}
