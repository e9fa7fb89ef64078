/**
 * The shoot side applied INTO the shoot: a second real API server plays the shoot, reached through a
 * kubeconfig in a Secret the ShootVpn names (spec.shootAccess.kubeconfigSecretRef). Applied with the
 * operator's field manager, quiet on the second pass, pruned on a mode change and on deletion; a
 * kubeconfig that is missing or not self-contained (exec, files) is a ShootApplied=False condition.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEnvtest, type Envtest } from '@rvpn/envtest';
import { CRD_KIND, type K8sObject } from '@rvpn/k8s-render';
import { EventRecorder } from './events.js';
import { Kube } from './kube.js';
import { API_VERSION, OWNER_LABEL, Reconciler, type ShootVpnObject, type ShootVpnSpec } from './reconcile.js';
import { checkShootKubeconfig, ShootAccessProblem } from './shoot-access.js';
import {
  NS, adminKube, applyAdmin, kubeConfigFromFile, listShootVpns, operatorKubeConfig, restPath, settings, shootVpn, silentLogger, spec, startSeed,
} from './testing/harness.js';
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

let seed: Envtest;
let shoot: Envtest;
let op: Kube;
let admin: Kube;
let shootAdmin: Kube;
let reconciler: Reconciler;
beforeAll(async () => {
  [seed, shoot] = await Promise.all([startSeed(), startEnvtest()]);
  admin = adminKube(seed);
  shootAdmin = new Kube(kubeConfigFromFile(shoot.kubeconfigPath));
  const kc = await operatorKubeConfig(seed);
  op = new Kube(kc);
  reconciler = new Reconciler(op, { ...settings, kubeApiserverDeployment: '' }, { logger: silentLogger(), events: new EventRecorder(kc, { instance: 'test', logger: silentLogger() }), listShootVpns: listShootVpns(op) });
});
afterAll(async () => {
  await Promise.all([seed?.stop(), shoot?.stop()]);
});

const key = { namespace: NS, name: 'demo' };
const withAccess: ShootVpnSpec = { ...spec, shootAccess: { kubeconfigSecretRef: { name: 'shoot-kubeconfig' } } };
const kubeconfigSecret = (text: string, name = 'shoot-kubeconfig') => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, data: { kubeconfig: Buffer.from(text).toString('base64') } });
const inShoot = async (apiVersion: string, kind: string) => (await shootAdmin.list(apiVersion, kind, { namespace: 'kube-system', labelSelector: `${OWNER_LABEL}=demo` })).map((o) => o.metadata.name).sort();
const shootRvs = async () => {
  const out: Record<string, string | undefined> = {};
  for (const [a, k] of [['v1', 'ServiceAccount'], ['apps/v1', 'Deployment'], ['apps/v1', 'StatefulSet'], ['v1', 'Secret'], ['networking.k8s.io/v1', 'NetworkPolicy'], ['policy/v1', 'PodDisruptionBudget']] as const) {
    for (const o of await shootAdmin.list(a, k, { namespace: 'kube-system', labelSelector: `${OWNER_LABEL}=demo` })) out[`${k}/${o.metadata.name}`] = o.metadata.resourceVersion;
  }
  return out;
};
const condition = async (type: string) => (await admin.get<ShootVpnObject>({ apiVersion: API_VERSION, kind: CRD_KIND, metadata: key }))?.status?.conditions?.find((c) => c.type === type);
const events = async () => (await seed.request<{ items: Array<{ reason: string; type: string; note: string }> }>('GET', `/apis/events.k8s.io/v1/namespaces/${NS}/events`)).body.items;

describe('shoot side applied into the shoot', () => {
  it('applies vpn-shoot and its certificate Secret into the shoot\'s kube-system, parks nothing in the seed', async () => {
    await applyAdmin(seed, [kubeconfigSecret(readFileSync(shoot.kubeconfigPath, 'utf8')), shootVpn(withAccess) as K8sObject]);
    const r = await reconciler.reconcile(key);
    expect(r).toMatchObject({ result: 'applied' });
    expect(await inShoot('apps/v1', 'Deployment')).toEqual(['vpn-shoot']);
    expect(await inShoot('v1', 'ServiceAccount')).toEqual(['vpn-shoot']);
    expect(await inShoot('v1', 'Secret')).toEqual(['vpn-shoot-client']);
    expect(await inShoot('networking.k8s.io/v1', 'NetworkPolicy')).toEqual(['vpn-shoot']);
    const d = (await shootAdmin.get({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { namespace: 'kube-system', name: 'vpn-shoot' } }))!;
    expect(d.metadata.managedFields?.map((m) => `${m.manager}/${m.operation}`)).toEqual(['reversed-vpn-operator/Apply']);
    expect(await admin.get({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace: NS, name: 'vpn-shoot-resources' } })).toBeUndefined();
    expect(await condition('ShootApplied')).toMatchObject({ status: 'True', reason: 'Applied' });
    // the shoot's Secret is signed by the seed's CA
    const shootCa = ((await shootAdmin.get({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace: 'kube-system', name: 'vpn-shoot-client' } })) as K8sObject & { data: Record<string, string> }).data['ca.crt'];
    const seedCa = ((await admin.get({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace: NS, name: 'ca-vpn' } })) as K8sObject & { data: Record<string, string> }).data['ca.crt'];
    expect(shootCa).toBe(seedCa);
  });

  it('writes nothing into the shoot when nothing changed', async () => {
    const before = await shootRvs();
    expect(await reconciler.reconcile(key)).toMatchObject({ changed: [], statusWritten: false });
    expect(await shootRvs()).toEqual(before);
  });

  it('HA in the shoot: a StatefulSet and PDB instead of the Deployment; the Secret carries exactly the HA keys', async () => {
    await applyAdmin(seed, [shootVpn({ ...withAccess, highAvailability: { failureTolerance: 'node' } }) as K8sObject]);
    await reconciler.reconcile(key);
    expect(await inShoot('apps/v1', 'Deployment')).toEqual([]);
    expect(await inShoot('apps/v1', 'StatefulSet')).toEqual(['vpn-shoot']);
    expect(await inShoot('policy/v1', 'PodDisruptionBudget')).toEqual(['vpn-shoot']);
    const s = (await shootAdmin.get({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace: 'kube-system', name: 'vpn-shoot-client' } })) as K8sObject & { data: Record<string, string> };
    expect(Object.keys(s.data).sort()).toEqual(['ca.crt', 'vpn-shoot-0.crt', 'vpn-shoot-0.key', 'vpn-shoot-1.crt', 'vpn-shoot-1.key']);
    await applyAdmin(seed, [shootVpn(withAccess) as K8sObject]);
    await reconciler.reconcile(key);
    expect(await inShoot('apps/v1', 'StatefulSet')).toEqual([]);
  });

  it('a kubeconfig that runs a command or reads files is refused: ShootApplied=False, a Warning, the seed side still applied', async () => {
    const bad = { apiVersion: 'v1', kind: 'Config', 'current-context': 'x', clusters: [{ name: 'x', cluster: { server: shoot.server, 'certificate-authority': '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt' } }], users: [{ name: 'x', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'sh', args: ['-c', 'cat /var/run/secrets/kubernetes.io/serviceaccount/token'] } } }], contexts: [{ name: 'x', context: { cluster: 'x', user: 'x' } }] };
    await applyAdmin(seed, [kubeconfigSecret(JSON.stringify(bad), 'evil-kubeconfig'), shootVpn({ ...spec, shootAccess: { kubeconfigSecretRef: { name: 'evil-kubeconfig' } } }) as K8sObject]);
    const err = await reconciler.reconcile(key).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShootAccessProblem);
    expect((err as ShootAccessProblem).reason).toBe('KubeconfigInvalid');
    expect((err as Error).message).toMatch(/exec \(a command\).*certificate-authority \(a file\)|certificate-authority \(a file\).*exec \(a command\)/);
    expect(await condition('ShootApplied')).toMatchObject({ status: 'False', reason: 'KubeconfigInvalid' });
    expect(await condition('Ready')).toMatchObject({ status: 'True' });
    expect((await events()).some((e) => e.type === 'Warning' && e.reason === 'KubeconfigInvalid')).toBe(true);
    // a missing Secret says so
    await applyAdmin(seed, [shootVpn({ ...spec, shootAccess: { kubeconfigSecretRef: { name: 'nope', key: 'config' } } }) as K8sObject]);
    expect(((await reconciler.reconcile(key).catch((e: unknown) => e)) as ShootAccessProblem).reason).toBe('KubeconfigSecretMissing');
    expect(await condition('ShootApplied')).toMatchObject({ status: 'False', reason: 'KubeconfigSecretMissing', message: expect.stringMatching(/Secret shoot--dev--demo\/nope/) });
    await applyAdmin(seed, [shootVpn(withAccess) as K8sObject]);
    expect(await reconciler.reconcile(key)).toMatchObject({ result: 'applied' });
    expect(await condition('ShootApplied')).toMatchObject({ status: 'True' });
  });

  it('deleting the ShootVpn deletes the shoot side in the shoot before the finalizer goes', async () => {
    await seed.request('DELETE', restPath(shootVpn(withAccess) as K8sObject));
    expect(await reconciler.reconcile(key)).toMatchObject({ result: 'cleaned-up', pruned: expect.arrayContaining(['shoot:Deployment/vpn-shoot', 'shoot:Secret/vpn-shoot-client']) });
    for (const [a, k] of [['v1', 'ServiceAccount'], ['apps/v1', 'Deployment'], ['v1', 'Secret'], ['networking.k8s.io/v1', 'NetworkPolicy']] as const) expect(await inShoot(a, k), k).toEqual([]);
    expect(await admin.get({ apiVersion: API_VERSION, kind: CRD_KIND, metadata: key })).toBeUndefined();
  });

  it('when the kubeconfig Secret is already gone (a namespace being deleted), deletion goes on and says what was left', async () => {
    await applyAdmin(seed, [shootVpn(withAccess) as K8sObject]);
    await reconciler.reconcile(key);
    expect(await inShoot('apps/v1', 'Deployment')).toEqual(['vpn-shoot']);
    await seed.request('DELETE', `/api/v1/namespaces/${NS}/secrets/shoot-kubeconfig`);
    await seed.request('DELETE', restPath(shootVpn(withAccess) as K8sObject));
    expect(await reconciler.reconcile(key)).toMatchObject({ result: 'cleaned-up' });
    expect(await admin.get({ apiVersion: API_VERSION, kind: CRD_KIND, metadata: key })).toBeUndefined();
    expect((await events()).some((e) => e.reason === 'ShootSideLeft' && /does not exist/.test(e.note))).toBe(true);
  });
});

describe('checkShootKubeconfig', () => {
  const kc = (cluster: Record<string, unknown>, user: Record<string, unknown>) => {
    const k = new KubeConfig();
    k.loadFromString(JSON.stringify({ 'current-context': 'c', clusters: [{ name: 'c', cluster }], users: [{ name: 'u', user }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }] }));
    return k;
  };
  it('accepts inline credentials and refuses files, commands, auth providers, proxies and plain http', () => {
    expect(() => checkShootKubeconfig(kc({ server: 'https://api.shoot', 'certificate-authority-data': 'Y2E=' }, { token: 't' }))).not.toThrow();
    expect(() => checkShootKubeconfig(kc({ server: 'https://api.shoot' }, { 'client-certificate-data': 'Yw==', 'client-key-data': 'aw==' }))).not.toThrow();
    for (const [cluster, user, what] of [
      [{ server: 'https://a' }, { 'client-certificate': '/etc/c.crt', 'client-key': '/etc/c.key' }, /files/],
      [{ server: 'https://a' }, { 'auth-provider': { name: 'x', config: { tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token' } } }, /auth-provider/],
      [{ server: 'https://a', 'proxy-url': 'http://evil:3128' }, { token: 't' }, /proxy-url/],
      [{ server: 'http://a' }, { token: 't' }, /https/],
    ] as const) expect(() => checkShootKubeconfig(kc(cluster, user)), JSON.stringify(user)).toThrow(what);
  });
});
