/**
 * Chaos: kill -9 of each component under load (a rate-limited transfer and a request every 200 ms
 * through the CONNECT proxy), three times each, the killed process restarted at once (what the
 * kubelet does). After each round every tunnel is back, and nothing leaked: the survivors' open fds
 * and memory, the namespaces' devices, routes, policy rules, nft tables and processes are what they
 * were before the kill. The time from the kill to the first request that succeeds again goes to
 * bench-out/chaos.json, per component.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { ADDR, HaStack, REPO_ROOT, Stack, URLS, flow, run, sleep, sweep, waitFor, type Flow, type HaApp } from '@rvpn/tools';
import { procStats, mib } from '@rvpn/tools/hostile';
import { requireRoot } from './harness.js';

const ROUNDS = 3;
/** Survivors after a round: open fds over the count before the kill, resident memory growth. */
const FD_SLACK = 10;
const RSS_GROWTH_MIB = 48;
const REPORT = join(REPO_ROOT, 'bench-out', 'chaos.json');
const report: Record<string, unknown> = {
  generatedAt: new Date().toISOString(),
  machine: { cpus: cpus().length, node: process.version },
  bounds: { rounds: ROUNDS, survivorFdSlack: FD_SLACK, survivorRssGrowthMiB: RSS_GROWTH_MIB },
  components: {},
};
function saveReport(): void {
  mkdirSync(join(REPO_ROOT, 'bench-out'), { recursive: true });
  writeFileSync(REPORT, `${JSON.stringify(report, null, 2)}\n`);
}

/** Requests started every `everyMs` (each with its own timeout), with when they started, ended and whether they succeeded. */
class RequestLoop {
  readonly done: Array<{ start: number; end: number; ok: boolean }> = [];
  private stopped = false;
  private readonly inflight = new Set<Promise<void>>();
  private loop: Promise<void> | undefined;
  constructor(private readonly request: () => Promise<boolean>, private readonly everyMs = 200) {}
  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const start = Date.now();
        const p = this.request().then((ok) => {
          this.done.push({ start, end: Date.now(), ok });
        }, () => {
          this.done.push({ start, end: Date.now(), ok: false });
        });
        this.inflight.add(p);
        void p.finally(() => this.inflight.delete(p));
        await sleep(this.everyMs);
      }
    })();
  }
  /** The first request started after `t` that succeeded: its end, or undefined. */
  firstSuccessAfter(t: number): number | undefined {
    const ok = this.done.filter((r) => r.ok && r.start >= t).sort((a, b) => a.end - b.end);
    return ok[0]?.end;
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await Promise.all([...this.inflight]);
  }
}

const LOAD_COMMANDS = new Set(['curl', 'bash', 'sha256sum', 'sh']);

/**
 * What a namespace holds that a crashed process could leave behind: devices, routes (both
 * families, every table), policy rules, nft tables, processes (the load's curls not counted).
 */
async function nsState(ns: string) {
  const lines = async (argv: string[]) => (await run(argv, { ns, allowFail: true })).stdout.split('\n').map((l) => l.replace(/expires \d+sec/, '').trim()).filter(Boolean).sort();
  const pids = (await run(['ip', 'netns', 'pids', ns], { allowFail: true })).stdout.split(/\s+/).filter(Boolean);
  const comms = pids.map((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  }).filter((c) => c && !LOAD_COMMANDS.has(c)).sort();
  const routes = [...(await lines(['ip', 'route', 'show', 'table', 'all'])), ...(await lines(['ip', '-6', 'route', 'show', 'table', 'all']))];
  return {
    links: (await lines(['ip', '-o', 'link', 'show'])).map((l) => l.split(':')[1]!.trim().split('@')[0]!),
    // routes a process added are compared as they are; the kernel's own (for the addresses of a device
    // created again, with a new link-local address or a newly drawn bond address) by number only
    routes: routes.filter((l) => !l.includes('proto kernel')),
    kernelRoutes: [`${routes.filter((l) => l.includes('proto kernel')).length} kernel routes`],
    rules: [...(await lines(['ip', 'rule'])), ...(await lines(['ip', '-6', 'rule']))],
    nftTables: await lines(['nft', 'list', 'tables']),
    processes: comms,
  };
}

type NsState = Awaited<ReturnType<typeof nsState>>;

