/**
 * The HA failover figures (part of `pnpm bench`): on the HA lab, for each failure scenario, the
 * traffic gap at the receiver (`gap_ms`: the longest period without application bytes of a
 * `kubectl logs -f`-like stream, around the failure), the number of broken long-lived connections
 * (`broken_connections`: the stream and a rate-limited transfer), failed short requests, and — for
 * the shoot-pod scenarios — how long the path-controller took to move the routes (`detection_ms`).
 * Writes bench-out/failover.json.
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

const log = (l: string) => console.log(`[failover ${new Date().toISOString().slice(11, 19)}] ${l}`);

interface ScenarioResult {
  scenario: string;
  gap_ms: number;
  /** stream: the long-lived stream survived and its longest gap is reported; short_requests: it was
   * lost (flows NATed by a lost shoot pod are), so the gap is the longest time without a successful new request. */
  gap_measured_on: 'stream' | 'short_requests';
  stream_gap_ms: number;
  short_request_gap_ms: number;
  broken_connections: number;
  short_requests: number;
  short_requests_failed: number;
  detection_ms?: number;
  notes: string;
}

export async function runFailoverBench(): Promise<{ file: string; results: ScenarioResult[] }> {
  const s = new HaStack({ log, logLevel: 'warn' });
  const results: ScenarioResult[] = [];
  const kapi = (i: 0 | 1) => s.topo.ns[i === 0 ? 'kapi0' : 'kapi1'];
  const linksUp = async (app: HaApp) => {
    const m = await s.statusBody(app, 'metrics');
    const n = app.startsWith('path') ? 'rvpn_path_controller_bond_link_up' : 'rvpn_vpn_shoot_bond_link_up';
    return [0, 1].every((i) => metric(m, n, { server: `vpn-seed-server-${i}` }) === 1);
  };
  const allLinksUp = () => waitFor('every bond link up', async () => {
    for (const a of ['path-controller-0', 'path-controller-1', 'vpn-shoot-0', 'vpn-shoot-1'] as HaApp[]) if (!(await linksUp(a))) return false;
    return true;
  }, 60_000, 100);
  const activePath = async () => metric(await s.statusBody('path-controller-0', 'metrics'), 'rvpn_path_controller_active_path');

  async function scenario(name: string, notes: string, inject: () => Promise<void>, restore: () => Promise<void>, watchPath = false) {
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
    const r: ScenarioResult = {
      scenario: name,
      gap_ms: Math.round(streamBroke ? shortGap : streamGap),
      gap_measured_on: streamBroke ? 'short_requests' : 'stream',
      stream_gap_ms: Math.round(streamGap),
      short_request_gap_ms: Math.round(shortGap),
      broken_connections: [so, to].filter(lost).length,
      short_requests: shortTotal,
      short_requests_failed: shortFailed,
      ...(detection !== undefined ? { detection_ms: detection } : {}),
      notes,
    };
    log(`${name}: gap ${r.gap_ms} ms (${r.gap_measured_on}), broken ${r.broken_connections}, short requests failed ${shortFailed}/${shortTotal}${detection !== undefined ? `, path moved after ${detection} ms` : ''}`);
    results.push(r);
  }

  try {
    await s.start();
    const cut = 'table inet rvcut {\n chain i { type filter hook input priority -300; policy drop; }\n chain o { type filter hook output priority -300; policy drop; }\n}\n';
    await scenario('server_kill', 'kill -9 of vpn-seed-server-0 (the bonds\' active server); restarted after 4 s as the StatefulSet would',
      () => s.stopApp('vpn-seed-server-0', 'SIGKILL'), async () => void (await s.startApp('vpn-seed-server-0')));
    await scenario('server_silent', 'every packet of vpn-seed-server-0\'s pod dropped (nft, silent); detected by the tunnel keepalive',
      async () => void (await run(['nft', '-f', '-'], { ns: s.topo.ns.srv0, input: cut })),
      async () => void (await run(['nft', 'delete', 'table', 'inet', 'rvcut'], { ns: s.topo.ns.srv0 })));
    await scenario('rolling_restart', 'vpn-seed-server-0 then vpn-seed-server-1 restarted (SIGTERM), each after the other rejoined; gap over the whole roll',
      async () => {
        for (const srv of ['vpn-seed-server-0', 'vpn-seed-server-1'] as HaApp[]) {
          await s.stopApp(srv);
          await s.startApp(srv);
          await allLinksUp();
        }
      }, async () => undefined);
    let victim: HaApp = 'vpn-shoot-0';
    await scenario('shoot_pod_kill', 'kill -9 of the vpn-shoot pod the routes point at; flows NATed by it may break (its conntrack state is gone)',
      async () => {
        victim = (await activePath()) === 1 ? 'vpn-shoot-1' : 'vpn-shoot-0';
        await s.stopApp(victim, 'SIGKILL');
      }, async () => void (await s.startApp(victim)), true);
    let frozen = s.topo.ns.vsh0;
    await scenario('shoot_pod_frozen', 'links up but the pod forwards nothing (drop rule in its forward hook); found by probes through each pod',
      async () => {
        frozen = (await activePath()) === 1 ? s.topo.ns.vsh1 : s.topo.ns.vsh0;
        await run(['nft', '-f', '-'], { ns: frozen, input: 'table inet rvfreeze {\n chain f { type filter hook forward priority -300; policy drop; }\n}\n' });
      }, async () => void (await run(['nft', 'delete', 'table', 'inet', 'rvfreeze'], { ns: frozen })), true);
  } finally {
    await s.down();
  }
  const out = {
    benchmark: 'failover',
    date: new Date().toISOString(),
    command: 'pnpm bench',
    machine: { cpus: cpus().length, kernel: release(), node: process.version },
    setup: 'HA lab: 2 vpn-seed-servers (userspace switches), 2 vpn-shoot pods bonded to both through sni-proxy, 2 kube-apiserver pods with path-controllers; HA keepalive 100 ms / dead after 500 ms (KEEPALIVE_INTERVAL/KEEPALIVE_TIMEOUT), probes every 200 ms, 3 misses, healthy period 3 s',
    traffic: 'a stream of 10 ms lines (kube-apiserver-0 → shoot pod, like kubectl logs -f), a 2 MB/s transfer (kube-apiserver-1 → shoot pod) and a short request every 100 ms (kube-apiserver-0 → service)',
    scenarios: results,
  };
  mkdirSync(join(REPO_ROOT, 'bench-out'), { recursive: true });
  const file = join(REPO_ROOT, 'bench-out', 'failover.json');
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  return { file, results };
}
