#!/usr/bin/env node
/**
 * `pnpm bench`: throughput, latency and memory of our tunnel against OpenVPN 2.6 (TCP, AES-256-GCM,
 * vpn2's data plane) in the same run, on the same topology and the same path: the shoot side dials
 * out through sni-proxy (CONNECT with the Reversed-VPN header) to the seed pod, and iperf3/ping go
 * from the seed pod to the shoot pod 100.96.1.10 through the tunnel, forwarded and masqueraded by
 * the shoot side. Writes bench-out/tunnel.json.
 * First the idle memory of each app (bench-memory.ts) → bench-out/idle-memory.json; then the HA
 * failover figures (bench-failover.ts) → bench-out/failover.json.
 * Each round measures both directions (iperf3 and iperf3 -R) and ping every 50 ms while the seed → shoot
 * stream runs (ping_under_load_*), for ours and OpenVPN alternately, and the CPU seconds per GB of each
 * process of the path (cpu_s_per_gb*: /proc/<pid>/stat utime + stime over the run, per GB received).
 * Then the same rounds on the HA lab (`ha` in tunnel.json; BENCH_HA=0 skips them).
 * Env: BENCH_DURATION (iperf3 seconds, default 10), BENCH_ROUNDS (alternating rounds, default 3),
 * FAILOVER_RUNS (runs of each failover scenario, default 5), FAILOVER_LOG_LEVEL (the HA apps' log level in
 * the failover lab, default warn; a run that misses a target keeps the lab's logs), BENCH_SNI_RELAY_MODE=native|stream (sni-proxy's
 * RELAY_MODE in the tunnel, HA and scale labs, to compare the native relay with Node stream pipes;
 * unset: the shipped default, native),
 * BENCH_ONLY=memory|tunnel|hops|failover|scale (`pnpm bench:memory` is BENCH_ONLY=memory; `pnpm bench:hops`
 * BENCH_ONLY=hops: where an idle ping's time goes, hop by hop, ours beside OpenVPN, bench-hops.ts →
 * bench-out/idle-latency-hops.json; `pnpm bench:scale` BENCH_ONLY=scale: sni-proxy with 1,000 tunnels,
 * bench-scale.ts → bench-out/sni-proxy-scale.json).
 * Ctrl-C (or SIGTERM/SIGHUP, or the end of a pipe its output goes to) during any part removes that part's lab and exits 130.
 */
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, release } from 'node:os';
import { LOG_LEVELS } from '@rvpn/config';
import { Stack, REPO_ROOT } from './lab/stack.js';
import { OpenVpnPeer } from './lab/openvpn-peer.js';
import { HaStack } from './lab/ha-stack.js';
import { ADDR } from './lab/topology.js';
import { missingTools, run, sleep, spawnLogged, waitFor } from './lab/sh.js';
import { cpuSeconds } from './lab/procs.js';
import { runFailoverBench } from './bench-failover.js';
import { memorySettleS, runIdleMemoryBench } from './bench-memory.js';
import { benchSniEnv, runScaleBench, scaleSettings } from './bench-scale.js';
import { hopsSettings, runHopsBench } from './bench-hops.js';
import { envNumber, EnvSettingError } from './env.js';
import { onStopRequest, teardownOnce } from './lab/stop.js';
import { mean, median, nearestRank as percentile, round } from './stats.js';

// read and checked in main(), with every part's settings, before any part starts
let DURATION = 10;
let ROUNDS = 3;
const FAILOVER_LOG_LEVEL = process.env.FAILOVER_LOG_LEVEL ?? 'warn';
const OUT_DIR = join(REPO_ROOT, 'bench-out');

