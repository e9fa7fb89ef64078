/**
 * The HA failover figures (part of `pnpm bench`): on the HA lab, for each failure scenario, the
 * traffic gap at the receiver (`gap_ms`: the longest period without application bytes of a
 * `kubectl logs -f`-like stream, around the failure), the number of broken long-lived connections
 * (`broken_connections`: the stream and a rate-limited transfer), failed short requests, and — for
 * the shoot-pod scenarios — how long the path-controller took to move the routes (`detection_ms`).
 * Each scenario runs `runs` times (FAILOVER_RUNS, default 5) on one lab; bench-out/failover.json keeps
 * every run, per scenario the distribution (bench-failover-stats.ts: nearest-rank percentiles) and
 * issue 11's targets evaluated on it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, release } from 'node:os';
import { HaStack, type HaApp } from './lab/ha-stack.js';
import { ADDR } from './lab/topology.js';
import { REPO_ROOT } from './lab/stack.js';
import { run, sleep, waitFor } from './lab/sh.js';
import { broke, flow, longestGap } from './lab/traffic.js';
import { metric } from './lab/metrics.js';
import { PERCENTILE_METHOD, evaluateTargets, runMisses, summarize, type FailoverRun, type ScenarioSummary } from './bench-failover-stats.js';

const log = (l: string) => console.log(`[failover ${new Date().toISOString().slice(11, 19)}] ${l}`);

interface Scenario {
  name: string;
  notes: string;
  inject: () => Promise<void>;
  restore: () => Promise<void>;
  /** Shoot-pod scenarios: measure how long the path-controller takes to move the routes. */
  watchPath?: boolean;
}

export interface FailoverBenchOptions {
  /** How often each scenario runs (FAILOVER_RUNS; default 5). */
  runs?: number;
  /** How the bench was started, recorded in the JSON. */
  command?: string;
  /** Aborting (Ctrl-C) removes the lab at once and rejects; nothing stays behind. */
  signal?: AbortSignal;
  /** The apps' log level (FAILOVER_LOG_LEVEL; default warn): info logs every path and bond move. */
  logLevel?: string;
}

