/**
 * Seed scale (issue 11; part of `pnpm bench`, alone: `pnpm bench:scale`): one real sni-proxy, as the
 * lab runs it, with SCALE_TUNNELS (1,000) concurrent tunnels, each through its own CONNECT route, beside
 * the lab's one real tunnel (vpn-shoot → sni-proxy → vpn-seed-server). 1,000 seed servers do not fit on
 * the machine, so the light tunnels end at one upstream fixture (fixtures/scale-upstream.ts: TLS 1.3 and
 * the tunnel's keepalive, PING both ways every 250 ms) and start in one client process
 * (fixtures/scale-clients.ts: CONNECT with the Reversed-VPN header, TLS, keepalive) on the shoot node's
 * wan address. Every route names its upstream by a DNS name (vpn-seed-server.shoot--scale--NNNN.svc.
 * cluster.local:1194), as the operator writes them; the load balancer's namespace resolves them through
 * its own hosts file (/etc/netns/<ns>/hosts, which `ip netns exec` mounts over /etc/hosts).
 *
 * Measured, in this order:
 *   - sni-proxy's RssAnon with the real tunnel only, then with every light tunnel open → MiB per tunnel;
 *   - the time to open them all (CONNECT + TLS, SCALE_OPEN_CONCURRENCY at once);
 *   - the keepalive RTT of every light tunnel's PINGs (p50/p99/max) for SCALE_WINDOW_S quiet, and again
 *     while one iperf3 stream (seed pod → shoot pod) saturates the real tunnel: the issue's target is
 *     p99 <= 10 ms under that load;
 *   - the sustained rate of new CONNECTs (CONNECT → 200, then reset) with every tunnel open, for
 *     SCALE_WINDOW_S with SCALE_RATE_CONCURRENCY clients at once, and how many upstream name lookups
 *     sni-proxy made meanwhile (rvpn_sni_proxy_upstream_lookups_total by cause; the target: no lookup a
 *     CONNECT waits for, cause="connection"; the TTL's `refresh` ones are reported beside it);
 *   - sni-proxy's CPU seconds (utime + stime) in each phase, and the light peers' (clients and fixture),
 *     which share the machine's two cores with it; sni-proxy's event-loop delay (prom-client's
 *     nodejs_eventloop_lag_*, 10 ms resolution) in each RTT window: what of the RTT is its own loop.
 * Writes bench-out/sni-proxy-scale.json. Leaves nothing behind: the lab's namespaces, processes, work
 * directory and the hosts file go in every case (a killed run: `pnpm sweep`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { join } from 'node:path';
import { cpus, loadavg, release } from 'node:os';
import { createCa, issueCertificate, writePkiFiles } from '@rvpn/pki';
import { Stack, REPO_ROOT } from './lab/stack.js';
import { ADDR } from './lab/topology.js';
import { inNs, missingTools, run, sleep, spawnLogged, waitFor } from './lab/sh.js';
import type { LoopDelay } from './fixtures/loop-delay.js';
import { metric } from './lab/metrics.js';
import { cpuSeconds } from './lab/procs.js';
import { readProcMemory } from './bench-memory.js';
import { envNumber } from './env.js';
import { median, round } from './stats.js';

const log = (l: string) => console.log(`[scale ${new Date().toISOString().slice(11, 19)}] ${l}`);
/** SCALE_TUNNELS, SCALE_WINDOW_S, SCALE_RATE_CONCURRENCY, SCALE_OPEN_CONCURRENCY and SCALE_PING_MS (tools/README.md). */
export function scaleSettings(env: NodeJS.ProcessEnv = process.env): { tunnels: number; windowS: number; rateConcurrency: number; openConcurrency: number; pingMs: number } {
  return {
    tunnels: envNumber('SCALE_TUNNELS', 1000, {}, env),
    windowS: envNumber('SCALE_WINDOW_S', 10, {}, env),
    rateConcurrency: envNumber('SCALE_RATE_CONCURRENCY', 50, {}, env),
    openConcurrency: envNumber('SCALE_OPEN_CONCURRENCY', 50, {}, env),
    pingMs: envNumber('SCALE_PING_MS', 250, {}, env),
  };
}

