/**
 * What the end-to-end suites on the test bed share: kubectl and helm against the seed and the shoot,
 * the record of every check (bench-out/k8s-e2e.json: pass/fail and durations), and timing helpers.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { deterministicSha256, REPO_ROOT, run, sleep, type RunResult } from '@rvpn/tools';
import { ensureHelm, kubeconfigPath, KUBECTL, SHOOT } from '@rvpn/tools/testbed';

export type Cluster = 'seed' | 'shoot';
export const RESULTS = join(REPO_ROOT, 'bench-out', 'k8s-e2e.jsonl');

export function k(cluster: Cluster, args: string[], opts: { input?: string; allowFail?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return run([KUBECTL, `--kubeconfig=${kubeconfigPath(cluster)}`, ...args], { timeoutMs: opts.timeoutMs ?? 120_000, allowFail: opts.allowFail, ...(opts.input !== undefined ? { input: opts.input } : {}), env: { ...process.env, ...opts.env } });
}

export async function helm(cluster: Cluster, args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  const bin = await ensureHelm();
  return run([bin, '--kubeconfig', kubeconfigPath(cluster), ...args], { timeoutMs: opts.timeoutMs ?? 600_000, allowFail: opts.allowFail });
}

/**
 * `helm test` of a release; on failure the error carries the test pods' logs (helm's --logs) and their
 * status, so a red CI run says why the probe failed rather than only that it did.
 */
export async function helmTest(cluster: Cluster, release: string, namespace: string): Promise<RunResult> {
  const r = await helm(cluster, ['test', release, '-n', namespace, '--timeout', '2m', '--logs'], { allowFail: true });
  if (r.code === 0) return r;
  const pods = await k(cluster, ['get', 'pods', '-n', namespace, '-l', 'app.kubernetes.io/component=test', '-o', 'wide'], { allowFail: true });
  const events = await k(cluster, ['get', 'events', '-n', namespace, '--field-selector', 'involvedObject.kind=Pod', '--sort-by=.lastTimestamp'], { allowFail: true });
  throw new Error(`helm test ${release} failed (${r.code}):\n${r.stdout}\n${r.stderr}\n${pods.stdout}\n${events.stdout.split('\n').slice(-15).join('\n')}`);
}

