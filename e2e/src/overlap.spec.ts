/**
 * Overlapping seed and shoot networks (issue 12, Gardener's "double NAT"), the non-HA tunnel (reversed,
 * and the classic direction at the end) with the real processes: the seed's pods, services and nodes use the shoot's ranges (Gardener's
 * defaults on both; the shoot's IPv6 pod network inside a seed node network), so the tunnel carries
 * mapped addresses while the "kube-apiserver" names the real ones.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ADDR, OVERLAP_ADDR, REPO_ROOT, Stack, URLS, run, runChecks, waitFor } from '@rvpn/tools';
import { labLifecycle, metric } from './harness.js';

const M = OVERLAP_ADDR.mapped;

/** One CONNECT over mTLS from the kube-apiserver namespace; the proxy's whole answer (status line, headers, body). */
async function rawProxyConnect(stack: Stack, target: string): Promise<string> {
  const req = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`;
  const r = await run(['bash', '-c', `printf '%s' "$REQ" | timeout 8 openssl s_client -quiet -ign_eof -connect ${stack.topo.seed.srv}:9443 -CAfile ${stack.file('ca.crt')} -cert ${stack.file('proxy-client.crt')} -key ${stack.file('proxy-client.key')} 2>/dev/null`], {
    ns: stack.topo.ns.kapi, allowFail: true, env: { ...process.env, REQ: req }, timeoutMs: 15_000,
  });
  return r.stdout;
}

/** Starts an app's main with only `env` (no namespace: configuration fails before anything is created). */
function startWith(app: 'vpn-seed-server' | 'vpn-shoot', env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO_ROOT, 'apps', app, 'dist', 'main.js')], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, out: stdout + stderr });
    });
  });
}

describe('overlapping seed and shoot networks, end to end (non-HA, reversed)', () => {
  let stack: Stack;

  labLifecycle(() => new Stack({ overlap: true }), (s) => (stack = s));

  it('reaches pod (IPv4 and IPv6), service and node by their real addresses through the CONNECT proxy', async () => {
    const results = await runChecks(stack);
    for (const r of results) expect(r, `${r.name}: ${r.detail}`).toMatchObject({ ok: true });
    // the seed server itself reaches the shoot by mapped addresses (its pod source is mapped too)
    const ping = await run(['ping', '-c', '3', '-i', '0.2', '-W', '2', M.pod], { ns: stack.topo.ns.srv, allowFail: true });
    expect(ping.stdout, ping.stderr).toMatch(/3 received/);
    const started = (await run(['cat', stack.logFile('vpn-seed-server')])).stdout;
    expect(started).toMatch(/"shootPods 100\.96\.0\.0\/11 -> 244\.0\.0\.0\/11"/);
  });

  it('routes only the mapped shoot ranges into the seed TUN, never the real shoot CIDRs (the seed\'s own)', async () => {
    const v4 = (await run(['ip', '-4', 'route', 'show', 'dev', 'tun0'], { ns: stack.topo.ns.srv })).stdout;
    const v6 = (await run(['ip', '-6', 'route', 'show', 'dev', 'tun0'], { ns: stack.topo.ns.srv })).stdout;
    for (const mapped of ['242.0.0.0/16', '243.0.0.0/13', '244.0.0.0/11']) expect(v4).toContain(mapped);
    expect(v6).toContain('fd6d:6170:400::/40');
    for (const real of ['100.64.0.0/13', '100.96.0.0/11', '10.250.0.0/16']) expect(v4).not.toContain(real);
    expect(v6).not.toContain('fd10:96::/40');
    // the seed's own neighbour in the overlapping range stays on the seed's network
    expect((await run(['ip', 'route', 'get', OVERLAP_ADDR.seed.kapi], { ns: stack.topo.ns.srv })).stdout).toContain('dev eth0');
  });

  it('answers 403 naming the address the apiserver used, for addresses outside the real shoot networks (mapped ones included)', async () => {
    for (const target of [`${ADDR.lbWan}:8132`, `${M.pod}:8080`, `[${M.podV6}]:8080`]) {
      const answer = await rawProxyConnect(stack, target);
      expect(answer, target).toMatch(/^HTTP\/1\.1 403 /);
      expect(answer, target).toContain(`destination ${target} is outside the shoot's networks`);
    }
    // a real shoot address with no listener: the error names it and the address it was mapped to
    const refused = await rawProxyConnect(stack, `${ADDR.pod}:9`);
    expect(refused).toMatch(/^HTTP\/1\.1 502 /);
    expect(refused).toContain(`cannot connect to ${ADDR.pod}:9 (mapped to ${M.pod})`);
  });

  it('ICMP errors come back through the mapping: a smaller MTU in the shoot reaches the seed as a path MTU', async () => {
    const { node, pod, srv } = stack.topo.ns;
    await run(['ip', 'link', 'set', 'eth0', 'mtu', '1300'], { ns: pod });
    await run(['ip', 'link', 'set', 'pod0', 'mtu', '1300'], { ns: node });
    try {
      // DF set, too large for the shoot's pod link: the shoot's router answers "fragmentation needed",
      // vpn-shoot's conntrack rewrites it to come from the mapped pod address, the seed's back to its pod
      const r = await run(['ping', '-M', 'do', '-s', '1400', '-c', '3', '-i', '0.3', '-W', '1', M.pod], { ns: srv, allowFail: true });
      expect(r.stdout + r.stderr).toMatch(/mtu = 1300|message too long, mtu=1300/i);
      expect((await run(['ip', 'route', 'get', M.pod], { ns: srv })).stdout).toMatch(/mtu 1300/);
    } finally {
      await run(['ip', 'link', 'set', 'pod0', 'mtu', '1500'], { ns: node });
      await run(['ip', 'link', 'set', 'eth0', 'mtu', '1500'], { ns: pod });
      await run(['ip', 'route', 'flush', 'cache'], { ns: srv, allowFail: true });
    }
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
  });

  it('a restarted vpn-shoot forgets the flows of the mapped ranges (conntrack), then serves again', async () => {
    const entries = async () => (await run(['conntrack', '-L', '-f', 'ipv4', '-d', '244.0.0.0/8'], { ns: stack.topo.ns.vsh, allowFail: true })).stdout.split('\n').filter((l) => l.includes('244.0.1.10')).length;
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
    expect(await entries()).toBeGreaterThan(0);
    await stack.stopApp('vpn-shoot');
    await stack.startApp('vpn-shoot');
    expect(await entries()).toBe(0);
    await stack.waitReady('vpn-seed-server');
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
  });

  it('a shoot without its firewall cannot forge a source outside its mapped ranges, nor open a connection into the seed', async () => {
    const vsh = stack.topo.ns.vsh;
    const dropped = async () => metric(await stack.statusBody('vpn-seed-server', 'metrics'), 'rvpn_seed_server_tunnel_dropped_packets_total', { reason: 'spoofed_source' });
    await run(['nft', 'delete', 'table', 'inet', 'rvpn_shoot'], { ns: vsh });
    // a REAL shoot pod address (not what the tunnel carries), and one inside the mapped pod range
    await run(['ip', 'addr', 'add', '100.96.1.77/32', 'dev', 'lo'], { ns: vsh });
    await run(['ip', 'addr', 'add', '244.0.1.77/32', 'dev', 'lo'], { ns: vsh });
    try {
      const before = await dropped();
      const forged = await run(['curl', '-s', '-m', '2', '--interface', '100.96.1.77', `http://${M.srv}:15000/healthz`], { ns: vsh, allowFail: true });
      expect(forged.code).not.toBe(0);
      expect(await dropped()).toBeGreaterThan(before);
      // a mapped source passes the filter, but the seed lets the tunnel only answer
      const opened = await run(['curl', '-s', '-m', '2', '--interface', '244.0.1.77', `http://${M.srv}:15000/healthz`], { ns: vsh, allowFail: true });
      expect(opened.code).not.toBe(0);
      // the seed pod's real address is the shoot's own pod network here: it never enters the tunnel
      const real = await run(['curl', '-s', '-m', '2', `http://${OVERLAP_ADDR.seed.srv}:15000/healthz`], { ns: vsh, allowFail: true });
      expect(real.code).not.toBe(0);
    } finally {
      for (const a of ['100.96.1.77/32', '244.0.1.77/32']) await run(['ip', 'addr', 'del', a, 'dev', 'lo'], { ns: vsh, allowFail: true });
      await stack.stopApp('vpn-shoot');
      await stack.startApp('vpn-shoot'); // re-installs the shoot's firewall and its mapping
      await stack.waitReady('vpn-seed-server');
    }
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
    expect((await run(['nft', 'list', 'table', 'inet', 'rvpn_shoot'], { ns: vsh })).stdout).toContain('dnat ip prefix to ip daddr map');
  });

  it('refuses a vpn-shoot whose networks map differently (RVPN_ERR_MAPPING_MISMATCH on both ends), and serves again once they agree', async () => {
    const refused = async () => metric(await stack.statusBody('vpn-seed-server', 'metrics'), 'rvpn_seed_server_tunnel_refused_total', { code: 'RVPN_ERR_MAPPING_MISMATCH' });
    const dialFailed = async () => metric(await stack.statusBody('vpn-shoot', 'metrics'), 'rvpn_vpn_shoot_tunnel_dial_failures_total', { code: 'RVPN_ERR_MAPPING_MISMATCH' });
    const before = await refused();
    await stack.stopApp('vpn-shoot');
    // one node network more on the shoot side only: 10.250.0.0/16 would move to 242.16.0.0/16 there
    await stack.startApp('vpn-shoot', { SHOOT_NODE_NETWORKS: `172.16.0.0/12,${ADDR.shootNodeNetworks}` });
    try {
      await waitFor('the seed server to refuse the mismatched mapping', async () => (await refused()) > before, 15_000, 100);
      await waitFor('vpn-shoot to count the refusal', async () => (await dialFailed()) > 0, 15_000, 100);
      expect(await stack.status('vpn-seed-server', 'readyz')).not.toBe(200);
    } finally {
      await stack.stopApp('vpn-shoot');
      await stack.startApp('vpn-shoot');
    }
    await stack.waitReady('vpn-seed-server');
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
  });

  it('refuses to start, with a coded error, a mapping that does not fit, and a classic dial address inside the mapped ranges', async () => {
    const tls = { TLS_CA_FILE: stack.file('ca.crt'), TLS_CERT_FILE: stack.file('server.crt'), TLS_KEY_FILE: stack.file('server.key') };
    // a /32 shoot pod network that overlaps the seed cannot be packed into the /40 mapped IPv6 pod range
    const tooBig = {
      ...tls, NAMESPACE: 'shoot--demo--local', IP_FAMILIES: 'IPv4,IPv6', ENDPOINT: ADDR.lbWan,
      SEED_POD_NETWORK: OVERLAP_ADDR.seedPodNetwork, SEED_NODE_NETWORKS: 'fd10:96::/40', SHOOT_POD_NETWORKS: '100.96.0.0/11,fd10:96::/32',
    };
    for (const app of ['vpn-seed-server', 'vpn-shoot'] as const) {
      const r = await startWith(app, tooBig);
      expect(r.code, `${app}: ${r.out}`).toBe(2);
      expect(r.out).toContain('RVPN_ERR_CONFIG_INVALID');
      expect(r.out).toContain('RVPN_ERR_MAPPING_NO_FIT');
      expect(r.out).toContain('fd10:96::/32 is larger than its mapped range fd6d:6170:400::/40');
    }
    // the classic direction maps too (below); its own connection must not be routed into the tunnel
    const classic = await startWith('vpn-seed-server', { ...tls, NAMESPACE: 'shoot--demo--local', TUNNEL_MODE: 'dial', TUNNEL_DIAL_ADDRESS: `${M.pod}:4314`, SEED_POD_NETWORK: OVERLAP_ADDR.seedPodNetwork });
    expect(classic.code, classic.out).toBe(2);
    expect(classic.out).toContain(`${M.pod} lies in 244.0.0.0/11, which is routed into the tunnel`);
  });
});

