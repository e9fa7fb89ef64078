#!/usr/bin/env node
/**
 * `pnpm bench`: throughput, latency and memory of our tunnel against OpenVPN 2.6 (TCP, AES-256-GCM,
 * vpn2's data plane) in the same run, on the same topology and the same path: the shoot side dials
 * out through sni-proxy (CONNECT with the Reversed-VPN header) to the seed pod, and iperf3/ping go
 * from the seed pod to the shoot pod 100.96.1.10 through the tunnel, forwarded and masqueraded by
 * the shoot side. Writes bench-out/tunnel.json.
 * First the idle memory of each app (bench-memory.ts) → bench-out/idle-memory.json; then the HA
 * failover figures (bench-failover.ts) → bench-out/failover.json.
 * Env: BENCH_DURATION (iperf3 seconds, default 10), BENCH_ROUNDS (alternating rounds, default 2),
 * BENCH_ONLY=memory|tunnel|failover (`pnpm bench:memory` is BENCH_ONLY=memory).
 */
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, release } from 'node:os';
import { issueCertificate, createCa, writePkiFiles } from '@rvpn/pki';
import { Stack, REPO_ROOT, connectHeaderValue } from './lab/stack.js';
import { ADDR } from './lab/topology.js';
import { missingTools, run, sleep, spawnLogged, waitFor, type Spawned } from './lab/sh.js';
import { runFailoverBench } from './bench-failover.js';
import { runIdleMemoryBench } from './bench-memory.js';

const DURATION = Number(process.env.BENCH_DURATION ?? '10');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? '2');
const OUT_DIR = join(REPO_ROOT, 'bench-out');
const OVPN_NS = 'shoot--bench--openvpn';
const OVPN_SRV_IP = '192.168.123.1';
const OVPN_CLI_IP = '192.168.123.2';
const OVPN_PORT = 1195;

