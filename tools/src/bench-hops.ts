/**
 * Where an idle ping's time goes, hop by hop, ours beside OpenVPN (issue 11's idle-latency target;
 * part of `pnpm bench`, alone: `pnpm bench:hops` or BENCH_ONLY=hops).
 *
 * On the plain lab (the tunnel bench's path: seed pod → our TUN → vpn-seed-server → sni-proxy →
 * vpn-shoot → TUN → shoot pod), after a warm-up of HOPS_WARMUP_S of iperf3, tcpdump listens on every
 * interface the packet crosses while `ping -i 0.05 -c HOPS_PINGS` runs:
 *   seed pod: the TUN (ICMP) and eth0 (the tunnel's TLS records to and from sni-proxy);
 *   load balancer: eth0 (seed side) and wan0 (shoot side);
 *   vpn-shoot: eth0 (TLS) and the TUN (ICMP);
 *   shoot pod: eth0 (ICMP).
 * All namespaces share the kernel's clock, so one ping's timestamps on the way line up: the echo request
 * and reply are matched by sequence number on the TUNs and the pod, each TLS hop by the first segment
 * with payload after the previous point. A ping whose chain has a gap, a negative step or a step over
 * 20 ms (a keepalive or a probe in between) is left out. Then `ping -f -c HOPS_FLOOD` on the same path:
 * the next ping leaves as the reply arrives, so the processes never sleep — the path's cost with every
 * process awake, against the idle ping's, which includes each process's wake-up.
 *
 * Then the same with OpenVPN (lab/openvpn-peer.ts, vpn2's configuration) on the same path and the same
 * sni-proxy, our vpn-shoot stopped first so that only one tunnel crosses the wan leg.
 *
 * Writes bench-out/idle-latency-hops.json: per path the idle ping (avg, median), the flood RTT, and each
 * hop's median and mean in µs, grouped by who holds the packet (`by_holder`: the seed-side tunnel
 * process, sni-proxy, the shoot-side tunnel process, the kernels and links, the pod). Leaves nothing
 * behind (the lab, its processes and the captures go with it).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, loadavg, release } from 'node:os';
import { Stack, REPO_ROOT } from './lab/stack.js';
import { ADDR } from './lab/topology.js';
import { OpenVpnPeer, OVPN_DEVICE, OVPN_PORT } from './lab/openvpn-peer.js';
import { missingTools, run, sleep, spawnLogged, waitFor, type Spawned } from './lab/sh.js';
import { envNumber } from './env.js';
import { mean, median, round } from './stats.js';

/** The apps' TUN_DEVICE default, which the lab keeps. */
const OUR_DEVICE = 'tun0';
const OUR_PORT = 1194;
/** A step longer than this is another packet's, not the ping's. */
const MAX_STEP_US = 20_000;

export const HOPS = [
  { hop: 'seed tunnel process: TUN → socket', holder: 'seed_process' },
  { hop: 'seed pod eth0 → load balancer eth0', holder: 'kernel_and_links' },
  { hop: 'sni-proxy relay (seed side → wan)', holder: 'sni_proxy' },
  { hop: 'wan and shoot node → vpn-shoot eth0', holder: 'kernel_and_links' },
  { hop: 'shoot tunnel process: socket → TUN', holder: 'shoot_process' },
  { hop: 'shoot kernel: TUN → pod', holder: 'kernel_and_links' },
  { hop: 'pod: request → reply', holder: 'pod' },
  { hop: 'shoot kernel: pod → TUN', holder: 'kernel_and_links' },
  { hop: 'shoot tunnel process: TUN → socket', holder: 'shoot_process' },
  { hop: 'vpn-shoot eth0 → load balancer wan0', holder: 'kernel_and_links' },
  { hop: 'sni-proxy relay (wan → seed side)', holder: 'sni_proxy' },
  { hop: 'load balancer eth0 → seed pod eth0', holder: 'kernel_and_links' },
  { hop: 'seed tunnel process: socket → TUN', holder: 'seed_process' },
] as const;

export type Holder = (typeof HOPS)[number]['holder'];

/** One captured packet: its time (s) and tcpdump's line. */
export interface Captured {
  t: number;
  line: string;
}

/** Parses `tcpdump -n -tt -r` output. */
export function parseTcpdump(text: string): Captured[] {
  const out: Captured[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+\.\d+) (.*)$/.exec(line);
    if (m) out.push({ t: Number(m[1]), line: m[2]! });
  }
  return out;
}