const log = (l: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${l}`);

interface PathResult {
  /** seed pod → shoot pod (iperf3 from the seed side) */
  throughput_gbps: number[];
  retransmits: number[];
  /** shoot pod → seed pod (iperf3 -R) */
  throughput_reverse_gbps: number[];
  retransmits_reverse: number[];
  ping_avg_ms: number;
  ping_p99_ms: number;
  ping_max_ms: number;
  ping_loss_pct: number;
  /**
   * The same idle ping after the last round, on the processes that just carried its traffic (1 s quiet
   * first). A tunnel that has carried traffic answers faster than a fresh one (ping_*, after a 20-ping
   * warm-up); README "Benchmark" has the figures and what was ruled out as the cause.
   */
  ping_warm_avg_ms: number;
  ping_warm_p99_ms: number;
  ping_warm_max_ms: number;
  /** ping every 50 ms while one iperf3 stream (seed → shoot) saturates the path, all rounds pooled */
  ping_under_load_ms: number[];
  ping_under_load_lost: number;
  /** CPU seconds (user + system) per GB received, per process of the path, each round (seed → shoot, and -R) */
  cpu_s_per_gb: Record<string, number[]>;
  cpu_s_per_gb_reverse: Record<string, number[]>;
}

const emptyPath = (): PathResult => ({
  throughput_gbps: [], retransmits: [], throughput_reverse_gbps: [], retransmits_reverse: [],
  ping_avg_ms: NaN, ping_p99_ms: NaN, ping_max_ms: NaN, ping_loss_pct: NaN, ping_warm_avg_ms: NaN, ping_warm_p99_ms: NaN, ping_warm_max_ms: NaN,
  ping_under_load_ms: [], ping_under_load_lost: 0,
  cpu_s_per_gb: {}, cpu_s_per_gb_reverse: {},
});


/**
 * Where a measurement runs: the client's namespace (the seed pod, or a kube-apiserver pod in HA), the
 * shoot pod's namespace (the iperf3 server), and the lab's log files and process tracking.
 */
interface Place {
  from: string;
  podNs: string;
  logFile(name: string): string;
  trackPid(pid: number): void;
  /** The processes that carry the path (their CPU time is charged to the bytes moved). */
  pathPids(): Record<string, number>;
}

const pidsOf = (procs: ReadonlyMap<string, { pid: number }>, names: readonly string[]) =>
  Object.fromEntries(names.flatMap((n) => (procs.get(n) ? [[n, procs.get(n)!.pid] as const] : [])));
const placeOf = (stack: Stack): Place => ({
  from: stack.topo.ns.srv, podNs: stack.topo.ns.pod, logFile: (n) => stack.logFile(n), trackPid: (pid) => stack.topo.trackPid(pid),
  pathPids: () => pidsOf(stack.procs, ['vpn-seed-server', 'sni-proxy', 'vpn-shoot']),
});
const haPlaceOf = (stack: HaStack): Place => ({
  from: stack.topo.ns.kapi0, podNs: stack.topo.ns.pod, logFile: (n) => stack.logFile(n), trackPid: (pid) => stack.topo.trackPid(pid),
  pathPids: () => pidsOf(stack.procs, [...stack.procs.keys()].filter((k) => !k.startsWith('fixture-'))),
});

async function iperf(stack: Place, port: number, reverse = false): Promise<{ gbps: number; retransmits: number; bytes: number }> {
  let lastError = '';
  for (let attempt = 1; attempt <= 2; attempt++) {
    const r = await run(['iperf3', '-c', ADDR.pod, '-p', String(port), '-t', String(DURATION), '-J', ...(reverse ? ['-R'] : [])], { ns: stack.from, timeoutMs: (DURATION + 30) * 1000, allowFail: true });
    let j: { error?: string; end?: { sum_received?: { bits_per_second: number; bytes: number }; sum_sent?: { retransmits?: number } } } = {};
    try {
      j = JSON.parse(r.stdout) as typeof j;
    } catch {
      j = { error: `iperf3 printed no JSON (exit ${r.code}): ${r.stderr.trim()}` };
    }
    if (!j.error && j.end?.sum_received) return { gbps: j.end.sum_received.bits_per_second / 1e9, retransmits: j.end.sum_sent?.retransmits ?? 0, bytes: j.end.sum_received.bytes };
    lastError = j.error ?? 'no result';
    log(`iperf3 attempt ${attempt} failed: ${lastError}; retrying`);
    await sleep(2000); // e.g. "the server is busy running a test" right after the previous run
  }
  throw new Error(`iperf3 failed twice: ${lastError}`);
}

/** Round-trip times of each reply (ms) and the count of requests without one. */
async function pingTimes(stack: Place, args: string[]): Promise<{ times: number[]; lost: number }> {
  const r = await run(['ping', '-n', ...args, ADDR.pod], { ns: stack.from, timeoutMs: 120_000, allowFail: true });
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const sent = Number(/(\d+) packets transmitted/.exec(r.stdout)?.[1] ?? times.length);
  return { times, lost: Math.max(0, sent - times.length) };
}

/** Idle latency as the issue states it: `ping -i 0.05 -c 200` after a warm-up of 20. */
async function ping(stack: Place): Promise<{ avg: number; p99: number; max: number; loss: number }> {
  await pingTimes(stack, ['-q', '-c', '20', '-i', '0.05']);
  const { times, lost } = await pingTimes(stack, ['-c', '200', '-i', '0.05']);
  return { avg: round(mean(times)), p99: round(percentile(times, 99)), max: round(Math.max(...times)), loss: round((100 * lost) / (times.length + lost), 1) };
}

/**
 * The idle ping into `r`: `cold` on a tunnel that has carried nothing yet (ping_avg_ms, _p99_ms,
 * _max_ms, _loss_pct), `warm` again on processes that just carried a round's traffic (ping_warm_*).
 */
async function idlePing(stack: Place, label: string, r: PathResult, when: 'cold' | 'warm'): Promise<void> {
  if (when === 'warm') await sleep(1000);
  const p = await ping(stack);
  if (when === 'cold') Object.assign(r, { ping_avg_ms: p.avg, ping_p99_ms: p.p99, ping_max_ms: p.max, ping_loss_pct: p.loss });
  else Object.assign(r, { ping_warm_avg_ms: p.avg, ping_warm_p99_ms: p.p99, ping_warm_max_ms: p.max });
  log(`${label}: ${when === 'cold' ? 'ping' : 'ping after the traffic'} avg ${p.avg} ms, p99 ${p.p99} ms, max ${p.max} ms, loss ${p.loss}%`);
}


const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

let nextPort = 5201;

/**
 * One iperf3 run against a fresh one-off server, so a test that ended untidily never blocks the next;
 * with the CPU seconds per GB of each process of the path over the run.
 */
async function iperfOnce(stack: Place, reverse: boolean): Promise<{ gbps: number; retransmits: number; cpuPerGb: Record<string, number> }> {
  const port = nextPort++;
  const srv = spawnLogged(['iperf3', '-s', '-1', '-p', String(port)], { ns: stack.podNs, logFile: stack.logFile(`iperf3-server-${port}`) });
  stack.trackPid(srv.pid);
  try {
    await waitFor('the iperf3 server', async () => (await run(['ss', '-Hltn', `sport = :${port}`], { ns: stack.podNs })).stdout.includes(String(port)), 5000, 50);
    const pids = stack.pathPids();
    const before = Object.fromEntries(Object.entries(pids).map(([n, pid]) => [n, cpuSeconds(pid)]));
    const r = await iperf(stack, port, reverse);
    const gb = r.bytes / 1e9;
    const used = Object.entries(pids).map(([n, pid]) => [n, cpuSeconds(pid) - before[n]!] as const);
    const cpuPerGb = Object.fromEntries([...used, ['total', used.reduce((a, [, v]) => a + v, 0)] as const].map(([n, v]) => [n, round(v / gb)]));
    return { gbps: r.gbps, retransmits: r.retransmits, cpuPerGb };
  } finally {
    srv.child.kill('SIGKILL');
    await srv.exited;
  }
}

/**
 * One round on a path: seed → shoot with a ping every 50 ms alongside (from the second second to one
 * before the end, so the stream is at full rate), then shoot → seed (iperf3 -R).
 */
async function measure(stack: Place, label: string, into: PathResult): Promise<void> {
  log(`${label}: iperf3 -c ${ADDR.pod} -t ${DURATION} (seed pod → shoot pod), ping -i 0.05 alongside`);
  const loaded = (async () => {
    await sleep(1000);
    return pingTimes(stack, ['-i', '0.05', '-w', String(Math.max(1, DURATION - 2))]);
  })();
  const fwd = await iperfOnce(stack, false);
  const p = await loaded;
  into.throughput_gbps.push(fwd.gbps);
  into.retransmits.push(fwd.retransmits);
  for (const [n, v] of Object.entries(fwd.cpuPerGb)) (into.cpu_s_per_gb[n] ??= []).push(v);
  into.ping_under_load_ms.push(...p.times);
  into.ping_under_load_lost += p.lost;
  log(`${label}: ${fwd.gbps.toFixed(3)} Gbit/s, ${fwd.retransmits} retransmits; ping under load avg ${mean(p.times).toFixed(2)} ms, p99 ${percentile(p.times, 99).toFixed(2)} ms, max ${Math.max(...p.times).toFixed(2)} ms, ${p.lost} lost`);
  log(`${label}: iperf3 -c ${ADDR.pod} -t ${DURATION} -R (shoot pod → seed pod)`);
  const rev = await iperfOnce(stack, true);
  into.throughput_reverse_gbps.push(rev.gbps);
  into.retransmits_reverse.push(rev.retransmits);
  for (const [n, v] of Object.entries(rev.cpuPerGb)) (into.cpu_s_per_gb_reverse[n] ??= []).push(v);
  log(`${label}: reverse ${rev.gbps.toFixed(3)} Gbit/s, ${rev.retransmits} retransmits`);
  log(`${label}: CPU s/GB ${JSON.stringify(fwd.cpuPerGb)}, reverse ${JSON.stringify(rev.cpuPerGb)}`);
}

/** A path's figures for the JSON: medians beside the rounds, ping under load summarised. */
function summary(r: PathResult) {
  const { ping_under_load_ms: loaded, ...rest } = r;
  return {
    ...rest,
    throughput_gbps: r.throughput_gbps.map((x) => round(x)),
    throughput_gbps_median: round(median(r.throughput_gbps)),
    throughput_reverse_gbps: r.throughput_reverse_gbps.map((x) => round(x)),
    throughput_reverse_gbps_median: round(median(r.throughput_reverse_gbps)),
    ping_under_load_samples: loaded.length,
    ping_under_load_avg_ms: round(mean(loaded), 2),
    ping_under_load_p99_ms: round(percentile(loaded, 99), 2),
    ping_under_load_max_ms: round(Math.max(...loaded), 2),
    cpu_s_per_gb_median: Object.fromEntries(Object.entries(r.cpu_s_per_gb).map(([n, v]) => [n, round(median(v))])),
    cpu_s_per_gb_reverse_median: Object.fromEntries(Object.entries(r.cpu_s_per_gb_reverse).map(([n, v]) => [n, round(median(v))])),
  };
}

/**
 * The HA path (BENCH_HA=0 skips it): the same rounds from kube-apiserver-0's namespace, through its
 * path-controller's bond and a seed server's switch to the shoot pod. No OpenVPN peer (vpn2's HA is
 * two OpenVPN tunnels and kernel bonding, which this kernel lacks).
 */
async function measureHa(signal: AbortSignal): Promise<Record<string, unknown>> {
  const ha = new HaStack({ log, logLevel: 'warn', env: { 'sni-proxy': benchSniEnv() } });
  const teardown = teardownOnce(signal, () => ha.down());
  try {
    await ha.start();
    await sleep(3000);
    const place = haPlaceOf(ha);
    const r = emptyPath();
    await idlePing(place, 'ha', r, 'cold');
    for (let i = 0; i < ROUNDS; i++) await measure(place, `ha (round ${i + 1}/${ROUNDS})`, r);
    await idlePing(place, 'ha', r, 'warm');
    return { path: 'kube-apiserver-0 → path-controller bond (TAP) → vpn-seed-server-0 switch → vpn-shoot-0 → shoot pod', ...summary(r) };
  } finally {
    teardown.release();
    await teardown.stop();
  }
}

async function runTunnelBench(signal: AbortSignal): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('bench: must run as root');
    return 2;
  }
  const missing = await missingTools(['ip', 'nft', 'iperf3', 'openvpn', 'ping', 'curl']);
  if (missing.length) {
    console.error(`bench: missing tools: ${missing.join(', ')} (run: bash tools/setup.sh)`);
    return 2;
  }
  const stack = new Stack({ log, logLevel: 'warn', sniEnv: benchSniEnv() });
  const teardown = teardownOnce(signal, () => stack.down());
  try {
    await stack.start();
    await sleep(500);

    // idle memory, after the tunnel has been up and quiet for a moment
    await sleep(3000);
    const idleRss = Object.fromEntries((['vpn-seed-server', 'vpn-shoot', 'sni-proxy'] as const).map((a) => [a, round(rssMiB(stack.procs.get(a)!.pid), 1)]));
    log(`idle RSS MiB: ${JSON.stringify(idleRss)}`);

    const ours = emptyPath();
    const ovpn = emptyPath();
    const place = placeOf(stack);
    await idlePing(place, 'ours', ours, 'cold');
    const curl = await run(['curl', '-s', '-o', '/dev/null', '-w', '%{speed_download}', ...stack.proxyArgs(), `http://${ADDR.pod}:${ADDR.podPort}/bytes?n=500000000`], { ns: stack.topo.ns.kapi, timeoutMs: 120_000 });
    const proxyGbps = (Number(curl.stdout) * 8) / 1e9;
    log(`ours: 500 MB through the CONNECT proxy: ${proxyGbps.toFixed(3)} Gbit/s`);

    const peer = new OpenVpnPeer(stack);
    // alternate rounds so that machine noise hits both alike; OpenVPN's route to the pod is more
    // specific than ours, so it is added only while OpenVPN is measured
    await peer.start();
    await idlePing(place, 'openvpn', ovpn, 'cold');
    await peer.stop();
    for (let i = 0; i < ROUNDS; i++) {
      const last = i === ROUNDS - 1;
      await measure(place, `ours (round ${i + 1}/${ROUNDS})`, ours);
      if (last) await idlePing(place, 'ours', ours, 'warm');
      const p = new OpenVpnPeer(stack);
      await p.start();
      await measure({ ...place, pathPids: () => p.pathPids() }, `openvpn (round ${i + 1}/${ROUNDS})`, ovpn);
      if (last) await idlePing(place, 'openvpn', ovpn, 'warm');
      await p.stop();
    }

    const oursMed = median(ours.throughput_gbps);
    const ovpnMed = median(ovpn.throughput_gbps);
    const oursRev = median(ours.throughput_reverse_gbps);
    const ovpnRev = median(ovpn.throughput_reverse_gbps);
    const result = {
      benchmark: 'tunnel',
      date: new Date().toISOString(),
      command: 'pnpm bench',
      machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, kernel: release(), node: process.version },
      sni_proxy_relay_mode: benchSniEnv().RELAY_MODE ?? 'native (default)',
      path: 'iperf3 TCP single stream (and -R) and ping from the seed pod (vpn-seed-server namespace) to the shoot pod 100.96.1.10; the tunnel dialed by the shoot side through sni-proxy (CONNECT, Reversed-VPN header); shoot side forwards and masquerades',
      duration_s: DURATION,
      rounds: ROUNDS,
      ours: { ...summary(ours), proxy_download_gbps: round(proxyGbps) },
      openvpn: { version: (await run(['openvpn', '--version'], { allowFail: true })).stdout.split('\n')[0], config: 'proto tcp, AES-256-GCM, disable-dco, http-proxy with CUSTOM-HEADER (vpn2 data plane)', ...summary(ovpn) },
      throughput_ratio: round(oursMed / ovpnMed, 2),
      throughput_ratio_reverse: round(oursRev / ovpnRev, 2),
      idle_rss_mib: idleRss,
      ha: undefined as Record<string, unknown> | undefined,
    };
    if (process.env.BENCH_HA !== '0') {
      // the plain lab is gone; a Ctrl-C from here on removes the HA lab (measureHa's own handler)
      await teardown.stop();
      teardown.release();
      result.ha = await measureHa(signal);
      log(`ha: seed → shoot ${String(result.ha.throughput_gbps_median)} Gbit/s, shoot → seed ${String(result.ha.throughput_reverse_gbps_median)}; ping under load avg ${String(result.ha.ping_under_load_avg_ms)} ms, p99 ${String(result.ha.ping_under_load_p99_ms)} ms, max ${String(result.ha.ping_under_load_max_ms)} ms`);
    }
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(join(OUT_DIR, 'tunnel.json'), JSON.stringify(result, null, 2) + '\n');
    log(`ours ${oursMed.toFixed(3)} Gbit/s vs OpenVPN ${ovpnMed.toFixed(3)} Gbit/s: throughput_ratio ${result.throughput_ratio}; reverse ${oursRev.toFixed(3)} vs ${ovpnRev.toFixed(3)}: ${result.throughput_ratio_reverse}`);
    log(`ping under load: ours avg ${result.ours.ping_under_load_avg_ms} ms, p99 ${result.ours.ping_under_load_p99_ms} ms, max ${result.ours.ping_under_load_max_ms} ms; OpenVPN avg ${result.openvpn.ping_under_load_avg_ms} ms, p99 ${result.openvpn.ping_under_load_p99_ms} ms, max ${result.openvpn.ping_under_load_max_ms} ms`);
    log(`wrote ${join(OUT_DIR, 'tunnel.json')}`);
    return 0;
  } catch (err) {
    // a stop (Ctrl-C, a closed output) takes the lab down under the run: no failure, nothing to keep
    if (signal.aborted) return 130;
    console.error(`bench failed: ${(err as Error).message}`);
    stack.keepWorkDir = true;
    return 1;
  } finally {
    // the failover part that follows has its own lab and teardown
    teardown.release();
    await teardown.stop();
  }
}

