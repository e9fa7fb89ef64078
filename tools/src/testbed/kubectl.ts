/** kubectl (built from the same Kubernetes release) against one of the test clusters. */
import { join } from 'node:path';
import { run, waitFor, type RunResult } from '../lab/sh.js';
import { BIN_DIR, kubeconfigPath, type NodeName } from './config.js';

export const KUBECTL = join(BIN_DIR, 'kubectl');

export function kubectl(cluster: NodeName, args: string[], opts: { input?: string; allowFail?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return run([KUBECTL, `--kubeconfig=${kubeconfigPath(cluster)}`, ...args], { timeoutMs: opts.timeoutMs ?? 120_000, allowFail: opts.allowFail, ...(opts.input !== undefined ? { input: opts.input } : {}), env: opts.env ?? process.env });
}

/** Server-side apply of objects (JSON), as the test bed's own field manager. */
export async function apply(cluster: NodeName, objects: unknown[]): Promise<void> {
  await kubectl(cluster, ['apply', '--server-side', '--force-conflicts', '--field-manager=rvtb', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });
}

export async function getJson<T = Record<string, unknown>>(cluster: NodeName, args: string[]): Promise<T | undefined> {
  const r = await kubectl(cluster, ['get', ...args, '-o', 'json'], { allowFail: true });
  if (r.code !== 0) return undefined;
  return JSON.parse(r.stdout) as T;
}

export async function waitApiReady(cluster: NodeName, timeoutMs = 120_000): Promise<void> {
  await waitFor(`the ${cluster} API server (/readyz)`, async () => (await kubectl(cluster, ['get', '--raw=/readyz'], { allowFail: true, timeoutMs: 10_000 })).stdout.trim() === 'ok', timeoutMs, 500);
}

export async function waitNodeReady(cluster: NodeName, node: string, timeoutMs = 180_000): Promise<void> {
  await waitFor(`node ${node} Ready`, async () => {
    const n = await getJson<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(cluster, ['node', node]);
    return n?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  }, timeoutMs, 1000);
}

/** Waits until every pod matching the selector in the namespace is Ready (and there is at least `min`). */
export async function waitPodsReady(cluster: NodeName, namespace: string, selector: string, opts: { min?: number; timeoutMs?: number } = {}): Promise<void> {
  await waitFor(`pods ${selector} in ${cluster}/${namespace} Ready`, async () => {
    const l = await getJson<{ items: Array<{ metadata: { deletionTimestamp?: string }; status?: { conditions?: Array<{ type: string; status: string }> } }> }>(cluster, ['pods', '-n', namespace, '-l', selector]);
    const pods = (l?.items ?? []).filter((p) => !p.metadata.deletionTimestamp);
    return pods.length >= (opts.min ?? 1) && pods.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  }, opts.timeoutMs ?? 180_000, 1000);
}