const log = (l: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${l}`);

interface PathResult {
  throughput_gbps: number[];
  retransmits: number[];
  ping_avg_ms: number;
  ping_max_ms: number;
  ping_loss_pct: number;
}

async function iperf(stack: Stack, port: number): Promise<{ gbps: number; retransmits: number }> {
  let lastError = '';
  for (let attempt = 1; attempt <= 2; attempt++) {
    const r = await run(['iperf3', '-c', ADDR.pod, '-p', String(port), '-t', String(DURATION), '-J'], { ns: stack.topo.ns.srv, timeoutMs: (DURATION + 30) * 1000, allowFail: true });
    let j: { error?: string; end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } } } = {};
    try {
      j = JSON.parse(r.stdout) as typeof j;
    } catch {
      j = { error: `iperf3 printed no JSON (exit ${r.code}): ${r.stderr.trim()}` };
    }
    if (!j.error && j.end?.sum_received) return { gbps: j.end.sum_received.bits_per_second / 1e9, retransmits: j.end.sum_sent?.retransmits ?? 0 };
    lastError = j.error ?? 'no result';
    log(`iperf3 attempt ${attempt} failed: ${lastError}; retrying`);
    await sleep(2000); // e.g. "the server is busy running a test" right after the previous run
  }
  throw new Error(`iperf3 failed twice: ${lastError}`);
}

async function ping(stack: Stack): Promise<{ avg: number; max: number; loss: number }> {
  const r = await run(['ping', '-q', '-c', '200', '-i', '0.01', ADDR.pod], { ns: stack.topo.ns.srv, timeoutMs: 60_000, allowFail: true });
  const loss = Number(/([\d.]+)% packet loss/.exec(r.stdout)?.[1] ?? 100);
  const m = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\//.exec(r.stdout);
  return { avg: m ? Number(m[2]) : NaN, max: m ? Number(m[3]) : NaN, loss };
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

class OpenVpnPeer {
  private server: Spawned | undefined;
  private client: Spawned | undefined;
  constructor(private readonly stack: Stack) {}

  async start(): Promise<void> {
    const s = this.stack;
    const dir = join(s.dir, 'openvpn');
    const ca = await createCa({ commonName: 'openvpn-bench-ca' });
    const [srv, cli] = await Promise.all([
      issueCertificate(ca, { commonName: 'server', usage: 'server' }),
      issueCertificate(ca, { commonName: 'client', usage: 'client' }),
    ]);
    await writePkiFiles(dir, { 'ca.crt': ca.certPem, 'server.crt': srv.certPem, 'server.key': srv.keyPem, 'client.crt': cli.certPem, 'client.key': cli.keyPem });
    const common = ['dev-type tun', 'data-ciphers AES-256-GCM', 'data-ciphers-fallback AES-256-GCM', 'disable-dco', 'verb 3', `ca ${dir}/ca.crt`];
    writeFileSync(join(dir, 'server.conf'), [...common, 'dev ovpnb', 'proto tcp-server', `local ${ADDR.srv}`, `lport ${OVPN_PORT}`, `ifconfig ${OVPN_SRV_IP} ${OVPN_CLI_IP}`, 'tls-server', 'dh none', `cert ${dir}/server.crt`, `key ${dir}/server.key`].join('\n') + '\n');
    writeFileSync(join(dir, 'client.conf'), [...common, 'dev ovpnb', 'proto tcp-client', `remote ${ADDR.srv} ${OVPN_PORT}`,
      `http-proxy ${ADDR.lbWan} 8132`, `http-proxy-option CUSTOM-HEADER Reversed-VPN ${connectHeaderValue(OVPN_NS)}`,
      'nobind', 'connect-retry 1', `ifconfig ${OVPN_CLI_IP} ${OVPN_SRV_IP}`, 'tls-client', 'remote-cert-tls server', `cert ${dir}/client.crt`, `key ${dir}/client.key`].join('\n') + '\n');
    // sni-proxy routes OpenVPN's header to the OpenVPN server, exactly as it does for ours
    const routes = s.defaultRoutes();
    s.writeRoutes({ ...routes, connect: { ...routes.connect, [connectHeaderValue(OVPN_NS)]: `${ADDR.srv}:${OVPN_PORT}` } });
    await sleep(500);
    this.server = spawnLogged(['openvpn', '--config', join(dir, 'server.conf')], { ns: s.topo.ns.srv, logFile: s.logFile('openvpn-server') });
    s.topo.trackPid(this.server.pid);
    await sleep(500);
    this.client = spawnLogged(['openvpn', '--config', join(dir, 'client.conf')], { ns: s.topo.ns.vsh, logFile: s.logFile('openvpn-client') });
    s.topo.trackPid(this.client.pid);
    await waitFor('OpenVPN to connect', () => readFileSync(s.logFile('openvpn-client'), 'utf8').includes('Initialization Sequence Completed'), 30_000, 200);
    // the same target as ours: the pod, through the shoot side's forwarding and masquerade
    await run(['ip', 'route', 'add', `${ADDR.pod}/32`, 'dev', 'ovpnb'], { ns: s.topo.ns.srv });
    await run(['nft', '-f', '-'], { ns: s.topo.ns.vsh, input: `table ip rvbench {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname "eth0" ip saddr ${OVPN_SRV_IP} masquerade\n  }\n}\n` });
  }

  async stop(): Promise<void> {
    const s = this.stack;
    await run(['ip', 'route', 'del', `${ADDR.pod}/32`, 'dev', 'ovpnb'], { ns: s.topo.ns.srv, allowFail: true });
    await run(['nft', 'delete', 'table', 'ip', 'rvbench'], { ns: s.topo.ns.vsh, allowFail: true });
    for (const p of [this.client, this.server]) {
      if (!p) continue;
      p.child.kill('SIGTERM');
      await Promise.race([p.exited, sleep(3000)]);
      p.child.kill('SIGKILL');
    }
  }
}

let nextPort = 5201;

/** One iperf3 run against a fresh one-off server, so a test that ended untidily never blocks the next. */
async function measure(stack: Stack, label: string, into: PathResult): Promise<void> {
  const port = nextPort++;
  const srv = spawnLogged(['iperf3', '-s', '-1', '-p', String(port)], { ns: stack.topo.ns.pod, logFile: stack.logFile(`iperf3-server-${port}`) });
  stack.topo.trackPid(srv.pid);
  try {
    await waitFor('the iperf3 server', async () => (await run(['ss', '-Hltn', `sport = :${port}`], { ns: stack.topo.ns.pod })).stdout.includes(String(port)), 5000, 50);
    log(`${label}: iperf3 -c ${ADDR.pod} -t ${DURATION} (seed pod → shoot pod)`);
    const r = await iperf(stack, port);
    into.throughput_gbps.push(r.gbps);
    into.retransmits.push(r.retransmits);
    log(`${label}: ${r.gbps.toFixed(3)} Gbit/s, ${r.retransmits} retransmits`);
  } finally {
    srv.child.kill('SIGKILL');
    await srv.exited;
  }
}

async function runTunnelBench(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('bench: must run as root');
    return 2;
  }
  const missing = await missingTools(['ip', 'nft', 'iperf3', 'openvpn', 'ping', 'curl']);
  if (missing.length) {
    console.error(`bench: missing tools: ${missing.join(', ')} (run: bash tools/setup.sh)`);
    return 2;
  }
  const stack = new Stack({ log, logLevel: 'warn' });
  const stopAll = async () => {
    await stack.down();
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    await stack.start();
    await sleep(500);

    // idle memory, after the tunnel has been up and quiet for a moment
    await sleep(3000);
    const idleRss = Object.fromEntries((['vpn-seed-server', 'vpn-shoot', 'sni-proxy'] as const).map((a) => [a, round(rssMiB(stack.procs.get(a)!.pid), 1)]));
    log(`idle RSS MiB: ${JSON.stringify(idleRss)}`);

    const ours: PathResult = { throughput_gbps: [], retransmits: [], ping_avg_ms: NaN, ping_max_ms: NaN, ping_loss_pct: NaN };
    const ovpn: PathResult = { throughput_gbps: [], retransmits: [], ping_avg_ms: NaN, ping_max_ms: NaN, ping_loss_pct: NaN };
    const pOurs = await ping(stack);
    Object.assign(ours, { ping_avg_ms: pOurs.avg, ping_max_ms: pOurs.max, ping_loss_pct: pOurs.loss });
    log(`ours: ping avg ${pOurs.avg} ms, max ${pOurs.max} ms, loss ${pOurs.loss}%`);
    const curl = await run(['curl', '-s', '-o', '/dev/null', '-w', '%{speed_download}', ...stack.proxyArgs(), `http://${ADDR.pod}:${ADDR.podPort}/bytes?n=500000000`], { ns: stack.topo.ns.kapi, timeoutMs: 120_000 });
    const proxyGbps = (Number(curl.stdout) * 8) / 1e9;
    log(`ours: 500 MB through the CONNECT proxy: ${proxyGbps.toFixed(3)} Gbit/s`);

    const peer = new OpenVpnPeer(stack);
    // alternate rounds so that machine noise hits both alike; OpenVPN's route to the pod is more
    // specific than ours, so it is added only while OpenVPN is measured
    await peer.start();
    const pOvpn = await ping(stack);
    Object.assign(ovpn, { ping_avg_ms: pOvpn.avg, ping_max_ms: pOvpn.max, ping_loss_pct: pOvpn.loss });
    log(`openvpn: ping avg ${pOvpn.avg} ms, max ${pOvpn.max} ms, loss ${pOvpn.loss}%`);
    await peer.stop();
    for (let i = 0; i < ROUNDS; i++) {
      await measure(stack, `ours (round ${i + 1}/${ROUNDS})`, ours);
      const p = new OpenVpnPeer(stack);
      await p.start();
      await measure(stack, `openvpn (round ${i + 1}/${ROUNDS})`, ovpn);
      await p.stop();
    }

    const oursMed = median(ours.throughput_gbps);
    const ovpnMed = median(ovpn.throughput_gbps);
    const result = {
      benchmark: 'tunnel',
      date: new Date().toISOString(),
      command: 'pnpm bench',
      machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, kernel: release(), node: process.version },
      path: 'iperf3 TCP single stream and ping from the seed pod (vpn-seed-server namespace) to the shoot pod 100.96.1.10; the tunnel dialed by the shoot side through sni-proxy (CONNECT, Reversed-VPN header); shoot side forwards and masquerades',
      duration_s: DURATION,
      rounds: ROUNDS,
      ours: { ...ours, throughput_gbps_median: round(oursMed), throughput_gbps: ours.throughput_gbps.map((x) => round(x)), proxy_download_gbps: round(proxyGbps) },
      openvpn: { version: (await run(['openvpn', '--version'], { allowFail: true })).stdout.split('\n')[0], config: 'proto tcp, AES-256-GCM, disable-dco, http-proxy with CUSTOM-HEADER (vpn2 data plane)', ...ovpn, throughput_gbps_median: round(ovpnMed), throughput_gbps: ovpn.throughput_gbps.map((x) => round(x)) },
      throughput_ratio: round(oursMed / ovpnMed, 2),
      idle_rss_mib: idleRss,
    };
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(join(OUT_DIR, 'tunnel.json'), JSON.stringify(result, null, 2) + '\n');
    log(`ours ${oursMed.toFixed(3)} Gbit/s vs OpenVPN ${ovpnMed.toFixed(3)} Gbit/s: throughput_ratio ${result.throughput_ratio}`);
    log(`wrote ${join(OUT_DIR, 'tunnel.json')}`);
    return 0;
  } catch (err) {
    console.error(`bench failed: ${(err as Error).message}`);
    stack.keepWorkDir = true;
    return 1;
  } finally {
    await stopAll();
  }
}

