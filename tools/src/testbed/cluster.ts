/**
 * `pnpm cluster up|down|status`: the seed and the shoot cluster of the test bed (see config.ts).
 *
 * up: binaries (built from their Go modules when not cached) and images (built when missing) →
 * networks → PKI → the seed (control plane, node, DNS) → the LoadBalancer allocator → the seed's entry
 * point (the reversed-vpn chart's sni-proxy, with static routes for the shoot's API server) → the shoot's
 * control plane as pods in the seed → the shoot node, whose kubelet reaches its API server only
 * through the entry point. down: daemons, then every container (through the node's cgroups and the
 * shims, which outlive containerd), mounts, namespaces, files: nothing is left.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureHelm } from '../helm.js';
import { REPO_ROOT } from '../lab/paths.js';
import { run, sleep, waitFor } from '../lab/sh.js';
import { BIN_DIR, DATA, IMAGES, K8S_VERSION, NODES, RUN, SHOOT, SNI_PROXY, cgroupRoot, containerdSock, kubeconfigPath, nodeDir, type NodeName, type NodeSpec } from './config.js';
import { alive, logFile, readState, startDaemon, stopDaemon, updateState, type DaemonRecord } from './daemons.js';
import { startSeedControlPlane, startSeedControllers, shootControlPlane, shootKubernetesEndpoints } from './control-plane.js';
import { ensureTestbedImages, importImages, seedImages, shootImages } from './images.js';
import { apply, getJson, kubectl, waitApiReady, waitNodeReady, waitPodsReady } from './kubectl.js';
import { networkDown, networkUp } from './network.js';
import { CORE_DNS_RBAC, publicHostsFile, startContainerd, startCoreDns, startKubeProxy, startKubelet } from './node.js';
import { createClusterPki, kubeconfig, pkiDir, writeClusterPki, type ClusterPki } from './pki.js';

export type Log = (line: string) => void;

const pem = (cluster: NodeName, name: string) => readFileSync(join(pkiDir(cluster), name), 'utf8');
const pair = (cluster: NodeName, name: string) => ({ certPem: pem(cluster, `${name}.crt`), keyPem: pem(cluster, `${name}.key`) });

async function preflight(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the test bed needs root (network namespaces, containerd, kubelet)');
  const missing: string[] = [];
  for (const t of ['nsenter', 'containerd', 'ctr', 'runc', 'podman', 'iptables', 'nft', 'conntrack', 'ip']) {
    if ((await run(['sh', '-c', `command -v ${t}`], { allowFail: true })).code !== 0) missing.push(t);
  }
  if (!existsSync('/usr/lib/cni/bridge')) missing.push('containernetworking-plugins (/usr/lib/cni/bridge)');
  if (missing.length) throw new Error(`missing: ${missing.join(', ')} (bash tools/setup.sh installs them)`);
  // every kubelet, containerd and CoreDNS watches files; the default of 128 instances is too few for two clusters
  try {
    if (Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8')) < 1024) writeFileSync('/proc/sys/fs/inotify/max_user_instances', '1024');
  } catch {
    /* a later "too many open files" from a watcher says why */
  }
}

async function ensureBinaries(log: Log): Promise<void> {
  log(`Kubernetes ${K8S_VERSION} binaries (built from their Go modules when not cached)`);
  await run(['bash', join(REPO_ROOT, 'tools', 'testbed', 'build-binaries.sh')], { timeoutMs: 3_600_000 });
}

function writeKubeconfigs(cluster: NodeName, p: ClusterPki, adminServer: string, tlsServerName?: string): void {
  writeFileSync(kubeconfigPath(cluster), kubeconfig({ server: adminServer, caPem: p.ca.certPem, user: p.admin, name: `rvtb-${cluster}`, ...(tlsServerName ? { tlsServerName } : {}) }), { mode: 0o600 });
}

/** Where the shoot's clients on its node reach their API server: the entry point's address, by SNI. */
function shootApiViaEntry(entryIp: string) {
  return { server: `https://${entryIp}:443`, tlsServerName: SHOOT.apiHost };
}

