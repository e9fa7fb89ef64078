/**
 * vpn-shoot as a process: started in a throw-away network namespace (as root), it sets up its TUN
 * device, routes and firewall and keeps dialing an endpoint that refuses; on SIGTERM it removes all
 * of it. A bad configuration exits 2 with one error that lists every problem.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createShootPki } from '@rvpn/pki';
import { shootFirewall } from './shoot-client.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const isRoot = process.getuid?.() === 0;
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });

describe('shootFirewall', () => {
  it('masquerades only flows that entered from the tunnel, clamps MSS, and lets the shoot open nothing into the tunnel', () => {
    const fw = shootFirewall('tun0', 'eth0');
    expect(fw).toMatch(/iifname "tun0" ct state new ct mark set 0x[0-9a-f]+/);
    expect(fw).toMatch(/oifname "eth0" ct mark 0x[0-9a-f]+ masquerade/);
    expect(fw).toContain('tcp option maxseg size set rt mtu');
    expect(fw).toMatch(/oifname "tun0" ct state established,related accept\n.*oifname "tun0" counter drop/);
  });
});

describe.skipIf(!isRoot)('vpn-shoot process in a network namespace (root)', () => {
  const ns = `rvt${process.pid % 100000}s`;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rvpn-shoot-spec-'));
    const pki = await createShootPki({ namespace: 'shoot--t--x' });
    writeFileSync(join(dir, 'ca.crt'), pki.ca.certPem);
    writeFileSync(join(dir, 'c.crt'), pki.shootClient.certPem);
    writeFileSync(join(dir, 'c.key'), pki.shootClient.keyPem);
    sh(`ip netns add ${ns} && ip -n ${ns} link set lo up`);
  });
  afterAll(() => {
    sh(`ip netns del ${ns} 2>/dev/null || true`);
    rmSync(dir, { recursive: true, force: true });
  });

  const env = () => ({
    PATH: process.env.PATH!, NAMESPACE: 'shoot--t--x', ENDPOINT: '127.0.0.1', OPENVPN_PORT: '9',
    SEED_POD_NETWORK: '10.1.0.0/24', TLS_CA_FILE: join(dir, 'ca.crt'), TLS_CERT_FILE: join(dir, 'c.crt'), TLS_KEY_FILE: join(dir, 'c.key'),
    EGRESS_INTERFACE: 'lo', STATUS_LISTEN: '127.0.0.1:15000', LOG_LEVEL: 'info',
  });

  it('--init (the privileged init container) sets the forwarding sysctls without any configuration and creates nothing else', () => {
    const init = `rvt${process.pid % 100000}i`;
    sh(`ip netns add ${init}`);
    onTestFinished(() => { sh(`ip netns del ${init} 2>/dev/null || true`); });
    // a new namespace may inherit forwarding from the host's (devconf_inherit_init_net): start from off
    sh(`ip netns exec ${init} sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv6/conf/all/forwarding'`);
    const out = execFileSync('ip', ['netns', 'exec', init, process.execPath, MAIN, '--init'], { env: { PATH: process.env.PATH! }, encoding: 'utf8' });
    expect(out).toContain('vpn-shoot --init: net.ipv4.ip_forward = 1 (was 0)');
    expect(sh(`ip netns exec ${init} cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding /proc/sys/net/ipv4/conf/all/rp_filter`).split('\n').filter(Boolean)).toEqual(['1', '1', '0']);
    expect(sh(`ip -n ${init} -o link show`).trim().split('\n')).toHaveLength(1); // only lo: no TUN device
  });

  it('sets up TUN, return route and firewall, stays up while the endpoint refuses, and removes everything on SIGTERM', async () => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, MAIN], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    onTestFinished(() => { child.kill('SIGKILL'); });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const deadline = Date.now() + 15_000;
    while (!/vpn-shoot started/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('vpn-shoot started');
    await new Promise((r) => setTimeout(r, 600)); // a few refused dials
    expect(sh(`ip -n ${ns} link show tun0`)).toContain('tun0');
    expect(sh(`ip -n ${ns} route show 10.1.0.0/24`)).toContain('dev tun0');
    expect(sh(`ip netns exec ${ns} nft list table inet rvpn_shoot`)).toContain('masquerade');
    expect(sh(`ip netns exec ${ns} sysctl -n net.ipv4.ip_forward`).trim()).toBe('1');
    const ready = sh(`ip netns exec ${ns} curl -s -w ' %{http_code}' http://127.0.0.1:15000/readyz`);
    expect(ready).toMatch(/not connected: RVPN_ERR_PROXY_DIAL.* 503$/);
    expect(sh(`ip netns exec ${ns} curl -s http://127.0.0.1:15000/metrics`)).toMatch(/rvpn_vpn_shoot_tunnel_dial_failures_total\{code="RVPN_ERR_PROXY_DIAL"\} [1-9]/);
    expect(child.exitCode).toBeNull(); // never exits on a proxy error (Gardener #9694)

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(sh(`ip -n ${ns} link show`)).not.toContain('tun0');
    expect(sh(`ip netns exec ${ns} nft list tables`)).not.toContain('rvpn_shoot');
    expect(sh(`ip -n ${ns} route show`)).not.toContain('10.1.0.0/24');
  });

  it('exits 2 with one error that lists every configuration problem', () => {
    let status = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, [MAIN], { env: { PATH: process.env.PATH!, SHOOT_POD_NETWORKS: '100.96.0.0/33', IP_FAMILIES: 'IPv5', TLS_CA_FILE: '/nonexistent' }, encoding: 'utf8', stdio: 'pipe' });
    } catch (err) {
      status = (err as { status: number }).status;
      stderr = String((err as { stdout: string }).stdout) + String((err as { stderr: string }).stderr);
    }
    expect(status).toBe(2);
    expect(stderr).toContain('RVPN_ERR_CONFIG_INVALID');
    for (const v of ['SHOOT_POD_NETWORKS', 'IP_FAMILIES', 'TLS_CA_FILE', 'TLS_CERT_FILE']) expect(stderr).toContain(v);
  });
});
