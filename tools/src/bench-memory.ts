/**
 * Idle memory of each app (part of `pnpm bench`; alone: `pnpm bench:memory`). Each app starts as the
 * lab starts it, alone in a namespace of an HA lab topology, with no peer: vpn-seed-server (non-HA)
 * listens with its TUN up, vpn-shoot (non-HA) and path-controller dial addresses that refuse and back
 * off, sni-proxy listens with an empty route table. Three samples a second apart (the median of each
 * figure) of /proc/<pid>/status (RssAnon, RssFile, RssShmem) and /proc/<pid>/smaps_rollup (Pss), beside
 * a bare `node -e 'setInterval(() => {}, 1000)'`: 10 s after the start (`startup_*`: V8's young
 * generation still has the size the start grew it to) and MEMORY_SETTLE_S after it (`idle_*`: by then
 * V8's memory reducer has run; it starts about 30 s into a quiet process and shrinks the young generation).
 *
 * Why RssAnon: most of a Node process's RSS is the node binary's file pages, shared by every process
 * on the node; what each process adds is its anonymous memory (heap, code space, malloc). Pss splits the
 * shared pages between the processes that map them, so it depends on what else runs.
 * Writes bench-out/idle-memory.json. Env: MEMORY_SETTLE_S (default 45); MEMORY_NODE_ARGS (node options
 * added to the shipped ones, space-separated, to try a flag before changing APP_NODE_ARGS).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, release, tmpdir } from 'node:os';
import { createCa, createShootPki, issueCertificate, writePkiFiles } from '@rvpn/pki';
import { HA_ADDR, Topology, type Role } from './lab/topology.js';
import { APP_ENV, appArgv, appProcessEnv, BUNDLED_APPS, REPO_ROOT } from './lab/paths.js';
import { sleep, spawnLogged, waitFor, type Spawned } from './lab/sh.js';
import { cpuSeconds, stopProcess } from './lab/procs.js';
import { envNumber } from './env.js';
import { teardownOnce } from './lab/stop.js';
import { median, round } from './stats.js';

/** The apps the target is for: the four long-running ones, each started from its bundle. */
export const MEMORY_APPS = BUNDLED_APPS;
export type MemoryApp = (typeof MEMORY_APPS)[number];

/** The issue's target: what each process adds over a bare node, in anonymous memory. */
export const IDLE_RSS_ANON_TARGET_MIB = 20;

export interface ProcMemory {
  rss_anon_mib: number;
  rss_file_mib: number;
  rss_shmem_mib: number;
  pss_mib: number;
}

const kib = (text: string, field: string): number => {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!m) throw new Error(`no ${field} in /proc`);
  return Number(m[1]);
};

/** One reading of a process's memory from /proc (Linux). */
export function readProcMemory(pid: number): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return {
    rss_anon_mib: kib(status, 'RssAnon') / 1024,
    rss_file_mib: kib(status, 'RssFile') / 1024,
    rss_shmem_mib: kib(status, 'RssShmem') / 1024,
    pss_mib: kib(rollup, 'Pss') / 1024,
  };
}

const STARTUP_S = 10;


async function sample(pid: number, n = 3): Promise<ProcMemory> {
  const xs: ProcMemory[] = [];
  for (let i = 0; i < n; i++) {
    if (i) await sleep(1000);
    xs.push(readProcMemory(pid));
  }
  const pick = (k: keyof ProcMemory) => round(median(xs.map((x) => x[k])), 1);
  return { rss_anon_mib: pick('rss_anon_mib'), rss_file_mib: pick('rss_file_mib'), rss_shmem_mib: pick('rss_shmem_mib'), pss_mib: pick('pss_mib') };
}