async function seedUp(log: Log): Promise<void> {
  const n = NODES.seed;
  const dir = nodeDir('seed');
  mkdirSync(dir, { recursive: true });
  const local = `https://127.0.0.1:6443`;
  const kc = (user: string) => kubeconfig({ server: local, caPem: pem('seed', 'ca.crt'), user: pair('seed', user) });
  writeFileSync(join(dir, 'kcm.kubeconfig'), kc('controllerManager'));
  writeFileSync(join(dir, 'scheduler.kubeconfig'), kc('scheduler'));
  log('seed: etcd and kube-apiserver');
  await startSeedControlPlane();
  await waitApiReady('seed');
  log('seed: kube-controller-manager, kube-scheduler');
  await startSeedControllers();
  await nodeUp(n, kc, seedImages(), log);
}

/** A node of either cluster: containerd with its images, kubelet, kube-proxy and CoreDNS, until the node is Ready. */
async function nodeUp(n: NodeSpec, kc: (user: string) => string, images: string[], log: Log, extra?: () => Promise<void>): Promise<void> {
  await apply(n.name, CORE_DNS_RBAC);
  log(`${n.name}: containerd`);
  await startContainerd(n);
  await importImages(n, images, log);
  log(`${n.name}: kubelet, kube-proxy, CoreDNS${n.name === 'shoot' ? ', apiserver-proxy (all through the seed\'s entry point)' : ''}`);
  await startKubelet({ node: n, kubeconfig: kc('node') });
  await startKubeProxy(n, kc('kubeProxy'));
  await startCoreDns(n, kc('coredns'));
  await extra?.();
  await waitNodeReady(n.name, n.nodeName);
}

/** The seed's entry point: the reversed-vpn chart's sni-proxy, with static routes to the shoot's API server. */
async function entryPointUp(log: Log): Promise<string> {
  const helm = await ensureHelm();
  log(`seed: helm install ${SNI_PROXY.release} (sni-proxy) in ${SNI_PROXY.namespace}`);
  const values = {
    'sni-proxy': {
      enabled: true,
      // one replica: two control planes, two nodes and the VPN share 2 cores
      replicas: 1,
      routes: {
        sni: { [SHOOT.apiHost]: `kube-apiserver.${SHOOT.namespace}.svc.cluster.local:443` },
        connect: { [`outbound|443||kube-apiserver.${SHOOT.namespace}.svc.cluster.local`]: `kube-apiserver.${SHOOT.namespace}.svc.cluster.local:443` },
      },
    },
  };
  const vf = join(DATA, 'entry-point-values.json');
  writeFileSync(vf, JSON.stringify(values, null, 2));
  await run([helm, 'upgrade', '--install', SNI_PROXY.release, join(REPO_ROOT, 'charts', 'reversed-vpn'), '-n', SNI_PROXY.namespace, '--create-namespace', '-f', vf, '--kubeconfig', kubeconfigPath('seed'), '--wait', '--timeout', '5m'], { timeoutMs: 400_000 });
  const ip = await waitFor('the entry point\'s LoadBalancer address', async () => {
    const l = await getJson<{ items: Array<{ spec: { type: string }; status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } } }> }>('seed', ['svc', '-n', SNI_PROXY.namespace]);
    return l?.items.find((s) => s.spec.type === 'LoadBalancer')?.status?.loadBalancer?.ingress?.[0]?.ip;
  }, 60_000, 500);
  // the lab's public DNS: the shoot's API name (and the VPN endpoint, the same name) → the entry point
  writeFileSync(publicHostsFile, `${ip} ${SHOOT.apiHost}\n`);
  updateState((s) => { s.facts.entryPoint = ip; });
  log(`seed: entry point at ${ip} (${SHOOT.apiHost})`);
  return ip;
}

async function shootControlPlaneUp(log: Log, entryIp: string): Promise<void> {
  log(`seed: the shoot's control plane in ${SHOOT.namespace} (etcd, kube-apiserver, kcm, scheduler)`);
  await apply('seed', shootControlPlane());
  await waitPodsReady('seed', SHOOT.namespace, 'app=rvtb-shoot-control-plane', { min: 4, timeoutMs: 300_000 });
  const via = shootApiViaEntry(entryIp);
  writeFileSync(kubeconfigPath('shoot'), kubeconfig({ server: via.server, tlsServerName: via.tlsServerName, caPem: pem('shoot', 'ca.crt'), user: pair('shoot', 'admin'), name: 'rvtb-shoot' }), { mode: 0o600 });
  await waitApiReady('shoot', 180_000);
  await apply('shoot', shootKubernetesEndpoints());
}