export async function runFailoverBench(opts: FailoverBenchOptions = {}): Promise<{ file: string; runs: FailoverRun[]; summaries: Record<string, ScenarioSummary>; targetsMet: boolean }> {
  const runs = opts.runs ?? 5;
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`runs must be a positive integer, not ${runs}`);
  const { signal } = opts;
  signal?.throwIfAborted();
  const s = new HaStack({ log, logLevel: opts.logLevel ?? 'warn' });
  const measured: FailoverRun[] = [];
  const kapi = (i: 0 | 1) => s.topo.ns[i === 0 ? 'kapi0' : 'kapi1'];
  const linksUp = async (app: HaApp) => {
    const m = await s.statusBody(app, 'metrics');
    const n = app.startsWith('path') ? 'rvpn_path_controller_bond_link_up' : 'rvpn_vpn_shoot_bond_link_up';
    return [0, 1].every((i) => metric(m, n, { server: `vpn-seed-server-${i}` }) === 1);
  };
  // both shoot pods usable again at both path-controllers too: a restarted or thawed pod must pass probes for
  // PROBE_HEALTHY_PERIOD first, and a run that began before that (a slow machine) met a lab with one path
  const pathsUsable = async (app: 'path-controller-0' | 'path-controller-1') => {
    const m = await s.statusBody(app, 'metrics');
    return [0, 1].every((j) => metric(m, 'rvpn_path_controller_path_usable', { path: String(j) }) === 1);
  };
  const allLinksUp = () => waitFor('every bond link up and both shoot pods usable', async () => {
    for (const a of ['path-controller-0', 'path-controller-1', 'vpn-shoot-0', 'vpn-shoot-1'] as HaApp[]) if (!(await linksUp(a))) return false;
    return (await pathsUsable('path-controller-0')) && (await pathsUsable('path-controller-1'));
  }, 60_000, 100);
  const activePath = async () => metric(await s.statusBody('path-controller-0', 'metrics'), 'rvpn_path_controller_active_path');

  /** One run of a scenario on the running lab; it leaves the lab as it found it (restore, every link up). */
  async function measure(sc: Scenario, round: number): Promise<FailoverRun> {
    const { name, inject, restore, watchPath = false } = sc;
    await allLinksUp();
    await sleep(3000); // bonds fail back to their primary; the path-controllers settle
    const stream = flow(kapi(0), ['-m', '300', ...s.proxyArgs(), `http://${ADDR.pod}:${ADDR.podPort}/stream?ms=10`]);
    const transfer = flow(kapi(1), ['-m', '300', '--limit-rate', '2M', ...s.proxyArgs(), `http://${ADDR.pod}:${ADDR.podPort}/bytes?n=40000000`]);
    let shortTotal = 0;
    let shortFailed = 0;
    const shortOk: number[] = [];
    let shortRunning = true;
    const shortLoop = (async () => {
      while (shortRunning) {
        const r = await s.curlViaProxy(0, `http://${ADDR.service}:${ADDR.servicePort}/`, [], 3);
        shortTotal++;
        if (!r.stdout.includes('hello from pod')) shortFailed++;
        else shortOk.push(performance.now());
        await sleep(100);
      }
    })();
    await sleep(2000);
    const before = watchPath ? await activePath() : NaN;
    const tEvent = performance.now();
    await inject();
    let detection: number | undefined;
    if (watchPath) {
      await waitFor('the path-controller to move the routes', async () => (await activePath()) !== before, 20_000, 20).catch(() => undefined);
      detection = Math.round(performance.now() - tEvent);
    }
    await sleep(4000);
    const tEnd = performance.now();
    const streamGap = longestGap(stream.observed.arrivals, tEvent - 500, tEnd);
    const shortGap = longestGap(shortOk, tEvent - 500, tEnd);
    await restore();
    await allLinksUp();
    shortRunning = false;
    await shortLoop;
    const so = await stream.stop();
    const to = await transfer.stop();
    // a flow is lost when curl failed, or when it stalled: nothing arrived in the last second of the window
    const lost = (o: typeof so) => broke(o) || (o.exit !== 0 && (o.arrivals.at(-1) ?? 0) < tEnd - 1000);
    const streamBroke = lost(so);
    const r: FailoverRun = {
      scenario: name,
      run: round,
      gap_ms: Math.round(streamBroke ? shortGap : streamGap),
      gap_measured_on: streamBroke ? 'short_requests' : 'stream',
      stream_gap_ms: Math.round(streamGap),
      short_request_gap_ms: Math.round(shortGap),
      broken_connections: [so, to].filter(lost).length,
      short_requests: shortTotal,
      short_requests_failed: shortFailed,
      ...(detection !== undefined ? { detection_ms: detection } : {}),
    };
    const missed = runMisses(r);
    if (missed.length) {
      // the apps' logs of this lab are all there is to explain a miss: they stay, and the run says when
      s.keepWorkDir = true;
      r.missed = missed;
      r.failure_at = new Date(Date.now() - (performance.now() - tEvent)).toISOString();
    }
    log(`${name} ${round}/${runs}: gap ${r.gap_ms} ms (${r.gap_measured_on}), broken ${r.broken_connections}, short requests failed ${shortFailed}/${shortTotal}${detection !== undefined ? `, path moved after ${detection} ms` : ''}${missed.length ? ` — MISSED ${missed.join(', ')} (failure injected at ${r.failure_at})` : ''}`);
    return r;
  }

  const cut = 'table inet rvcut {\n chain i { type filter hook input priority -300; policy drop; }\n chain o { type filter hook output priority -300; policy drop; }\n}\n';
  let victim: HaApp = 'vpn-shoot-0';
  let frozen = s.topo.ns.vsh0;
  const scenarios: Scenario[] = [
    {
      name: 'server_kill', notes: 'kill -9 of vpn-seed-server-0 (the bonds\' active server); restarted after 4 s as the StatefulSet would',
      inject: () => s.stopApp('vpn-seed-server-0', 'SIGKILL'), restore: async () => void (await s.startApp('vpn-seed-server-0')),
    },
    {
      name: 'server_silent', notes: 'every packet of vpn-seed-server-0\'s pod dropped (nft, silent); detected by the tunnel keepalive',
      inject: async () => void (await run(['nft', '-f', '-'], { ns: s.topo.ns.srv0, input: cut })),
      restore: async () => void (await run(['nft', 'delete', 'table', 'inet', 'rvcut'], { ns: s.topo.ns.srv0 })),
    },
    {
      name: 'rolling_restart', notes: 'vpn-seed-server-0 then vpn-seed-server-1 restarted (SIGTERM), each after the other rejoined; gap over the whole roll',
      inject: async () => {
        for (const srv of ['vpn-seed-server-0', 'vpn-seed-server-1'] as HaApp[]) {
          await s.stopApp(srv);
          await s.startApp(srv);
          await allLinksUp();
        }
      },
      restore: async () => undefined,
    },
    {
      name: 'shoot_pod_kill', notes: 'kill -9 of the vpn-shoot pod the routes point at; flows NATed by it may break (its conntrack state is gone)',
      inject: async () => {
        victim = (await activePath()) === 1 ? 'vpn-shoot-1' : 'vpn-shoot-0';
        await s.stopApp(victim, 'SIGKILL');
      },
      restore: async () => void (await s.startApp(victim)), watchPath: true,
    },
    {
      name: 'shoot_pod_frozen', notes: 'links up but the pod forwards nothing (drop rule in its forward hook); found by probes through each pod',
      inject: async () => {
        frozen = (await activePath()) === 1 ? s.topo.ns.vsh1 : s.topo.ns.vsh0;
        await run(['nft', '-f', '-'], { ns: frozen, input: 'table inet rvfreeze {\n chain f { type filter hook forward priority -300; policy drop; }\n}\n' });
      },
      restore: async () => void (await run(['nft', 'delete', 'table', 'inet', 'rvfreeze'], { ns: frozen })), watchPath: true,
    },
  ];

  // Rounds outer, scenarios inner: a slow spell of this shared machine then spreads over every scenario
  // instead of hitting all runs of one. One lab for all runs: every scenario restores what it broke and
  // waits for every bond link before it measures, so a fresh lab per run would only add start-up time.
  const work = (async () => {
    await s.start();
    for (let i = 1; i <= runs; i++) {
      log(`run ${i}/${runs}`);
      for (const sc of scenarios) {
        signal?.throwIfAborted();
        measured.push(await measure(sc, i));
      }
    }
  })();
  // after an abort the lab goes away under the run, which then fails; that failure is no news
  work.catch(() => undefined);
  let downing: Promise<void> | undefined;
  const down = () => (downing ??= s.down());
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      void down();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  try {
    await Promise.race([work, aborted]);
  } catch (err) {
    if (!signal?.aborted) {
      s.keepWorkDir = true; // the apps' logs say what went wrong (a failed start has said where already)
      const msg = (err as Error).message;
      throw msg.includes(s.dir) ? err : new Error(`${msg}\n(logs kept in ${s.dir})`, { cause: err });
    }
    throw err;
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    await down();
  }

  const summaries: Record<string, ScenarioSummary> = {};
  const scenarioOut: Record<string, unknown> = {};
  for (const sc of scenarios) {
    const mine = measured.filter((r) => r.scenario === sc.name);
    const summary = summarize(mine);
    summaries[sc.name] = summary;
    // each run's own figures beside the distribution (the scenario is the key already)
    scenarioOut[sc.name] = { notes: sc.notes, ...summary, runs: mine.map(({ scenario: _scenario, ...r }) => r) };
    const d = summary.detection_ms;
    log(`${sc.name} over ${summary.n} runs: gap_ms min ${summary.gap_ms.min} / p50 ${summary.gap_ms.p50} / p95 ${summary.gap_ms.p95} / max ${summary.gap_ms.max}${d ? `, detection_ms min ${d.min} / p50 ${d.p50} / p95 ${d.p95} / max ${d.max}` : ''}, broken ${summary.broken_connections_total}, short requests failed ${summary.short_requests_failed_total}/${summary.short_requests_total}`);
  }
  const targets = evaluateTargets(summaries);
  for (const c of targets.checks) log(`target ${c.target} (${c.scenario} ${c.measured} = ${c.value}): ${c.met ? 'met' : 'MISSED'}`);
  const logsKept = s.keepWorkDir ? s.dir : undefined;
  if (logsKept) log(`the lab's logs of the runs that missed a target are kept in ${logsKept} (each such run has failure_at in the JSON)`);
  const out = {
    benchmark: 'failover',
    date: new Date().toISOString(),
    command: opts.command ?? 'pnpm bench',
    machine: { cpus: cpus().length, kernel: release(), node: process.version },
    setup: 'HA lab: 2 vpn-seed-servers (userspace switches), 2 vpn-shoot pods bonded to both through sni-proxy, 2 kube-apiserver pods with path-controllers; HA keepalive 100 ms / dead after 500 ms (KEEPALIVE_INTERVAL/KEEPALIVE_TIMEOUT), probes every 200 ms, 3 misses, healthy period 3 s',
    traffic: 'a stream of 10 ms lines (kube-apiserver-0 → shoot pod, like kubectl logs -f), a 2 MB/s transfer (kube-apiserver-1 → shoot pod) and a short request every 100 ms (kube-apiserver-0 → service)',
    runs_per_scenario: runs,
    order: 'rounds: run 1 of every scenario, then run 2 of every scenario, …; one lab for all runs',
    percentile_method: PERCENTILE_METHOD,
    app_log_level: opts.logLevel ?? 'warn',
    ...(logsKept ? { logs_kept_in: logsKept } : {}),
    targets,
    scenarios: scenarioOut,
  };
  mkdirSync(join(REPO_ROOT, 'bench-out'), { recursive: true });
  const file = join(REPO_ROOT, 'bench-out', 'failover.json');
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  return { file, runs: measured, summaries, targetsMet: targets.met };
}
