/**
 * vpn-seed-server as a process in a throw-away network namespace (as root): with no shoot client
 * attached, every shoot network is an `unreachable` route (never the default route), forwarding is
 * off, the firewall lets the TUN only answer, readiness is false with a reason, and a CONNECT for a
 * shoot address is held and then answered 503. SIGTERM removes everything.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Cidr } from '@rvpn/config';
import { createShootPki } from '@rvpn/pki';
import { seedFirewall, tunnelAddresses } from './seed-server.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const isRoot = process.getuid?.() === 0;
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });

describe('seed server pieces', () => {
  it('takes ::1 and gives the shoot ::2 of VPN_NETWORK', () => {
    expect(tunnelAddresses(Cidr.parse('fd8f:6d53:b97a:1::/96'))).toEqual({ seed: 'fd8f:6d53:b97a:1::1', shoot: 'fd8f:6d53:b97a:1::2', prefixLength: 96 });
  });
  it('the firewall accepts only established traffic from the TUN and forwards nothing', () => {
    const fw = seedFirewall('tun0');
    expect(fw).toMatch(/iifname "tun0" ct state established,related accept\n\s*iifname "tun0" counter drop/);
    expect(fw).toMatch(/chain forward[\s\S]*iifname "tun0" counter drop[\s\S]*oifname "tun0" counter drop/);
  });
});

describe.skipIf(!isRoot)('vpn-seed-server process in a network namespace (root)', () => {
  const ns = `rvt${process.pid % 100000}g`;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rvpn-seed-spec-'));
    const pki = await createShootPki({ namespace: 'shoot--t--x' });
    const files: Record<string, string> = { 'ca.crt': pki.ca.certPem, 's.crt': pki.proxyServer.certPem, 's.key': pki.proxyServer.keyPem, 'p.crt': pki.proxyClient.certPem, 'p.key': pki.proxyClient.keyPem };
    for (const [n, c] of Object.entries(files)) writeFileSync(join(dir, n), c);
    // a default route, to prove shoot networks never fall through to it
    sh(`ip netns add ${ns} && ip -n ${ns} link set lo up && ip -n ${ns} addr add 10.1.0.20/32 dev lo && ip -n ${ns} route add default dev lo`);
  });
  afterAll(() => {
    sh(`ip netns del ${ns} 2>/dev/null || true`);
    rmSync(dir, { recursive: true, force: true });
  });

  it('routes shoot networks as unreachable without a tunnel, holds then refuses CONNECTs with 503, and cleans up on SIGTERM', async () => {
    const env = {
      PATH: process.env.PATH!, NAMESPACE: 'shoot--t--x', SHOOT_NODE_NETWORKS: '10.250.0.0/16', SEED_POD_NETWORK: '10.1.0.0/24',
      TLS_CA_FILE: join(dir, 'ca.crt'), TLS_CERT_FILE: join(dir, 's.crt'), TLS_KEY_FILE: join(dir, 's.key'),
      TUNNEL_LISTEN: '127.0.0.1:1194', PROXY_LISTEN: '127.0.0.1:9443', STATUS_LISTEN: '127.0.0.1:15000', PROXY_HOLD_TIMEOUT: '1s', LOG_LEVEL: 'info',
    };
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    onTestFinished(() => { child.kill('SIGKILL'); });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const deadline = Date.now() + 15_000;
    while (!/vpn-seed-server started/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('vpn-seed-server started');

    for (const net of ['100.64.0.0/13', '100.96.0.0/11', '10.250.0.0/16']) expect(sh(`ip -n ${ns} route show ${net}`)).toMatch(/^unreachable/);
    expect(sh(`ip -n ${ns} route get 100.96.1.10 2>&1 || true`)).toMatch(/unreachable|No route/i);
    expect(sh(`ip netns exec ${ns} sysctl -n net.ipv4.ip_forward`).trim()).toBe('0');
    expect(sh(`ip netns exec ${ns} nft list table inet rvpn_seed`)).toContain('the shoot may only answer');
    expect(sh(`ip -n ${ns} -6 addr show dev tun0`)).toContain('fd8f:6d53:b97a:1::1/96');
    expect(sh(`ip netns exec ${ns} curl -s -w ' %{http_code}' http://127.0.0.1:15000/readyz`)).toMatch(/no shoot client.* 503$/);

    const proxy = `--proxy https://127.0.0.1:9443 --proxy-cacert ${dir}/ca.crt --proxy-cert ${dir}/p.crt --proxy-key ${dir}/p.key --proxytunnel`;
    const t0 = Date.now();
    const held = sh(`ip netns exec ${ns} curl -s -o /dev/null -w '%{http_connect}' -m 5 ${proxy} http://100.96.1.10:8080/ || true`);
    expect(held).toBe('503');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(sh(`ip netns exec ${ns} curl -s -o /dev/null -w '%{http_connect}' -m 5 ${proxy} http://10.1.0.20:15000/ || true`)).toBe('403');

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(sh(`ip -n ${ns} link show`)).not.toContain('tun0');
    expect(sh(`ip netns exec ${ns} nft list tables`)).not.toContain('rvpn_seed');
    expect(sh(`ip -n ${ns} route show table all`)).not.toMatch(/unreachable 100\.96/);
  });
});