async function shootNodeUp(log: Log, entryIp: string): Promise<void> {
  const n = NODES.shoot;
  mkdirSync(nodeDir('shoot'), { recursive: true });
  const via = shootApiViaEntry(entryIp);
  const kc = (user: string) => kubeconfig({ server: via.server, tlsServerName: via.tlsServerName, caPem: pem('shoot', 'ca.crt'), user: pair('shoot', user) });
  await nodeUp(n, kc, shootImages(), log, async () => {
    await startDaemon({ name: 'shoot-apiserver-proxy', ns: n.ns, argv: [process.execPath, join(REPO_ROOT, 'tools', 'dist', 'testbed', 'apiserver-proxy.js'), `${SHOOT.advertiseAddress}:443`, `${entryIp}:8443`, SHOOT.namespace] });
  });
}

export async function up(log: Log, opts: { rebuildImages?: boolean } = {}): Promise<void> {
  const t0 = Date.now();
  const mark = (what: string) => updateState((s) => { s.facts[`${what}_seconds`] = ((Date.now() - t0) / 1000).toFixed(1); });
  await preflight();
  const existing = readState();
  if (existing && existing.daemons.some((d) => alive(d.pid))) throw new Error('the test bed is already up (pnpm cluster status; pnpm cluster down first)');
  if (existing || existsSync(`/run/netns/${NODES.seed.ns}`)) {
    log('leftovers of an earlier test bed found: removing them first');
    await down(log);
  }
  await ensureBinaries(log);
  await ensureTestbedImages(log, { rebuildApps: opts.rebuildImages ?? false });
  mark('binaries_images');
  updateState((s) => { s.createdAt = new Date().toISOString(); });
  log('networks: wan bridge, seed node, shoot node');
  await networkUp();
  log('certificates of both clusters');
  for (const c of ['seed', 'shoot'] as NodeName[]) {
    const p = await createClusterPki(c);
    writeClusterPki(c, p);
    if (c === 'seed') writeKubeconfigs('seed', p, `https://${NODES.seed.wanIp}:6443`);
  }
  writeFileSync(publicHostsFile, '');
  try {
    await seedUp(log);
    mark('seed_ready');
    await startDaemon({ name: 'lb-allocator', argv: [process.execPath, join(REPO_ROOT, 'tools', 'dist', 'testbed', 'lb-allocator.js')] });
    const entryIp = await entryPointUp(log);
    await shootControlPlaneUp(log, entryIp);
    mark('shoot_control_plane_ready');
    await shootNodeUp(log, entryIp);
    mark('shoot_ready');
  } catch (err) {
    log(`up failed: ${(err as Error).message}\n(logs in ${join(DATA, 'logs')}; pnpm cluster down removes everything)`);
    throw err;
  }
  log(`up in ${((Date.now() - t0) / 1000).toFixed(0)} s; KUBECONFIG=${kubeconfigPath('seed')} (seed), ${kubeconfigPath('shoot')} (shoot)`);
}

/** Every pid whose cgroup is under `root` in the given controller hierarchy. */
function cgroupPids(controller: string, root: string): number[] {
  const base = join('/sys/fs/cgroup', controller, root);
  const out: number[] = [];
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    try {
      out.push(...readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number));
    } catch {
      /* gone */
    }
    for (const e of entries) if (statSync(join(d, e), { throwIfNoEntry: false })?.isDirectory()) walk(join(d, e));
  };
  walk(base);
  return out;
}

function removeCgroupTree(dir: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) if (statSync(join(dir, e), { throwIfNoEntry: false })?.isDirectory()) removeCgroupTree(join(dir, e));
  try {
    rmdirSync(dir);
  } catch {
    /* busy or gone */
  }
}

/** Kills every container of a node (its cgroup subtree) and the node's shims, then removes the cgroups. */
async function killContainers(node: NodeName): Promise<number> {
  const root = cgroupRoot(node);
  const controllers = readdirSync('/sys/fs/cgroup').filter((c) => existsSync(join('/sys/fs/cgroup', c, root)));
  let killed = 0;
  for (let round = 0; round < 20; round++) {
    const pids = new Set(controllers.flatMap((c) => cgroupPids(c, root)));
    // the shims outlive containerd and are not in the pods' cgroups: find them by their socket
    for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        if (cmd.includes('containerd-shim') && cmd.includes(containerdSock(node))) pids.add(Number(p));
      } catch {
        /* gone */
      }
    }
    const live = [...pids].filter((p) => alive(p));
    if (live.length === 0) break;
    for (const p of live) {
      try {
        process.kill(p, 'SIGKILL');
        killed++;
      } catch {
        /* gone */
      }
    }
    await sleep(200);
  }
  for (const c of controllers) removeCgroupTree(join('/sys/fs/cgroup', c, root));
  return killed;
}

