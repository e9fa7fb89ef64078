/**
 * The one-shots the chart's hook Job and CronJob run (`operator shoot-setup` / `shoot-teardown`), on a
 * real seed API server as the job's ServiceAccount with the Role libs/k8s-render renders for it (minus
 * `list`, which these commands do not need), and a second API server as the shoot. The spec file is
 * the chart's (shootSpecFile). Exit codes: 0 done, 1 failed, 2 bad configuration.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEnvtest, type Envtest } from '@rvpn/envtest';
import { SHOOT_SETUP, renderShootSetup, shootSpecFile, type K8sObject } from '@rvpn/k8s-render';
import { runOneShot } from './cli.js';
import type { Kube } from './kube.js';
import { SETUP_LABEL } from './shoot-setup.js';
import { NS, adminKube, apiserverDeployment, applyAdmin, captureLogger, kubeConfigFromFile, spec, startSeed } from './testing/harness.js';

let seed: Envtest;
let shoot: Envtest;
let admin: Kube;
let shootAdmin: Kube;
let jobKubeConfig: KubeConfig;
let jobKubeconfigFile: string;
let dir: string;
const day = 86_400_000;

beforeAll(async () => {
  [seed, shoot] = await Promise.all([startSeed(), startEnvtest()]);
  admin = adminKube(seed);
  shootAdmin = adminKube(shoot);
  dir = await mkdtemp(join(tmpdir(), 'rvpn-shoot-setup-'));
  // the CronJob's ServiceAccount and Role as the chart renders them (the hook Job's are the same)
  const rbac = renderShootSetup(spec, { reversed: true, ha: false }, { image: 'r/operator:0.1.0', kubeApiserverDeployment: 'kube-apiserver', schedule: '0 3 * * *' })
    .filter((o) => o.metadata.name === SHOOT_SETUP && ['ServiceAccount', 'Role', 'RoleBinding'].includes(o.kind))
    .map((o) => (o.kind === 'Role' ? { ...o, rules: (o.rules as Array<{ verbs: string[] }>).map((r) => ({ ...r, verbs: r.verbs.filter((v) => v !== 'list') })) } : o));
  expect(rbac.map((o) => o.kind).sort()).toEqual(['Role', 'RoleBinding', 'ServiceAccount']);
  await applyAdmin(seed, [...rbac, apiserverDeployment()]);
  jobKubeconfigFile = await seed.serviceAccountKubeconfig({ namespace: NS, name: SHOOT_SETUP });
  jobKubeConfig = kubeConfigFromFile(jobKubeconfigFile);
});
afterAll(async () => {
  await Promise.all([seed?.stop(), shoot?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function specFile(ha = false): Promise<string> {
  const f = join(dir, `spec-${ha}.json`);
  await writeFile(f, shootSpecFile({ ...spec, highAvailability: { failureTolerance: ha ? 'zone' : 'none' } }, { reversed: true, ha }));
  return f;
}

async function run(command: 'shoot-setup' | 'shoot-teardown', env: Record<string, string> = {}, deps: { now?: () => Date; shoot?: boolean; admin?: boolean } = {}) {
  const cap = captureLogger();
  let stderr = '';
  const code = await runOneShot(command, { KUBECONFIG: jobKubeconfigFile, NAMESPACE: NS, SHOOT_SPEC_FILE: await specFile(), ...env }, {
    stderr: (s) => void (stderr += s), logger: cap.logger,
    deps: { seed: deps.admin ? kubeConfigFromFile(seed.kubeconfigPath) : jobKubeConfig, ...(deps.now ? { now: deps.now } : {}), ...(deps.shoot ? { shoot: kubeConfigFromFile(shoot.kubeconfigPath) } : {}) },
  });
  const done = cap.lines.find((l) => l.msg === `${command} done`) as Record<string, unknown> | undefined;
  return { code, stderr, done, lines: cap.lines };
}

const secretNames = async (kube = admin, namespace = NS) => (await kube.list('v1', 'Secret', { namespace, labelSelector: `${SETUP_LABEL}=true` })).map((s) => s.metadata.name).sort();
const data = async (name: string, kube = admin, namespace = NS) => Object.fromEntries(Object.entries(((await kube.get({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace, name } })) as K8sObject & { data: Record<string, string> }).data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
type Dep = K8sObject & { spec: { template: { metadata: { annotations?: Record<string, string> }; spec: { containers: Array<{ name: string; args: string[] }> } } } };
const apiserver = async () => (await admin.get({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { namespace: NS, name: 'kube-apiserver' } })) as Dep;

describe('shoot-setup / shoot-teardown', () => {
  it('refuses a bad configuration with exit code 2 and names every problem', async () => {
    const r = await run('shoot-setup', { NAMESPACE: '', SHOOT_SPEC_FILE: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/RVPN_ERR_CONFIG_INVALID/);
    expect(r.stderr).toMatch(/NAMESPACE="": is required for shoot-setup/);
    expect(r.stderr).toMatch(/SHOOT_SPEC_FILE="": is required for shoot-setup/);
    expect((await run('shoot-teardown', { SHOOT_SPEC_FILE: join(dir, 'missing.json') })).stderr).toMatch(/SHOOT_SPEC_FILE=.*does not exist/);
  });

  it('without a shoot kubeconfig: the CA, the seed\'s certificate Secrets, the shoot\'s parked as a List, the kube-apiserver wired', async () => {
    const r = await run('shoot-setup');
    expect(r.code).toBe(0);
    expect(r.done).toMatchObject({ certificatesIssued: true, shootSecrets: 'parked', wired: true });
    expect(await secretNames()).toEqual(['ca-vpn', 'kube-apiserver-http-proxy-client', 'vpn-certificates', 'vpn-seed-server-tls', 'vpn-shoot-certificates']);
    const parked = JSON.parse((await data('vpn-shoot-certificates'))['objects.json']!) as { kind: string; items: Array<K8sObject & { data: Record<string, string> }> };
    expect(parked.kind).toBe('List');
    expect(parked.items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`)).toEqual(['kube-system/vpn-shoot-client']);
    expect(Object.keys(parked.items[0]!.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    const d = await apiserver();
    expect(d.spec.template.spec.containers[0]!.args).toContain('--egress-selector-config-file=/etc/reversed-vpn/egress-selector/egress-selector-configuration.yaml');
    expect(d.spec.template.metadata.annotations?.['vpn.reversed-vpn.dev/proxy-client-checksum']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is idempotent: a second run writes nothing', async () => {
    const before = (await admin.list('v1', 'Secret', { namespace: NS })).map((s) => `${s.metadata.name}@${s.metadata.resourceVersion}`).sort();
    const depRv = (await apiserver()).metadata as { resourceVersion?: string };
    const r = await run('shoot-setup');
    expect(r.code).toBe(0);
    expect(r.done).toMatchObject({ changed: [], pruned: [], certificatesIssued: false });
    expect((await admin.list('v1', 'Secret', { namespace: NS })).map((s) => `${s.metadata.name}@${s.metadata.resourceVersion}`).sort()).toEqual(before);
    expect(((await apiserver()).metadata as { resourceVersion?: string }).resourceVersion).toBe(depRv.resourceVersion);
  });

  it('renews at 80 % (the CronJob\'s run): new leaves from the kept CA, and the checksum restarts kube-apiserver', async () => {
    const ca = (await data('ca-vpn'))['ca.crt'];
    const leaf = (await data('vpn-seed-server-tls'))['tls.crt'];
    const sum = (await apiserver()).spec.template.metadata.annotations?.['vpn.reversed-vpn.dev/proxy-client-checksum'];
    const r = await run('shoot-setup', {}, { now: () => new Date(Date.now() + 75 * day) });
    expect(r.code).toBe(0);
    expect(r.done).toMatchObject({ certificatesIssued: true });
    expect((await data('ca-vpn'))['ca.crt']).toBe(ca);
    expect((await data('vpn-seed-server-tls'))['tls.crt']).not.toBe(leaf);
    expect((await apiserver()).spec.template.metadata.annotations?.['vpn.reversed-vpn.dev/proxy-client-checksum']).not.toBe(sum);
  });

  it('with a shoot kubeconfig: the shoot\'s Secret goes into the shoot; HA and back prunes by name, and leaves a same-named Secret of someone else', async () => {
    // a Secret the user made, with a name shoot-setup would use in HA
    await applyAdmin(seed, [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'vpn-seed-client', namespace: NS }, data: { mine: 'eA==' } }]);
    const r = await run('shoot-setup', { SHOOT_KUBECONFIG_FILE: shoot.kubeconfigPath }, { shoot: true });
    expect(r.code).toBe(0);
    expect(r.done).toMatchObject({ shootSecrets: 'applied', pruned: ['Secret/vpn-shoot-certificates'] });
    expect(await secretNames(shootAdmin, 'kube-system')).toEqual(['vpn-shoot-client']);
    const ha = await run('shoot-setup', { SHOOT_KUBECONFIG_FILE: shoot.kubeconfigPath, SHOOT_SPEC_FILE: await specFile(true) }, { shoot: true });
    expect(ha.code, JSON.stringify(ha.lines.filter((l) => l.level >= 50))).toBe(0);
    expect(await secretNames()).toEqual(['ca-vpn', 'kube-apiserver-http-proxy', 'kube-apiserver-http-proxy-client', 'vpn-certificates', 'vpn-seed-client', 'vpn-seed-server-tls']);
    expect(Object.keys(await data('vpn-shoot-client', shootAdmin, 'kube-system')).sort()).toEqual(['ca.crt', 'vpn-shoot-0.crt', 'vpn-shoot-0.key', 'vpn-shoot-1.crt', 'vpn-shoot-1.key']);
    expect((await apiserver()).spec.template.spec.containers.map((c) => c.name)).toEqual(['kube-apiserver', 'path-controller']);
    // the user's Secret was taken over by apply (same name): that is what HA needs; back to non-HA it is deleted as ours
    const back = await run('shoot-setup', { SHOOT_KUBECONFIG_FILE: shoot.kubeconfigPath }, { shoot: true });
    expect(back.code).toBe(0);
    expect(back.done).toMatchObject({ pruned: ['Secret/vpn-seed-client', 'Secret/kube-apiserver-http-proxy'] });
    expect((await apiserver()).spec.template.spec.containers.map((c) => c.name)).toEqual(['kube-apiserver']);
  });

  it('a Secret with a name it may use but without its label is never deleted', async () => {
    await applyAdmin(seed, [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'vpn-seed-server-proxy-tls', namespace: NS }, data: { mine: 'eA==' } }]);
    const r = await run('shoot-setup', { SHOOT_KUBECONFIG_FILE: shoot.kubeconfigPath }, { shoot: true });
    expect(r.code).toBe(0);
    expect(await admin.get({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace: NS, name: 'vpn-seed-server-proxy-tls' } })).toBeDefined();
  });

  it('fails with exit code 1 when the kube-apiserver Deployment to wire does not exist', async () => {
    // as the admin: the job's own Role may read only the Deployment it was rendered for
    const r = await run('shoot-setup', { KUBE_APISERVER_DEPLOYMENT: 'no-such-apiserver' }, { admin: true });
    expect(r.code).toBe(1);
    expect(r.lines.find((l) => l.msg === 'shoot-setup failed')).toMatchObject({ code: 'RVPN_ERR_APISERVER_WIRING' });
  });

  it('shoot-teardown unwires the kube-apiserver and deletes what shoot-setup made, in the seed and in the shoot', async () => {
    const r = await run('shoot-teardown', { SHOOT_KUBECONFIG_FILE: shoot.kubeconfigPath }, { shoot: true });
    expect(r.code).toBe(0);
    expect(r.done).toMatchObject({ unwired: true });
    expect(await secretNames()).toEqual([]);
    expect(await secretNames(shootAdmin, 'kube-system')).toEqual([]);
    const d = await apiserver();
    expect(d.spec.template.spec.containers[0]!.args).toEqual(['--secure-port=443', '--service-cluster-ip-range=100.64.0.0/13']);
    expect(d.spec.template.metadata.annotations).toBeUndefined();
    expect(await admin.get({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace: NS, name: 'vpn-seed-server-proxy-tls' } })).toBeDefined(); // not ours
    // and again: nothing left to do, still exit 0
    expect((await run('shoot-teardown', { SHOOT_KUBECONFIG_FILE: shoot.kubeconfigPath }, { shoot: true })).code).toBe(0);
  });
});

describe('the command line', () => {
  it('picks the controller, a one-shot, or a usage error', async () => {
    const { parseCommand } = await import('./cli.js');
    expect(parseCommand([])).toBe('run');
    expect(parseCommand(['run'])).toBe('run');
    expect(parseCommand(['--init'])).toBe('run'); // runMain handles --init
    expect(parseCommand(['shoot-setup'])).toBe('shoot-setup');
    expect(parseCommand(['shoot-teardown'])).toBe('shoot-teardown');
    expect(parseCommand(['setup'])).toBeUndefined();
  });
});
