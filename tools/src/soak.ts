#!/usr/bin/env node
/**
 * `pnpm soak [--minutes N]` (as root): the lab (tools/src/lab, processes) under steady traffic for N
 * minutes (default 10) — a `kubectl logs -f`-like stream, rate-limited downloads one after another, a
 * request every 500 ms — with a tunnel reconnect every 30 s (the tunnel's packets dropped for 1.5 s
 * between sni-proxy and the seed server, so both ends declare it dead: no process restarts) and a
 * certificate reload every 60 s (every leaf re-issued; the CA was rotated once at the start so the
 * run holds the key). Resident memory and open fds of each app are sampled every 5 s into
 * bench-out/soak.json.
 *
 * Fails (exit 1) when an app's RSS grows more than RSS_BOUND_MIB or its open fds more than FD_BOUND
 * between the start window and the end window (medians; the first window after a warm-up, the last
 * one of the run), when an app dies, a reconnect or a reload does not happen, or the lab's checks
 * fail at the end. Ctrl-C (or SIGTERM/SIGHUP) stops the run, removes the lab and exits 130; nothing
 * is left behind in any case (namespaces, processes, work directory; `pnpm sweep` finds none).
 */
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import { caBundle, createCa, issueCertificate, seedServerDnsNames, shootIdentityUri, type CertKeyPair } from '@rvpn/pki';
import { ADDR, LAB_STATE_DIR } from './lab/topology.js';
import { SHOOT_NAMESPACE, Stack, URLS, type AppName } from './lab/stack.js';
import { run, sleep, waitFor } from './lab/sh.js';
import { metric } from './lab/metrics.js';
import { flow, type Flow } from './lab/traffic.js';
import { runChecks } from './checks.js';
import { onStopRequest } from './lab/stop.js';
import { REPO_ROOT } from './lab/paths.js';
import { procStats } from './hostile/lab.js';
import { parseDuration } from './hostile/common.js';
import { median } from './stats.js';

const RSS_BOUND_MIB = 32;
const FD_BOUND = 10;
const APPS: AppName[] = ['sni-proxy', 'vpn-seed-server', 'vpn-shoot'];

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'sample-every': { type: 'string', default: '5s' },
    'reconnect-every': { type: 'string', default: '30s' },
    'reload-every': { type: 'string', default: '60s' },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  console.log('usage: pnpm soak [--minutes 10] [--sample-every 5s] [--reconnect-every 30s] [--reload-every 60s]   (as root)');
  process.exit(0);
}

const minutes = Number(values.minutes);
if (!(minutes > 0)) {
  console.error(`soak: --minutes must be a positive number, not ${JSON.stringify(values.minutes)}`);
  process.exit(2);
}
const durationMs = Math.round(minutes * 60_000);
const sampleEveryMs = parseDuration(values['sample-every']!);
const reconnectEveryMs = parseDuration(values['reconnect-every']!);
const reloadEveryMs = parseDuration(values['reload-every']!);
/** Windows compared: the first one after a warm-up of the same length, and the last one. */
const windowMs = Math.min(120_000, Math.max(30_000, Math.round(durationMs * 0.2)));

const log = (line: string) => console.log(`soak ${new Date().toISOString().slice(11, 19)} ${line}`);

interface Sample {
  t: number;
  apps: Record<string, { rssMiB: number; fds: number } | null>;
}

let stopping: string | undefined;
/** What made the run fail, printed at the end. */
const problems: string[] = [];
// a signal, or our output going away (`pnpm soak | head`), stops the run and removes the lab
onStopRequest((why) => {
  stopping = why;
  log(`${why}: stopping, removing the lab`);
});


