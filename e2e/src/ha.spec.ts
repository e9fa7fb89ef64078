/**
 * HA end to end: two userspace-switch seed servers, two bonded vpn-shoot pods, two kube-apiserver pods
 * with path-controllers. Failures are injected while a `kubectl logs -f`-like stream and a rate-limited
 * transfer run; the suite asserts that no connection breaks where none may and that traffic resumes.
 * Times are measured by `pnpm bench` (bench-out/failover.json), not asserted here.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADDR, HaStack, URLS, broke, deterministicSha256, flow, run, sleep, sweep, waitFor, type HaApp } from '@rvpn/tools';
import { metric, requireRoot } from './harness.js';

const streamUrl = `http://${ADDR.pod}:${ADDR.podPort}/stream?ms=20`;
const bytesUrl = (n: number) => `http://${ADDR.pod}:${ADDR.podPort}/bytes?n=${n}`;

describe('HA: failover without broken connections', () => {
  let s: HaStack;
  beforeAll(async () => {
    requireRoot();
    await sweep();
    s = new HaStack({ logLevel: 'info' });
    await s.start();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && s) s.keepWorkDir = true;
  });
  afterAll(async () => {
    await s?.down();
    if (s?.keepWorkDir) console.log(`logs kept in ${s.dir}`);
  });

  const kapiNs = (i: 0 | 1) => s.topo.ns[i === 0 ? 'kapi0' : 'kapi1'];
  const stream = (i: 0 | 1) => flow(kapiNs(i), ['-m', '300', ...s.proxyArgs(), streamUrl]);
  const ok = async (i: 0 | 1) => (await s.curlViaProxy(i, URLS.pod, [], 5)).stdout.includes('hello from pod');
  const links = async (app: HaApp) => {
    const m = await s.statusBody(app, 'metrics');
    const prefix = app.startsWith('path') ? 'rvpn_path_controller_bond_link_up' : 'rvpn_vpn_shoot_bond_link_up';
    return [0, 1].filter((i) => metric(m, prefix, { server: `vpn-seed-server-${i}` }) === 1).length;
  };
  const allLinksUp = () => waitFor('every bond link up', async () => {
    for (const a of ['path-controller-0', 'path-controller-1', 'vpn-shoot-0', 'vpn-shoot-1'] as HaApp[]) if ((await links(a)) !== 2) return false;
    return true;
  }, 30_000, 100);
  const activePath = async () => metric(await s.statusBody('path-controller-0', 'metrics'), 'rvpn_path_controller_active_path');

  it('both kube-apiserver pods reach pod (IPv4 and IPv6), service and node through their path-controllers', async () => {
    for (const i of [0, 1] as const) {
      expect((await s.curlViaProxy(i, URLS.pod)).stdout).toContain('hello from pod');
      expect((await s.curlViaProxy(i, URLS.podV6)).stdout).toContain('hello from pod6');
      expect((await s.curlViaProxy(i, URLS.service)).stdout).toContain('hello from pod');
      expect((await s.curlViaProxy(i, URLS.kubelet)).stdout).toContain('kubelet: logs of');
    }
  });

  it('carries TCP super-frames whole over every link (BOND_OFFLOAD), and cut for vpn-shoots of protocol 1.1 (version skew)', async () => {
    await allLinksUp();
    const gsoLinks = async (app: HaApp) => metric(await s.statusBody(app, 'metrics'), app.startsWith('path') ? 'rvpn_path_controller_bond_gso_links' : 'rvpn_vpn_shoot_bond_gso_links');
    const split = async () => {
      let n = 0;
      for (const app of ['vpn-seed-server-0', 'vpn-seed-server-1'] as HaApp[]) n += metric(await s.statusBody(app, 'metrics'), 'rvpn_seed_server_ha_split_superframes');
      return n;
    };
    for (const app of ['path-controller-0', 'vpn-shoot-0', 'vpn-shoot-1'] as HaApp[]) expect(await gsoLinks(app)).toBe(2);
    const dir = mkdtempSync(join(tmpdir(), 'rvpn-ha-upload-'));
    try {
      // toward the shoot: path-controller-0's own TCP connection, so its TAP reads 64 KiB super-frames
      const file = join(dir, 'payload');
      const data = randomBytes(8_000_000);
      writeFileSync(file, data);
      const want = `${createHash('sha256').update(data).digest('hex')} ${data.length}`;
      const upload = async () => (await run(['curl', '-sS', '-m', '60', ...s.proxyArgs(), '--data-binary', `@${file}`, `http://${ADDR.pod}:${ADDR.podPort}/upload`], { ns: kapiNs(0) })).stdout.trim();
      const download = async () => (await run(['bash', '-c', `curl -sS -m 60 ${s.proxyArgs().map((a) => `'${a}'`).join(' ')} '${bytesUrl(8_000_000)}' | sha256sum`], { ns: kapiNs(0) })).stdout.slice(0, 64);
      const before = await split();
      expect(await upload()).toBe(want);
      expect(await download()).toBe(deterministicSha256(8_000_000));
      expect(await split()).toBe(before);
      // both shoot clients speak 1.1 (no "gso"): the servers' switches cut what the path-controllers send
      for (const app of ['vpn-shoot-0', 'vpn-shoot-1'] as HaApp[]) {
        await s.stopApp(app);
        await s.startApp(app, { TUNNEL_PROTOCOL_MINOR: '1' });
      }
      await allLinksUp();
      await waitFor('a path through an old vpn-shoot', () => ok(0), 20_000, 100);
      expect(await gsoLinks('vpn-shoot-0')).toBe(0);
      expect(await gsoLinks('path-controller-0')).toBe(2);
      expect(await upload()).toBe(want);
      expect(await download()).toBe(deterministicSha256(8_000_000));
      expect(await split()).toBeGreaterThan(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      for (const app of ['vpn-shoot-0', 'vpn-shoot-1'] as HaApp[]) {
        await s.stopApp(app);
        await s.startApp(app);
      }
      await allLinksUp();
      await waitFor('paths through both shoot pods again', () => ok(0), 20_000, 100);
    }
  });

  it('a seed server killed (kill -9) breaks no open connection, and it rejoins', async () => {
    await allLinksUp();
    const st = stream(0);
    const transfer = flow(kapiNs(1), ['-m', '120', '--limit-rate', '4M', ...s.proxyArgs(), bytesUrl(20_000_000)]);
    await sleep(1500);
    const tKill = performance.now();
    await s.stopApp('vpn-seed-server-0', 'SIGKILL');
    await sleep(2500);
    expect(await ok(0)).toBe(true);
    expect(st.observed.arrivals.some((t) => t > tKill + 1500)).toBe(true);
    await s.startApp('vpn-seed-server-0');
    await allLinksUp();
    const t = await transfer.done;
    expect(t.exit).toBe(0);
    expect(t.bytes).toBe(20_000_000);
    expect(broke(await st.stop())).toBe(false);
  });

  it('a seed server cut silently (its packets dropped) breaks no open connection', async () => {
    await allLinksUp();
    await sleep(2500); // let the bonds fail back to their primary, server 0
    const st = stream(0);
    await sleep(1000);
    const cut = 'table inet rvcut {\n chain i { type filter hook input priority -300; policy drop; }\n chain o { type filter hook output priority -300; policy drop; }\n}\n';
    await run(['nft', '-f', '-'], { ns: s.topo.ns.srv0, input: cut });
    const tCut = performance.now();
    try {
      await waitFor('the stream to flow again after the cut', () => st.observed.arrivals.some((t) => t > tCut + 1500), 15_000);
      expect(await ok(0)).toBe(true);
      expect(await ok(1)).toBe(true);
    } finally {
      await run(['nft', 'delete', 'table', 'inet', 'rvcut'], { ns: s.topo.ns.srv0, allowFail: true });
    }
    await allLinksUp();
    expect(broke(await st.stop())).toBe(false);
  });

  it('a rolling restart of both servers breaks no open connection', async () => {
    await allLinksUp();
    const st = stream(1);
    await sleep(500);
    for (const srv of ['vpn-seed-server-0', 'vpn-seed-server-1'] as HaApp[]) {
      await s.stopApp(srv);
      await s.startApp(srv);
      await allLinksUp();
    }
    await sleep(500);
    expect(st.observed.exit).toBeUndefined();
    expect(broke(await st.stop())).toBe(false);
    expect(await ok(1)).toBe(true);
  });

  it('a shoot pod that stops forwarding is routed around; new requests succeed', async () => {
    await allLinksUp();
    const before = await activePath();
    expect([0, 1]).toContain(before);
    const vsh = s.topo.ns[before === 0 ? 'vsh0' : 'vsh1'];
    await run(['nft', '-f', '-'], { ns: vsh, input: 'table inet rvfreeze {\n chain f { type filter hook forward priority -300; policy drop; }\n}\n' });
    try {
      await waitFor('path-controller-0 to leave the frozen pod', async () => (await activePath()) === 1 - before, 15_000, 100);
      await waitFor('path-controller-1 to leave the frozen pod', async () => metric(await s.statusBody('path-controller-1', 'metrics'), 'rvpn_path_controller_active_path') !== before, 15_000, 100);
      expect(await ok(0)).toBe(true);
      expect(await ok(1)).toBe(true);
      const m = await s.statusBody('path-controller-0', 'metrics');
      expect(metric(m, 'rvpn_path_controller_path_usable', { path: String(before) })).toBe(0);
      expect(metric(m, 'rvpn_path_controller_path_usable', { path: String(1 - before) })).toBe(1);
    } finally {
      await run(['nft', 'delete', 'table', 'inet', 'rvfreeze'], { ns: vsh, allowFail: true });
    }
    // thawed, the pod is usable again once its probes have passed for PROBE_HEALTHY_PERIOD
    await waitFor('path-controller-0 to count the thawed pod usable again', async () => metric(await s.statusBody('path-controller-0', 'metrics'), 'rvpn_path_controller_path_usable', { path: String(before) }) === 1, 15_000, 100);
  });

  it('a shoot pod killed: new requests succeed again through the other one', async () => {
    await allLinksUp();
    const cur = await activePath();
    const victim: HaApp = cur === 0 ? 'vpn-shoot-0' : 'vpn-shoot-1';
    await s.stopApp(victim, 'SIGKILL');
    await waitFor('requests through the other shoot pod', async () => (await ok(0)) && (await ok(1)), 20_000, 100);
    expect(await activePath()).toBe(1 - cur);
    await s.startApp(victim);
    await allLinksUp();
    const sha = await run(['bash', '-c', `curl -sS -m 60 ${s.proxyArgs().map((a) => `'${a}'`).join(' ')} '${bytesUrl(10_000_000)}' | sha256sum`], { ns: kapiNs(0) });
    expect(sha.stdout.slice(0, 64)).toBe(deterministicSha256(10_000_000));
  });
});

describe('HA: kube-apiserver replicas that start with the same bond address', () => {
  let s: HaStack;
  beforeAll(async () => {
    requireRoot();
    s = new HaStack({ env: { 'path-controller-0': { BOND_SLOT: '5' }, 'path-controller-1': { BOND_SLOT: '5' } } });
    await s.start();
  });
  afterAll(async () => {
    await s?.down();
  });

  it('one of them is refused, draws another address, and both reach the shoot', async () => {
    expect((await s.curlViaProxy(0, URLS.pod)).stdout).toContain('hello from pod');
    expect((await s.curlViaProxy(1, URLS.pod)).stdout).toContain('hello from pod');
    const logs = (await run(['cat', s.logFile('path-controller-0'), s.logFile('path-controller-1')])).stdout;
    expect(logs).toContain('bond address in use by another endpoint; drew another');
    const refused = (await s.statusBody('vpn-seed-server-0', 'metrics')) + (await s.statusBody('vpn-seed-server-1', 'metrics'));
    expect(metric(refused, 'rvpn_seed_server_ha_refused_total', { code: 'RVPN_ERR_BOND_ADDRESS_IN_USE' })).toBeGreaterThan(0);
  });
});