/** IPv6 addresses still in duplicate address detection get their kernel routes later: wait them out before comparing. */
async function settled(namespaces: string[]): Promise<void> {
  await waitFor('no tentative IPv6 address left', async () => {
    for (const ns of namespaces) if ((await run(['ip', '-6', 'addr', 'show', 'tentative'], { ns, allowFail: true })).stdout.trim()) return false;
    return true;
  }, 10_000, 100);
}

interface Round {
  round: number;
  recoverMs: number | undefined;
  transferSurvived: boolean | undefined;
  survivors: Record<string, { fdsBefore?: number; fdsAfter?: number; rssBeforeMiB?: number; rssAfterMiB?: number }>;
  leaks: string[];
}

function compareState(before: Record<string, NsState>, after: Record<string, NsState>): string[] {
  const out: string[] = [];
  for (const [ns, b] of Object.entries(before)) {
    const a = after[ns]!;
    for (const k of Object.keys(b) as Array<keyof NsState>) {
      // as multisets: a policy rule added twice (identical rules may coexist) is a leak too
      const left = [...b[k]];
      const extra: string[] = [];
      for (const x of a[k]) {
        const i = left.indexOf(x);
        if (i >= 0) left.splice(i, 1);
        else extra.push(x);
      }
      if (extra.length || left.length) out.push(`${ns} ${k}:${extra.length ? ` left over ${JSON.stringify(extra)}` : ''}${left.length ? ` missing ${JSON.stringify(left)}` : ''}`);
    }
  }
  return out;
}

/** Runs ROUNDS kill -9 rounds of one component and checks recovery and leaks after each. */
async function chaos(opts: {
  component: string;
  kill: () => Promise<void>;
  restart: () => Promise<void>;
  recovered: () => Promise<boolean>;
  requests: RequestLoop;
  survivors: () => Record<string, number | undefined>;
  namespaces: string[];
  transfer: () => Flow;
}): Promise<Round[]> {
  const rounds: Round[] = [];
  (report.components as Record<string, unknown>)[opts.component] = { rounds };
  for (let round = 1; round <= ROUNDS; round++) {
    const transfer = opts.transfer();
    await sleep(800);
    await settled(opts.namespaces);
    const before = Object.fromEntries(await Promise.all(opts.namespaces.map(async (ns) => [ns, await nsState(ns)] as const)));
    const pids = opts.survivors();
    const statsBefore = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, p ? procStats(p) : undefined]));
    const tKill = Date.now();
    await opts.kill();
    await opts.restart();
    let recoverMs: number | undefined;
    try {
      await waitFor(`${opts.component}: a request succeeding again after the kill`, () => opts.requests.firstSuccessAfter(tKill), 30_000, 50);
      await waitFor(`${opts.component}: every tunnel back`, () => opts.recovered(), 30_000, 100);
      recoverMs = opts.requests.firstSuccessAfter(tKill)! - tKill;
    } catch {
      recoverMs = undefined;
    }
    await sleep(1000); // let the transfer show whether it survived, and the survivors settle
    const o = transfer.observed;
    const transferSurvived = o.exit === undefined ? true : o.exit === 0;
    await transfer.stop();
    await sleep(300);
    await settled(opts.namespaces).catch(() => undefined);
    const after = Object.fromEntries(await Promise.all(opts.namespaces.map(async (ns) => [ns, await nsState(ns)] as const)));
    const survivors = Object.fromEntries(Object.entries(pids).map(([k, p]) => {
      const a = p ? procStats(p) : undefined;
      return [k, { fdsBefore: statsBefore[k]?.fds, fdsAfter: a?.fds, rssBeforeMiB: mib(statsBefore[k]?.rssBytes), rssAfterMiB: mib(a?.rssBytes) }];
    }));
    const r: Round = { round, recoverMs, transferSurvived, survivors, leaks: compareState(before, after) };
    rounds.push(r);
    saveReport();
    expect.soft(recoverMs, `${opts.component} round ${round}: recovered`).toBeDefined();
    expect.soft(r.leaks, `${opts.component} round ${round}: left behind in the namespaces`).toEqual([]);
    for (const [name, s] of Object.entries(survivors)) {
      expect.soft(s.fdsAfter, `${opts.component} round ${round}: ${name} survived`).toBeDefined();
      if (s.fdsBefore !== undefined && s.fdsAfter !== undefined) expect.soft(s.fdsAfter, `${opts.component} round ${round}: ${name} open fds (before ${s.fdsBefore})`).toBeLessThanOrEqual(s.fdsBefore + FD_SLACK);
      if (s.rssBeforeMiB !== undefined && s.rssAfterMiB !== undefined) expect.soft(s.rssAfterMiB - s.rssBeforeMiB, `${opts.component} round ${round}: ${name} RSS growth (MiB)`).toBeLessThanOrEqual(RSS_GROWTH_MIB);
    }
  }
  const times = rounds.map((r) => r.recoverMs).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  Object.assign((report.components as Record<string, Record<string, unknown>>)[opts.component]!, { recoverMs: times, medianRecoverMs: times[Math.floor(times.length / 2)] });
  saveReport();
  return rounds;
}

