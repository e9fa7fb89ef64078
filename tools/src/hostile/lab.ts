/**
 * Running the hostile toolkit against the lab (tools/src/lab): attacks as processes inside the lab's
 * namespaces (`node tools/dist/hostile.js …`), a keepalive monitor whose samples are cut into
 * per-attack windows, a second shoot's seed server beside the lab's (the tunnel sni-proxy must keep
 * serving while another shoot's route is attacked), resident memory and open fds per process, extra
 * source addresses for the attackers, and nft counters of the forged packets that got through.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createShootPki } from '@rvpn/pki';
import { appArgv, appProcessEnv, REPO_ROOT } from '../lab/paths.js';
import { inNs, run, spawnLogged, waitFor, type Spawned } from '../lab/sh.js';
import { ADDR } from '../lab/topology.js';
import { connectHeaderValue, type Stack } from '../lab/stack.js';
import { metric } from '../lab/metrics.js';
import { stopProcess } from '../lab/procs.js';
import { percentile, round } from './common.js';
import type { KeepaliveEvent, KeepaliveSample } from './keepalive.js';

export const HOSTILE_CLI = join(REPO_ROOT, 'tools', 'dist', 'hostile.js');

/**
 * Runs one attack of the CLI inside a namespace; resolves with its JSON result. Attackers run at
 * nice 10 by default: on a small machine they stand for hosts elsewhere, so the CPU they spend
 * sending should not be what the lab's processes measure.
 */
export async function runAttack(ns: string, args: string[], opts: { timeoutMs?: number; nice?: number } = {}): Promise<Record<string, unknown>> {
  const r = await run(['nice', '-n', String(opts.nice ?? 10), process.execPath, HOSTILE_CLI, ...args], { ns, allowFail: true, timeoutMs: opts.timeoutMs ?? 120_000 });
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (r.code !== 0 || !line) throw new Error(`hostile ${args[0]} failed (exit ${r.code}): ${r.stderr.trim().slice(-2000)}`);
  return JSON.parse(line) as Record<string, unknown>;
}

/** Resident memory (bytes) and open file descriptors of a process; undefined when it is gone. */
export function procStats(pid: number): { rssBytes: number; fds: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
    return { rssBytes: kb * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined;
  }
}

/** Samples RSS of some processes every `everyMs`; `peak()` is the highest RSS seen per name. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private readonly peaks = new Map<string, number>();
  constructor(private readonly pids: () => Record<string, number | undefined>, private readonly everyMs = 200) {}
  start(): void {
    this.peaks.clear();
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
  }
  private sample() {
    for (const [name, pid] of Object.entries(this.pids())) {
      if (pid === undefined) continue;
      const s = procStats(pid);
      if (s) this.peaks.set(name, Math.max(this.peaks.get(name) ?? 0, s.rssBytes));
    }
  }
  stop(): Record<string, number> {
    clearInterval(this.timer);
    this.sample();
    return Object.fromEntries(this.peaks);
  }
}

export const MiB = 1024 * 1024;
export const mib = (b: number | undefined) => (b === undefined ? undefined : Math.round((b / MiB) * 10) / 10);

/**
 * The keepalive monitor (`hostile.js keepalive`) running as a process in a namespace; every sample
 * and event is kept with its wall-clock time, so each attack's window can be cut out afterwards.
 */
export class MonitorProcess {
  readonly samples: KeepaliveSample[] = [];
  readonly events: KeepaliveEvent[] = [];
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  stderr = '';

  constructor(private readonly ns: string, private readonly args: string[]) {}

