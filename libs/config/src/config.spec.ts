import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeSchema, loadSeedServerConfig, loadShootConfig, loadSniProxyConfig, seedServerSchema, shootSchema, sniProxySchema } from './index.js';
import { configProblems } from './testing/index.js';

const dir = mkdtempSync(join(tmpdir(), 'rvpn-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
for (const f of ['ca.crt', 'tls.crt', 'tls.key', 'routes.json']) writeFileSync(join(dir, f), 'x');
const tls = { TLS_CA_FILE: join(dir, 'ca.crt'), TLS_CERT_FILE: join(dir, 'tls.crt'), TLS_KEY_FILE: join(dir, 'tls.key') };


describe('vpn-seed-server config', () => {
  it('pins the defaults', () => {
    const c = loadSeedServerConfig({ ...tls, NAMESPACE: 'shoot--p--s' });
    expect(c.ipFamilies).toEqual([4]);
    expect(String(c.vpnNetwork)).toBe('fd8f:6d53:b97a:1::/96');
    expect(c.shootServiceNetworks.map(String)).toEqual(['100.64.0.0/13']);
    expect(c.shootPodNetworks.map(String)).toEqual(['100.96.0.0/11']);
    expect(c.shootNodeNetworks).toEqual([]);
    expect(c.seedPodNetwork).toBeUndefined();
    expect(c).toMatchObject({
      tunnelMode: 'listen', tunnelListen: { host: '0.0.0.0', port: 1194 }, proxyListen: { host: '0.0.0.0', port: 9443 },
      statusListen: { host: '0.0.0.0', port: 15000 }, proxyHoldTimeoutMs: 7000, proxyMaxPending: 1000, proxyDialTimeoutMs: 5000,
      keepaliveIntervalMs: 250, keepaliveTimeoutMs: 1000, probeIntervalMs: 1000, tunDevice: 'tun0', mtu: 1500, nftTable: 'rvpn_seed',
      clientAllowedCommonNames: ['vpn-shoot-client', 'vpn-shoot-client-0', 'vpn-shoot-client-1'], proxyAllowedCommonNames: ['kube-apiserver-http-proxy-client'],
      logLevel: 'info', isHa: false, haIndex: undefined,
      tunnelMaxPendingHandshakes: 32, tunnelTlsHandshakeTimeoutMs: 5000, tunnelHandshakeTimeoutMs: 10_000, haMaxPorts: 64, haBroadcastRate: 200,
    });
    expect(c.proxyTls).toEqual(c.tls);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.shootPodNetworks)).toBe(true);
  });

  it('lists every problem in one error', () => {
    const p = configProblems(() => loadSeedServerConfig({
      TLS_CA_FILE: '/nonexistent/ca.crt', TLS_CERT_FILE: tls.TLS_CERT_FILE, TLS_KEY_FILE: tls.TLS_KEY_FILE,
      SHOOT_POD_NETWORKS: '100.96.0.1/11', TUNNEL_MODE: 'sideways', PROXY_HOLD_TIMEOUT: '12s', MTU: 'big',
    }));
    expect(p.map((x) => x.env).sort()).toEqual(['MTU', 'PROXY_HOLD_TIMEOUT', 'SHOOT_POD_NETWORKS', 'TLS_CA_FILE', 'TUNNEL_MODE']);
    expect(p.find((x) => x.env === 'SHOOT_POD_NETWORKS')!.problem).toMatch(/host bits set \(did you mean 100\.96\.0\.0\/11\?\)/);
    expect(p.find((x) => x.env === 'TUNNEL_MODE')!.problem).toMatch(/allowed: listen, dial/);
    expect(p.find((x) => x.env === 'TLS_CA_FILE')!.problem).toMatch(/does not exist/);
  });

  it('checks families, overlaps and cross-field rules', () => {
    const p = configProblems(() => loadSeedServerConfig({
      ...tls, NAMESPACE: 'x', IP_FAMILIES: 'IPv4', SHOOT_POD_NETWORKS: 'fd10:96::/56', SEED_POD_NETWORK: '100.64.0.0/16',
      VPN_NETWORK: '10.0.0.0/8', KEEPALIVE_INTERVAL: '600ms', TUNNEL_MODE: 'dial',
    }));
    const byEnv = Object.fromEntries(p.map((x) => [x.env, x.problem]));
    expect(byEnv.SHOOT_POD_NETWORKS).toMatch(/is IPv6, but IP_FAMILIES allows only IPv4/);
    expect(byEnv.SHOOT_SERVICE_NETWORKS).toMatch(/overlaps SEED_POD_NETWORK/);
    expect(byEnv.VPN_NETWORK).toMatch(/must be an IPv6 network/);
    expect(byEnv.KEEPALIVE_TIMEOUT).toMatch(/more than twice/);
    expect(byEnv.TUNNEL_DIAL_ADDRESS).toMatch(/required when TUNNEL_MODE=dial/);
    expect(configProblems(() => loadSeedServerConfig({ ...tls }))[0]!.env).toBe('NAMESPACE');
    expect(configProblems(() => loadSeedServerConfig({ ...tls, NAMESPACE: 'x', IP_FAMILIES: 'IPv5' }))[0]!.problem).toMatch(/allowed: IPv4, IPv6/);
  });

  it('parses durations, lists and host:port forms', () => {
    const c = loadSeedServerConfig({ ...tls, NAMESPACE: 'x', IP_FAMILIES: 'IPv4,IPv6', SHOOT_NODE_NETWORKS: '10.250.0.0/16, fd10:250::/64', PROXY_HOLD_TIMEOUT: '1500', PROBE_INTERVAL: '2s', TUNNEL_MODE: 'dial', TUNNEL_DIAL_ADDRESS: '[fd10::5]', POD_NAME: 'vpn-seed-server-1' });
    expect(c.ipFamilies).toEqual([4, 6]);
    expect(c.shootNodeNetworks.map(String)).toEqual(['10.250.0.0/16', 'fd10:250::/64']);
    expect(c.proxyHoldTimeoutMs).toBe(1500);
    expect(c.probeIntervalMs).toBe(2000);
    expect(c.tunnelDialAddress).toEqual({ host: 'fd10::5', port: 4314 });
    expect(c.haIndex).toBe(1);
  });
});