export async function getJson<T>(cluster: Cluster, args: string[]): Promise<T | undefined> {
  const r = await k(cluster, ['get', ...args, '-o', 'json'], { allowFail: true });
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

export async function applyObjects(cluster: Cluster, objects: unknown[]): Promise<void> {
  await k(cluster, ['apply', '--server-side', '--force-conflicts', '--field-manager=rvtb-e2e', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });
}

/** One recorded check: its name, whether it passed, how long it took and what it measured. */
export interface CheckRecord {
  suite: string;
  check: string;
  ok: boolean;
  ms: number;
  at: string;
  details?: Record<string, unknown>;
  error?: string;
}

/** Runs fn, records the outcome (also when it throws) and returns its value. */
export async function check<T>(suite: string, name: string, fn: () => Promise<T>, details?: (v: T) => Record<string, unknown>): Promise<T> {
  const t0 = Date.now();
  mkdirSync(join(REPO_ROOT, 'bench-out'), { recursive: true });
  try {
    const v = await fn();
    appendFileSync(RESULTS, `${JSON.stringify({ suite, check: name, ok: true, ms: Date.now() - t0, at: new Date().toISOString(), ...(details ? { details: details(v) } : {}) } satisfies CheckRecord)}\n`);
    return v;
  } catch (err) {
    appendFileSync(RESULTS, `${JSON.stringify({ suite, check: name, ok: false, ms: Date.now() - t0, at: new Date().toISOString(), error: (err as Error).message.slice(0, 2000) } satisfies CheckRecord)}\n`);
    throw err;
  }
}

/**
 * Records every test of the calling describe block as a row too (a failure outside a check() shows).
 * A failed test also leaves the state of the VPN behind it (diagnose()), printed and in bench-out.
 */
export function recordTests(suite: string): void {
  afterEach(async (ctx) => {
    const r = ctx.task.result;
    const failed = r?.state === 'fail';
    appendFileSync(RESULTS, `${JSON.stringify({ suite, check: `test: ${ctx.task.name}`, ok: !failed, ms: Math.round(r?.duration ?? 0), at: new Date().toISOString(), ...(failed ? { error: (r?.errors?.[0]?.message ?? 'failed').slice(0, 2000) } : {}) } satisfies CheckRecord)}\n`);
    if (failed) {
      const text = await diagnose();
      const file = join(REPO_ROOT, 'bench-out', `k8s-diagnostics-${suite}-${Date.now()}.txt`);
      writeFileSync(file, text);
      console.error(`--- diagnostics after the failed test "${ctx.task.name}" (all of it in ${file}) ---\n${text.split('\n').slice(-150).join('\n')}`);
    }
  }, 120_000);
}

/**
 * What a failed test leaves to read: the pods of the shoot's control plane and of the VPN on both
 * sides, the recent events of the control-plane namespace, and the last log lines of every VPN
 * container (path-controllers included) and of the kube-apiservers.
 */
export async function diagnose(): Promise<string> {
  const NS = SHOOT.namespace;
  const out: string[] = [];
  const add = async (title: string, cluster: Cluster, args: string[]) => {
    const r = await k(cluster, args, { allowFail: true, timeoutMs: 20_000 });
    out.push(`## ${cluster}: ${title}`, (r.stdout + r.stderr).trim(), '');
  };
  await add('pods', 'seed', ['get', 'pods', '-n', NS, '-o', 'wide']);
  await add('vpn-shoot pods', 'shoot', ['get', 'pods', '-n', 'kube-system', '-l', 'app.kubernetes.io/name=vpn-shoot', '-o', 'wide']);
  await add('events', 'seed', ['get', 'events', '-n', NS, '--sort-by=.lastTimestamp']);
  const names = async (cluster: Cluster, ns: string) => (await k(cluster, ['get', 'pods', '-n', ns, '-o', 'jsonpath={range .items[*]}{.metadata.name}{" "}{.spec.containers[*].name}{"\\n"}{end}'], { allowFail: true })).stdout.split('\n').filter(Boolean);
  for (const [cluster, ns] of [['seed', NS], ['shoot', 'kube-system']] as const) {
    for (const line of await names(cluster, ns)) {
      const [pod, ...containers] = line.split(' ');
      if (!/^(vpn-|kube-apiserver)/.test(pod!)) continue;
      for (const c of containers) await add(`logs ${pod}/${c}`, cluster, ['logs', '-n', ns, pod!, '-c', c, '--tail=25']);
    }
  }
  return out.join('\n');
}

export function readResults(): CheckRecord[] {
  if (!existsSync(RESULTS)) return [];
  return readFileSync(RESULTS, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as CheckRecord);
}

/** Polls fn (true = done) and returns the milliseconds it took; throws after timeoutMs with the last error. */
export async function timeUntil(what: string, fn: () => Promise<boolean>, timeoutMs = 120_000, everyMs = 250): Promise<number> {
  const t0 = Date.now();
  let last = '';
  for (;;) {
    try {
      if (await fn()) return Date.now() - t0;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}`);
    await sleep(everyMs);
  }
}

/** `kubectl logs` of a pod in the shoot: the shoot's API server (in the seed) dials its kubelet through the VPN. */
export async function shootLogs(pod: string, namespace: string, tail = 3): Promise<RunResult> {
  return k('shoot', ['logs', '-n', namespace, pod, `--tail=${tail}`, '--request-timeout=20s'], { allowFail: true, timeoutMs: 30_000 });
}

export async function podName(cluster: Cluster, namespace: string, selector: string): Promise<string> {
  const l = await getJson<{ items: Array<{ metadata: { name: string; deletionTimestamp?: string }; status?: { phase?: string } }> }>(cluster, ['pods', '-n', namespace, '-l', selector]);
  const p = l?.items.find((x) => !x.metadata.deletionTimestamp && x.status?.phase === 'Running');
  if (!p) throw new Error(`no running pod ${selector} in ${cluster}/${namespace}`);
  return p.metadata.name;
}

/** True once a pod of `selector` other than `replaced` runs and is Ready (the replacement of a deleted pod took over). */
export async function replacementReady(cluster: Cluster, namespace: string, selector: string, replaced: string): Promise<boolean> {
  const l = await getJson<{ items: Array<{ metadata: { name: string; deletionTimestamp?: string }; status?: { phase?: string; conditions?: Array<{ type: string; status: string }> } }> }>(cluster, ['pods', '-n', namespace, '-l', selector]);
  return (l?.items ?? []).some((p) => p.metadata.name !== replaced && !p.metadata.deletionTimestamp && p.status?.phase === 'Running'
    && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
}

/**
 * `kubectl port-forward` to a pod in the shoot and a download of `bytes` from it, compared by checksum
 * with the pattern the workload serves. Returns the throughput.
 */
export async function portForwardDownload(namespace: string, pod: string, bytes: number): Promise<{ mbps: number; ms: number; sha256: string }> {
  const localPort = 20000 + Math.floor(Math.random() * 20000);
  const pf = spawn(KUBECTL, [`--kubeconfig=${kubeconfigPath('shoot')}`, 'port-forward', '-n', namespace, `pod/${pod}`, `${localPort}:8080`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  pf.stdout.on('data', (c: Buffer) => (out += c.toString()));
  pf.stderr.on('data', (c: Buffer) => (out += c.toString()));
  try {
    const t0 = Date.now();
    while (!out.includes('Forwarding from')) {
      if (pf.exitCode !== null || Date.now() - t0 > 30_000) throw new Error(`port-forward did not start: ${out}`);
      await sleep(100);
    }
    const start = Date.now();
    const hash = createHash('sha256');
    await new Promise<void>((resolve, reject) => {
      const c = spawn('curl', ['-sS', '--fail', '-m', '600', `http://127.0.0.1:${localPort}/bytes/${bytes}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      c.stdout.on('data', (d: Buffer) => hash.update(d));
      c.stderr.on('data', (d: Buffer) => (err += d.toString()));
      c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`curl through port-forward failed (${code}): ${err} ${out}`))));
    });
    const ms = Date.now() - start;
    const sha256 = hash.digest('hex');
    if (sha256 !== deterministicSha256(bytes)) throw new Error(`port-forward download of ${bytes} bytes has the wrong checksum`);
    return { mbps: (bytes * 8) / 1e6 / (ms / 1000), ms, sha256 };
  } finally {
    pf.kill('SIGTERM');
  }
}