/** Waits `ms`, or less when a stop was asked for. */
async function wait(ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!stopping && Date.now() < end) await sleep(Math.min(200, end - Date.now()));
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('soak: must run as root (network namespaces, TUN devices, nftables)');
    return 2;
  }
  log(`${minutes} min of the lab under steady traffic, a tunnel reconnect every ${reconnectEveryMs / 1000} s, a certificate reload every ${reloadEveryMs / 1000} s, RSS and fds sampled every ${sampleEveryMs / 1000} s`);
  log(`bound: no app's RSS may grow more than ${RSS_BOUND_MIB} MiB, nor its open fds more than ${FD_BOUND}, from the first ${windowMs / 1000} s window after a ${windowMs / 1000} s warm-up to the last ${windowMs / 1000} s (medians)`);
  const s = new Stack({ log: (l) => log(`lab: ${l}`) });
  const samples: Sample[] = [];
  const events: Array<{ t: number; what: string; detail?: string }> = [];
  const traffic = { requests: 0, requestFailures: 0, downloads: 0, downloadFailures: 0, streamBreaks: 0, streamBytes: 0 };
  const out: Record<string, unknown> = {
    startedAt: new Date().toISOString(), machine: { cpus: cpus().length, node: process.version },
    settings: { minutes, sampleEveryMs, reconnectEveryMs, reloadEveryMs, windowMs },
    bounds: { rssGrowthMiB: RSS_BOUND_MIB, fdGrowth: FD_BOUND, rule: 'median of the last window minus median of the first window after the warm-up, per app' },
    samples, events, traffic,
  };
  const write = () => {
    mkdirSync(join(REPO_ROOT, 'bench-out'), { recursive: true });
    writeFileSync(join(REPO_ROOT, 'bench-out', 'soak.json'), `${JSON.stringify(out, null, 2)}\n`);
  };
  const flows: Flow[] = [];
  let t0 = Date.now();
  try {
    await s.start();
    if (stopping) return 130;
    t0 = Date.now();
    const metrics = async (app: AppName) => s.statusBody(app, 'metrics');
    const sessions = async () => metric(await metrics('vpn-seed-server'), 'rvpn_seed_server_tunnel_sessions_total');
    const reloads = async () => metric(await metrics('vpn-seed-server'), 'rvpn_seed_server_tls_reloads_total');

    // certificates: rotate the CA once (bundle, then leaves of the new CA) so the run can re-issue leaves
    const newCa = await createCa({ commonName: 'ca-vpn' });
    await s.updatePki({ 'ca.crt': caBundle(s.pkiFiles['ca.crt']!, newCa.certPem) });
    await waitFor('the seed server to trust the new CA too', async () => (await reloads()) >= 1, 10_000, 100);
    const reissue = async (ca: CertKeyPair) => {
      const uri = shootIdentityUri(SHOOT_NAMESPACE);
      const [server, proxyServer, shootClient, proxyClient] = await Promise.all([
        issueCertificate(ca, { commonName: 'vpn-seed-server', usage: 'server', dnsNames: seedServerDnsNames(SHOOT_NAMESPACE), uris: [uri] }),
        issueCertificate(ca, { commonName: 'vpn-seed-server', usage: 'server', dnsNames: seedServerDnsNames(SHOOT_NAMESPACE), ipAddresses: [ADDR.srv], uris: [uri] }),
        issueCertificate(ca, { commonName: 'vpn-shoot-client', usage: 'client', uris: [uri] }),
        issueCertificate(ca, { commonName: 'kube-apiserver-http-proxy-client', usage: 'client' }),
      ]);
      await s.updatePki({
        'server.crt': server.certPem, 'server.key': server.keyPem, 'proxy-server.crt': proxyServer.certPem, 'proxy-server.key': proxyServer.keyPem,
        'shoot-client.crt': shootClient.certPem, 'shoot-client.key': shootClient.keyPem, 'proxy-client.crt': proxyClient.certPem, 'proxy-client.key': proxyClient.keyPem,
      });
    };

    // steady traffic
    const stream = () => {
      const f = flow(s.topo.ns.kapi, ['-m', String(Math.ceil(durationMs / 1000) + 120), ...s.proxyArgs(), `http://${ADDR.pod}:${ADDR.podPort}/stream?ms=50`]);
      flows.push(f);
      void f.done.then((o) => {
        traffic.streamBytes += o.bytes;
        if (!o.stoppedByUs && !stopping) {
          traffic.streamBreaks++;
          events.push({ t: Date.now() - t0, what: 'stream broke', detail: `curl exit ${o.exit}` });
          stream();
        }
      });
    };
    stream();
    const downloads = (async () => {
      while (!stopping && Date.now() - t0 < durationMs) {
        const f = flow(s.topo.ns.kapi, ['-m', '60', '--limit-rate', '1M', ...s.proxyArgs(), `http://${ADDR.pod}:${ADDR.podPort}/bytes?n=10000000`]);
        flows.push(f);
        const o = await f.done;
        flows.splice(flows.indexOf(f), 1);
        if (o.stoppedByUs) break;
        traffic.downloads++;
        if (o.exit !== 0 || o.bytes !== 10_000_000) traffic.downloadFailures++;
      }
    })();
    const requests = (async () => {
      while (!stopping && Date.now() - t0 < durationMs) {
        traffic.requests++;
        const r = await s.curlViaProxy(URLS.pod, [], 10);
        if (!r.stdout.includes('hello from pod')) traffic.requestFailures++;
        await wait(500);
      }
    })();

    let nextSample = 0;
    let nextReconnect = reconnectEveryMs;
    let nextReload = reloadEveryMs / 2;
    let lastProgress = 0;
    while (!stopping) {
      const el = Date.now() - t0;
      if (el >= durationMs) break;
      if (el >= nextSample) {
        nextSample += sampleEveryMs;
        const apps: Sample['apps'] = {};
        for (const a of APPS) {
          const p = s.procs.get(a);
          const st = p && p.child.exitCode === null ? procStats(p.pid) : undefined;
          apps[a] = st ? { rssMiB: Math.round((st.rssBytes / 1048576) * 10) / 10, fds: st.fds } : null;
          if (!st && !problems.some((x) => x.startsWith(`${a} is not running`))) problems.push(`${a} is not running (first seen at ${Math.round(el / 1000)} s)`);
        }
        samples.push({ t: el, apps });
      }
      if (el >= nextReconnect) {
        nextReconnect += reconnectEveryMs;
        const before = await sessions();
        // drop the tunnel's packets between sni-proxy and the seed server: both ends go silent and reconnect
        await run(['nft', '-f', '-'], { ns: s.topo.ns.lb, input: `table inet rvsoak {\n chain o { type filter hook output priority -300; policy accept; ip daddr ${ADDR.srv} tcp dport 1194 drop; }\n chain i { type filter hook input priority -300; policy accept; ip saddr ${ADDR.srv} tcp sport 1194 drop; }\n}\n` });
        await wait(1500);
        await run(['nft', 'delete', 'table', 'inet', 'rvsoak'], { ns: s.topo.ns.lb, allowFail: true });
        const ok = await waitFor('a new tunnel session', async () => (await sessions()) > before, 20_000, 100).then(() => true, () => false);
        events.push({ t: Date.now() - t0, what: 'tunnel reconnect', detail: ok ? 'new session' : 'NO new session within 20 s' });
        if (!ok && !stopping) problems.push(`no new tunnel session after the cut at ${Math.round(el / 1000)} s`);
      }
      if (el >= nextReload) {
        nextReload += reloadEveryMs;
        const before = await reloads();
        await reissue(newCa);
        const ok = await waitFor('the certificate reload', async () => (await reloads()) > before, 10_000, 100).then(() => true, () => false);
        events.push({ t: Date.now() - t0, what: 'certificate reload', detail: ok ? 'reloaded' : 'NOT reloaded within 10 s' });
        if (!ok && !stopping) problems.push(`certificates not reloaded at ${Math.round(el / 1000)} s`);
      }
      if (el - lastProgress >= 30_000) {
        lastProgress = el;
        const last = samples[samples.length - 1];
        log(`${Math.round(el / 1000)} s: ${APPS.map((a) => `${a} ${last?.apps[a]?.rssMiB ?? '-'} MiB/${last?.apps[a]?.fds ?? '-'} fds`).join(', ')}; requests ${traffic.requests} (${traffic.requestFailures} failed), downloads ${traffic.downloads}, reconnects ${events.filter((e) => e.what === 'tunnel reconnect').length}`);
      }
      await wait(Math.max(50, Math.min(nextSample, nextReconnect, nextReload, durationMs) - (Date.now() - t0)));
    }
    for (const f of flows) await f.stop();
    await Promise.all([downloads, requests]);
    if (stopping) {
      out.aborted = stopping;
      return 130;
    }

    // the verdict
    const end = Date.now() - t0;
    const growth: Record<string, { rssMiB: number; fds: number; startRssMiB: number; endRssMiB: number; startFds: number; endFds: number }> = {};
    for (const a of APPS) {
      const at = (from: number, to: number) => samples.filter((x) => x.t >= from && x.t < to && x.apps[a]).map((x) => x.apps[a]!);
      const first = at(windowMs, 2 * windowMs);
      const last = at(end - windowMs, end + 1);
      const g = {
        startRssMiB: median(first.map((x) => x.rssMiB)), endRssMiB: median(last.map((x) => x.rssMiB)),
        startFds: median(first.map((x) => x.fds)), endFds: median(last.map((x) => x.fds)),
        rssMiB: 0, fds: 0,
      };
      g.rssMiB = Math.round((g.endRssMiB - g.startRssMiB) * 10) / 10;
      g.fds = g.endFds - g.startFds;
      growth[a] = g;
      if (first.length === 0 || last.length === 0) continue; // a dead app is reported as such
      if (!(g.rssMiB <= RSS_BOUND_MIB)) problems.push(`${a}: RSS grew ${g.rssMiB} MiB (${g.startRssMiB} → ${g.endRssMiB}), bound ${RSS_BOUND_MIB}`);
      if (!(g.fds <= FD_BOUND)) problems.push(`${a}: open fds grew ${g.fds} (${g.startFds} → ${g.endFds}), bound ${FD_BOUND}`);
    }
    out.growth = growth;
    const checks = await runChecks(s);
    out.checks = checks;
    for (const c of checks) if (!c.ok) problems.push(`check failed: ${c.name}: ${c.detail}`);
    out.problems = problems;
    out.passed = problems.length === 0;
    for (const a of APPS) log(`${a}: RSS ${growth[a]!.startRssMiB} → ${growth[a]!.endRssMiB} MiB (${growth[a]!.rssMiB >= 0 ? '+' : ''}${growth[a]!.rssMiB}), fds ${growth[a]!.startFds} → ${growth[a]!.endFds}`);
    log(`traffic: ${traffic.requests} requests (${traffic.requestFailures} failed), ${traffic.downloads} downloads of 10 MB (${traffic.downloadFailures} failed), stream broke ${traffic.streamBreaks} times; ${events.filter((e) => e.what === 'tunnel reconnect').length} reconnects, ${events.filter((e) => e.what === 'certificate reload').length} certificate reloads`);
    return problems.length === 0 ? 0 : 1;
  } catch (err) {
    if (stopping) return 130;
    problems.push(`the run failed: ${(err as Error).message}`);
    out.problems = problems;
    return 1;
  } finally {
    for (const f of flows) await f.stop().catch(() => undefined);
    out.finishedAt = new Date().toISOString();
    out.elapsedMs = Date.now() - t0;
    if (!('problems' in out)) out.problems = problems;
    write();
    await s.down().catch((err: Error) => log(`teardown: ${err.message}`));
    const left = (await run(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(`${s.topo.prefix}-`));
    if (left.length || existsSync(join(LAB_STATE_DIR, `${s.topo.prefix}.json`)) || existsSync(s.dir)) log(`teardown left ${left.join(', ') || 'state behind'}: run pnpm sweep`);
    else log('lab removed; nothing left behind');
    log('figures in bench-out/soak.json');
  }
}

main().then((code) => {
  if (code === 1) log(`FAILED:\n  ${problems.join('\n  ')}`);
  else if (code === 0) log('PASSED');
  process.exit(code);
}, (err: Error) => {
  console.error(err);
  process.exit(1);
});