async function main(): Promise<number> {
  const only = process.env.BENCH_ONLY;
  if (only && only !== 'memory' && only !== 'tunnel' && only !== 'failover') {
    console.error('bench: BENCH_ONLY must be memory, tunnel or failover');
    return 2;
  }
  if (!only || only === 'memory') {
    if (process.getuid?.() !== 0) {
      console.error('bench: must run as root');
      return 2;
    }
    // first, while nothing else of ours runs
    try {
      const { file } = await runIdleMemoryBench({ log: (l) => log(`memory: ${l}`) });
      log(`wrote ${file}`);
    } catch (err) {
      console.error(`memory bench failed: ${(err as Error).message}`);
      return 1;
    }
  }
  if (!only || only === 'tunnel') {
    const c = await runTunnelBench();
    if (c !== 0) return c;
  }
  if (!only || only === 'failover') {
    if (process.getuid?.() !== 0) {
      console.error('bench: must run as root');
      return 2;
    }
    try {
      const { file } = await runFailoverBench();
      log(`wrote ${file}`);
    } catch (err) {
      console.error(`failover bench failed: ${(err as Error).message}`);
      return 1;
    }
  }
  return 0;
}

main().then((c) => process.exit(c), (err) => {
  console.error(err);
  process.exit(1);
});
