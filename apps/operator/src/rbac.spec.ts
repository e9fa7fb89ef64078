/**
 * Least privilege, shown on a real API server: what the operator's ServiceAccount may do (the
 * ClusterRole and Role libs/k8s-render renders) is listed by `kubectl auth can-i --list` and compared
 * with the committed src/testing/rbac-can-i.txt; and every verb of every rule is needed: with that verb
 * dropped, a full cycle (lead, reconcile an HA ShootVpn with monitoring and the kube-apiserver wiring,
 * delete it through the finalizer) runs into a 403 for exactly that verb and resource.
 *
 * After changing the RBAC on purpose: RVPN_UPDATE_RBAC_LIST=1 rewrites the committed list.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Envtest } from '@rvpn/envtest';
import type { K8sObject } from '@rvpn/k8s-render';
import { Operator } from './operator.js';
import {
  NS, OPERATOR_NS, OPERATOR_USER, SA, apiserverDeployment, applyAdmin, captureLogger, kubeConfigFromFile, operatorRbac, restPath, shootVpn, spec, startSeed, testConfig, waitFor,
} from './testing/harness.js';

const LIST_FILE = join(import.meta.dirname, 'testing', 'rbac-can-i.txt');
const haSpec = { ...spec, highAvailability: { failureTolerance: 'zone' as const } };

let env: Envtest;
let kubeconfig: string;
beforeAll(async () => {
  env = await startSeed({ monitoring: true });
  kubeconfig = await env.serviceAccountKubeconfig(SA);
  await applyAdmin(env, [apiserverDeployment()]);
});
afterAll(async () => {
  await env?.stop();
});

const normalize = (s: string) => s.split('\n').map((l) => l.replace(/\s+/g, ' ').trim()).filter(Boolean).join('\n');

interface Rule {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}
const rendered = operatorRbac({ monitoring: true });
const roles = rendered.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role') as Array<K8sObject & { rules: Rule[] }>;

/** Kind names the operator's log uses for its informers (`watch <Kind>s`). */
const KIND_OF: Record<string, string> = {
  shootvpns: 'ShootVpn', deployments: 'Deployment', statefulsets: 'StatefulSet', configmaps: 'ConfigMap', secrets: 'Secret', services: 'Service',
  networkpolicies: 'NetworkPolicy', poddisruptionbudgets: 'PodDisruptionBudget', prometheusrules: 'PrometheusRule', servicemonitors: 'ServiceMonitor',
};

