import { describe, expect, it } from 'vitest';
import { HA_VPN_ANNOTATION, REVERSED_VPN_ANNOTATION, apiserverSidecarPatch, renderSeed, renderShoot, resolveVpnMode, sniProxyRoutes, type K8sObject, type RenderSettings, type VpnSpec } from './index.js';

const base: VpnSpec = {
  shoot: { name: 'demo', project: 'dev' },
  namespace: 'shoot--dev--demo',
  networks: { services: ['100.64.0.0/13'], pods: ['100.96.0.0/11'], nodes: ['10.250.0.0/16'], seedPods: '10.1.0.0/16', ipFamilies: ['IPv4'] },
  highAvailability: { failureTolerance: 'none' },
  annotations: {},
  endpoint: 'api.demo.dev.internal.example',
  classicEndpoint: '203.0.113.10:4314',
  images: { vpnSeedServer: 'registry.example/rvpn/vpn-seed-server:0.1.0', vpnShoot: 'registry.example/rvpn/vpn-shoot:0.1.0', pathController: 'registry.example/rvpn/path-controller:0.1.0' },
};
const settings = (gate: boolean): RenderSettings => ({ featureGates: { ReversedVPN: gate }, sniProxy: { namespace: 'rvpn-system', podLabels: { 'app.kubernetes.io/name': 'sni-proxy' } } });

/** Validates an object against the Kubernetes OpenAPI schema of its kind (kubernetes-models). */
async function validate(obj: K8sObject): Promise<void> {
  const path = obj.apiVersion.includes('/') ? obj.apiVersion : `v1`;
  const mod = (await import(`kubernetes-models/${path}`)) as Record<string, new (o: unknown) => { validate(): void }>;
  const Model = mod[obj.kind];
  if (!Model) throw new Error(`no model for ${obj.apiVersion} ${obj.kind}`);
  new Model(obj).validate();
}

describe('resolveVpnMode: every combination of gate, annotations and failure tolerance', () => {
  const ann = [undefined, 'true', 'false'] as const;
  const rows: Array<{ gate: boolean; rev: string | undefined; ha: string | undefined; tol: 'none' | 'node' | 'zone'; want: { reversed: boolean; ha: boolean } | 'error' }> = [];
  for (const gate of [true, false]) {
    for (const rev of ann) {
      for (const ha of ann) {
        for (const tol of ['none', 'node', 'zone'] as const) {
          const reversed = rev === undefined ? gate : rev === 'true';
          const haOn = ha === undefined ? tol !== 'none' : ha === 'true';
          rows.push({ gate, rev, ha, tol, want: haOn && !reversed ? 'error' : { reversed, ha: haOn } });
        }
      }
    }
  }
  it.each(rows)('gate $gate, reversed-vpn=$rev, high-availability-vpn=$ha, tolerance $tol', ({ gate, rev, ha, tol, want }) => {
    const annotations: Record<string, string> = {};
    if (rev !== undefined) annotations[REVERSED_VPN_ANNOTATION] = rev;
    if (ha !== undefined) annotations[HA_VPN_ANNOTATION] = ha;
    const spec = { ...base, annotations, highAvailability: { failureTolerance: tol } };
    if (want === 'error') expect(() => resolveVpnMode(spec, settings(gate))).toThrow(/RVPN_ERR_SPEC_INVALID|needs the reversed VPN/);
    else expect(resolveVpnMode(spec, settings(gate))).toMatchObject(want);
  });
  it('refuses an annotation that is neither "true" nor "false"', () => {
    expect(() => resolveVpnMode({ ...base, annotations: { [REVERSED_VPN_ANNOTATION]: 'yes' } }, settings(true))).toThrow(/must be "true" or "false"/);
  });
});

