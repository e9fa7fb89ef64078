import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSniProxyConfig } from '@rvpn/config';
import { renderSniProxy, SNI_PROXY_LIMIT_DEFAULTS } from './index.js';
import type { K8sObject } from './types.js';

const dir = mkdtempSync(join(tmpdir(), 'rvpn-render-sni-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'routes.json'), '{}');

const base = { namespace: 'rvpn-system', image: 'reversed-vpn/sni-proxy:0.1.0', replicas: 2, routesConfigMap: 'routes', proxyProtocol: 'off' as const, loadBalancerAnnotations: {} };
const envOf = (objs: K8sObject[]) => {
  const dep = objs.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: Array<{ env: Array<{ name: string; value: string }> }> } } } };
  return Object.fromEntries(dep.spec.template.spec.containers[0]!.env.map((e) => [e.name, e.value]));
};

describe('renderSniProxy: caps and client addresses', () => {
  it('renders every cap with the app\'s defaults, and the app reads the rendered env back to them', () => {
    const env = envOf(renderSniProxy(base));
    const cfg = loadSniProxyConfig({ ...env, ROUTES_FILE: join(dir, 'routes.json') });
    expect(cfg).toMatchObject({
      maxConnections: 10000, maxConnectionsPerSource: 2000, maxConnectionsPerRoute: 5000, maxPendingConnections: 1000, maxPendingConnectionsPerSource: 100,
      headerTimeoutMs: 5000, upstreamDialTimeoutMs: 10_000, refusalLogIntervalMs: 10_000, proxyProtocolTrustedNetworks: [],
      relayMode: 'native',
    });
    expect(loadSniProxyConfig({ ...envOf(renderSniProxy({ ...base, relayMode: 'stream' })), ROUTES_FILE: join(dir, 'routes.json') }).relayMode).toBe('stream');
    expect(SNI_PROXY_LIMIT_DEFAULTS.maxConnectionsPerSource).toBe(2000);
  });

  it('passes overrides and the trusted PROXY networks through', () => {
    const env = envOf(renderSniProxy({ ...base, proxyProtocol: 'optional', proxyProtocolTrustedNetworks: ['10.250.0.0/16', 'fd00::/64'], limits: { maxConnectionsPerSource: 4000, headerTimeout: '3s' } }));
    const cfg = loadSniProxyConfig({ ...env, ROUTES_FILE: join(dir, 'routes.json') });
    expect(cfg.maxConnectionsPerSource).toBe(4000);
    expect(cfg.maxConnections).toBe(10000);
    expect(cfg.headerTimeoutMs).toBe(3000);
    expect(cfg.proxyProtocolTrustedNetworks.map(String)).toEqual(['10.250.0.0/16', 'fd00::/64']);
  });

  it('keeps client addresses by default (externalTrafficPolicy Local: the per-source caps count real sources)', () => {
    const svc = renderSniProxy(base).find((o) => o.kind === 'Service') as unknown as { spec: { externalTrafficPolicy: string; type: string } };
    expect(svc.spec).toMatchObject({ type: 'LoadBalancer', externalTrafficPolicy: 'Local' });
  });
});
