/**
 * The test API server itself: it refuses to start without the binaries (coded error, never a skip),
 * serves an admin and ServiceAccounts with RBAC, issues tokens that are not silently extended,
 * writes an audit log, installs CRDs, and stop() leaves nothing behind.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvtestBinariesMissingError, startEnvtest, type Envtest } from './index.js';

const alive = (pid: number | undefined) => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const jwtClaims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number; sub: string };

describe('envtest without binaries', () => {
  it('fails with RVPN_ERR_ENVTEST_BINARIES_MISSING naming the build script', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'rvpn-envtest-nobin-'));
    try {
      const err = await startEnvtest({ binDir: empty }).catch((e: unknown) => e);
      expect(EnvtestBinariesMissingError.is(err)).toBe(true);
      expect((err as Error).message).toContain('bash tools/testbed/build-binaries.sh');
      expect((err as { details: { missing: string[] } }).details.missing).toEqual(['etcd', 'kube-apiserver', 'kubectl'].map((b) => join(empty, b)));
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

describe('envtest', () => {
  let env: Envtest;
  beforeAll(async () => {
    env = await startEnvtest({ audit: true });
    await env.ensureNamespaces('team');
    await env.request('POST', '/api/v1/namespaces/team/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'robot' } });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('serves the admin on loopback with its own CA', async () => {
    expect(env.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await env.request<{ gitVersion: string }>('GET', '/version');
    expect(r.body.gitVersion).toMatch(/^v1\.\d+\.\d+/);
    const who = await env.kubectl(['auth', 'whoami', '-o', 'json']);
    expect(JSON.parse(who.stdout).status.userInfo).toMatchObject({ username: 'envtest-admin', groups: expect.arrayContaining(['system:masters']) });
  });

  it('authorizes with RBAC: a ServiceAccount (by token or impersonated) may do only what a binding grants', async () => {
    const viaToken = await env.serviceAccountKubeconfig({ namespace: 'team', name: 'robot' });
    const viaAs = await env.serviceAccountKubeconfig({ namespace: 'team', name: 'robot' }, { via: 'impersonation' });
    for (const kubeconfig of [viaToken, viaAs]) {
      const who = await env.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig });
      expect(JSON.parse(who.stdout).status.userInfo.username).toBe('system:serviceaccount:team:robot');
      expect((await env.kubectl(['-n', 'team', 'get', 'configmaps'], { kubeconfig })).stderr).toMatch(/forbidden/);
    }
    await env.request('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'read-cm' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['list'] }] });
    await env.request('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'robot' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-cm' }, subjects: [{ kind: 'ServiceAccount', name: 'robot', namespace: 'team' }] });
    for (const kubeconfig of [viaToken, viaAs]) {
      expect((await env.kubectl(['-n', 'team', 'get', 'configmaps'], { kubeconfig })).code).toBe(0);
    }
  });

  it('does not extend token lifetimes: a pod-bound token asked for 3607 s gets exactly that', async () => {
    // 3607 s pod-bound is what a kubelet asks for; with extension on, the API server would make it a year
    const pod = await env.request<{ metadata: { uid: string } }>('POST', '/api/v1/namespaces/team/pods', {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { serviceAccountName: 'robot', containers: [{ name: 'c', image: 'x' }] },
    });
    expect(pod.status).toBe(201);
    const token = await env.createToken({ namespace: 'team', name: 'robot' }, { expirationSeconds: 3607, boundObject: { kind: 'Pod', name: 'p', uid: pod.body.metadata.uid } });
    const c = jwtClaims(token);
    expect(c.sub).toBe('system:serviceaccount:team:robot');
    expect(c.exp - c.iat).toBe(3607);
  });

  it('writes every request to the audit log with user and verb', async () => {
    const kubeconfig = await env.serviceAccountKubeconfig({ namespace: 'team', name: 'robot' });
    await env.kubectl(['-n', 'team', 'create', 'configmap', 'written-by-robot'], { kubeconfig });
    const events = await env.auditEvents();
    const mine = events.filter((e) => e.user.username === 'system:serviceaccount:team:robot');
    expect(mine.some((e) => e.verb === 'create' && e.objectRef?.resource === 'configmaps' && e.responseStatus?.code === 403)).toBe(true);
  });

  it('installs a CRD and serves it', async () => {
    await env.installCrds([{
      apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'widgets.example.dev' },
      spec: { group: 'example.dev', scope: 'Namespaced', names: { kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } } } } }] },
    }]);
    const r = await env.request('POST', '/apis/example.dev/v1/namespaces/team/widgets', { apiVersion: 'example.dev/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 'big' } });
    expect(r.status).toBe(422); // validated against the schema by the real server
  });
});

describe('envtest stop', () => {
  it('kills etcd and kube-apiserver and removes its dir, also when called twice', async () => {
    const env = await startEnvtest();
    const pids = [env.pids.etcd, env.pids.apiserver];
    expect(pids.every(alive)).toBe(true);
    await Promise.all([env.stop(), env.stop()]);
    expect(existsSync(env.dir)).toBe(false);
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
  });
});

describe('envtest reaper', () => {
  it('cleans up when the process that started it dies without stop()', async () => {
    const { spawn } = await import('node:child_process');
    const parent = spawn('sleep', ['600']);
    const env = await startEnvtest({ watchPid: parent.pid });
    const pids = [env.pids.etcd, env.pids.apiserver];
    expect(pids.every(alive)).toBe(true);
    parent.kill('SIGKILL');
    for (let i = 0; i < 100 && (existsSync(env.dir) || pids.some(alive)); i++) await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(env.dir)).toBe(false);
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
    await env.stop(); // nothing left to do, and no error
  });
});