describe('rendered objects', () => {
  const modes = [
    { name: 'reversed', spec: base, gate: true },
    { name: 'reversed HA (zone)', spec: { ...base, highAvailability: { failureTolerance: 'zone' as const } }, gate: true },
    { name: 'classic', spec: base, gate: false },
  ];
  for (const m of modes) {
    it(`${m.name}: every object validates against the Kubernetes schemas`, async () => {
      const mode = resolveVpnMode(m.spec, settings(m.gate));
      const objs = [...renderSeed(m.spec, mode, settings(m.gate)), ...renderShoot(m.spec, mode)];
      const patch = apiserverSidecarPatch(m.spec, mode);
      for (const o of objs) await validate(o);
      if (patch) {
        // validated as a pod would hold them: a minimal Pod with the sidecar's lists
        await validate({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'kube-apiserver' }, spec: patch });
      }
      const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`);
      if (mode.ha) {
        expect(kinds).toEqual(expect.arrayContaining(['StatefulSet/vpn-seed-server', 'Service/vpn-seed-server-0', 'Service/vpn-seed-server-1', 'PodDisruptionBudget/vpn-seed-server', 'StatefulSet/vpn-shoot', 'PodDisruptionBudget/vpn-shoot']));
        expect(patch).toBeDefined();
      } else {
        expect(kinds).toEqual(expect.arrayContaining(['Deployment/vpn-seed-server', 'Service/vpn-seed-server', 'Deployment/vpn-shoot']));
        expect(patch).toBeUndefined();
      }
      if (!mode.reversed) expect(kinds).toContain('Service/vpn-shoot');
    });
  }

  it('gives containers only the capabilities they need; sysctls come from a privileged init container', () => {
    for (const ha of [false, true]) {
      const spec = { ...base, highAvailability: { failureTolerance: ha ? ('node' as const) : ('none' as const) } };
      const mode = resolveVpnMode(spec, settings(true));
      for (const o of [...renderSeed(spec, mode, settings(true)), ...renderShoot(spec, mode)]) {
        const pod = (o.spec as { template?: { spec: { containers: Array<{ name: string; securityContext: { capabilities: { add?: string[]; drop: string[] }; privileged?: boolean } }>; initContainers?: Array<{ securityContext: { privileged?: boolean } }> } } } | undefined)?.template?.spec;
        if (!pod) continue;
        for (const c of pod.containers) {
          expect(c.securityContext.privileged).toBeUndefined();
          expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
          expect(c.securityContext.capabilities.add ?? []).toEqual(c.name === 'vpn-seed-server' && ha ? [] : ['NET_ADMIN']);
        }
        for (const i of pod.initContainers ?? []) expect(i.securityContext.privileged).toBe(true);
      }
    }
  });

  it('the non-HA seed server is replaced with Recreate behind a Service that publishes not-ready addresses', () => {
    const mode = resolveVpnMode(base, settings(true));
    const objs = renderSeed(base, mode, settings(true));
    const dep = objs.find((o) => o.kind === 'Deployment')!;
    expect((dep.spec as { strategy: { type: string } }).strategy.type).toBe('Recreate');
    const svc = objs.find((o) => o.kind === 'Service')!;
    expect((svc.spec as { publishNotReadyAddresses: boolean }).publishNotReadyAddresses).toBe(true);
    const egress = objs.find((o) => o.kind === 'ConfigMap')!;
    expect((egress.data as Record<string, string>)['egress-selector-configuration.yaml']).toContain(`url: https://vpn-seed-server.${base.namespace}.svc.cluster.local:9443`);
  });

  it('publishes one sni-proxy route per server, none in the classic direction', () => {
    const ha = { ...base, highAvailability: { failureTolerance: 'node' as const } };
    expect(Object.keys(sniProxyRoutes(ha, resolveVpnMode(ha, settings(true))))).toEqual([
      `outbound|1194||vpn-seed-server-0.${base.namespace}.svc.cluster.local`,
      `outbound|1194||vpn-seed-server-1.${base.namespace}.svc.cluster.local`,
    ]);
    expect(sniProxyRoutes(base, resolveVpnMode(base, settings(false)))).toEqual({});
  });

  it('refuses a classic spec without the shoot LoadBalancer address', () => {
    const spec = { ...base, classicEndpoint: undefined };
    expect(() => renderSeed(spec, resolveVpnMode(spec, settings(false)), settings(false))).toThrow(/classicEndpoint/);
  });
});

describe('monitoring and sni-proxy routes', () => {
  it('renders a ServiceMonitor and alert rules that validate (non-HA and HA)', async () => {
    const { renderMonitoring } = await import('./index.js');
    for (const tol of ['none', 'zone'] as const) {
      const spec = { ...base, highAvailability: { failureTolerance: tol } };
      const objs = renderMonitoring(spec, resolveVpnMode(spec, settings(true)));
      for (const o of objs) {
        const mod = (await import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1')) as unknown as Record<string, new (x: unknown) => { validate(): void }>;
        new mod[o.kind]!(o).validate();
      }
      const rules = JSON.stringify(objs[1]);
      for (const a of ['VpnTunnelDown', 'VpnDataPathProbeFailing', 'VpnCertificateExpiresSoon']) expect(rules).toContain(a);
      expect(rules).toContain(tol === 'zone' ? 'rvpn_seed_server_ha_ports' : 'rvpn_seed_server_tunnel_connected');
    }
  });

  it('renders the seed-wide route ConfigMap that sni-proxy reads (and it parses as a route file)', async () => {
    const { renderSniProxyRoutesConfigMap } = await import('./index.js');
    const a = sniProxyRoutes(base, resolveVpnMode(base, settings(true)));
    const cm = renderSniProxyRoutesConfigMap(a, 'rvpn-system');
    await validate(cm);
    const parsed = JSON.parse((cm.data as Record<string, string>)['routes.json']!) as { connect: Record<string, string> };
    expect(parsed.connect).toEqual(a);
  });
});

describe('certificate Secrets', () => {
  it('provide every Secret the rendered workloads mount, in each mode', async () => {
    const { renderCertificateSecrets, apiserverSidecarPatch } = await import('./index.js');
    const pem = { certPem: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n', keyPem: '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n' };
    const material = { caBundle: pem.certPem, seedServer: pem, proxyClient: pem, shootClient: pem, shootClients: [pem, pem], shootServer: pem, seedClient: pem, proxyServer: pem };
    for (const [tol, gate] of [['none', true], ['zone', true], ['none', false]] as const) {
      const spec = { ...base, highAvailability: { failureTolerance: tol } };
      const mode = resolveVpnMode(spec, settings(gate));
      const { seed, shoot } = renderCertificateSecrets(spec, mode, material);
      for (const s of [...seed, ...shoot]) await validate(s);
      const have = new Set([...seed, ...shoot].map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
      const mounted = new Set<string>();
      const collect = (o: K8sObject, volumes: Array<{ secret?: { secretName: string } }> | undefined) => {
        for (const v of volumes ?? []) if (v.secret) mounted.add(`${o.metadata.namespace}/${v.secret.secretName}`);
      };
      for (const o of [...renderSeed(spec, mode, settings(gate)), ...renderShoot(spec, mode)]) {
        collect(o, (o.spec as { template?: { spec: { volumes?: Array<{ secret?: { secretName: string } }> } } } | undefined)?.template?.spec.volumes);
      }
      const side = apiserverSidecarPatch(spec, mode);
      if (side) for (const v of side.volumes as Array<{ secret?: { secretName: string } }>) if (v.secret) mounted.add(`${spec.namespace}/${v.secret.secretName}`);
      for (const m of mounted) expect(have, `${m} (tolerance ${tol}, gate ${gate})`).toContain(m);
    }
  });
});