/**
 * sni-proxy's RELAY_MODE in the bench's labs: BENCH_SNI_RELAY_MODE=stream compares the Node stream
 * pipes against the default (native); unset, sni-proxy runs with its shipped default.
 */
export function benchSniEnv(): Record<string, string> {
  const mode = process.env.BENCH_SNI_RELAY_MODE;
  if (mode === undefined || mode === '') return {};
  if (mode !== 'native' && mode !== 'stream') throw new Error(`BENCH_SNI_RELAY_MODE must be native or stream, not ${JSON.stringify(mode)}`);
  return { RELAY_MODE: mode };
}

/** The issue's targets. */
export const SCALE_TARGETS = { keepalive_rtt_p99_ms_under_load: 10, upstream_lookups_per_connect: 0 } as const;

const FIXTURE_PORT = 1194;
const SERVERNAME = 'vpn-seed-server';
export const scaleUpstreamName = (i: number) => `vpn-seed-server.shoot--scale--${String(i).padStart(4, '0')}.svc.cluster.local`;
export const scaleHeaderValue = (i: number) => `outbound|1194||${scaleUpstreamName(i)}`;


/** The client process: one command a line in, one JSON event a line out. */
class Clients {
  private readonly child: ChildProcess;
  private readonly lines: Interface;
  private readonly waiting: Array<(o: Record<string, unknown>) => void> = [];
  constructor(argv: string[], ns: string, logFile: string) {
    const fd = openSync(logFile, 'a');
    this.child = spawn(inNs(ns, argv)[0]!, inNs(ns, argv).slice(1), { stdio: ['pipe', 'pipe', fd], detached: true });
    closeSync(fd);
    this.lines = createInterface({ input: this.child.stdout! });
    this.lines.on('line', (l) => {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(l) as Record<string, unknown>;
      } catch {
        return;
      }
      this.waiting.shift()?.(o);
    });
  }
  get pid(): number {
    return this.child.pid!;
  }
  /** Sends a command and waits for its answer. */
  ask(cmd: string, timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the clients did not answer ${JSON.stringify(cmd)} within ${timeoutMs} ms`)), timeoutMs);
      const onExit = () => reject(new Error(`the clients exited during ${JSON.stringify(cmd)}`));
      this.child.once('exit', onExit);
      this.waiting.push((o) => {
        clearTimeout(timer);
        this.child.off('exit', onExit);
        if (o.event === 'error') reject(new Error(`clients: ${String(o.message)}`));
        else resolve(o);
      });
      this.child.stdin!.write(`${cmd}\n`);
    });
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin!.end('quit\n');
    await Promise.race([exited, sleep(3000)]);
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await exited;
    }
  }
}

/** One keepalive-RTT window's figures (idle, or with the data stream running). */
export interface RttWindowFigures {
  samples: number; lost: number; p50_ms: number; p99_ms: number; max_ms: number;
  sni_proxy_cpu_s_per_s: number; sni_proxy_eventloop_delay_p99_ms: number; sni_proxy_eventloop_delay_max_ms: number;
  light_peers_cpu_s_per_s: number; light_clients_eventloop_delay_p99_ms: number; light_clients_eventloop_delay_max_ms: number;
  upstream_fixture_eventloop_delay_p99_ms: number; upstream_fixture_eventloop_delay_max_ms: number;
}

export interface ScaleResult {
  benchmark: 'sni-proxy-scale';
  date: string;
  command: string;
  machine: { cpus: number; cpu_model: string | undefined; kernel: string; node: string; loadavg_at_start: number[]; loadavg_at_end: number[] };
  setup: Record<string, unknown>;
  tunnels: number;
  open: { ok: number; failed: number; seconds: number; per_s: number; errors: Record<string, number>; sni_proxy_cpu_s: number };
  keepalive_rtt_idle: RttWindowFigures;
  keepalive_rtt_under_load: RttWindowFigures & { data_stream_gbps: number; tunnels_dropped: number };
  connect_rate: { ok: number; failed: number; seconds: number; per_s: number; p50_ms: number; p99_ms: number; concurrency: number; sni_proxy_cpu_s_per_s: number; light_peers_cpu_s_per_s: number; upstream_lookups: number | null; upstream_lookups_by_cause: Record<string, number> | null; upstream_lookups_per_connect: number | null };
  memory: { rss_anon_mib_before: number; rss_anon_mib_at_tunnels: number; mib_per_extra_tunnel: number; kib_per_extra_tunnel: number };
  sni_proxy_cpu_s_total: number;
  targets: { keepalive_rtt_p99_ms_under_load: { target_max: number; measured: number; met: boolean }; upstream_lookups_per_connect: { target_max: number; measured: number | null; met: boolean } };
}

/** `signal` (bench.ts aborts it on SIGINT/SIGTERM/SIGHUP): everything is removed and the process exits 130. */
export async function runScaleBench(opts: { signal?: AbortSignal } = {}): Promise<{ file: string; result: ScaleResult }> {
  const { tunnels: N, windowS: WINDOW_S, rateConcurrency: RATE_C, openConcurrency: OPEN_C, pingMs: PING_MS } = scaleSettings();
  if (process.getuid?.() !== 0) throw new Error('must run as root');
  const missing = await missingTools(['ip', 'nft', 'iperf3', 'curl']);
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')} (run: bash tools/setup.sh)`);

  // the machine is shared: the load around the run says how much the figures can be trusted
  const loadStart = loadavg().map((x) => round(x, 2));
  const sniEnv = benchSniEnv();
  const stack = new Stack({ log, logLevel: 'warn', sniEnv });
  const lbNs = stack.topo.ns.lb;
  const hostsDir = `/etc/netns/${lbNs}`;
  const dir = mkdtempSync(join(stack.dir, 'scale-'));
  let clients: Clients | undefined;
  const onAbort = () => void Promise.resolve(clients?.stop()).then(() => stack.down()).finally(() => {
    rmSync(stack.dir, { recursive: true, force: true });
    rmSync(hostsDir, { recursive: true, force: true });
    process.exit(130);
  });
  if (opts.signal?.aborted) throw new Error('stopped before the scale bench started');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // the names of N upstreams, resolvable only inside the load balancer's namespace
    mkdirSync(hostsDir, { recursive: true });
    writeFileSync(join(hostsDir, 'hosts'), ['127.0.0.1 localhost', '::1 localhost', ...Array.from({ length: N }, (_, i) => `${stack.topo.seed.kapi} ${scaleUpstreamName(i)}`)].join('\n') + '\n');
    await stack.start();
    const ca = await createCa({ commonName: 'rvpn-scale-ca' });
    const cert = await issueCertificate(ca, { commonName: SERVERNAME, usage: 'server', dnsNames: [SERVERNAME] });
    await writePkiFiles(dir, { 'ca.crt': ca.certPem, 'upstream.crt': cert.certPem, 'upstream.key': cert.keyPem });
    const node = process.execPath;
    const fixture = spawnLogged([node, join(REPO_ROOT, 'tools', 'dist', 'fixtures', 'scale-upstream.js'), '--listen', `${stack.topo.seed.kapi}:${FIXTURE_PORT}`,
      '--cert', join(dir, 'upstream.crt'), '--key', join(dir, 'upstream.key'), '--ping-ms', String(PING_MS)], { ns: stack.topo.ns.kapi, logFile: stack.logFile('scale-upstream') });
    stack.procs.set('scale-upstream', fixture);
    stack.topo.trackPid(fixture.pid);
    await waitFor('the scale upstream to listen', () => readFileSync(fixture.logFile, 'utf8').includes('"listening"'), 10_000, 50);

    // a short TIME_WAIT cannot run the connect-rate phase out of ports: reuse and a wide range, in the
    // two namespaces that open connections (the shoot node's and the load balancer's)
    for (const ns of [stack.topo.ns.node, lbNs]) {
      await run(['sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65000'], { ns });
    }
    const routes = stack.defaultRoutes();
    const values = Array.from({ length: N }, (_, i) => scaleHeaderValue(i));
    await stack.writeRoutes({ ...routes, connect: { ...routes.connect, ...Object.fromEntries(values.map((v, i) => [v, `${scaleUpstreamName(i)}:${FIXTURE_PORT}`])) } });
    const metricsText = () => stack.statusBody('sni-proxy', 'metrics');
    await waitFor(`sni-proxy to load ${N + 1} CONNECT routes`, async () => metric(await metricsText(), 'rvpn_sni_proxy_routes', { kind: 'connect' }) === N + 1, 30_000, 100);
    writeFileSync(join(dir, 'values.json'), JSON.stringify(values));

    const pid = stack.procs.get('sni-proxy')!.pid;
    const rssAnon = async () => {
      const xs: number[] = [];
      for (let i = 0; i < 3; i++) {
        if (i) await sleep(1000);
        xs.push(readProcMemory(pid).rss_anon_mib);
      }
      return median(xs);
    };
    await sleep(3000);
    const rssBefore = await rssAnon();
    const cpuStart = cpuSeconds(pid);
    log(`sni-proxy with the real tunnel and ${N + 1} routes: RssAnon ${rssBefore.toFixed(1)} MiB (load average ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);

    clients = new Clients([node, join(REPO_ROOT, 'tools', 'dist', 'fixtures', 'scale-clients.js'), '--proxy', `${ADDR.lbWan}:8132`, '--routes', join(dir, 'values.json'),
      '--ca', join(dir, 'ca.crt'), '--servername', SERVERNAME, '--ping-ms', String(PING_MS), '--open-concurrency', String(OPEN_C)], stack.topo.ns.node, stack.logFile('scale-clients'));
    stack.topo.trackPid(clients.pid);
    log(`opening ${N} tunnels (CONNECT + TLS, ${OPEN_C} at once) from ${ADDR.nodeWan}`);
    let c0 = cpuSeconds(pid);
    const opened = await clients.ask('open', 300_000) as { ok: number; failed: number; ms: number; errors: Record<string, number> };
    const openCpu = cpuSeconds(pid) - c0;
    log(`opened ${opened.ok} (${opened.failed} failed) in ${(opened.ms / 1000).toFixed(1)} s`);
    if (opened.ok < N) throw new Error(`only ${opened.ok} of ${N} tunnels opened: ${JSON.stringify(opened.errors)}`);

    // the light peers' own CPU, to tell a busy machine from a slow proxy
    const harnessCpu = () => cpuSeconds(clients!.pid) + cpuSeconds(fixture.pid);
    /** The fixture's own loop delay since the last call (SIGUSR2; scale-upstream.ts prints it to its log). */
    let fixtureLoopSeq = 0;
    const fixtureLoop = async (): Promise<LoopDelay> => {
      const seq = ++fixtureLoopSeq;
      process.kill(fixture.pid, 'SIGUSR2');
      let found: LoopDelay | undefined;
      await waitFor('the scale upstream\'s loop figures', () => {
        for (const line of readFileSync(fixture.logFile, 'utf8').split('\n')) {
          if (!line.includes('"loop"')) continue;
          const o = JSON.parse(line) as LoopDelay & { seq: number };
          if (o.seq === seq) found = o;
        }
        return found !== undefined;
      }, 5000, 50);
      return found!;
    };
    const window = async (label: string, during?: () => Promise<number>) => {
      // a scrape resets prom-client's event-loop-delay histogram: the next one covers just this window
      await metricsText();
      await clients!.ask('rtt-start', 5000);
      await fixtureLoop();
      const t0 = Date.now();
      const c = cpuSeconds(pid);
      const h = harnessCpu();
      const extra = during ? await during() : (await sleep(WINDOW_S * 1000), NaN);
      const secs = (Date.now() - t0) / 1000;
      const cpu = (cpuSeconds(pid) - c) / secs;
      const harness = (harnessCpu() - h) / secs;
      const m = await metricsText();
      const lag = { p99_ms: metric(m, 'nodejs_eventloop_lag_p99_seconds') * 1000, max_ms: metric(m, 'nodejs_eventloop_lag_max_seconds') * 1000 };
      const fx = await fixtureLoop();
      const r = await clients!.ask('rtt-stop', 10_000) as { samples: number; lost: number; p50_ms: number; p99_ms: number; max_ms: number; dropped: number; loop_delay_p99_ms: number; loop_delay_max_ms: number };
      log(`${label}: keepalive RTT p50 ${r.p50_ms.toFixed(2)} ms, p99 ${r.p99_ms.toFixed(2)} ms, max ${r.max_ms.toFixed(2)} ms (${r.samples} samples, ${r.lost} lost); sni-proxy ${cpu.toFixed(2)} CPU s/s (event loop delay p99 ${lag.p99_ms.toFixed(1)} ms, max ${lag.max_ms.toFixed(1)}), light peers ${harness.toFixed(2)} (own loop delay p99 / max: clients ${r.loop_delay_p99_ms.toFixed(1)} / ${r.loop_delay_max_ms.toFixed(1)} ms, fixture ${fx.p99_ms.toFixed(1)} / ${fx.max_ms.toFixed(1)} ms)`);
      return { r, cpu, harness, lag, extra, fx };
    };
    const windowFigures = (w: Awaited<ReturnType<typeof window>>): RttWindowFigures => ({
      samples: w.r.samples, lost: w.r.lost, p50_ms: round(w.r.p50_ms), p99_ms: round(w.r.p99_ms), max_ms: round(w.r.max_ms),
      sni_proxy_cpu_s_per_s: round(w.cpu), sni_proxy_eventloop_delay_p99_ms: round(w.lag.p99_ms, 1), sni_proxy_eventloop_delay_max_ms: round(w.lag.max_ms, 1),
      light_peers_cpu_s_per_s: round(w.harness), light_clients_eventloop_delay_p99_ms: round(w.r.loop_delay_p99_ms, 1), light_clients_eventloop_delay_max_ms: round(w.r.loop_delay_max_ms, 1),
      upstream_fixture_eventloop_delay_p99_ms: round(w.fx.p99_ms, 1), upstream_fixture_eventloop_delay_max_ms: round(w.fx.max_ms, 1),
    });
    await sleep(2000); // every tunnel past its first PINGs
    const idle = await window(`${N} tunnels idle, ${WINDOW_S} s`);

    const rssAt = await rssAnon();
    const perTunnel = (rssAt - rssBefore) / N;
    log(`sni-proxy at ${N} tunnels: RssAnon ${rssAt.toFixed(1)} MiB → ${(perTunnel * 1024).toFixed(1)} KiB per extra tunnel`);

    const loaded = await window(`${N} tunnels, iperf3 through the real tunnel`, async () => {
      const port = 5301;
      const srv = spawnLogged(['iperf3', '-s', '-1', '-p', String(port)], { ns: stack.topo.ns.pod, logFile: stack.logFile('iperf3-server') });
      stack.topo.trackPid(srv.pid);
      try {
        await waitFor('the iperf3 server', async () => (await run(['ss', '-Hltn', `sport = :${port}`], { ns: stack.topo.ns.pod })).stdout.includes(String(port)), 5000, 50);
        const r = await run(['iperf3', '-c', ADDR.pod, '-p', String(port), '-t', String(WINDOW_S), '-J'], { ns: stack.topo.ns.srv, timeoutMs: (WINDOW_S + 30) * 1000, allowFail: true });
        const j = JSON.parse(r.stdout || '{}') as { error?: string; end?: { sum_received?: { bits_per_second: number } } };
        if (!j.end?.sum_received) throw new Error(`iperf3 through the real tunnel failed: ${j.error ?? r.stderr}`);
        return j.end.sum_received.bits_per_second / 1e9;
      } finally {
        srv.child.kill('SIGKILL');
        await srv.exited;
      }
    });
    log(`data stream through the real tunnel: ${loaded.extra.toFixed(3)} Gbit/s`);
    const loadedR = loaded.r;

    log(`new CONNECTs for ${WINDOW_S} s, ${RATE_C} at once, cycling through the ${N} routes, with ${N} tunnels open`);
    const lookupsBefore = await metricsText();
    c0 = cpuSeconds(pid);
    const h0 = harnessCpu();
    const tRate = Date.now();
    const rate = await clients.ask(`rate ${WINDOW_S} ${RATE_C}`, (WINDOW_S + 60) * 1000) as { ok: number; failed: number; seconds: number; per_s: number; p50_ms: number; p99_ms: number };
    const rateCpu = (cpuSeconds(pid) - c0) / ((Date.now() - tRate) / 1000);
    const rateHarness = (harnessCpu() - h0) / ((Date.now() - tRate) / 1000);
    const lookupsAfter = await metricsText();
    // only lookups a connection waited for count against the target; `refresh` ones run once per TTL
    // and name whatever the rate (the rate phase starts about 30 s after the routes loaded)
    const hasLookupMetric = lookupsAfter.includes('rvpn_sni_proxy_upstream_lookups_total');
    const lookupDelta = (cause: string) => metric(lookupsAfter, 'rvpn_sni_proxy_upstream_lookups_total', { cause }) - metric(lookupsBefore, 'rvpn_sni_proxy_upstream_lookups_total', { cause });
    const byCause = hasLookupMetric ? Object.fromEntries(['routes', 'refresh', 'retry', 'connection'].map((c) => [c, lookupDelta(c)])) : null;
    const lookups = byCause ? Object.values(byCause).reduce((a, b) => a + b, 0) : null;
    const lookupsPer = byCause === null || rate.ok === 0 ? null : byCause.connection! / rate.ok;
    log(`${rate.ok} CONNECTs in ${rate.seconds.toFixed(1)} s: ${rate.per_s.toFixed(0)}/s (${rate.failed} failed; CONNECT → 200 p50 ${rate.p50_ms.toFixed(2)} ms, p99 ${rate.p99_ms.toFixed(2)} ms); sni-proxy ${rateCpu.toFixed(2)} CPU s/s, light peers ${rateHarness.toFixed(2)}; upstream lookups ${byCause ? `${lookups} ${JSON.stringify(byCause)}` : 'not counted (no rvpn_sni_proxy_upstream_lookups_total)'}`);
    const cpuTotal = cpuSeconds(pid) - cpuStart;

    const result: ScaleResult = {
      benchmark: 'sni-proxy-scale',
      date: new Date().toISOString(),
      command: 'pnpm bench:scale',
      machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, kernel: release(), node: process.version, loadavg_at_start: loadStart, loadavg_at_end: loadavg().map((x) => round(x, 2)) },
      setup: {
        sni_proxy: 'apps/sni-proxy/dist as the lab runs it (node --max-semi-space-size=1), default caps, in the lab\'s load-balancer namespace',
        sni_proxy_relay_mode: sniEnv.RELAY_MODE ?? 'native (default)',
        real_tunnel: 'the lab\'s vpn-shoot → sni-proxy :8132 (Reversed-VPN) → vpn-seed-server; the data stream is one iperf3 TCP stream seed pod → shoot pod through it',
        light_tunnels: `one process in the shoot node's namespace (${ADDR.nodeWan}): CONNECT with the Reversed-VPN header to ${ADDR.lbWan}:8132, each with its own route, then TLS 1.3 and the tunnel's PING/PONG both ways every ${PING_MS} ms`,
        upstream: `one TLS fixture at ${stack.topo.seed.kapi}:${FIXTURE_PORT} behind ${N} names (vpn-seed-server.shoot--scale--NNNN.svc.cluster.local), resolved through the load balancer namespace's hosts file`,
        window_s: WINDOW_S, ping_ms: PING_MS, open_concurrency: OPEN_C,
        sysctls: 'net.ipv4.tcp_tw_reuse=1, ip_local_port_range 1024-65000 in the shoot node\'s and the load balancer\'s namespaces',
      },
      tunnels: N,
      open: { ok: opened.ok, failed: opened.failed, seconds: round(opened.ms / 1000, 2), per_s: round(opened.ok / (opened.ms / 1000), 1), errors: opened.errors, sni_proxy_cpu_s: round(openCpu, 2) },
      keepalive_rtt_idle: windowFigures(idle),
      keepalive_rtt_under_load: { ...windowFigures(loaded), data_stream_gbps: round(loaded.extra), tunnels_dropped: loadedR.dropped },
      connect_rate: { ok: rate.ok, failed: rate.failed, seconds: round(rate.seconds, 2), per_s: round(rate.per_s, 1), p50_ms: round(rate.p50_ms), p99_ms: round(rate.p99_ms), concurrency: RATE_C, sni_proxy_cpu_s_per_s: round(rateCpu), light_peers_cpu_s_per_s: round(rateHarness), upstream_lookups: lookups, upstream_lookups_by_cause: byCause, upstream_lookups_per_connect: lookupsPer === null ? null : round(lookupsPer, 4) },
      memory: { rss_anon_mib_before: round(rssBefore, 1), rss_anon_mib_at_tunnels: round(rssAt, 1), mib_per_extra_tunnel: round(perTunnel, 4), kib_per_extra_tunnel: round(perTunnel * 1024, 1) },
      sni_proxy_cpu_s_total: round(cpuTotal, 2),
      targets: {
        keepalive_rtt_p99_ms_under_load: { target_max: SCALE_TARGETS.keepalive_rtt_p99_ms_under_load, measured: round(loadedR.p99_ms), met: loadedR.p99_ms <= SCALE_TARGETS.keepalive_rtt_p99_ms_under_load },
        upstream_lookups_per_connect: { target_max: SCALE_TARGETS.upstream_lookups_per_connect, measured: lookupsPer === null ? null : round(lookupsPer, 4), met: lookupsPer !== null && lookupsPer <= SCALE_TARGETS.upstream_lookups_per_connect },
      },
    };
    const outDir = join(REPO_ROOT, 'bench-out');
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, 'sni-proxy-scale.json');
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    for (const [k, t] of Object.entries(result.targets)) log(`target ${k} <= ${t.target_max}: ${t.measured} → ${t.met ? 'met' : 'NOT met'}`);
    return { file, result };
  } catch (err) {
    // the work directory goes with the lab; show what the processes said first
    for (const name of ['sni-proxy', 'scale-upstream', 'scale-clients']) {
      const tail = (await run(['tail', '-n', '15', stack.logFile(name)], { allowFail: true })).stdout.trim();
      if (tail) console.error(`--- ${name} (last lines) ---\n${tail}`);
    }
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await clients?.stop();
    await stack.down();
    // a failed start keeps the work directory for its logs; this bench printed them above instead
    rmSync(stack.dir, { recursive: true, force: true });
    rmSync(hostsDir, { recursive: true, force: true });
  }
}
