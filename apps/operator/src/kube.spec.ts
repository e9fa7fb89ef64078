/**
 * Credentials through client-node's KubeConfig: outside a cluster from $KUBECONFIG; in a pod from the
 * ServiceAccount files. The test bed's API server does not extend token lifetimes, so a client that
 * kept its first token would fail once it expires: client-node 1.4's in-cluster auth (FileAuth)
 * re-reads the token file when its copy is older than 60 s. Shown here with a revoked token and a
 * clock moved past the minute (only Date is faked; sockets and timers are real). Until then it sends
 * its old copy: the kubelet rotates at 80 % of a token's life, so in a pod that copy is still valid.
 */
import { mkdtemp, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Envtest } from '@rvpn/envtest';
import { Kube, loadKubeConfig, statusOf } from './kube.js';
import { OPERATOR_NS, SA, startSeed } from './testing/harness.js';

let env: Envtest;
beforeAll(async () => {
  env = await startSeed();
});
afterAll(async () => {
  await env?.stop();
});

async function boundToken(name: string): Promise<string> {
  const s = await env.request<{ metadata: { uid: string } }>('POST', `/api/v1/namespaces/${OPERATOR_NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name } });
  return env.createToken(SA, { boundObject: { kind: 'Secret', name, uid: s.body.metadata.uid } });
}

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
}

describe('credentials', () => {
  it('outside a cluster: $KUBECONFIG', async () => {
    const kc = withEnv({ KUBECONFIG: env.kubeconfigPath }, () => loadKubeConfig());
    expect(kc.getCurrentCluster()?.server).toBe(env.server);
    const ns = await new Kube(kc).get({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: OPERATOR_NS } });
    expect(ns?.metadata.name).toBe(OPERATOR_NS);
  });

  it('in a pod: a rotated ServiceAccount token is picked up from the file (re-read after 60 s); the old one is not kept', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rvpn-incluster-'));
    const dir = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'ca.crt'), env.caPem);
      await writeFile(join(dir, 'namespace'), OPERATOR_NS);
      await writeFile(join(dir, 'token'), await boundToken('pod-token-1'));
      const port = new URL(env.server).port;
      const kc = new KubeConfig();
      // the branch loadFromDefault takes in a pod, with the files under a test root
      withEnv({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }, () => kc.loadFromCluster(root));
      const kube = new Kube(kc);
      const read = () => kube.list('v1', 'ConfigMap', { namespace: OPERATOR_NS });
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
      await read();
      // the kubelet rotates the token (atomically, as its projected volume does); the old one is revoked
      await writeFile(join(dir, '.token.new'), await boundToken('pod-token-2'));
      await rename(join(dir, '.token.new'), join(dir, 'token'));
      await env.request('DELETE', `/api/v1/namespaces/${OPERATOR_NS}/secrets/pod-token-1`);
      vi.setSystemTime(Date.now() + 30_000);
      // still the client's copy of the revoked token: refused once the API server's token cache (10 s) lets go of it
      let status: number | undefined;
      for (let i = 0; i < 60 && status !== 401; i++) {
        status = statusOf(await read().then(() => undefined, (e: unknown) => e));
        if (status !== 401) await new Promise((r) => setTimeout(r, 500));
      }
      expect(status).toBe(401);
      vi.setSystemTime(Date.now() + 31_000); // older than 60 s: the file is read again
      await expect(read()).resolves.toBeInstanceOf(Array);
    } finally {
      vi.useRealTimers();
      await rm(root, { recursive: true, force: true });
    }
  });
});