describe('vpn-shoot config', () => {
  it('pins the defaults and derives the routing header', () => {
    const c = loadShootConfig({ ...tls, ENDPOINT: '198.18.0.10', NAMESPACE: 'shoot--p--s', SEED_POD_NETWORK: '10.1.0.0/24' });
    expect(c).toMatchObject({
      openvpnPort: 8132, reversedVpnHeaderKey: 'Reversed-VPN', reversedVpnHeader: 'outbound|1194||vpn-seed-server.shoot--p--s.svc.cluster.local',
      tunnelMode: 'dial', directDial: false, tlsServerName: 'vpn-seed-server', egressInterface: 'eth0', reconnectMinMs: 100, reconnectMaxMs: 5000,
      protocolMinor: 1, nftTable: 'rvpn_shoot', tunnelListen: { host: '0.0.0.0', port: 4314 },
    });
  });
  it('requires what dialing needs', () => {
    const p = configProblems(() => loadShootConfig({ ...tls }));
    expect(p.map((x) => x.env).sort()).toEqual(['ENDPOINT', 'REVERSED_VPN_HEADER', 'SEED_POD_NETWORK']);
  });
});

describe('sni-proxy config', () => {
  it('pins the defaults', () => {
    const c = loadSniProxyConfig({ ROUTES_FILE: join(dir, 'routes.json') });
    expect(c).toMatchObject({
      listen443: { port: 443 }, listen8443: { port: 8443 }, listen8132: { port: 8132 }, statusListen: { port: 15021 }, proxyProtocol: 'off', proxyProtocolTrustedNetworks: [],
      maxHeaderBytes: 8192, headerTimeoutMs: 5000, maxConnections: 10000, maxConnectionsPerSource: 2000, maxConnectionsPerRoute: 5000, maxPendingConnections: 1000,
      maxPendingConnectionsPerSource: 100, upstreamDialTimeoutMs: 10_000, idleTimeoutMs: 3_600_000, refusalLogIntervalMs: 10_000,
    });
    expect(new RegExp(c.allowPatterns[0]!).test('outbound|1194||vpn-seed-server.shoot--p--s.svc.cluster.local')).toBe(true);
    expect(new RegExp(c.allowPatterns[0]!).test('outbound|1194||evil.example.com')).toBe(false);
  });
  it('refuses a bad regex', () => {
    expect(configProblems(() => loadSniProxyConfig({ ROUTES_FILE: join(dir, 'routes.json'), ALLOW_PATTERNS: '^(unclosed' }))[0]!.problem).toMatch(/invalid regular expression/);
  });
  it('parses the trusted PROXY networks and refuses zero caps', () => {
    const c = loadSniProxyConfig({ ROUTES_FILE: join(dir, 'routes.json'), PROXY_PROTOCOL_TRUSTED_NETWORKS: '10.0.0.0/8, fd00::/8' });
    expect(c.proxyProtocolTrustedNetworks.map(String)).toEqual(['10.0.0.0/8', 'fd00::/8']);
    const p = configProblems(() => loadSniProxyConfig({ ROUTES_FILE: join(dir, 'routes.json'), MAX_CONNECTIONS_PER_SOURCE: '0', PROXY_PROTOCOL_TRUSTED_NETWORKS: '10.0.0.1/8' }));
    expect(p.map((x) => x.env).sort()).toEqual(['MAX_CONNECTIONS_PER_SOURCE', 'PROXY_PROTOCOL_TRUSTED_NETWORKS']);
  });
});

describe('schemas', () => {
  it('document every field', () => {
    for (const s of [seedServerSchema, shootSchema, sniProxySchema]) {
      for (const row of describeSchema(s)) {
        expect(row.doc.length).toBeGreaterThan(10);
        expect(row.env).toMatch(/^[A-Z][A-Z0-9_]+$/);
      }
    }
  });
});