  start(track?: (pid: number) => void): void {
    const argv = inNs(this.ns, [process.execPath, HOSTILE_CLI, 'keepalive', ...this.args]);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    if (child.pid) track?.(child.pid);
    let buf = '';
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const o = JSON.parse(line) as KeepaliveSample & KeepaliveEvent;
          if (typeof o.rtt === 'number') this.samples.push({ t: o.t, rtt: o.rtt });
          else if (o.event) this.events.push(o);
        } catch {
          /* not a sample */
        }
      }
    });
    child.stderr!.on('data', (b: Buffer) => (this.stderr = (this.stderr + b.toString()).slice(-4000)));
    this.exited = new Promise((r) => child.once('exit', () => r()));
  }

  /** Waits until the session is up and samples flow. */
  async ready(timeoutMs = 15_000): Promise<void> {
    await waitFor('the keepalive monitor to report round trips', () => this.samples.length >= 3, timeoutMs, 50);
  }

  /** Round trips and reconnects between two wall-clock times. */
  window(from: number, to: number) {
    const rtts = this.samples.filter((s) => s.t >= from && s.t <= to).map((s) => s.rtt);
    const ev = this.events.filter((e) => e.t >= from && e.t <= to);
    // the largest gap between PONGs: a stalled tunnel shows here even when no PONG came back late
    const times = this.samples.filter((s) => s.t >= from && s.t <= to).map((s) => s.t);
    let gap = 0;
    for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
    return {
      samples: rtts.length,
      p50: round(percentile(rtts, 50), 2),
      p99: round(percentile(rtts, 99), 2),
      max: round(percentile(rtts, 100), 2),
      maxGapMs: gap,
      downs: ev.filter((e) => e.event === 'down').length,
      ups: ev.filter((e) => e.event === 'up').length,
      dialFailures: ev.filter((e) => e.event === 'dial-failed').length,
      eventDetails: ev.filter((e) => e.event !== 'up').map((e) => `${e.event}: ${e.detail ?? ''}`).slice(0, 5),
    };
  }

  async stop(): Promise<void> {
    this.child?.kill('SIGTERM');
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 3000))]);
    this.child?.kill('SIGKILL');
  }
}

/** Adds addresses to a device in a namespace (attackers with their own sources); removed with the namespace. */
export async function addAddresses(ns: string, dev: string, cidrs: string[]): Promise<void> {
  for (const c of cidrs) await run(['ip', 'addr', 'add', c, 'dev', dev, ...(c.includes(':') ? ['nodad'] : [])], { ns, allowFail: true });
}

const COUNTER_TABLE = 'rvhostile';

/**
 * Counts, in a namespace, the forged packets (marker TTL / hop limit 77) that arrive on `dev` before
 * any other hook (priority -450: before defragmentation and conntrack), i.e. what got through the
 * tunnel, and what the namespace's kernel sent back out of `dev` that only a forged packet can cause:
 * a SYN-ACK (something in the shoot opened a connection) or an ICMP error.
 */
export async function installMarkCounters(ns: string, dev: string): Promise<void> {
  await run(['nft', '-f', '-'], {
    ns,
    input: `table inet ${COUNTER_TABLE} {
  counter v4 {}
  counter v6 {}
  counter synack {}
  counter icmperr {}
  chain pre {
    type filter hook prerouting priority -450; policy accept;
    iifname "${dev}" ip ttl 77 counter name v4
    iifname "${dev}" ip6 hoplimit 77 counter name v6
  }
  chain out {
    type filter hook output priority -450; policy accept;
    oifname "${dev}" tcp flags & (syn | ack) == syn | ack counter name synack
    oifname "${dev}" icmp type { destination-unreachable, parameter-problem, time-exceeded } counter name icmperr
    oifname "${dev}" icmpv6 type { destination-unreachable, parameter-problem, time-exceeded } counter name icmperr
  }
}
`,
  });
}

export interface MarkCounters {
  v4: number;
  v6: number;
  synack: number;
  icmperr: number;
}

export async function readMarkCounters(ns: string): Promise<MarkCounters> {
  const out = (await run(['nft', '-j', 'list', 'counters', 'table', 'inet', COUNTER_TABLE], { ns })).stdout;
  const j = JSON.parse(out) as { nftables: Array<{ counter?: { name: string; packets: number } }> };
  const get = (n: string) => j.nftables.find((e) => e.counter?.name === n)?.counter?.packets ?? 0;
  return { v4: get('v4'), v6: get('v6'), synack: get('synack'), icmperr: get('icmperr') };
}

