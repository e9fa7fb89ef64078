/**
 * The reversed tunnel end to end, with the real processes in network namespaces: vpn-shoot dials out
 * through sni-proxy to vpn-seed-server; a curl in the "kube-apiserver" namespace uses the egress proxy.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { ADDR, Stack, URLS, SHOOT_NAMESPACE, connectHeaderValue, deterministicSha256, inNs, run, runChecks, sleep, waitFor } from '@rvpn/tools';

import { caBundle, createCa, issueCertificate, seedServerDnsNames, shootIdentityUri } from '@rvpn/pki';
import { labLifecycle, metric, rawConnect, sendGarbage, tunnelProbe } from './harness.js';

const MB100 = 100_000_000;
const bytesUrl = (n: number) => `http://${ADDR.pod}:${ADDR.podPort}/bytes?n=${n}`;

/** Starts `curl … | sha256sum` in the kube-apiserver namespace and resolves with the digest. */
function downloadSha(stack: Stack, n: number, extraCurl: string[] = []): { done: Promise<{ sha: string; curlExit: number }> } {
  const curl = ['curl', '-sS', '-m', '120', ...stack.proxyArgs(), ...extraCurl, bytesUrl(n)].map((a) => `'${a}'`).join(' ');
  const argv = inNs(stack.topo.ns.kapi, ['bash', '-c', `set -o pipefail; ${curl} | sha256sum; echo "exit=\${PIPESTATUS[0]}"`]);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  return {
    done: new Promise((resolve) => child.on('exit', () => {
      resolve({ sha: /^([0-9a-f]{64})/m.exec(out)?.[1] ?? `no digest: ${out}`, curlExit: Number(/exit=(\d+)/.exec(out)?.[1] ?? -1) });
    })),
  };
}