describe('chaos: kill -9 under load (plain reversed VPN)', () => {
  let stack: Stack;
  let requests: RequestLoop;
  const apps = ['sni-proxy', 'vpn-seed-server', 'vpn-shoot'] as const;

  beforeAll(async () => {
    requireRoot();
    await sweep();
    stack = new Stack({});
    await stack.start();
    requests = new RequestLoop(async () => (await stack.curlViaProxy(URLS.pod, [], 10)).stdout.includes('hello from pod'));
    requests.start();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && stack) stack.keepWorkDir = true;
  });
  afterAll(async () => {
    await requests?.stop();
    saveReport();
    await stack?.down();
    if (stack?.keepWorkDir) console.log(`logs kept in ${stack.dir}`);
  });

  for (const app of apps) {
    it(`kill -9 of ${app}, ${ROUNDS} times, during a transfer and a request every 200 ms: every tunnel recovers, nothing leaks`, async () => {
      const seedSessions = async () => Number(/^rvpn_seed_server_tunnel_connected (\S+)/m.exec(await stack.statusBody('vpn-seed-server', 'metrics'))?.[1] ?? 0);
      await chaos({
        component: app,
        kill: () => stack.stopApp(app, 'SIGKILL'),
        restart: async () => {
          await stack.startApp(app);
        },
        recovered: async () => (await stack.status('vpn-seed-server', 'readyz')) === 200 && (await stack.status('vpn-shoot', 'readyz')) === 200 && (await seedSessions()) === 1,
        requests,
        survivors: () => Object.fromEntries(apps.filter((a) => a !== app).map((a) => [a, stack.procs.get(a)?.pid])),
        namespaces: [stack.topo.ns.lb, stack.topo.ns.srv, stack.topo.ns.vsh, stack.topo.ns.node],
        transfer: () => flow(stack.topo.ns.kapi, ['-m', '60', '--limit-rate', '2M', ...stack.proxyArgs(), `http://${ADDR.pod}:${ADDR.podPort}/bytes?n=100000000`]),
      });
    });
  }
});

describe('chaos: kill -9 of a path-controller under load (HA)', () => {
  let s: HaStack;
  let requests: RequestLoop;

  beforeAll(async () => {
    requireRoot();
    await sweep();
    s = new HaStack({});
    await s.start();
    requests = new RequestLoop(async () => (await s.curlViaProxy(0, URLS.pod, [], 10)).stdout.includes('hello from pod'));
    requests.start();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && s) s.keepWorkDir = true;
  });
  afterAll(async () => {
    await requests?.stop();
    saveReport();
    await s?.down();
    if (s?.keepWorkDir) console.log(`logs kept in ${s.dir}`);
  });

  it(`kill -9 of path-controller-0, ${ROUNDS} times, during a transfer and a request every 200 ms: its apiserver reaches the shoot again, nothing leaks`, async () => {
    const others: HaApp[] = ['sni-proxy', 'vpn-seed-server-0', 'vpn-seed-server-1', 'vpn-shoot-0', 'vpn-shoot-1', 'path-controller-1'];
    await chaos({
      component: 'path-controller',
      kill: () => s.stopApp('path-controller-0', 'SIGKILL'),
      restart: async () => {
        await s.startApp('path-controller-0');
      },
      recovered: async () => (await s.status('path-controller-0', 'readyz')) === 200,
      requests,
      survivors: () => Object.fromEntries(others.map((a) => [a, s.procs.get(a)?.pid])),
      namespaces: [s.topo.ns.kapi0, s.topo.ns.srv0, s.topo.ns.vsh0, s.topo.ns.vsh1],
      transfer: () => flow(s.topo.ns.kapi0, ['-m', '60', '--limit-rate', '2M', ...s.proxyArgs(), `http://${ADDR.pod}:${ADDR.podPort}/bytes?n=100000000`]),
    });
  });
});