const EXTRA_ARGS = (process.env.MEMORY_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const withExtra = (argv: string[]) => [argv[0]!, ...argv.slice(1, -1), ...EXTRA_ARGS, argv.at(-1)!];

const WHERE: Record<MemoryApp, Role> = { 'vpn-seed-server': 'srv0', 'vpn-shoot': 'vsh0', 'sni-proxy': 'lb', 'path-controller': 'kapi0' };

export const MEMORY_CONFIGURATION: Record<MemoryApp, string> = {
  'vpn-seed-server': 'non-HA, tunnel listener, CONNECT proxy and TUN up, no shoot attached',
  'vpn-shoot': 'non-HA, dialing an endpoint that refuses (backing off)',
  'sni-proxy': 'listening on 443/8443/8132, empty route table',
  'path-controller': 'bond TAP up, both seed servers refusing (backing off), local CONNECT proxy up',
};

export interface IdleMemoryResult {
  benchmark: 'idle-memory';
  date: string;
  command: string;
  machine: { cpus: number; cpu_model: string | undefined; kernel: string; node: string };
  settle_s: number;
  node_args: Record<MemoryApp, string[]>;
  /** The environment every app runs with besides its configuration (lab/paths.ts APP_ENV, the images' ENV). */
  app_env: Readonly<Record<string, string>>;
  configuration: Record<MemoryApp, string>;
  target_idle_rss_anon_mib: number;
  baseline_node: ProcMemory;
  idle_rss_anon_mib: Record<MemoryApp, number>;
  idle_rss_file_mib: Record<MemoryApp, number>;
  idle_rss_shmem_mib: Record<MemoryApp, number>;
  idle_pss_mib: Record<MemoryApp, number>;
  /** RssAnon minus the bare node's. */
  idle_rss_anon_added_mib: Record<MemoryApp, number>;
  /** The same STARTUP_S after the start. */
  startup_s: number;
  startup_baseline_node: ProcMemory;
  startup_rss_anon_mib: Record<MemoryApp, number>;
  startup_pss_mib: Record<MemoryApp, number>;
  /**
   * CPU each process used while idle, from STARTUP_S to settle_s (utime + stime from /proc), in percent
   * of one CPU: what its timers cost (keepalive, metrics' event-loop monitor, back-off, probes).
   */
  idle_cpu_pct: Record<'baseline_node' | MemoryApp, number>;
}

/** MEMORY_SETTLE_S: when the second sample is taken, in seconds after the start (at least the first's, STARTUP_S). */
export function memorySettleS(env: NodeJS.ProcessEnv = process.env): number {
  return envNumber('MEMORY_SETTLE_S', 45, { min: STARTUP_S }, env);
}

/** `signal` (bench.ts aborts it on SIGINT/SIGTERM/SIGHUP or a closed output): the lab goes and the process exits 130. */
export async function runIdleMemoryBench(opts: { log?: (l: string) => void; settleS?: number; signal?: AbortSignal } = {}): Promise<{ file: string; result: IdleMemoryResult }> {
  const log = opts.log ?? (() => undefined);
  const settleS = opts.settleS ?? memorySettleS();
  const topo = new Topology(undefined, { ha: true });
  const dir = mkdtempSync(join(tmpdir(), `${topo.prefix}-`));
  const procs = new Map<string, Spawned>();
  const file = (n: string) => join(dir, n);
  const teardown = teardownOnce(opts.signal, async () => {
    // SIGTERM: the apps remove their TUN, routes and nft tables as in a pod's shutdown
    await Promise.all([...procs.values()].map((p) => stopProcess(p)));
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    log(`creating topology ${topo.prefix} (namespaces only; no peers are started)`);
    await topo.create();
    topo.trackWorkDir(dir);
    const namespace = 'shoot--mem--local';
    const pki = await createShootPki({ namespace });
    const proxyCa = await createCa({ commonName: 'rvpn-mem-proxy' });
    const proxy = await issueCertificate(proxyCa, { commonName: 'vpn-seed-server', usage: 'server', dnsNames: ['localhost'] });
    const seedClient = await issueCertificate(pki.ca, { commonName: 'vpn-seed-client', usage: 'client', uris: [`urn:rvpn:shoot:${namespace}`] });
    await writePkiFiles(dir, {
      'ca.crt': pki.ca.certPem, 'server.crt': pki.server.certPem, 'server.key': pki.server.keyPem,
      'shoot-client.crt': pki.shootClient.certPem, 'shoot-client.key': pki.shootClient.keyPem,
      'seed-client.crt': seedClient.certPem, 'seed-client.key': seedClient.keyPem,
      'proxy-server.crt': proxy.certPem, 'proxy-server.key': proxy.keyPem,
    });
    writeFileSync(file('routes.json'), JSON.stringify({ sni: {}, connect: {} }));
    const net = { NAMESPACE: namespace, TLS_CA_FILE: file('ca.crt'), SEED_POD_NETWORK: '10.1.0.0/24', SHOOT_SERVICE_NETWORKS: '100.64.0.0/13', SHOOT_POD_NETWORKS: '100.96.0.0/11', SHOOT_NODE_NETWORKS: '10.250.0.0/16' };
    const env: Record<MemoryApp, Record<string, string>> = {
      'vpn-seed-server': { ...net, POD_NAME: 'vpn-seed-server-7d9c', TLS_CERT_FILE: file('server.crt'), TLS_KEY_FILE: file('server.key'), PROXY_TLS_CERT_FILE: file('proxy-server.crt'), PROXY_TLS_KEY_FILE: file('proxy-server.key') },
      'vpn-shoot': { ...net, POD_NAME: 'vpn-shoot-5f6b', ENDPOINT: '127.0.0.1', OPENVPN_PORT: '8132', EGRESS_INTERFACE: 'eth0', TLS_CERT_FILE: file('shoot-client.crt'), TLS_KEY_FILE: file('shoot-client.key') },
      'sni-proxy': { ROUTES_FILE: file('routes.json') },
      'path-controller': {
        ...net, IS_HA: 'true', POD_NAME: 'kube-apiserver-0', TLS_CERT_FILE: file('seed-client.crt'), TLS_KEY_FILE: file('seed-client.key'),
        SEED_SERVERS: '127.0.0.1:1194,127.0.0.1:1195', PROXY_LISTEN: `${HA_ADDR.kapi[0]}:9443`, PROXY_TLS_CERT_FILE: file('proxy-server.crt'), PROXY_TLS_KEY_FILE: file('proxy-server.key'),
      },
    };

    const base = spawnLogged([process.execPath, '-e', 'setInterval(() => {}, 1000)'], { logFile: file('baseline.log') });
    procs.set('baseline', base);
    topo.trackPid(base.pid);
    for (const app of MEMORY_APPS) {
      const argv = withExtra(appArgv(app));
      const p = spawnLogged(argv, { ns: topo.ns[WHERE[app]], env: appProcessEnv(env[app]), logFile: file(`${app}.log`) });
      procs.set(app, p);
      topo.trackPid(p.pid);
    }
    for (const app of MEMORY_APPS) {
      const p = procs.get(app)!;
      const started = waitFor(`${app} to start`, () => readFileSync(p.logFile, 'utf8').includes('"msg":"started"'), 20_000, 100);
      const first = await Promise.race([started.then(() => undefined), p.exited]);
      if (first) throw new Error(`${app} exited during start (code ${first.code}, signal ${first.signal}):\n${readFileSync(p.logFile, 'utf8').split('\n').slice(-20).join('\n')}`);
    }
    const t0 = Date.now();
    const sampleAll = async () => Object.fromEntries(await Promise.all(['baseline', ...MEMORY_APPS].map(async (n) => [n, await sample(procs.get(n)!.pid)] as const))) as Record<'baseline' | MemoryApp, ProcMemory>;
    log(`all started; sampling at ${STARTUP_S} s and ${settleS} s`);
    await sleep(STARTUP_S * 1000);
    const early = await sampleAll();
    const cpuOf = () => Object.fromEntries(['baseline', ...MEMORY_APPS].map((n) => [n, cpuSeconds(procs.get(n)!.pid)] as const));
    const cpu0 = cpuOf();
    const tCpu0 = performance.now();
    await sleep(Math.max(0, t0 + settleS * 1000 - Date.now()));
    const cpu1 = cpuOf();
    const cpuWindowS = (performance.now() - tCpu0) / 1000;
    const idleCpu = (n: string) => Math.round(((cpu1[n]! - cpu0[n]!) / cpuWindowS) * 10000) / 100;
    const m = await sampleAll();
    for (const app of MEMORY_APPS) {
      if (procs.get(app)!.child.exitCode !== null) throw new Error(`${app} exited while idle:\n${readFileSync(file(`${app}.log`), 'utf8').split('\n').slice(-20).join('\n')}`);
    }
    const per = (k: keyof ProcMemory) => Object.fromEntries(MEMORY_APPS.map((a) => [a, m[a][k]])) as Record<MemoryApp, number>;
    const result: IdleMemoryResult = {
      benchmark: 'idle-memory',
      date: new Date().toISOString(),
      command: 'pnpm bench:memory',
      machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, kernel: release(), node: process.version },
      settle_s: settleS,
      node_args: Object.fromEntries(MEMORY_APPS.map((a) => [a, withExtra(appArgv(a)).slice(1, -1)])) as Record<MemoryApp, string[]>,
      app_env: APP_ENV,
      configuration: MEMORY_CONFIGURATION,
      target_idle_rss_anon_mib: IDLE_RSS_ANON_TARGET_MIB,
      baseline_node: m.baseline,
      idle_rss_anon_mib: per('rss_anon_mib'),
      idle_rss_file_mib: per('rss_file_mib'),
      idle_rss_shmem_mib: per('rss_shmem_mib'),
      idle_pss_mib: per('pss_mib'),
      idle_rss_anon_added_mib: Object.fromEntries(MEMORY_APPS.map((a) => [a, round(m[a].rss_anon_mib - m.baseline.rss_anon_mib, 1)])) as Record<MemoryApp, number>,
      startup_s: STARTUP_S,
      startup_baseline_node: early.baseline,
      startup_rss_anon_mib: Object.fromEntries(MEMORY_APPS.map((a) => [a, early[a].rss_anon_mib])) as Record<MemoryApp, number>,
      startup_pss_mib: Object.fromEntries(MEMORY_APPS.map((a) => [a, early[a].pss_mib])) as Record<MemoryApp, number>,
      idle_cpu_pct: { baseline_node: idleCpu('baseline'), ...(Object.fromEntries(MEMORY_APPS.map((a) => [a, idleCpu(a)])) as Record<MemoryApp, number>) },
    };
    for (const a of MEMORY_APPS) log(`${a}: RssAnon ${m[a].rss_anon_mib} MiB (${early[a].rss_anon_mib} at ${STARTUP_S} s), RssFile ${m[a].rss_file_mib} MiB, Pss ${m[a].pss_mib} MiB, idle CPU ${result.idle_cpu_pct[a]}%`);
    log(`bare node: RssAnon ${m.baseline.rss_anon_mib} MiB, RssFile ${m.baseline.rss_file_mib} MiB, Pss ${m.baseline.pss_mib} MiB`);
    const outDir = join(REPO_ROOT, 'bench-out');
    mkdirSync(outDir, { recursive: true });
    const out = join(outDir, 'idle-memory.json');
    writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
    return { file: out, result };
  } finally {
    teardown.release();
    await teardown.stop();
  }
}