/** One full cycle as the operator; returns the 403s it logged (and whether it got through). */
async function cycle(stopEarly?: (line: string) => boolean): Promise<{ forbidden: string[]; completed: boolean }> {
  const cap = captureLogger();
  const op = new Operator(testConfig({ POD_NAME: 'op-rbac', MONITORING: 'true', RESYNC: '60s' }), { logger: cap.logger, registry: new Registry(), kubeConfig: kubeConfigFromFile(kubeconfig) });
  const forbidden = () => cap.lines.filter((l) => l.status === 403).map((l) => String(l.err));
  const svpn = shootVpn(haSpec) as K8sObject;
  let completed = false;
  const stop = () => forbidden().some((l) => stopEarly?.(l));
  try {
    await op.start();
    await applyAdmin(env, [svpn]);
    const ready = async () => ((await env.request<{ status?: { conditions?: Array<{ type: string; status: string }> } }>('GET', restPath(svpn))).body.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
    await waitFor('Ready or a 403', async () => stop() || (await ready()), 20_000).catch(() => undefined);
    if (!stop()) {
      await env.request('DELETE', restPath(svpn));
      await waitFor('deleted or a 403', async () => stop() || (await env.request('GET', restPath(svpn))).status === 404, 20_000).catch(() => undefined);
      completed = (await env.request('GET', restPath(svpn))).status === 404 && (await ready().catch(() => false)) === false;
    }
  } finally {
    await op.stop();
    // leave nothing for the next cycle: the ShootVpn (finalizer or not), its objects, the Lease
    await env.request('PATCH', restPath(svpn), { metadata: { finalizers: null } }, { contentType: 'application/merge-patch+json' });
    await env.request('DELETE', restPath(svpn));
    for (const [api, plural] of [['/apis/apps/v1', 'statefulsets'], ['/apis/apps/v1', 'deployments'], ['/api/v1', 'services'], ['/api/v1', 'secrets'], ['/api/v1', 'configmaps'], ['/apis/networking.k8s.io/v1', 'networkpolicies'], ['/apis/policy/v1', 'poddisruptionbudgets'], ['/apis/monitoring.coreos.com/v1', 'servicemonitors'], ['/apis/monitoring.coreos.com/v1', 'prometheusrules']]) {
      await env.request('DELETE', `${api}/namespaces/${NS}/${plural}?labelSelector=${encodeURIComponent('vpn.reversed-vpn.dev/shootvpn=demo')}`);
    }
    await env.request('DELETE', `/apis/coordination.k8s.io/v1/namespaces/${OPERATOR_NS}/leases/reversed-vpn-operator`);
  }
  return { forbidden: forbidden(), completed };
}

/** Applies the roles with one verb taken out of one rule (the rule goes when it has no verb left). */
async function applyRoles(drop?: { role: string; rule: number; verb: string }): Promise<void> {
  const objs = rendered.map((o) => {
    if (!drop || o.metadata.name !== drop.role || !('rules' in o)) return o;
    const rules = (o.rules as Rule[]).map((r, i) => (i === drop.rule ? { ...r, verbs: r.verbs.filter((v) => v !== drop.verb) } : r)).filter((r) => r.verbs.length > 0);
    return { ...o, rules };
  });
  await applyAdmin(env, objs);
}

/** Waits until the authorizer has the change (it follows RBAC objects through a watch). */
async function allowed(verb: string, rule: Rule, namespace: string): Promise<boolean> {
  const [resource, subresource] = rule.resources[0]!.split('/');
  const r = await env.request<{ status: { allowed: boolean } }>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
    apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
    spec: { user: OPERATOR_USER, groups: ['system:serviceaccounts', `system:serviceaccounts:${OPERATOR_NS}`, 'system:authenticated'], resourceAttributes: { verb, group: rule.apiGroups[0], resource, ...(subresource ? { subresource } : {}), namespace, ...(rule.resourceNames ? { name: rule.resourceNames[0] } : {}) } },
  });
  return r.body.status.allowed;
}

describe('the operator\'s RBAC', () => {
  it('`kubectl auth can-i --list` as its ServiceAccount equals the committed list', async () => {
    const out: string[] = [];
    for (const ns of [OPERATOR_NS, NS]) {
      const r = await env.kubectl(['auth', 'can-i', '--list', `--namespace=${ns}`], { kubeconfig });
      expect(r.code, r.stderr).toBe(0);
      out.push(`# namespace ${ns}`, r.stdout.trimEnd());
    }
    const actual = `${out.join('\n')}\n`;
    if (process.env.RVPN_UPDATE_RBAC_LIST) writeFileSync(LIST_FILE, actual);
    expect(normalize(actual)).toBe(normalize(readFileSync(LIST_FILE, 'utf8')));
  });

  it('with all of it, a full cycle gets through without a single 403', async () => {
    await applyRoles();
    const r = await cycle();
    expect(r.forbidden).toEqual([]);
    expect(r.completed).toBe(true);
  });

  for (const role of roles) {
    role.rules.forEach((rule, i) => {
      for (const verb of rule.verbs) {
        const what = `${verb} ${rule.resources.join(',')}${rule.resourceNames ? ` (${rule.resourceNames.join(',')})` : ''} (${role.kind})`;
        it(`needs ${what}`, async () => {
          await applyRoles({ role: role.metadata.name, rule: i, verb });
          const ns = role.kind === 'Role' ? OPERATOR_NS : NS;
          await waitFor(`the authorizer to deny ${what}`, async () => !(await allowed(verb, rule, ns)), 10_000);
          const resources = rule.resources;
          const matches = (line: string) => resources.some((res) =>
            line.includes(`cannot ${verb} resource "${res}"`)
            || (verb === 'watch' && new RegExp(`^watch ${KIND_OF[res]}s: 403`).test(line))
            // OwnerReferencesPermissionEnforcement names the check, not the resource
            || (res.endsWith('/finalizers') && line.includes('cannot set blockOwnerDeletion if an ownerReference refers to a resource you can\'t set finalizers on')));
          const r = await cycle(matches);
          expect(r.forbidden.filter(matches), `403s seen: ${JSON.stringify(r.forbidden)}`).not.toEqual([]);
        });
      }
    });
  }

  afterAll(async () => {
    await applyRoles();
  });
});