async function unmountUnder(prefixes: string[]): Promise<number> {
  const r = await run(['findmnt', '-rn', '-o', 'TARGET'], { allowFail: true });
  const targets = r.stdout.split('\n').map((l) => l.replace(/\\x20/g, ' ')).filter((t) => prefixes.some((p) => t === p || t.startsWith(`${p}/`)));
  // deepest first
  targets.sort((a, b) => b.length - a.length);
  for (const t of targets) {
    if ((await run(['umount', t], { allowFail: true })).code !== 0) await run(['umount', '-l', t], { allowFail: true });
  }
  return targets.length;
}

export async function down(log: Log): Promise<void> {
  const state = readState();
  const order = ['lb-allocator', 'shoot-apiserver-proxy', 'shoot-kubelet', 'seed-kubelet', 'shoot-kube-proxy', 'seed-kube-proxy', 'shoot-coredns', 'seed-coredns',
    'seed-kube-scheduler', 'seed-kube-controller-manager'];
  const daemons: DaemonRecord[] = state?.daemons ?? [];
  const rank = (d: DaemonRecord) => {
    const i = order.indexOf(d.name);
    return i >= 0 ? i : d.name.endsWith('containerd') ? 100 : d.name.endsWith('kube-apiserver') ? 101 : 102;
  };
  // the kubelets first (they would restart containers), then the containers, then containerd and the control plane
  const sorted = [...daemons].sort((a, b) => rank(a) - rank(b));
  for (const d of sorted.filter((x) => rank(x) < 100)) await stopDaemon(d);
  let killed = 0;
  for (const node of ['shoot', 'seed'] as NodeName[]) killed += await killContainers(node);
  for (const d of sorted.filter((x) => rank(x) >= 100)) await stopDaemon(d);
  // anything of ours still running that the state file missed (a killed `up`)
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if ((cmd.includes(DATA) || cmd.includes(RUN) || cmd.includes('testbed/lb-allocator.js') || cmd.includes('testbed/apiserver-proxy.js')) && Number(p) !== process.pid) {
        process.kill(Number(p), 'SIGKILL');
        killed++;
      }
    } catch {
      /* gone */
    }
  }
  const unmounted = await unmountUnder([DATA, RUN]);
  const removed = await networkDown();
  rmSync(DATA, { recursive: true, force: true });
  rmSync(RUN, { recursive: true, force: true });
  log(`down: ${daemons.length} daemons stopped, ${killed} container processes killed, ${unmounted} mounts removed, ${removed.length ? removed.join(', ') : 'no namespaces'} removed`);
}

/** Re-imports the app images into both nodes (after `pnpm images`); running pods keep theirs until restarted. */
export async function loadImages(log: Log): Promise<void> {
  await importImages(NODES.seed, seedImages(), log);
  await importImages(NODES.shoot, shootImages(), log);
}

export interface Status {
  up: boolean;
  daemons: Array<{ name: string; pid: number; alive: boolean; log: string }>;
  nodes: Record<string, string>;
  entryPoint?: string;
  facts: Record<string, string>;
}

export async function status(): Promise<Status> {
  const s = readState();
  const daemons = (s?.daemons ?? []).map((d) => ({ name: d.name, pid: d.pid, alive: alive(d.pid), log: logFile(d.name) }));
  const nodes: Record<string, string> = {};
  for (const c of ['seed', 'shoot'] as NodeName[]) {
    if (!existsSync(kubeconfigPath(c))) continue;
    const n = await getJson<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(c, ['node', NODES[c].nodeName]).catch(() => undefined);
    nodes[c] = n ? (n.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True' ? 'Ready' : 'NotReady') : 'unreachable';
  }
  return { up: daemons.length > 0 && daemons.every((d) => d.alive), daemons, nodes, ...(s?.facts.entryPoint ? { entryPoint: s.facts.entryPoint } : {}), facts: s?.facts ?? {} };
}

export { BIN_DIR, IMAGES, kubectl };