describe('overlapping seed and shoot networks, end to end (non-HA, classic direction: the seed dials the shoot)', () => {
  let stack: Stack;

  labLifecycle(() => new Stack({ overlap: true, direction: 'classic' }), (s) => (stack = s));

  it('reaches pod (IPv4 and IPv6), service and node by their real addresses; only mapped ranges go into the TUN', async () => {
    const results = await runChecks(stack);
    for (const r of results) expect(r, `${r.name}: ${r.detail}`).toMatchObject({ ok: true });
    expect(results.map((r) => r.name).join('\n')).toMatch(/never the real ones/);
    const ping = await run(['ping', '-c', '3', '-i', '0.2', '-W', '2', M.pod], { ns: stack.topo.ns.srv, allowFail: true });
    expect(ping.stdout, ping.stderr).toMatch(/3 received/);
    const seedLog = (await run(['cat', stack.logFile('vpn-seed-server')])).stdout;
    expect(seedLog).toMatch(/"mode":"dial"/);
    expect(seedLog).toMatch(/"shootPods 100\.96\.0\.0\/11 -> 244\.0\.0\.0\/11"/);
    expect(metric(await stack.statusBody('vpn-seed-server', 'metrics'), 'rvpn_seed_server_tunnel_dropped_packets_total', { reason: 'spoofed_source' })).toBeLessThan(5);
  });
});
