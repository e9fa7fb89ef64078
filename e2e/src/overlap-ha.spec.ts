/**
 * Overlapping seed and shoot networks (issue 12) in HA: two userspace-switch seed servers, two bonded
 * vpn-shoot pods and two "kube-apiserver" pods with path-controllers, all on Gardener's default ranges
 * on both sides (the seed pods sit in the shoot's pod network). The apiservers name the real shoot
 * addresses; the path-controllers dial and route the mapped ones; vpn-shoot maps them back.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADDR, HaStack, OVERLAP_ADDR, URLS, deterministicSha256, run, runHaChecks, sweep, waitFor, type HaApp } from '@rvpn/tools';
import { metric, requireRoot } from './harness.js';

const bytesUrl = (n: number) => `http://${ADDR.pod}:${ADDR.podPort}/bytes?n=${n}`;

describe('overlapping seed and shoot networks, end to end (HA, reversed)', () => {
  let s: HaStack;
  beforeAll(async () => {
    requireRoot();
    await sweep();
    s = new HaStack({ overlap: true, logLevel: 'info' });
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
  const spoofDrops = async () => {
    let n = 0;
    for (const a of ['vpn-seed-server-0', 'vpn-seed-server-1'] as HaApp[]) n += metric(await s.statusBody(a, 'metrics'), 'rvpn_seed_server_ha_dropped_frames', { reason: 'ip_spoofed' });
    return n;
  };

  it('both kube-apiserver pods reach pod (both families), service and node by their real addresses; only mapped ranges go via the bond', async () => {
    const results = await runHaChecks(s);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(results.length).toBe(11);
  });

  it('the bond carries mapped shoot addresses: vpn-shoot maps them back on bond0, the switches drop no reply as spoofed', async () => {
    const dropsBefore = await spoofDrops();
    for (const ns of [s.topo.ns.vsh0, s.topo.ns.vsh1]) {
      const t = (await run(['nft', 'list', 'table', 'inet', 'rvpn_shoot'], { ns })).stdout;
      expect(t).toContain('iifname "bond0" ip daddr { 242.0.0.0/16, 243.0.0.0/13, 244.0.0.0/11 } dnat ip prefix to ip daddr map');
      expect(t).toMatch(/iifname "bond0" meta nfproto ipv4 ct state new ct status ! dnat counter/);
    }
    // the path-controller's proxy dials the mapped address: its socket's peer is 244.0.1.10
    const hold = run(['curl', '-sS', '-m', '3', '--cacert', s.file('lab-ca.crt'), ...s.proxyArgs(), `http://${ADDR.pod}:${ADDR.podPort}/stream?ms=100`], { ns: kapiNs(0), allowFail: true, timeoutMs: 10_000 });
    await waitFor('a proxied connection to the mapped pod address', async () => (await run(['ss', '-Htn', 'dst', OVERLAP_ADDR.mapped.pod], { ns: kapiNs(0) })).stdout.includes(OVERLAP_ADDR.mapped.pod), 5000, 100);
    expect((await run(['ss', '-Htn', 'dst', ADDR.pod], { ns: kapiNs(0) })).stdout.trim()).toBe('');
    await hold;
    expect(await spoofDrops()).toBe(dropsBefore);
  });

  it('vpn-shoot forwards no new flow from the bond to a real shoot address (only mapped destinations are a way in)', async () => {
    const vshV4 = /inet (\S+)\//.exec((await run(['ip', '-4', 'addr', 'show', 'dev', 'bond0'], { ns: s.topo.ns.vsh0 })).stdout)![1]!;
    // a route a path-controller never installs: the real pod address via shoot pod 0's bond address
    await run(['ip', 'route', 'add', `${ADDR.pod}/32`, 'via', vshV4, 'dev', 'bond0'], { ns: kapiNs(0) });
    try {
      const r = await run(['curl', '-sS', '-m', '2', URLS.pod], { ns: kapiNs(0), allowFail: true });
      expect(r.code).not.toBe(0);
    } finally {
      await run(['ip', 'route', 'del', `${ADDR.pod}/32`], { ns: kapiNs(0), allowFail: true });
    }
    const t = (await run(['nft', 'list', 'table', 'inet', 'rvpn_shoot'], { ns: s.topo.ns.vsh0 })).stdout;
    const dropped = /meta nfproto ipv4 ct state new ct status ! dnat counter packets (\d+)/.exec(t);
    expect(Number(dropped?.[1])).toBeGreaterThan(0);
    expect(await ok(0)).toBe(true); // the mapped path is untouched
  });

  it('a shoot pod killed: new requests succeed again through the other one, and a transfer is intact', async () => {
    await allLinksUp();
    const dropsBefore = await spoofDrops();
    const cur = await activePath();
    const victim: HaApp = cur === 0 ? 'vpn-shoot-0' : 'vpn-shoot-1';
    await s.stopApp(victim, 'SIGKILL');
    await waitFor('requests through the other shoot pod', async () => (await ok(0)) && (await ok(1)), 20_000, 100);
    expect(await activePath()).toBe(1 - cur);
    await s.startApp(victim);
    await allLinksUp();
    const sha = await run(['bash', '-c', `curl -sS -m 60 ${s.proxyArgs().map((a) => `'${a}'`).join(' ')} '${bytesUrl(5_000_000)}' | sha256sum`], { ns: kapiNs(0) });
    expect(sha.stdout.slice(0, 64)).toBe(deterministicSha256(5_000_000));
    expect(await spoofDrops()).toBe(dropsBefore);
  });
});
