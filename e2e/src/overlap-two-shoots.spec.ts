/**
 * Two shoots of the same seed that overlap each other (issue 12): each with its own vpn-seed-server,
 * vpn-shoot and "kube-apiserver", both on exactly the same pod, service and node addresses (Gardener's
 * defaults, which the seed's pods use too), both dialing the one sni-proxy. The fixtures answer with
 * their shoot's namespace, so every answer shows which shoot it came from.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADDR, LAB_STATE_DIR, OVERLAP_ADDR, REPO_ROOT, Stack, URLS, connectHeaderValue, run, runChecks, sweep, waitFor } from '@rvpn/tools';
import { requireRoot, tunnelProbe } from './harness.js';

/** What is left of a lab run: its namespaces, its metadata file, processes inside its work directory. */
async function leftovers(prefix: string, dir: string): Promise<string[]> {
  const left = (await run(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(`${prefix}-`));
  if (existsSync(`${LAB_STATE_DIR}/${prefix}.json`)) left.push(`${LAB_STATE_DIR}/${prefix}.json`);
  if (existsSync(dir)) left.push(dir);
  const procs = (await run(['ps', '-eo', 'pid,args'])).stdout.split('\n').filter((l) => l.includes(dir));
  return [...left, ...procs];
}

describe('two shoots of one seed on the same networks, end to end (non-HA, reversed)', () => {
  let a: Stack;
  let b: Stack;

  beforeAll(async () => {
    requireRoot();
    await sweep();
    a = new Stack({ overlap: true, twoShoots: true });
    b = a.second!;
    await a.start();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && a) a.keepWorkDir = true;
  });
  afterAll(async () => {
    await a?.down();
    if (a?.keepWorkDir) console.log(`logs kept in ${a.dir}`);
    else expect(await leftovers(a.topo.prefix, a.dir)).toEqual([]);
  });

  it('passes the demo checks for each shoot and between them', async () => {
    const results = await runChecks(a);
    for (const r of results) expect(r, `${r.name}: ${r.detail}`).toMatchObject({ ok: true });
    expect(results.filter((r) => r.name.startsWith(`[${b.shoot.namespace}] `)).length).toBeGreaterThanOrEqual(8);
  });

  it("each kube-apiserver reaches its own shoot's pod, service and node by the same real addresses", async () => {
    for (const [own, other] of [[a, b], [b, a]] as const) {
      for (const url of [URLS.pod, URLS.podV6, URLS.service, URLS.kubelet]) {
        const body = (await own.curlViaProxy(url)).stdout;
        expect(body, `${own.shoot.namespace} ${url}`).toContain(`in ${own.shoot.namespace}`);
        expect(body, `${own.shoot.namespace} ${url}`).not.toContain(other.shoot.namespace);
      }
    }
    // the same mapped ranges, each seed server into its own TUN
    for (const s of [a, b]) expect((await run(['ip', 'route', 'get', OVERLAP_ADDR.mapped.pod], { ns: s.topo.ns.srv })).stdout).toContain('dev tun0');
  });

  it("sni-proxy sends each shoot to its own kube-apiserver and seed server", async () => {
    for (const s of [a, b]) {
      const r = await run(['curl', '-sS', '-m', '5', '--cacert', s.file('lab-ca.crt'), '--resolve', `${s.shoot.apiSni}:443:${ADDR.lbWan}`, `https://${s.shoot.apiSni}/`], { ns: s.topo.ns.vsh, allowFail: true });
      expect(r.stdout, r.stderr).toBe(`hello from apiserver in ${s.shoot.namespace}\n`);
    }
    // one shoot's certificate does not open the other shoot's tunnel, though its header is routed there
    const intruder = await tunnelProbe(a, { cert: 'shoot-client', ca: b.file('ca.crt'), header: `Reversed-VPN: ${connectHeaderValue(b.shoot.namespace)}` });
    expect(intruder).toMatchObject({ outcome: 'refused', code: 'RVPN_ERR_TUNNEL_TLS' });
    expect((await b.curlViaProxy(URLS.pod)).stdout).toBe(`hello from pod in ${b.shoot.namespace}\n`);
  });

  it("a shoot whose tunnel is down is not answered by the other one (which keeps serving)", async () => {
    await b.stopApp('vpn-shoot');
    try {
      await waitFor("the second shoot's seed server to see its tunnel gone", async () => (await b.status('vpn-seed-server', 'readyz')) !== 200, 10_000, 100);
      const down = await b.curlViaProxy(URLS.pod, [], 3);
      expect(down.stdout).not.toContain('hello from');
      expect((await a.curlViaProxy(URLS.pod)).stdout).toBe(`hello from pod in ${a.shoot.namespace}\n`);
    } finally {
      await b.startApp('vpn-shoot');
      await b.waitReady('vpn-seed-server');
    }
    expect((await b.curlViaProxy(URLS.pod)).stdout).toBe(`hello from pod in ${b.shoot.namespace}\n`);
  });
});

describe('a killed two-shoot demo', () => {
  it('leaves nothing behind once swept: both shoots\' namespaces, processes and the work directory', async () => {
    requireRoot();
    const demo = spawn(process.execPath, [join(REPO_ROOT, 'tools', 'dist', 'demo.js'), '--overlap', '--two-shoots'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    demo.stdout.on('data', (c: Buffer) => (out += c.toString()));
    demo.stderr.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitFor('the demo to be up with both shoots', () => /logs: \S+\/\*\.log/.test(out) || demo.exitCode !== null, 90_000, 200);
      expect(demo.exitCode, out).toBeNull();
    } finally {
      demo.kill('SIGKILL');
      await new Promise((r) => (demo.exitCode !== null || demo.signalCode !== null ? r(undefined) : demo.once('exit', r)));
    }
    const prefix = /creating topology (rv[0-9a-f]{4})/.exec(out)![1]!;
    const dir = /^logs: (\S+)\/\*\.log$/m.exec(out)![1]!;
    const namespaces = (await run(['ip', 'netns', 'list'])).stdout;
    for (const role of ['srv', 'vsh', 'srvb', 'kapib', 'nodeb', 'vshb', 'podb']) expect(namespaces).toContain(`${prefix}-${role}`);
    expect(await sweep()).toContain(prefix);
    await waitFor('the killed run\'s processes to be gone', async () => (await leftovers(prefix, dir)).length === 0, 10_000, 200).catch(() => undefined);
    expect(await leftovers(prefix, dir)).toEqual([]);
  });
});