describe('reversed tunnel, end to end', () => {
  let stack: Stack;
  const expected100 = deterministicSha256(MB100);

  labLifecycle(() => new Stack({ seedEnv: { PROXY_HOLD_TIMEOUT: '4s' } }), (s) => (stack = s));

  it('reaches pod, service and node addresses through the CONNECT proxy; the seed cannot reach the shoot directly', async () => {
    const results = await runChecks(stack);
    for (const r of results) expect(r, `${r.name}: ${r.detail}`).toMatchObject({ ok: true });
  });

  it('pings shoot addresses through the tunnel', async () => {
    for (const dst of [ADDR.pod, ADDR.nodeIp]) {
      const r = await run(['ping', '-c', '5', '-i', '0.2', '-W', '2', dst], { ns: stack.topo.ns.srv, allowFail: true });
      expect(r.stdout, r.stderr).toMatch(/5 received, 0% packet loss/);
    }
  });

  it('carries a 100 MB download with the checksum intact, as TCP super-packets (TUN offload on both ends)', async () => {
    const { sha, curlExit } = await downloadSha(stack, MB100).done;
    expect(curlExit).toBe(0);
    expect(sha).toBe(expected100);
    const seed = await stack.statusBody('vpn-seed-server', 'metrics');
    const shoot = await stack.statusBody('vpn-shoot', 'metrics');
    expect(metric(seed, 'rvpn_seed_server_tunnel_offload_active')).toBe(1);
    expect(metric(shoot, 'rvpn_vpn_shoot_tunnel_offload_active')).toBe(1);
    // every header from the shoot described its packet
    expect(metric(seed, 'rvpn_seed_server_tunnel_dropped_packets_total', { reason: 'gso_header' })).toBe(0);
  });

  it('refuses a client certificate from another CA, with its error code, and keeps serving the shoot', async () => {
    const before = await stack.statusBody('vpn-seed-server', 'metrics');
    const r = await tunnelProbe(stack, { cert: 'foreign-ca-client' });
    expect(r.outcome).toBe('refused');
    expect(r.code).toBe('RVPN_ERR_TUNNEL_TLS');
    const after = await stack.statusBody('vpn-seed-server', 'metrics');
    expect(metric(after, 'rvpn_seed_server_tunnel_refused_total', { code: 'RVPN_ERR_TUNNEL_TLS' })).toBeGreaterThan(metric(before, 'rvpn_seed_server_tunnel_refused_total', { code: 'RVPN_ERR_TUNNEL_TLS' }));
    expect(await stack.status('vpn-seed-server', 'readyz')).toBe(200);
  });

  it("refuses another shoot's certificate (its own CA, or this CA with the other shoot's identity)", async () => {
    const ownCa = await tunnelProbe(stack, { cert: 'other-shoot-client' });
    expect(ownCa).toMatchObject({ outcome: 'refused', code: 'RVPN_ERR_TUNNEL_TLS' });
    const sameCa = await tunnelProbe(stack, { cert: 'same-ca-other-shoot' });
    expect(sameCa).toMatchObject({ outcome: 'refused', code: 'RVPN_ERR_TUNNEL_UNAUTHORIZED' });
    expect(sameCa.message).toContain(`urn:rvpn:shoot:${SHOOT_NAMESPACE}`);
    const wrongCn = await tunnelProbe(stack, { cert: 'proxy-client' });
    expect(wrongCn).toMatchObject({ outcome: 'refused', code: 'RVPN_ERR_TUNNEL_UNAUTHORIZED' });
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
  });

  it('refuses an incompatible major protocol version with a clear error', async () => {
    const r = await tunnelProbe(stack, { cert: 'shoot-client', major: 2, minor: 0 });
    expect(r).toMatchObject({ outcome: 'refused', code: 'RVPN_ERR_PROTO_VERSION' });
    expect(r.message).toMatch(/2\.0/);
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
  });

  it('sni-proxy refuses CONNECTs with a missing, forbidden or unrouted header, and other methods', async () => {
    const good = `Reversed-VPN: ${connectHeaderValue(SHOOT_NAMESPACE)}`;
    expect(await rawConnect(stack, 8132, [])).toBe(400);
    expect(await rawConnect(stack, 8132, ['Reversed-VPN: outbound|22||sshd.kube-system.svc.cluster.local'])).toBe(403);
    expect(await rawConnect(stack, 8132, [`Reversed-VPN: ${connectHeaderValue('shoot--nobody--here')}`])).toBe(404);
    expect(await rawConnect(stack, 8132, [good, good])).toBe(400);
    // 8443 routes by X-Gardener-Destination; the legacy header alone does not count there
    expect(await rawConnect(stack, 8443, [good])).toBe(400);
    const m = await stack.statusBody('sni-proxy', 'metrics');
    for (const reason of ['missing_header', 'forbidden', 'no_route']) expect(metric(m, 'rvpn_sni_proxy_refused_total', { reason })).toBeGreaterThan(0);
  });

  it('the egress proxy refuses seed addresses (403) and unknown client certificates', async () => {
    for (const target of [`${ADDR.srv}:15000`, `${ADDR.kapi}:443`, `${ADDR.lb}:8132`, '127.0.0.1:15000']) {
      const r = await stack.curlViaProxy(`http://${target}/`, ['-o', '/dev/null', '-w', '%{http_connect}'], 5);
      expect(r.stdout, target).toBe('403');
    }
    const foreign = await run(['curl', '-sS', '-m', '5', '--proxy', `https://${ADDR.srv}:9443`, '--proxy-cacert', stack.file('ca.crt'),
      '--proxy-cert', stack.file('foreign-ca-client.crt'), '--proxy-key', stack.file('foreign-ca-client.key'), '--proxytunnel', URLS.pod], { ns: stack.topo.ns.kapi, allowFail: true });
    expect(foreign.code).not.toBe(0);
  });

  it('survives garbage bytes on every port and keeps serving', async () => {
    const ports: Array<[keyof Stack['topo']['ns'], string, number]> = [
      ['vsh', ADDR.lbWan, 443], ['vsh', ADDR.lbWan, 8443], ['vsh', ADDR.lbWan, 8132],
      ['kapi', ADDR.lb, 15021], ['kapi', ADDR.srv, 1194], ['kapi', ADDR.srv, 9443], ['kapi', ADDR.srv, 15000],
    ];
    await Promise.all(ports.map(([role, host, port]) => sendGarbage(stack.topo.ns[role], host, port)));
    for (const app of ['sni-proxy', 'vpn-seed-server', 'vpn-shoot'] as const) {
      expect(stack.procs.get(app)?.child.exitCode, `${app} still running`).toBeNull();
      expect(await stack.status(app, 'healthz')).toBe(200);
    }
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
    const m = await stack.statusBody('sni-proxy', 'metrics');
    expect(metric(m, 'rvpn_sni_proxy_refused_total', { listener: 'tls' })).toBeGreaterThan(0);
  });

  it('reloads sni-proxy routes while a tunnel carries a transfer, without breaking it', async () => {
    const before = metric(await stack.statusBody('sni-proxy', 'metrics'), 'rvpn_sni_proxy_route_reloads_total', { result: 'ok' });
    const transfer = downloadSha(stack, MB100 / 2, ['--limit-rate', '12M']);
    await sleep(1000);
    const routes = stack.defaultRoutes();
    // 1: the file changes (a watched directory, as with a ConfigMap volume)
    stack.writeRoutes({ ...routes, connect: { ...routes.connect, [connectHeaderValue('shoot--new--one')]: '10.1.0.99:1194' } });
    await waitFor('the watched reload', async () => metric(await stack.statusBody('sni-proxy', 'metrics'), 'rvpn_sni_proxy_route_reloads_total', { result: 'ok' }) >= before + 1, 10_000);
    // 2: another change, announced with SIGHUP as well
    stack.writeRoutes({ ...routes, connect: { ...routes.connect, [connectHeaderValue('shoot--new--one')]: '10.1.0.99:1194', [connectHeaderValue('shoot--new--two')]: `${ADDR.srv}:1` } });
    await run(['kill', '-HUP', String(stack.procs.get('sni-proxy')!.pid)]);
    await waitFor('the second reload', async () => metric(await stack.statusBody('sni-proxy', 'metrics'), 'rvpn_sni_proxy_route_reloads_total', { result: 'ok' }) >= before + 2, 10_000);
    // a broken file is refused and the old table stays
    stack.writeRoutes({ connect: { x: 'not-an-upstream' } });
    await waitFor('the refused reload', async () => metric(await stack.statusBody('sni-proxy', 'metrics'), 'rvpn_sni_proxy_route_reloads_total', { result: 'error' }) >= 1, 10_000);
    const { sha, curlExit } = await transfer.done;
    expect(curlExit).toBe(0);
    expect(sha).toBe(deterministicSha256(MB100 / 2));
    // the new route is live (its upstream refuses: 502), and the broken file did not replace the table
    expect(await rawConnect(stack, 8132, [`Reversed-VPN: ${connectHeaderValue('shoot--new--two')}`])).toBe(502);
    stack.writeRoutes(stack.defaultRoutes()); // leave a valid file for later restarts
  });

  it('holds a request while the tunnel reconnects, and answers 503 with a reason when it stays down', async () => {
    await stack.stopApp('vpn-shoot');
    await waitFor('seed server not ready', async () => (await stack.status('vpn-seed-server', 'readyz')) === 503, 10_000);
    const held = stack.curlViaProxy(URLS.pod, [], 15);
    await sleep(800);
    await stack.startApp('vpn-shoot');
    const r = await held;
    expect(r.stdout, r.stderr).toContain('hello from pod');
    await stack.waitReady('vpn-seed-server');

    await stack.stopApp('vpn-shoot');
    await waitFor('seed server not ready', async () => (await stack.status('vpn-seed-server', 'readyz')) === 503, 10_000);
    const t0 = Date.now();
    const refused = await stack.curlViaProxy(URLS.pod, ['-o', '/dev/null', '-w', '%{http_connect}'], 15);
    expect(refused.stdout).toBe('503');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3500);
    await stack.startApp('vpn-shoot');
    await stack.waitReady('vpn-seed-server');
  });

  it('interoperates with clients of older protocol minor versions (version skew: 1.1 without offload, 1.0)', async () => {
    for (const minor of ['1', '0']) {
      await stack.stopApp('vpn-shoot');
      await stack.startApp('vpn-shoot', { TUNNEL_PROTOCOL_MINOR: minor });
      await stack.waitReady('vpn-seed-server');
      const { sha, curlExit } = await downloadSha(stack, 10_000_000).done;
      expect(curlExit).toBe(0);
      expect(sha).toBe(deterministicSha256(10_000_000));
      const log = (await run(['cat', stack.logFile('vpn-seed-server')])).stdout;
      expect(log).toMatch(new RegExp(`"minor":${minor},"offload":false,"msg":"shoot tunnel attached"`));
      expect(metric(await stack.statusBody('vpn-seed-server', 'metrics'), 'rvpn_seed_server_tunnel_offload_active')).toBe(0);
    }
    await stack.stopApp('vpn-shoot');
    await stack.startApp('vpn-shoot');
    await stack.waitReady('vpn-seed-server');
  });

  it('keeps a TCP flow through a tunnel reconnect that is not a process death (sni-proxy restarted mid-transfer)', async () => {
    const sessions = () => stack.statusBody('vpn-seed-server', 'metrics').then((m) => metric(m, 'rvpn_seed_server_tunnel_sessions_total'));
    const before = await sessions();
    const transfer = downloadSha(stack, MB100 / 2, ['--limit-rate', '10M']);
    await sleep(1500);
    await stack.stopApp('sni-proxy'); // cuts the tunnel's TCP connection; both tunnel processes live on
    await stack.startApp('sni-proxy');
    await waitFor('a new tunnel session', async () => (await sessions()) > before, 20_000);
    const { sha, curlExit } = await transfer.done;
    expect(curlExit).toBe(0);
    expect(sha).toBe(deterministicSha256(MB100 / 2));
  });

  it('a shoot that removes its own firewall still cannot open connections into the seed, nor spoof sources', async () => {
    const vsh = stack.topo.ns.vsh;
    await run(['nft', 'delete', 'table', 'inet', 'rvpn_shoot'], { ns: vsh });
    await run(['ip', 'addr', 'add', '192.0.2.77/32', 'dev', 'lo'], { ns: vsh });
    try {
      const before = await stack.statusBody('vpn-seed-server', 'metrics');
      for (const url of [`http://${ADDR.srv}:15000/healthz`, 'http://[fd8f:6d53:b97a:1::1]:15000/healthz', `http://${ADDR.kapi}:443/`]) {
        const r = await run(['curl', '-s', '-m', '2', url], { ns: vsh, allowFail: true });
        expect(r.code, url).not.toBe(0);
      }
      const spoofed = await run(['curl', '-s', '-m', '2', '--interface', '192.0.2.77', `http://${ADDR.srv}:15000/healthz`], { ns: vsh, allowFail: true });
      expect(spoofed.code).not.toBe(0);
      const after = await stack.statusBody('vpn-seed-server', 'metrics');
      const dropped = (m: string, reason: string) => metric(m, 'rvpn_seed_server_tunnel_dropped_packets_total', { reason });
      expect(dropped(after, 'spoofed_source')).toBeGreaterThan(dropped(before, 'spoofed_source'));
    } finally {
      await run(['ip', 'addr', 'del', '192.0.2.77/32', 'dev', 'lo'], { ns: vsh, allowFail: true });
      await stack.stopApp('vpn-shoot');
      await stack.startApp('vpn-shoot'); // re-installs the shoot's firewall
      await stack.waitReady('vpn-seed-server');
    }
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
  });

  it('rotates the CA (bundle, re-issue, drop the old CA) without dropping the tunnel; Secret-volume swaps are picked up', async () => {
    const sessions = async () => metric(await stack.statusBody('vpn-seed-server', 'metrics'), 'rvpn_seed_server_tunnel_sessions_total');
    const reloads = async () => metric(await stack.statusBody('vpn-seed-server', 'metrics'), 'rvpn_seed_server_tls_reloads_total');
    const before = await sessions();
    const oldCa = stack.pkiFiles['ca.crt']!;
    const newCa = await createCa({ commonName: 'ca-vpn' });
    const uri = shootIdentityUri(SHOOT_NAMESPACE);
    // 1: every side trusts both CAs
    await stack.updatePki({ 'ca.crt': caBundle(oldCa, newCa.certPem), 'old-shoot-client.crt': stack.pkiFiles['shoot-client.crt']!, 'old-shoot-client.key': stack.pkiFiles['shoot-client.key']! });
    await waitFor('the seed server to reload the bundle', async () => (await reloads()) >= 1, 10_000);
    // 2: the leaf certificates are re-issued by the new CA
    const [server, proxyServer, shootClient, proxyClient] = await Promise.all([
      issueCertificate(newCa, { commonName: 'vpn-seed-server', usage: 'server', dnsNames: seedServerDnsNames(SHOOT_NAMESPACE), uris: [uri] }),
      issueCertificate(newCa, { commonName: 'vpn-seed-server', usage: 'server', dnsNames: seedServerDnsNames(SHOOT_NAMESPACE), ipAddresses: [ADDR.srv], uris: [uri] }),
      issueCertificate(newCa, { commonName: 'vpn-shoot-client', usage: 'client', uris: [uri] }),
      issueCertificate(newCa, { commonName: 'kube-apiserver-http-proxy-client', usage: 'client' }),
    ]);
    await stack.updatePki({
      'server.crt': server.certPem, 'server.key': server.keyPem, 'proxy-server.crt': proxyServer.certPem, 'proxy-server.key': proxyServer.keyPem,
      'shoot-client.crt': shootClient.certPem, 'shoot-client.key': shootClient.keyPem, 'proxy-client.crt': proxyClient.certPem, 'proxy-client.key': proxyClient.keyPem,
    });
    await waitFor('the seed server to reload the new certificates', async () => (await reloads()) >= 2, 10_000);
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod'); // new proxy certs, both sides
    expect(await sessions()).toBe(before); // the tunnel did not drop
    // a new tunnel (sni-proxy restarted) is made with the new certificates
    await stack.stopApp('sni-proxy');
    await stack.startApp('sni-proxy');
    await waitFor('a new tunnel session', async () => (await sessions()) > before, 20_000);
    await stack.waitReady('vpn-seed-server');
    // 3: the old CA leaves the bundle: a client certificate of the old CA is refused, the tunnel stays
    await stack.updatePki({ 'ca.crt': newCa.certPem });
    await waitFor('the seed server to reload the bundle without the old CA', async () => (await reloads()) >= 3, 10_000);
    const probe = await tunnelProbe(stack, { cert: 'old-shoot-client' });
    expect(probe).toMatchObject({ outcome: 'refused', code: 'RVPN_ERR_TUNNEL_TLS' });
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
  });

  it('recovers after kill -9 of vpn-shoot mid-transfer (time to the first good request is logged)', async () => {
    const transfer = downloadSha(stack, MB100, ['--limit-rate', '10M']);
    await sleep(1500);
    const t0 = Date.now();
    await stack.stopApp('vpn-shoot', 'SIGKILL');
    await stack.startApp('vpn-shoot'); // what the kubelet does after a crash
    await waitFor('a request through the new tunnel', async () => (await stack.curlViaProxy(URLS.pod, [], 3)).stdout.includes('hello from pod'), 30_000, 50);
    const recoveryMs = Date.now() - t0;
    const { sha, curlExit } = await transfer.done;
    console.log(`kill -9 vpn-shoot: requests succeed again after ${recoveryMs} ms; the running transfer ${curlExit === 0 && sha === expected100 ? 'survived intact' : `ended (curl exit ${curlExit})`}`);
    expect(recoveryMs).toBeLessThan(30_000);
    // the restarted client found its own leftovers (nft table, routes) and replaced them
    const tables = (await run(['nft', 'list', 'tables'], { ns: stack.topo.ns.vsh })).stdout;
    expect(tables.match(/rvpn_shoot/g)?.length).toBe(1);
  });
});
