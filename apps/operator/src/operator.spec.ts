/**
 * The operator's loop against a real kube-apiserver, as its ServiceAccount (real tokens, the rendered
 * RBAC): informers drive reconciles; deletion goes through the finalizer; Events tell what happened;
 * two replicas elect one leader through a Lease, and the standby takes over when the leader can no
 * longer renew; over an idle minute the audit log shows no write by the operator but Lease renewals;
 * a watch from an expired resourceVersion (410 Gone from the real server) makes the informer list again.
 */
import { makeInformer, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Envtest } from '@rvpn/envtest';
import { CRD_GROUP, CRD_KIND, CRD_PLURAL, CRD_VERSION, type K8sObject } from '@rvpn/k8s-render';
import type { Kube } from './kube.js';
import { Operator } from './operator.js';
import { API_VERSION, FINALIZER, OWNER_LABEL, type ShootVpnObject } from './reconcile.js';
import {
  NS, OPERATOR_NS, OPERATOR_USER, SA, adminKube, applyAdmin, captureLogger, kubeConfigFromFile, restPath, shootVpn, spec, startSeed, testConfig, waitFor, type Captured,
} from './testing/harness.js';

let env: Envtest;
let admin: Kube;
beforeAll(async () => {
  env = await startSeed({ audit: true });
  admin = adminKube(env);
});
afterAll(async () => {
  await env?.stop();
});

interface Running extends Captured {
  op: Operator;
  reconciles: () => number;
}
const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.op.stop();
});