/** Echo requests or replies by sequence number. */
export function icmpBySeq(rows: Captured[], kind: 'request' | 'reply'): Map<number, number> {
  const m = new Map<number, number>();
  for (const r of rows) {
    if (!r.line.includes(`ICMP echo ${kind}`)) continue;
    const seq = /seq (\d+)/.exec(r.line);
    if (seq && !m.has(Number(seq[1]))) m.set(Number(seq[1]), r.t);
  }
  return m;
}

/** Times of TCP segments with payload, sorted. */
export function payloadTimes(rows: Captured[]): number[] {
  return rows.filter((r) => Number(/length (\d+)/.exec(r.line)?.[1] ?? 0) > 0).map((r) => r.t).sort((a, b) => a - b);
}

/** The first time in `sorted` at or after t. */
function next(sorted: number[], t: number): number | undefined {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return sorted[lo];
}

export interface Captures {
  /** ICMP on the seed pod's TUN, vpn-shoot's TUN and the shoot pod's eth0. */
  seedTun: Captured[];
  shootTun: Captured[];
  pod: Captured[];
  /** TCP payload segments, each way. */
  seedOut: number[]; // seed pod eth0, to sni-proxy
  seedIn: number[]; // seed pod eth0, from sni-proxy
  lbSeedFromSrv: number[]; // load balancer eth0, from the seed pod
  lbSeedToSrv: number[]; // load balancer eth0, to the seed pod
  lbWanOut: number[]; // load balancer wan0, to the shoot
  lbWanIn: number[]; // load balancer wan0, from the shoot
  shootIn: number[]; // vpn-shoot eth0, from sni-proxy
  shootOut: number[]; // vpn-shoot eth0, to sni-proxy
}

/** Each usable ping's 13 steps (µs), in HOPS order. */
export function hopSteps(c: Captures): number[][] {
  const sReq = icmpBySeq(c.seedTun, 'request');
  const sRep = icmpBySeq(c.seedTun, 'reply');
  const vReq = icmpBySeq(c.shootTun, 'request');
  const vRep = icmpBySeq(c.shootTun, 'reply');
  const pReq = icmpBySeq(c.pod, 'request');
  const pRep = icmpBySeq(c.pod, 'reply');
  const out: number[][] = [];
  for (const [seq, a] of [...sReq].sort((x, y) => x[0] - y[0])) {
    const pts: (number | undefined)[] = [a];
    // a TLS hop: the first segment with payload after the chain's last point
    const after = (times: number[]) => {
      const last = pts.at(-1);
      pts.push(last === undefined ? undefined : next(times, last));
    };
    after(c.seedOut);
    after(c.lbSeedFromSrv);
    after(c.lbWanOut);
    after(c.shootIn);
    pts.push(vReq.get(seq), pReq.get(seq), pRep.get(seq), vRep.get(seq));
    after(c.shootOut);
    after(c.lbWanIn);
    after(c.lbSeedToSrv);
    after(c.seedIn);
    pts.push(sRep.get(seq));
    if (pts.some((p) => p === undefined)) continue;
    const steps = pts.slice(1).map((p, i) => (p! - pts[i]!) * 1e6);
    if (steps.some((d) => d < 0 || d > MAX_STEP_US)) continue;
    out.push(steps);
  }
  return out;
}


export interface HopFigures {
  samples: number;
  hops: { hop: string; holder: Holder; median_us: number; mean_us: number }[];
  /** Sum of the hops' medians per holder (µs). */
  by_holder_median_us: Record<Holder, number>;
  total_median_us: number;
}

export function summarizeHops(steps: number[][]): HopFigures {
  const hops = HOPS.map((h, i) => {
    const xs = steps.map((s) => s[i]!);
    return { hop: h.hop, holder: h.holder, median_us: round(median(xs), 1), mean_us: round(mean(xs), 1) };
  });
  const by = { seed_process: 0, sni_proxy: 0, shoot_process: 0, kernel_and_links: 0, pod: 0 } as Record<Holder, number>;
  for (const h of hops) by[h.holder] = round(by[h.holder] + h.median_us, 1);
  return { samples: steps.length, hops, by_holder_median_us: by, total_median_us: round(median(steps.map((s) => s.reduce((a, b) => a + b, 0))), 1) };
}

interface PathFigures extends HopFigures {
  ping_avg_ms: number;
  ping_median_ms: number;
  ping_loss_pct: number;
  flood_rtt_avg_ms: number;
  flood_rtt_min_ms: number;
}

