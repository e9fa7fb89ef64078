import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeSchema, formatIp, loadPathControllerConfig, loadSeedServerConfig, loadShootConfig, loadSniProxyConfig, seedServerSchema, shootSchema, sniProxySchema } from './index.js';
import { checkNetworks, deriveNetworkMapping, NETWORK_ENV, networkFields } from './apps/common.js';
import { loadConfig } from './schema.js';
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
    expect(byEnv.SHOOT_SERVICE_NETWORKS).toBeUndefined(); // overlaps SEED_POD_NETWORK: mapped, in every direction
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
      protocolMinor: 2, nftTable: 'rvpn_shoot', tunnelListen: { host: '0.0.0.0', port: 4314 },
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

describe('overlapping seed and shoot networks (issue 12)', () => {
  const seedEnv = { ...tls, NAMESPACE: 'shoot--p--s' };
  /** Gardener's default ranges on both sides. */
  const gardener = {
    SEED_POD_NETWORK: '100.96.0.0/11', SEED_SERVICE_NETWORKS: '100.64.0.0/13', SEED_NODE_NETWORKS: '10.250.0.0/16',
    SHOOT_POD_NETWORKS: '100.96.0.0/11', SHOOT_SERVICE_NETWORKS: '100.64.0.0/13', SHOOT_NODE_NETWORKS: '10.250.0.0/16',
  };
  /** The shared network schema, loaded the way an app whose data path applies the mapping will load it. */
  const loadMapped = (env: Record<string, string>) =>
    loadConfig(networkFields, env, {
      app: 'test',
      derive: (c) => ({ mapping: deriveNetworkMapping(c) }),
      check: (c, add) => checkNetworks(c, add),
    });
  const byEnv = (p: Array<{ env: string; problem: string }>) => Object.fromEntries(p.map((x) => [x.env, x.problem]));

  it('pins the new defaults; without overlaps the mapping is the identity', () => {
    const c = loadSeedServerConfig({ ...seedEnv, SEED_POD_NETWORK: '10.1.0.0/24' });
    expect(c.seedNodeNetworks).toEqual([]);
    expect(c.seedServiceNetworks).toEqual([]);
    expect(c.networkMapping).toBe('auto');
    expect([c.mappedSeedPodNetworkV6, c.mappedShootNodeNetworkV6, c.mappedShootServiceNetworkV6, c.mappedShootPodNetworkV6].map(String))
      .toEqual(['fd6d:6170:100::/40', 'fd6d:6170:200::/40', 'fd6d:6170:300::/40', 'fd6d:6170:400::/40']);
    expect(c.mapping.isActive()).toBe(false);
    expect(c.mapping.tunnelCidrs().map(String)).toEqual(['100.64.0.0/13', '100.96.0.0/11']);
    expect(c.mapping.tunnelCidrs('seed').map(String)).toEqual(['10.1.0.0/24']);
    expect(Object.isFrozen(c.mapping)).toBe(true);
    expect(formatIp(c.mapping.toMapped('100.96.0.7', 'shoot')!)).toBe('100.96.0.7');
    for (const load of [loadShootConfig, loadPathControllerConfig]) {
      const x = load({ ...tls, ENDPOINT: 'e', NAMESPACE: 'n', POD_NAME: 'p', SEED_POD_NETWORK: '10.1.0.0/24', PROXY_TLS_CERT_FILE: tls.TLS_CERT_FILE, PROXY_TLS_KEY_FILE: tls.TLS_KEY_FILE });
      expect(x.mapping.isActive()).toBe(false);
    }
  });

  it('parses the seed node and service networks as lists of either family', () => {
    const c = loadSeedServerConfig({ ...seedEnv, SEED_NODE_NETWORKS: '10.0.0.0/16, fd00:10::/64', SEED_SERVICE_NETWORKS: '172.16.0.0/16' });
    expect(c.seedNodeNetworks.map(String)).toEqual(['10.0.0.0/16', 'fd00:10::/64']);
    expect(c.seedServiceNetworks.map(String)).toEqual(['172.16.0.0/16']);
    expect(byEnv(configProblems(() => loadSeedServerConfig({ ...seedEnv, SEED_NODE_NETWORKS: '10.0.0.1/16', NETWORK_MAPPING: 'sometimes' })))).toMatchObject({
      SEED_NODE_NETWORKS: expect.stringMatching(/host bits set/),
      NETWORK_MAPPING: expect.stringMatching(/allowed: auto, always, never/),
    });
  });

  it('finds an overlap with each seed network (pods, nodes, services) and each shoot network', () => {
    for (const [seedEnvName, shootEnvName] of [['SEED_POD_NETWORK', 'SHOOT_NODE_NETWORKS'], ['SEED_NODE_NETWORKS', 'SHOOT_POD_NETWORKS'], ['SEED_SERVICE_NETWORKS', 'SHOOT_SERVICE_NETWORKS']] as const) {
      const env = { ...seedEnv, SHOOT_NODE_NETWORKS: '10.250.0.0/16', [seedEnvName]: { SHOOT_NODE_NETWORKS: '10.250.0.0/20', SHOOT_POD_NETWORKS: '100.96.8.0/24', SHOOT_SERVICE_NETWORKS: '100.64.0.0/12' }[shootEnvName] };
      const m = loadSeedServerConfig({ ...env, TUNNEL_MODE: 'dial', TUNNEL_DIAL_ADDRESS: '198.18.0.20' }).mapping;
      expect(m.overlaps.map((o) => [NETWORK_ENV[o.seed.kind], NETWORK_ENV[o.shoot.kind]]), seedEnvName).toEqual([[seedEnvName, shootEnvName]]);
      expect(loadMapped(env).mapping.isActive(4)).toBe(true);
    }
  });

  it("maps Gardener's default ranges on such a seed in every app and direction: reversed and classic, non-HA and HA", () => {
    const common = { ...seedEnv, ...gardener, ENDPOINT: 'e', PROXY_TLS_CERT_FILE: tls.TLS_CERT_FILE, PROXY_TLS_KEY_FILE: tls.TLS_KEY_FILE };
    expect(loadSeedServerConfig(common).mapping.isActive(4)).toBe(true);
    expect(loadShootConfig(common).mapping.tunnelCidrs('seed').map(String)).toEqual(['241.0.0.0/11']);
    // HA: the switch, the path-controller and the bonded vpn-shoot carry the same mapping
    const pc = loadPathControllerConfig({ ...common, POD_NAME: 'p', PROBE_TARGET: '100.64.0.1:443' });
    expect(pc.mapping.tunnelCidrs().map(String)).toEqual(['242.0.0.0/16', '243.0.0.0/13', '244.0.0.0/11']);
    expect(loadSeedServerConfig({ ...common, IS_HA: 'true', POD_NAME: 'vpn-seed-server-0' }).mapping.tunnelCidrs().map(String)).toEqual(['242.0.0.0/16', '243.0.0.0/13', '244.0.0.0/11']);
    expect(loadShootConfig({ ...common, IS_HA: 'true', POD_NAME: 'vpn-shoot-0' }).mapping.isActive(4)).toBe(true);
    // classic: the seed dials the shoot's LoadBalancer; the same mapping on both ends
    expect(loadSeedServerConfig({ ...common, TUNNEL_MODE: 'dial', TUNNEL_DIAL_ADDRESS: '198.18.0.20' }).mapping.tunnelCidrs().map(String)).toEqual(['242.0.0.0/16', '243.0.0.0/13', '244.0.0.0/11']);
    expect(loadShootConfig({ ...common, TUNNEL_MODE: 'listen' }).mapping.tunnelCidrs('seed').map(String)).toEqual(['241.0.0.0/11']);
  });

  it('refuses a classic dial address that the tunnel itself would carry (a shoot or mapped address)', () => {
    const dial = (env: Record<string, string>): Record<string, string> => {
      const load = () => loadSeedServerConfig({ ...seedEnv, TUNNEL_MODE: 'dial', ...env });
      try {
        load();
        return {};
      } catch {
        return byEnv(configProblems(load));
      }
    };
    // not mapped: the real shoot networks are routed into the TUN
    expect(dial({ SEED_POD_NETWORK: '10.1.0.0/24', TUNNEL_DIAL_ADDRESS: '100.96.0.7:4314' }).TUNNEL_DIAL_ADDRESS).toMatch(/100\.96\.0\.7 lies in 100\.96\.0\.0\/11, which is routed into the tunnel/);
    // mapped: the mapped ranges are; a real shoot node address behind a LoadBalancer elsewhere is fine
    expect(dial({ ...gardener, TUNNEL_DIAL_ADDRESS: '244.0.0.9' }).TUNNEL_DIAL_ADDRESS).toMatch(/244\.0\.0\.9 lies in 244\.0\.0\.0\/11, which is routed into the tunnel: dial the shoot's LoadBalancer \(an address outside the shoot networks and the mapped ranges\)/);
    expect(dial({ ...gardener, TUNNEL_DIAL_ADDRESS: '198.18.0.20' }).TUNNEL_DIAL_ADDRESS).toBeUndefined();
    expect(dial({ SEED_POD_NETWORK: '10.1.0.0/24', TUNNEL_DIAL_ADDRESS: 'vpn-shoot.example:4314' }).TUNNEL_DIAL_ADDRESS).toBeUndefined();
  });

  it('applies NETWORK_MAPPING=always in every direction', () => {
    expect(loadSeedServerConfig({ ...seedEnv, NETWORK_MAPPING: 'always', TUNNEL_MODE: 'dial', TUNNEL_DIAL_ADDRESS: '198.18.0.20' }).mapping.isActive()).toBe(true);
    expect(loadSeedServerConfig({ ...seedEnv, NETWORK_MAPPING: 'always', IS_HA: 'true', POD_NAME: 'vpn-seed-server-0' }).mapping.isActive()).toBe(true);
    expect(loadSeedServerConfig({ ...seedEnv, NETWORK_MAPPING: 'always' }).mapping.isActive()).toBe(true);
  });

  it('path-controller: under a mapping PROBE_TARGET must be a real shoot address (it is probed at its mapped one)', () => {
    const common = { ...seedEnv, ...gardener, POD_NAME: 'p', PROXY_TLS_CERT_FILE: tls.TLS_CERT_FILE, PROXY_TLS_KEY_FILE: tls.TLS_KEY_FILE };
    expect(byEnv(configProblems(() => loadPathControllerConfig({ ...common, PROBE_TARGET: '243.0.0.1:443' })))).toEqual({ PROBE_TARGET: expect.stringMatching(/243\.0\.0\.1 is in no shoot network, but IPv4 is mapped/) });
    expect(loadPathControllerConfig({ ...common, PROBE_TARGET: '100.64.0.1:443' }).probeTarget.host).toBe('100.64.0.1');
  });

  it('path-controller: PROBE_TARGET must be an IP address (probes are routed by address, nothing is resolved)', () => {
    const common = { ...seedEnv, ...gardener, POD_NAME: 'p', PROXY_TLS_CERT_FILE: tls.TLS_CERT_FILE, PROXY_TLS_KEY_FILE: tls.TLS_KEY_FILE };
    expect(byEnv(configProblems(() => loadPathControllerConfig({ ...common, PROBE_TARGET: 'kubernetes.default:443' })))).toEqual({ PROBE_TARGET: expect.stringMatching(/kubernetes\.default is not an IP address/) });
    expect(loadPathControllerConfig({ ...common, PROBE_TARGET: '[fd10:96::1]:443' }).probeTarget.host).toBe('fd10:96::1');
  });

  it("maps Gardener's default ranges once the data path applies the mapping", () => {
    const c = loadMapped(gardener);
    expect(c.mapping.family(4)).toMatchObject({ active: true, reason: 'overlap' });
    expect(c.mapping.tunnelCidrs().map(String)).toEqual(['242.0.0.0/16', '243.0.0.0/13', '244.0.0.0/11']);
    expect(c.mapping.tunnelCidrs('seed').map(String)).toEqual(['241.0.0.0/11']);
    expect(formatIp(c.mapping.toMapped('10.250.1.2', 'shoot')!)).toBe('242.0.1.2');
    expect(formatIp(c.mapping.toReal('243.0.0.10')!.address)).toBe('100.64.0.10');
  });

  it('maps IPv6 overlaps into MAPPED_*_NETWORK_V6, which config can move', () => {
    const c = loadMapped({
      IP_FAMILIES: 'IPv4,IPv6', SEED_NODE_NETWORKS: 'fd00:10:250::/64', SHOOT_NODE_NETWORKS: 'fd00:10:250::/64', SHOOT_POD_NETWORKS: '100.96.0.0/11,fd00:10:96::/56',
      MAPPED_SHOOT_NODE_NETWORK_V6: 'fdaa:1::/48',
    });
    expect(c.mapping.families.map((f) => [f.family, f.active])).toEqual([[4, false], [6, true]]);
    expect(formatIp(c.mapping.toMapped('fd00:10:250::5', 'shoot')!)).toBe('fdaa:1::5');
    expect(formatIp(c.mapping.toMapped('fd00:10:96:1::5', 'shoot')!)).toBe('fd6d:6170:400:1::5');
    expect(formatIp(c.mapping.toMapped('100.96.0.5', 'shoot')!)).toBe('100.96.0.5');
  });

  it('reports mapping errors on the variable at fault, with their code', () => {
    const cases: Array<[Record<string, string>, string, string]> = [
      [{ ...gardener, NETWORK_MAPPING: 'never' }, 'NETWORK_MAPPING', 'RVPN_ERR_MAPPING_OVERLAP_NOT_ALLOWED'],
      [{ SHOOT_POD_NETWORKS: '244.0.0.0/16' }, 'SHOOT_POD_NETWORKS', 'RVPN_ERR_MAPPING_RESERVED_RANGE'],
      [{ SEED_SERVICE_NETWORKS: '240.0.0.0/12' }, 'SEED_SERVICE_NETWORKS', 'RVPN_ERR_MAPPING_RESERVED_RANGE'],
      [{ SHOOT_POD_NETWORKS: '10.0.0.0/7', NETWORK_MAPPING: 'always' }, 'SHOOT_POD_NETWORKS', 'RVPN_ERR_MAPPING_NO_FIT'],
      [{ SHOOT_NODE_NETWORKS: '10.0.0.0/8', SHOOT_POD_NETWORKS: '10.96.0.0/11', NETWORK_MAPPING: 'always' }, 'SHOOT_POD_NETWORKS', 'RVPN_ERR_MAPPING_AMBIGUOUS'],
      [{ MAPPED_SHOOT_POD_NETWORK_V6: 'fd8f:6d53:b97a::/48' }, 'MAPPED_SHOOT_POD_NETWORK_V6', 'RVPN_ERR_MAPPING_PREFIX_CONFLICT'],
      [{ MAPPED_SEED_POD_NETWORK_V6: '10.0.0.0/8' }, 'MAPPED_SEED_POD_NETWORK_V6', 'RVPN_ERR_MAPPING_PREFIX_CONFLICT'],
      [{ MAPPED_SHOOT_NODE_NETWORK_V6: 'fd6d:6170:400::/48' }, 'MAPPED_SHOOT_POD_NETWORK_V6', 'RVPN_ERR_MAPPING_PREFIX_CONFLICT'],
    ];
    for (const [env, at, code] of cases) {
      const p = configProblems(() => loadMapped(env));
      expect(p.map((x) => x.env), JSON.stringify(env)).toEqual([at]);
      expect(p[0]!.problem).toContain(`(${code})`);
    }
    const shoot = configProblems(() => loadShootConfig({ ...tls, ENDPOINT: 'e', NAMESPACE: 'n', SEED_POD_NETWORK: '10.1.0.0/24', BOND_NETWORK_V4: '242.1.0.0/24' }));
    expect(shoot.map((x) => [x.env, /RVPN_ERR_MAPPING_PREFIX_CONFLICT/.test(x.problem)])).toEqual([['BOND_NETWORK_V4', true]]);
  });
});