/** A token of the operator's ServiceAccount bound to a Secret of its own: deleting the Secret revokes it. */
async function tokenKubeConfig(name: string): Promise<KubeConfig> {
  const s = await env.request<{ metadata: { uid: string } }>('POST', `/api/v1/namespaces/${OPERATOR_NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name } });
  expect(s.status).toBe(201);
  const token = await env.createToken(SA, { boundObject: { kind: 'Secret', name, uid: s.body.metadata.uid } });
  return kubeConfigFromFile(await env.writeKubeconfig(name, { token }));
}

async function startOperator(kc: KubeConfig, id: string, extra: Record<string, string> = {}): Promise<Running> {
  const cap = captureLogger();
  const op = new Operator(testConfig({ POD_NAME: id, RESYNC: '60s', ...extra }), { logger: cap.logger, registry: new Registry(), kubeConfig: kc });
  await op.start();
  const r = { op, ...cap, reconciles: () => cap.lines.filter((l) => l.msg === 'reconciled').length };
  running.push(r);
  return r;
}

const key = (namespace: string, name = 'demo') => ({ apiVersion: API_VERSION, kind: CRD_KIND, metadata: { namespace, name } });
const ready = (namespace: string, name = 'demo') => async () => (await admin.get<ShootVpnObject>(key(namespace, name)))?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
const gone = (namespace: string, name = 'demo') => async () => !(await admin.get(key(namespace, name)));
const events = async (namespace: string) => ((await env.request<{ items: Array<{ reason: string; type: string; reportingController: string; reportingInstance: string; regarding: { name: string } }> }>('GET', `/apis/events.k8s.io/v1/namespaces/${namespace}/events`)).body.items);

describe('operator loop', () => {
  it('publishes the routes, follows the watch, records Events, and cleans up through its finalizer', async () => {
    const a = await startOperator(await tokenKubeConfig('token-loop'), 'op-loop');
    await waitFor('leadership', () => a.op.leading);
    await waitFor('the route ConfigMap before any ShootVpn', () => admin.get({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: OPERATOR_NS, name: 'sni-proxy-routes' } }));
    await applyAdmin(env, [shootVpn(spec) as K8sObject]);
    await waitFor('Ready', ready(NS));
    const cr = (await admin.get<ShootVpnObject>(key(NS)))!;
    expect(cr.metadata.finalizers).toEqual([FINALIZER]);
    expect((await admin.list('apps/v1', 'Deployment', { namespace: NS, labelSelector: `${OWNER_LABEL}=demo` })).map((d) => d.metadata.name)).toEqual(['vpn-seed-server']);
    const ev = await waitFor('Events', async () => {
      const e = await events(NS);
      return e.some((x) => x.reason === 'Applied') && e;
    });
    expect(ev.map((e) => e.reason)).toEqual(expect.arrayContaining(['CertificatesIssued', 'Applied']));
    // every Event is this operator's, on the ShootVpn (the odd one out is listed when not)
    expect(ev.filter((e) => !(e.reportingController === 'vpn.reversed-vpn.dev/operator' && e.reportingInstance === 'op-loop' && e.regarding.name === 'demo'))).toEqual([]);
    const ready1 = await fetch(`http://127.0.0.1:${a.op.bound.status}/readyz`);
    expect(ready1.status).toBe(200);

    await env.request('DELETE', restPath(shootVpn(spec) as K8sObject));
    await waitFor('the ShootVpn to go (finalizer removed)', gone(NS));
    expect(await admin.list('v1', 'Secret', { namespace: NS, labelSelector: `${OWNER_LABEL}=demo` })).toEqual([]);
    expect((await events(NS)).map((e) => e.reason)).toContain('CleanedUp');
    expect(a.lines.filter((l) => l.level >= 40)).toEqual([]); // no warning on the way
  });

  it('two replicas: only the leader reconciles; the standby takes over when the leader can no longer renew', async () => {
    const a = await startOperator(await tokenKubeConfig('token-a'), 'op-a');
    await waitFor('op-a to lead', () => a.op.leading);
    const b = await startOperator(await tokenKubeConfig('token-b'), 'op-b');
    await applyAdmin(env, [shootVpn(spec) as K8sObject]);
    await waitFor('Ready (by op-a)', ready(NS));
    // the status is written inside the reconcile, the counter moves when it returns: wait for that
    await waitFor('op-a to count its reconcile', () => a.reconciles() > 0);
    expect(b.op.leading).toBe(false);
    expect(b.reconciles()).toBe(0);
    expect(b.lines.some((l) => l.msg === 'leader election: leader is now' && l.leader === 'op-a')).toBe(true);

    // op-a's token dies with its Secret: it can neither renew nor reconcile any more
    await env.request('DELETE', `/api/v1/namespaces/${OPERATOR_NS}/secrets/token-a`);
    await waitFor('op-b to take over', () => b.op.leading);
    await waitFor('op-a to stop leading', () => !a.op.leading);
    const lease = await env.request<{ spec: { holderIdentity: string; leaseTransitions: number } }>('GET', `/apis/coordination.k8s.io/v1/namespaces/${OPERATOR_NS}/leases/reversed-vpn-operator`);
    expect(lease.body.spec.holderIdentity).toBe('op-b');
    // the new leader works: a ShootVpn created now gets reconciled, and the old one is deleted through the finalizer
    const ns2 = 'shoot--dev--second';
    await env.ensureNamespaces(ns2);
    const aReconciles = a.reconciles();
    await applyAdmin(env, [shootVpn({ ...spec, namespace: ns2, shoot: { name: 'second', project: 'dev' } }, 'demo', ns2) as K8sObject]);
    await waitFor('Ready (by op-b)', ready(ns2));
    await waitFor('op-b to count its reconcile', () => b.reconciles() > 0);
    expect(a.reconciles()).toBe(aReconciles);
    expect(a.lines.some((l) => l.msg === 'leader election: could not renew in time; stopped leading')).toBe(true);
    for (const n of [NS, ns2]) await env.request('DELETE', restPath(shootVpn({ ...spec, namespace: n }) as K8sObject));
    for (const n of [NS, ns2]) await waitFor(`ShootVpn in ${n} gone`, gone(n));
  });

  it('a leader that stops releases the Lease, so a standby leads at its next try', async () => {
    const a = await startOperator(await tokenKubeConfig('token-c'), 'op-c');
    await waitFor('op-c to lead', () => a.op.leading);
    const b = await startOperator(await tokenKubeConfig('token-d'), 'op-d');
    await waitFor('op-d to see op-c', () => b.lines.some((l) => l.leader === 'op-c'));
    await a.op.stop();
    running.splice(running.indexOf(a), 1);
    expect(a.lines.some((l) => l.msg === 'leader election: released the lease')).toBe(true);
    await waitFor('op-d to lead', () => b.op.leading);
  });

  it('is quiet: over an idle minute the audit log shows no write by the operator but Lease renewals', async () => {
    const a = await startOperator(await tokenKubeConfig('token-quiet'), 'op-quiet', { RESYNC: '5s' });
    await waitFor('leadership', () => a.op.leading);
    await applyAdmin(env, [shootVpn(spec) as K8sObject, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'kube-apiserver', namespace: NS }, spec: { selector: { matchLabels: { app: 'kube-apiserver' } }, template: { metadata: { labels: { app: 'kube-apiserver' } }, spec: { containers: [{ name: 'kube-apiserver', image: 'k' }] } } } }]);
    await waitFor('Ready', ready(NS));
    // settle: the watch events of its own writes come back and are reconciled once more
    await new Promise((r) => setTimeout(r, 5_000));
    const from = new Date();
    // things that are no reason to write: a label on the ShootVpn (no new generation), a Secret nobody owns
    await env.request('PATCH', restPath(shootVpn(spec) as K8sObject), { metadata: { labels: { touched: 'by-test' } } }, { contentType: 'application/merge-patch+json' });
    await env.request('POST', `/api/v1/namespaces/${NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'unrelated' } });
    await new Promise((r) => setTimeout(r, 60_000));
    const window = (await env.auditEvents()).filter((e) => e.user.username === OPERATOR_USER && Date.parse(e.stageTimestamp) >= from.getTime());
    const writes = window.filter((e) => ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(e.verb));
    expect(writes.filter((e) => !(e.objectRef?.resource === 'leases' && e.verb === 'update')).map((e) => `${e.verb} ${e.requestURI}`)).toEqual([]);
    // it was not asleep: it renewed its Lease and re-read everything on each resync
    expect(writes.length).toBeGreaterThan(10);
    expect(window.filter((e) => e.verb === 'get' && e.objectRef?.resource === CRD_PLURAL).length).toBeGreaterThanOrEqual(8);
    await env.request('DELETE', restPath(shootVpn(spec) as K8sObject));
    await waitFor('ShootVpn gone', gone(NS));
  }, 120_000);
});

describe('informer against the real server', () => {
  it('a watch from an expired resourceVersion gets 410 Gone and the informer lists again', async () => {
    const kc = kubeConfigFromFile(env.kubeconfigPath);
    await applyAdmin(env, [shootVpn(spec, 'for-410') as K8sObject]);
    const path = `/apis/${CRD_GROUP}/${CRD_VERSION}/${CRD_PLURAL}`;
    let lists = 0;
    const list = async () => {
      lists++;
      const r = await env.request<{ items: KubernetesObject[]; metadata: { resourceVersion: string } }>('GET', path);
      // the first list claims a version long compacted out of the watch cache
      return lists === 1 ? { ...r.body, metadata: { resourceVersion: '1' } } : r.body;
    };
    const informer = makeInformer(kc, path, list as never);
    const seen: string[] = [];
    informer.on('add', (o) => seen.push(o.metadata!.name!));
    try {
      await informer.start();
      await waitFor('a second list after the 410', () => lists >= 2);
      await applyAdmin(env, [shootVpn(spec, 'after-410') as K8sObject]);
      await waitFor('the object created after the re-list', () => seen.includes('after-410'));
      expect(seen).toContain('for-410');
    } finally {
      await informer.stop();
      for (const n of ['for-410', 'after-410']) await env.request('DELETE', restPath(shootVpn(spec, n) as K8sObject));
    }
  });
});