const log = (l: string) => console.log(`[hops ${new Date().toISOString().slice(11, 19)}] ${l}`);
/** HOPS_PINGS, HOPS_FLOOD and HOPS_WARMUP_S (tools/README.md); bench.ts reads them before any part starts. */
export function hopsSettings(env: NodeJS.ProcessEnv = process.env): { pings: number; flood: number; warmupS: number } {
  return { pings: envNumber('HOPS_PINGS', 200, {}, env), flood: envNumber('HOPS_FLOOD', 5000, {}, env), warmupS: envNumber('HOPS_WARMUP_S', 3, {}, env) };
}

/** `signal` (bench.ts aborts it on SIGINT/SIGTERM/SIGHUP): the lab goes and the process exits 130. */
export async function runHopsBench(opts: { signal?: AbortSignal } = {}): Promise<{ file: string; result: Record<string, unknown> }> {
  const { pings: PINGS, flood: FLOOD, warmupS: WARMUP_S } = hopsSettings();
  if (process.getuid?.() !== 0) throw new Error('must run as root');
  const missing = await missingTools(['ip', 'nft', 'iperf3', 'openvpn', 'ping', 'tcpdump']);
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')} (run: bash tools/setup.sh)`);
  const loadStart = loadavg().map((x) => round(x, 2));
  const stack = new Stack({ log, logLevel: 'warn' });
  const ns = stack.topo.ns;
  const captures: Spawned[] = [];
  let peer: OpenVpnPeer | undefined;
  const stopCaptures = async () => {
    for (const c of captures) c.child.kill('SIGINT');
    await Promise.all(captures.map((c) => Promise.race([c.exited, sleep(5000)])));
    for (const c of captures.splice(0)) c.child.kill('SIGKILL');
  };
  const down = async () => {
    await stopCaptures();
    await peer?.stop();
    await stack.down();
  };
  let downing: Promise<void> | undefined;
  const onAbort = () => void (downing ??= down()).finally(() => process.exit(130));
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  const warm = async () => {
    const port = 5399;
    const srv = spawnLogged(['iperf3', '-s', '-1', '-p', String(port)], { ns: ns.pod, logFile: stack.logFile(`iperf3-hops-${port}`) });
    stack.topo.trackPid(srv.pid);
    try {
      await waitFor('the iperf3 server', async () => (await run(['ss', '-Hltn', `sport = :${port}`], { ns: ns.pod })).stdout.includes(String(port)), 5000, 50);
      await run(['iperf3', '-c', ADDR.pod, '-p', String(port), '-t', String(WARMUP_S)], { ns: ns.srv, timeoutMs: (WARMUP_S + 30) * 1000 });
    } finally {
      srv.child.kill('SIGKILL');
      await srv.exited;
    }
  };

  const measurePath = async (label: string, device: string, tunnelPort: number): Promise<PathFigures> => {
    await warm();
    await sleep(1000);
    const dir = join(stack.dir, `hops-${label}`);
    mkdirSync(dir, { recursive: true });
    const plan: [string, string, string][] = [
      ['seed-tun', ns.srv, device], ['seed-eth0', ns.srv, 'eth0'], ['lb-eth0', ns.lb, 'eth0'], ['lb-wan0', ns.lb, 'wan0'],
      ['shoot-eth0', ns.vsh, 'eth0'], ['shoot-tun', ns.vsh, device], ['pod-eth0', ns.pod, 'eth0'],
    ];
    for (const [name, n, ifname] of plan) {
      const c = spawnLogged(['tcpdump', '-i', ifname, '-n', '-U', '--time-stamp-precision=micro', '-w', join(dir, `${name}.pcap`)], { ns: n, logFile: join(dir, `${name}.log`) });
      stack.topo.trackPid(c.pid);
      captures.push(c);
    }
    for (const [name] of plan) await waitFor(`tcpdump on ${name}`, () => readFileSync(join(dir, `${name}.log`), 'utf8').includes('listening on'), 10_000, 50);
    await sleep(300);
    const p = await run(['ping', '-n', '-i', '0.05', '-c', String(PINGS), ADDR.pod], { ns: ns.srv, timeoutMs: PINGS * 1000, allowFail: true });
    await sleep(300);
    await stopCaptures();
    const times = [...p.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
    if (times.length === 0) throw new Error(`${label}: no ping through the tunnel was answered: ${p.stdout}${p.stderr}`);
    const read = async (name: string, filter: string[]) => parseTcpdump((await run(['tcpdump', '-n', '-tt', '-r', join(dir, `${name}.pcap`), ...filter], { allowFail: true })).stdout);
    const port = ['tcp', 'port', String(tunnelPort)];
    const c: Captures = {
      seedTun: await read('seed-tun', ['icmp']),
      shootTun: await read('shoot-tun', ['icmp']),
      pod: await read('pod-eth0', ['icmp']),
      seedOut: payloadTimes(await read('seed-eth0', [...port, 'and', 'src', 'host', ADDR.srv])),
      seedIn: payloadTimes(await read('seed-eth0', [...port, 'and', 'dst', 'host', ADDR.srv])),
      lbSeedFromSrv: payloadTimes(await read('lb-eth0', [...port, 'and', 'src', 'host', ADDR.srv])),
      lbSeedToSrv: payloadTimes(await read('lb-eth0', [...port, 'and', 'dst', 'host', ADDR.srv])),
      lbWanOut: payloadTimes(await read('lb-wan0', ['tcp', 'port', '8132', 'and', 'src', 'host', ADDR.lbWan])),
      lbWanIn: payloadTimes(await read('lb-wan0', ['tcp', 'port', '8132', 'and', 'dst', 'host', ADDR.lbWan])),
      shootIn: payloadTimes(await read('shoot-eth0', ['tcp', 'and', 'src', 'host', ADDR.lbWan])),
      shootOut: payloadTimes(await read('shoot-eth0', ['tcp', 'and', 'dst', 'host', ADDR.lbWan])),
    };
    const hops = summarizeHops(hopSteps(c));
    const f = await run(['ping', '-n', '-q', '-f', '-c', String(FLOOD), ADDR.pod], { ns: ns.srv, timeoutMs: 120_000, allowFail: true });
    const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(f.stdout);
    const sent = Number(/(\d+) packets transmitted/.exec(p.stdout)?.[1] ?? PINGS);
    const r: PathFigures = {
      ping_avg_ms: round(mean(times), 3), ping_median_ms: round(median(times), 3), ping_loss_pct: round((100 * (sent - times.length)) / sent, 1),
      flood_rtt_avg_ms: rtt ? Number(rtt[2]) : NaN, flood_rtt_min_ms: rtt ? Number(rtt[1]) : NaN, ...hops,
    };
    log(`${label}: idle ping avg ${r.ping_avg_ms} ms (median ${r.ping_median_ms}); ${hops.samples} pings traced, median ${hops.total_median_us} µs: ${Object.entries(hops.by_holder_median_us).map(([k, v]) => `${k} ${v}`).join(', ')}; flood RTT avg ${r.flood_rtt_avg_ms} ms`);
    return r;
  };

  try {
    await stack.start();
    await sleep(1000);
    const ours = await measurePath('ours', OUR_DEVICE, OUR_PORT);
    // one tunnel on the wan leg at a time: ours goes before OpenVPN's comes
    await stack.stopApp('vpn-shoot');
    peer = new OpenVpnPeer(stack);
    await peer.start();
    const openvpn = await measurePath('openvpn', OVPN_DEVICE, OVPN_PORT);
    const result = {
      benchmark: 'idle-latency-hops',
      date: new Date().toISOString(),
      command: 'pnpm bench:hops',
      machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, kernel: release(), node: process.version, loadavg_at_start: loadStart, loadavg_at_end: loadavg().map((x) => round(x, 2)) },
      method: `ping -i 0.05 -c ${PINGS} seed pod → shoot pod after ${WARMUP_S} s of iperf3, tcpdump on each interface of the path (one kernel clock); per ping the 13 steps, medians in µs; then ping -f -c ${FLOOD} (every process awake)`,
      ours: { path: 'vpn-seed-server → sni-proxy → vpn-shoot', ...ours },
      openvpn: { path: 'openvpn server → sni-proxy → openvpn client (vpn2 configuration)', ...openvpn },
      target: { idle_ping_avg_ms_max: 0.5, ours: ours.ping_avg_ms, openvpn: openvpn.ping_avg_ms, met: ours.ping_avg_ms <= 0.5 },
    };
    const outDir = join(REPO_ROOT, 'bench-out');
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, 'idle-latency-hops.json');
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    return { file, result };
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await (downing ??= down());
  }
}
