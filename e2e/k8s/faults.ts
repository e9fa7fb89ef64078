/**
 * Faults injected into the running VPN on the test bed, and what the suites read back: the seed
 * server's tunnel counters (through the seed API server's pod proxy), kill -9 of a container's main
 * process through its node's containerd, and the shoot's inbound firewall.
 */
import { run } from '@rvpn/tools';
import { NODES, SHOOT } from '@rvpn/tools/testbed';
import { getJson, k, type Cluster } from './harness.js';

/** A Prometheus counter or gauge (summed over label sets) from a pod's /metrics on 15000. */
export async function podMetric(cluster: Cluster, namespace: string, pod: string, name: string, port = 15000): Promise<number> {
  const r = await k(cluster, ['get', '--raw', `/api/v1/namespaces/${namespace}/pods/${pod}:${port}/proxy/metrics`], { allowFail: true, timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`metrics of ${pod}: ${r.stderr.trim()}`);
  let sum = 0;
  let found = false;
  for (const line of r.stdout.split('\n')) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+-]+)$`).exec(line);
    if (m) {
      sum += Number(m[2]);
      found = true;
    }
  }
  if (!found) throw new Error(`${pod} exports no ${name}`);
  return sum;
}

interface PodJson { metadata: { name: string; uid: string }; spec: { nodeName: string }; status: { containerStatuses?: Array<{ name: string; containerID?: string; restartCount: number }> } }

/** kill -9 of a container's main process (a crash, not a deletion): through the node's containerd. */
export async function killMainProcess(cluster: Cluster, namespace: string, pod: string, container: string): Promise<number> {
  const p = await getJson<PodJson>(cluster, ['pod', pod, '-n', namespace]);
  const st = p?.status.containerStatuses?.find((c) => c.name === container);
  const id = st?.containerID?.replace(/^containerd:\/\//, '');
  if (!id) throw new Error(`no container ${container} in ${pod}`);
  const node = cluster === 'seed' ? 'seed' : 'shoot';
  await run(['ctr', '--address', `/run/rvtb/${node}/containerd.sock`, '--namespace', 'k8s.io', 'tasks', 'kill', '--signal', 'SIGKILL', id]);
  return st!.restartCount;
}

export async function restartCount(cluster: Cluster, namespace: string, pod: string, container: string): Promise<number> {
  const p = await getJson<PodJson>(cluster, ['pod', pod, '-n', namespace]);
  return p?.status.containerStatuses?.find((c) => c.name === container)?.restartCount ?? -1;
}

/** What the shoot node accepts from the wan: the accept rules of its inbound firewall (new connections). */
export async function shootInboundOpenings(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'exec', NODES.shoot.ns, 'nft', 'list', 'chain', 'inet', 'rvtb-fw', 'forward']);
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.includes('ct state new') && l.endsWith('accept'))
    .map((l) => /daddr ([0-9.]+) meta l4proto tcp ct original proto-dst (\d+)/.exec(l)).filter((m): m is RegExpExecArray => !!m).map((m) => `${m[1]}:${m[2]}`);
}

/** Whether a TCP connection from the seed node (or the wan) to the shoot opens within 3 s. */
export async function seedCanOpen(host: string, port: number): Promise<boolean> {
  const r = await run(['ip', 'netns', 'exec', NODES.seed.ns, 'timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`], { allowFail: true, timeoutMs: 10_000 });
  return r.code === 0;
}

export const SEED_NS = SHOOT.namespace;