async function main(): Promise<number> {
  const only = process.env.BENCH_ONLY;
  if (only && only !== 'memory' && only !== 'tunnel' && only !== 'hops' && only !== 'failover' && only !== 'scale') {
    console.error('bench: BENCH_ONLY must be memory, tunnel, hops, failover or scale');
    return 2;
  }
  let runs: number;
  try {
    DURATION = envNumber('BENCH_DURATION', 10);
    ROUNDS = envNumber('BENCH_ROUNDS', 3);
    runs = envNumber('FAILOVER_RUNS', 5);
    memorySettleS();
    hopsSettings();
    scaleSettings();
  } catch (err) {
    if (!(err instanceof EnvSettingError)) throw err;
    console.error(`bench: ${err.message}`);
    return 2;
  }
  if (!(LOG_LEVELS as readonly string[]).includes(FAILOVER_LOG_LEVEL)) {
    console.error(`bench: FAILOVER_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, not ${JSON.stringify(FAILOVER_LOG_LEVEL)}`);
    return 2;
  }
  // A signal, or our output going away (`pnpm bench | head`), removes the running part's lab before the exit (130).
  const stop = new AbortController();
  onStopRequest((why) => {
    log(`${why}: stopping, removing the lab`);
    stop.abort(new Error(`stopped: ${why}`));
  });
  if (!only || only === 'memory') {
    if (process.getuid?.() !== 0) {
      console.error('bench: must run as root');
      return 2;
    }
    // first, while nothing else of ours runs
    try {
      const { file } = await runIdleMemoryBench({ log: (l) => log(`memory: ${l}`), signal: stop.signal });
      log(`wrote ${file}`);
    } catch (err) {
      if (stop.signal.aborted) return 130; // stopped: the part removed its lab
      console.error(`memory bench failed: ${(err as Error).message}`);
      return 1;
    }
  }
  if (stop.signal.aborted) return 130; // stopped between two parts: nothing of ours is up
  if (!only || only === 'tunnel') {
    const c = await runTunnelBench(stop.signal);
    if (c !== 0) return c;
  }
  if (stop.signal.aborted) return 130; // stopped between two parts: nothing of ours is up
  if (!only || only === 'hops') {
    try {
      const { file } = await runHopsBench({ signal: stop.signal });
      log(`wrote ${file}`);
    } catch (err) {
      if (stop.signal.aborted) return 130; // stopped: the part removed its lab
      console.error(`hops bench failed: ${(err as Error).message}`);
      return 1;
    }
  }
  if (stop.signal.aborted) return 130; // stopped between two parts: nothing of ours is up
  if (!only || only === 'failover') {
    if (process.getuid?.() !== 0) {
      console.error('bench: must run as root');
      return 2;
    }
    const env = [only ? `BENCH_ONLY=${only}` : '', process.env.FAILOVER_RUNS ? `FAILOVER_RUNS=${runs}` : '', process.env.FAILOVER_LOG_LEVEL ? `FAILOVER_LOG_LEVEL=${FAILOVER_LOG_LEVEL}` : ''].filter(Boolean);
    try {
      const { file, targetsMet } = await runFailoverBench({ runs, signal: stop.signal, logLevel: FAILOVER_LOG_LEVEL, command: [...env, 'node tools/dist/bench.js'].join(' ') });
      log(`wrote ${file} (issue 11's failover targets ${targetsMet ? 'met' : 'NOT met'})`);
    } catch (err) {
      if (stop.signal.aborted) {
        log('stopped; the lab is removed');
        return 130;
      }
      console.error(`failover bench failed: ${(err as Error).message}`);
      return 1;
    }
  }
  if (stop.signal.aborted) return 130; // stopped between two parts: nothing of ours is up
  if (!only || only === 'scale') {
    try {
      const { file } = await runScaleBench({ signal: stop.signal });
      log(`wrote ${file}`);
    } catch (err) {
      if (stop.signal.aborted) return 130; // stopped: the part removed its lab
      console.error(`scale bench failed: ${(err as Error).message}`);
      return 1;
    }
  }
  return 0;
}

main().then((c) => process.exit(c), (err) => {
  console.error(err);
  process.exit(1);
});