export async function removeMarkCounters(ns: string): Promise<void> {
  await run(['nft', 'delete', 'table', 'inet', COUNTER_TABLE], { ns, allowFail: true });
}

export const SECOND_SHOOT = 'shoot--other--local';

export interface SecondShoot {
  /** The CONNECT header line vpn-shoot of that shoot would send. */
  header: string;
  files: { ca: string; cert: string; key: string };
  proc: Spawned;
  stop(): Promise<void>;
}

/**
 * A second shoot's vpn-seed-server in the lab's seed-server namespace (its own CA, TUN tun1, nft
 * table, ports 1195/9444/15001, shoot networks that do not overlap the lab's), routed by sni-proxy
 * under its own header. The keepalive monitor dials it as that shoot's client: a tunnel of another
 * shoot through the same sni-proxy.
 */
export async function startSecondShoot(stack: Stack): Promise<SecondShoot> {
  const pki = await createShootPki({ namespace: SECOND_SHOOT });
  const dir = join(stack.dir, 'pki-second-shoot');
  mkdirSync(dir, { recursive: true });
  const w = (name: string, pem: string) => {
    writeFileSync(join(dir, name), pem, { mode: 0o600 });
    return join(dir, name);
  };
  const ca = w('ca.crt', pki.ca.certPem);
  const files = { ca, cert: w('client.crt', pki.shootClient.certPem), key: w('client.key', pki.shootClient.keyPem) };
  const env = appProcessEnv({
    NAMESPACE: SECOND_SHOOT, POD_NAME: 'vpn-seed-server-b', LOG_LEVEL: 'warn', IP_FAMILIES: 'IPv4',
    SHOOT_SERVICE_NETWORKS: '172.30.0.0/16', SHOOT_POD_NETWORKS: '172.31.0.0/16', SHOOT_NODE_NETWORKS: '172.29.0.0/16',
    SEED_POD_NETWORK: ADDR.seedPodNetwork, VPN_NETWORK: 'fd8f:6d53:b97a:2::/96',
    TLS_CA_FILE: ca, TLS_CERT_FILE: w('server.crt', pki.server.certPem), TLS_KEY_FILE: w('server.key', pki.server.keyPem),
    TUN_DEVICE: 'tun1', NFT_TABLE: 'rvpn_seed_b', TUNNEL_LISTEN: '0.0.0.0:1195', PROXY_LISTEN: '0.0.0.0:9444', STATUS_LISTEN: '0.0.0.0:15001',
    PROBE_INTERVAL: '10s',
  });
  const proc = spawnLogged(appArgv('vpn-seed-server'), { ns: stack.topo.ns.srv, env, logFile: stack.logFile('vpn-seed-server-b') });
  stack.topo.trackPid(proc.pid);
  await waitFor('the second shoot\'s seed server', async () => (await run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '2', 'http://127.0.0.1:15001/healthz'], { ns: stack.topo.ns.srv, allowFail: true })).stdout === '200', 20_000, 100);
  const value = connectHeaderValue(SECOND_SHOOT);
  const routes = stack.routes as { sni?: Record<string, string>; connect?: Record<string, string> };
  const reloads = async () => metric(await stack.statusBody('sni-proxy', 'metrics'), 'rvpn_sni_proxy_route_reloads_total', { result: 'ok' });
  const before = await reloads();
  await stack.writeRoutes({ ...routes, connect: { ...routes.connect, [value]: `${ADDR.srv}:1195` } });
  await waitFor('sni-proxy to load the second shoot\'s route', async () => (await reloads()) > before, 10_000, 100);
  return {
    header: `Reversed-VPN: ${value}`,
    files,
    proc,
    stop: () => stopProcess(proc),
  };
}
