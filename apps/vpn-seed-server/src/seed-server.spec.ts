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
import { Cidr, loadSeedServerConfig } from '@rvpn/config';
import { createShootPki } from '@rvpn/pki';
import { NetConfig, checkPacket, packBatch, seedMappingChain, seedPodTunnelNetwork } from '@rvpn/tunnel';
import { icmp4Error, icmpEcho, ipv6Packet, tcp4, v6Bytes } from '@rvpn/tunnel/testing';
import { proxyDestinationMapper } from '@rvpn/egress';
import { seedFilterRules, seedFirewall, tunnelAddresses } from './seed-server.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const isRoot = process.getuid?.() === 0;
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });

describe('seed server pieces', () => {
  it('takes ::1 and gives the shoot ::2 of VPN_NETWORK', () => {
    expect(tunnelAddresses(Cidr.parse('fd8f:6d53:b97a:1::/96'))).toEqual({ seed: 'fd8f:6d53:b97a:1::1', shoot: 'fd8f:6d53:b97a:1::2', prefixLength: 96 });
  });
  it('the firewall accepts only replies from the TUN, never to its own ports, and forwards nothing', () => {
    const fw = seedFirewall('tun0', [1194, 9443, 15000]);
    expect(fw).toMatch(/iifname "tun0" meta l4proto \{ tcp, udp \} th dport \{ 1194, 9443, 15000 \} counter drop[^\n]*\n\s*iifname "tun0" ct direction reply ct state established,related accept\n\s*iifname "tun0" counter drop/);
    expect(fw).toMatch(/chain forward[\s\S]*iifname "tun0" counter drop[\s\S]*oifname "tun0" counter drop/);
    expect(fw).toMatch(/chain output[\s\S]*oifname "tun0" icmpv6 type \{[^}]*parameter-problem[^}]*\} ct state invalid counter drop/);
  });

  it('filters the tunnel to shoot sources, this side as destination and ICMP errors about its own packets', () => {
    const vpn = Cidr.parse('fd8f:6d53:b97a:1::/96');
    const rules = seedFilterRules([Cidr.parse('100.96.0.0/11'), Cidr.parse('10.250.0.0/16')], vpn, [Cidr.parse('10.1.0.0/24')]);
    const check = (p: Buffer) => checkPacket(packBatch([p]), 2, p.length, rules);
    expect(check(tcp4('100.96.1.10', '10.1.0.20', 8080, 40000, 0x12))).toBeUndefined();
    expect(check(ipv6Packet(v6Bytes('fd8f:6d53:b97a:1::2'), v6Bytes('fd8f:6d53:b97a:1::1')))).toBeUndefined();
    // not all of VPN_NETWORK, and never the seed's own tunnel address as a source
    expect(check(ipv6Packet(v6Bytes('fd8f:6d53:b97a:1::3'), v6Bytes('fd8f:6d53:b97a:1::1')))).toBe('source');
    expect(check(ipv6Packet(v6Bytes('fd8f:6d53:b97a:1::1'), v6Bytes('fd8f:6d53:b97a:1::1')))).toBe('source');
    expect(check(icmpEcho('100.96.1.10', '8.8.8.8', 1, 1))).toBe('destination');
    expect(check(icmp4Error('100.96.0.1', '10.1.0.20', tcp4('10.1.0.20', '10.1.0.30', 9443, 50000), { mtu: 552 }))).toBe('icmp_error');
    expect(check(icmp4Error('100.96.0.1', '10.1.0.20', tcp4('10.1.0.20', '100.96.1.10', 50000, 8080), { mtu: 1400 }))).toBeUndefined();
  });

  it("with overlapping networks: the proxy dials mapped addresses, the filter and firewall speak the tunnel's (mapped) ranges", () => {
    const dir = mkdtempSync(join(tmpdir(), 'rvpn-map-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    for (const f of ['ca.crt', 's.crt', 's.key']) writeFileSync(join(dir, f), 'x');
    const cfg = loadSeedServerConfig({
      NAMESPACE: 'shoot--t--x', TLS_CA_FILE: join(dir, 'ca.crt'), TLS_CERT_FILE: join(dir, 's.crt'), TLS_KEY_FILE: join(dir, 's.key'), IP_FAMILIES: 'IPv4,IPv6',
      SEED_POD_NETWORK: '100.96.0.0/11', SEED_SERVICE_NETWORKS: '100.64.0.0/13', SEED_NODE_NETWORKS: '10.250.0.0/16',
      SHOOT_POD_NETWORKS: '100.96.0.0/11,fd10:96::/40', SHOOT_SERVICE_NETWORKS: '100.64.0.0/13', SHOOT_NODE_NETWORKS: '10.250.0.0/16',
    });
    const map = proxyDestinationMapper(cfg.mapping)!;
    expect([map('100.96.1.10'), map('100.64.0.10'), map('10.250.0.10')]).toEqual(['244.0.1.10', '243.0.0.10', '242.0.0.10']);
    expect(map('fd10:96:1::10')).toBe('fd10:96:1::10'); // IPv6 overlaps nothing here: not mapped, dialed as named
    const rules = seedFilterRules(cfg.mapping.tunnelCidrs('shoot'), cfg.vpnNetwork, [seedPodTunnelNetwork(cfg.mapping, cfg.seedPodNetwork!)]);
    const check = (p: Buffer) => checkPacket(packBatch([p]), 2, p.length, rules);
    expect(check(tcp4('244.0.1.10', '241.0.0.20', 8080, 40000, 0x12))).toBeUndefined();
    // the real addresses are the seed's own here: neither a real shoot source nor a real seed destination passes
    expect(check(tcp4('100.96.1.10', '241.0.0.20', 8080, 40000, 0x12))).toBe('source');
    expect(check(tcp4('244.0.1.10', '100.96.0.20', 8080, 40000, 0x12))).toBe('destination');
    expect(seedFirewall('tun0', [9443], seedMappingChain('tun0', cfg.mapping))).toMatch(/chain mapping_snat \{\n\s*type nat hook postrouting priority srcnat; policy accept;\n\s*oifname "tun0" ip saddr \{ 100\.96\.0\.0\/11 \} snat ip prefix to ip saddr map \{ 100\.96\.0\.0\/11 : 241\.0\.0\.0\/11 \}/);
    // nothing overlaps: no mapper, no chain
    const plain = loadSeedServerConfig({ NAMESPACE: 'shoot--t--x', TLS_CA_FILE: join(dir, 'ca.crt'), TLS_CERT_FILE: join(dir, 's.crt'), TLS_KEY_FILE: join(dir, 's.key'), SEED_POD_NETWORK: '10.1.0.0/24' });
    expect(proxyDestinationMapper(plain.mapping)).toBeUndefined();
    expect(seedMappingChain('tun0', plain.mapping)).toEqual([]);
  });
});

/**
 * The firewall in a real kernel: a shoot that forges the source of a flow someone else holds with
 * this pod (the kube-apiserver's, in the original direction) must not get a packet in, whether to
 * one of the pod's own ports or to another one. Three namespaces: S (the seed pod; veth "tun0" to A,
 * "eth0" to P), P (a peer in the seed, as the apiserver), A (behind the tunnel, forging).
 */
describe.skipIf(!isRoot)('seed firewall in a kernel (root)', () => {
  const id = process.pid % 100000;
  const S = `rvt${id}s`, P = `rvt${id}p`, A = `rvt${id}a`;
  const udpServer = (port: number, log: string) =>
    `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',${port}))\nwhile True:\n d,a=s.recvfrom(2048)\n open('${log}','a').write(d.decode(errors='replace')+'\\n')\n s.sendto(b'pong',a)`;
  const spoof = (src: string, dst: string, sport: number, dport: number, payload: string) =>
    `import socket,struct\np=b'${payload}'\nu=struct.pack('!HHHH',${sport},${dport},8+len(p),0)+p\nh=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(u),0,0x4000,64,17,0,socket.inet_aton('${src}'),socket.inet_aton('${dst}'))\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)\ns.sendto(h+u,('${dst}',0))`;
  let dir: string;
  const servers: Array<ReturnType<typeof spawn>> = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rvpn-fw-spec-'));
    for (const n of [S, P, A]) sh(`ip netns del ${n} 2>/dev/null || true; ip netns add ${n}; ip -n ${n} link set lo up`);
    sh(`ip -n ${S} link add tun0 type veth peer name att netns ${A} && ip -n ${S} link add eth0 type veth peer name eth0 netns ${P}`);
    for (const n of [S]) sh(`ip netns exec ${n} sh -c 'for k in all default; do sysctl -qw net.ipv4.conf.$k.rp_filter=0; done'`);
    sh(`ip -n ${S} addr add 10.99.0.1/24 dev tun0 && ip -n ${S} addr add 10.1.0.20/24 dev eth0 && ip -n ${S} link set tun0 up && ip -n ${S} link set eth0 up`);
    sh(`ip netns exec ${S} sysctl -qw net.ipv4.conf.tun0.rp_filter=0`);
    sh(`ip -n ${P} addr add 10.1.0.30/24 dev eth0 && ip -n ${P} link set eth0 up`);
    sh(`ip -n ${A} addr add 10.99.0.2/24 dev att && ip -n ${A} link set att up && ip -n ${A} route add 10.1.0.0/24 via 10.99.0.1`);
  });
  afterAll(() => {
    for (const c of servers) c.kill('SIGKILL');
    for (const n of [S, P, A]) sh(`ip netns del ${n} 2>/dev/null || true`);
    rmSync(dir, { recursive: true, force: true });
  });

  it('drops forged packets in the original direction of a flow the pod holds elsewhere, to its own ports and to others', async () => {
    await new NetConfig({ netns: S }).applyNftTable('inet', 'rvpn_seed', seedFirewall('tun0', [1194, 9443, 15000]));
    for (const port of [9443, 7777]) {
      const c = spawn('ip', ['netns', 'exec', S, 'python3', '-c', udpServer(port, join(dir, `${port}.log`))], { stdio: 'ignore' });
      servers.push(c);
    }
    await new Promise((r) => setTimeout(r, 300));
    // P holds a flow with each port (a request and its answer: conntrack calls it established)
    for (const port of [9443, 7777]) {
      sh(`ip netns exec ${P} python3 -c "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('10.1.0.30',5${port % 1000}));s.settimeout(2);s.sendto(b'real',('10.1.0.20',${port}));print(s.recvfrom(100))"`);
      // A forges P's side of that flow through the tunnel interface
      sh(`ip netns exec ${A} python3 -c "${spoof('10.1.0.30', '10.1.0.20', 5000 + (port % 1000), port, 'INJECTED')}"`);
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const port of [9443, 7777]) {
      const log = sh(`cat ${join(dir, `${port}.log`)}`);
      expect(log).toContain('real');
      expect(log).not.toContain('INJECTED');
    }
    expect(sh(`ip netns exec ${S} nft list table inet rvpn_seed`)).toMatch(/th dport \{ 1194, 9443, 15000 \} counter packets [1-9]/);
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

/**
 * Out of file descriptors (the soft limit lowered with prlimit on the running process): a flood of
 * connections makes accept(2) fail with EMFILE on the tunnel listener and on the CONNECT proxy. The
 * process must live on, notice it and serve again once the flood ends. libuv (1.46, Node 20) never
 * hands these failures to a listener's 'error' handler (it closes the waiting connections with a
 * reserved descriptor), so a probe notices the exhaustion: a gauge, a counter of seconds and one log
 * line per interval. The 'error' handlers are tested with an emitted EMFILE in the libs.
 */
describe.skipIf(!isRoot)('vpn-seed-server out of file descriptors (root)', () => {
  const ns = `rvt${process.pid % 100000}m`;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rvpn-emfile-spec-'));
    const pki = await createShootPki({ namespace: 'shoot--t--x' });
    const files: Record<string, string> = { 'ca.crt': pki.ca.certPem, 's.crt': pki.proxyServer.certPem, 's.key': pki.proxyServer.keyPem };
    for (const [n, c] of Object.entries(files)) writeFileSync(join(dir, n), c);
    sh(`ip netns del ${ns} 2>/dev/null || true; ip netns add ${ns} && ip -n ${ns} link set lo up && ip -n ${ns} addr add 10.1.0.20/32 dev lo`);
  });
  afterAll(() => {
    sh(`ip netns del ${ns} 2>/dev/null || true`);
    rmSync(dir, { recursive: true, force: true });
  });

  const flood = (port: number, n: number, holdS: number) =>
    `import socket,time\nss=[]\nfor i in range(${n}):\n try:\n  s=socket.create_connection(('127.0.0.1',${port}),timeout=1);ss.append(s)\n except Exception as e:\n  pass\ntime.sleep(${holdS})\nprint(len(ss))`;

  it('lives through EMFILE on both listeners, notices it and serves again', async () => {
    const env = {
      PATH: process.env.PATH!, NAMESPACE: 'shoot--t--x', SHOOT_NODE_NETWORKS: '10.250.0.0/16', SEED_POD_NETWORK: '10.1.0.0/24',
      TLS_CA_FILE: join(dir, 'ca.crt'), TLS_CERT_FILE: join(dir, 's.crt'), TLS_KEY_FILE: join(dir, 's.key'),
      TUNNEL_LISTEN: '127.0.0.1:1194', PROXY_LISTEN: '127.0.0.1:9443', STATUS_LISTEN: '127.0.0.1:15000', LOG_LEVEL: 'info',
      TUNNEL_MAX_PENDING_HANDSHAKES: '1000', TUNNEL_TLS_HANDSHAKE_TIMEOUT: '30s',
    };
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    onTestFinished(() => { child.kill('SIGKILL'); });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    let exitCode: number | null | undefined;
    const exited = new Promise<void>((r) => child.on('exit', (code) => { exitCode = code; r(); }));
    const deadline = Date.now() + 15_000;
    while (!/vpn-seed-server started/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('vpn-seed-server started');
    const fds = Number(sh(`ls /proc/${child.pid}/fd | wc -l`).trim());
    sh(`prlimit --pid ${child.pid} --nofile=${fds + 6}:`);

    for (const port of [1194, 9443]) {
      const held = Number(sh(`ip netns exec ${ns} python3 -c "${flood(port, 40, 2.5)}"`).trim());
      expect(held).toBeGreaterThan(6); // the backlog accepts them; the process cannot
      expect(exitCode, out.slice(-2000)).toBeUndefined();
    }
    expect(exitCode, out.slice(-2000)).toBeUndefined();
    // the flood is over: the probe (every second) sees descriptors again
    const t0 = Date.now();
    let metrics = '';
    while (Date.now() - t0 < 8000) {
      metrics = sh(`ip netns exec ${ns} curl -s http://127.0.0.1:15000/metrics || true`);
      if (/rvpn_seed_server_descriptors_exhausted 0/.test(metrics)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(metrics).toMatch(/rvpn_seed_server_descriptor_exhausted_seconds_total [1-9]/);
    expect(metrics).toMatch(/rvpn_seed_server_descriptors_exhausted 0/);
    // logged once per interval (10 s: the first at once, maybe one summary), not once per probe (~5 failed)
    const lines = out.split('\n').filter((l) => l.includes('out of file descriptors')).length;
    expect(lines).toBeGreaterThanOrEqual(1);
    expect(lines).toBeLessThanOrEqual(2);
    expect(Number(/rvpn_seed_server_descriptor_exhausted_seconds_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(lines);
    // the log line leaves the child in the same turn as the gauge, but the curls above ran
    // synchronously here: its bytes may still wait in the pipe for this process's loop
    const logDeadline = Date.now() + 5000;
    while (!out.includes('file descriptors available again') && Date.now() < logDeadline) await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain('file descriptors available again');
    // and it serves again: both listeners take new connections
    expect(Number(sh(`ip netns exec ${ns} python3 -c "${flood(9443, 2, 0)}"`).trim())).toBe(2);
    expect(Number(sh(`ip netns exec ${ns} python3 -c "${flood(1194, 2, 0)}"`).trim())).toBe(2);
    child.kill('SIGTERM');
    await exited;
    expect(exitCode).toBe(0);
  }, 40_000);
});
