import { describe, expect, it } from 'vitest';
import {
  HA_VPN_ANNOTATION, REVERSED_VPN_ANNOTATION, apiserverWiring, networkMappingOf, renderConnectProbe, renderSeed, renderShoot, renderShootSetup, resolveVpnMode, sniProxyRoutes,
  type K8sObject, type RenderSettings, type VpnSpec,
} from './index.js';

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
      const objs = [
        ...renderSeed(m.spec, mode, settings(m.gate)), ...renderShoot(m.spec, mode),
        ...renderShootSetup(m.spec, mode, { image: 'r/operator:0.1.0', kubeApiserverDeployment: 'kube-apiserver', shootKubeconfigSecret: 'shoot-kubeconfig', schedule: '17 3 * * *' }),
        ...renderConnectProbe(m.spec, mode, { image: m.spec.images.vpnSeedServer }),
      ];
      const w = apiserverWiring(m.spec, mode);
      for (const o of objs) await validate(o);
      // the wiring's pieces validated as a pod would hold them
      await validate({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'kube-apiserver' }, spec: { initContainers: w.initContainers, containers: [{ name: 'kube-apiserver', image: 'k', args: w.flags, volumeMounts: w.volumeMounts }, ...w.containers], volumes: w.volumes } });
      const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`);
      if (mode.ha) {
        expect(kinds).toEqual(expect.arrayContaining(['StatefulSet/vpn-seed-server', 'Service/vpn-seed-server-0', 'Service/vpn-seed-server-1', 'PodDisruptionBudget/vpn-seed-server', 'StatefulSet/vpn-shoot', 'PodDisruptionBudget/vpn-shoot']));
        expect(w.containers.map((c) => c.name)).toEqual(['path-controller']);
        expect(kinds).not.toContain(`Pod/vpn-seed-server-test-connect`);
      } else {
        expect(kinds).toEqual(expect.arrayContaining(['Deployment/vpn-seed-server', 'Service/vpn-seed-server', 'Deployment/vpn-shoot', 'Pod/vpn-seed-server-test-connect']));
        expect(w.containers).toEqual([]);
      }
      if (!mode.reversed) expect(kinds).toContain('Service/vpn-shoot');
    });
  }

  it('gives containers only the capabilities they need; sysctls come from the app image run privileged with --init', () => {
    for (const ha of [false, true]) {
      const spec = { ...base, highAvailability: { failureTolerance: ha ? ('node' as const) : ('none' as const) } };
      const mode = resolveVpnMode(spec, settings(true));
      type C = { name: string; image: string; command?: string[]; args?: string[]; securityContext: { capabilities?: { add?: string[]; drop: string[] }; privileged?: boolean; allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean } };
      type P = { securityContext?: { seccompProfile?: { type: string }; runAsUser?: number; fsGroup?: number }; containers: C[]; initContainers?: C[] };
      const w = apiserverWiring(spec, mode);
      const pods: Array<[string, P]> = [];
      for (const o of [...renderSeed(spec, mode, settings(true)), ...renderShoot(spec, mode)]) {
        const pod = (o.spec as { template?: { spec: P } } | undefined)?.template?.spec;
        if (pod) pods.push([o.metadata.name, pod]);
      }
      pods.push(['kube-apiserver sidecar', { containers: w.containers as C[], initContainers: w.initContainers as C[], securityContext: { seccompProfile: { type: 'RuntimeDefault' } } }]);
      for (const [name, pod] of pods) {
        expect(pod.securityContext?.seccompProfile?.type, name).toBe('RuntimeDefault');
        for (const c of pod.containers) {
          expect(c.securityContext.privileged).toBeUndefined();
          expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
          expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
          expect(c.securityContext.capabilities!.drop).toEqual(['ALL']);
          expect(c.securityContext.capabilities!.add ?? []).toEqual(c.name === 'vpn-seed-server' && ha ? [] : ['NET_ADMIN']);
        }
        for (const i of pod.initContainers ?? []) {
          expect(i.securityContext.privileged).toBe(true);
          // no shell, no sysctl binary: the app's own image writes its sysctl table
          expect(i.command).toBeUndefined();
          expect(i.args).toEqual(['--init']);
          expect(pod.containers.map((c) => c.image)).toContain(i.image);
        }
      }
      // the HA seed server runs as 65532 and reads its 0400 key through the pod's fsGroup
      const seedPod = pods.find(([n]) => n === 'vpn-seed-server')![1];
      if (ha) expect(seedPod.securityContext).toMatchObject({ runAsUser: 65532, runAsNonRoot: true, fsGroup: 65532 });
      else expect(seedPod.securityContext).toEqual({ seccompProfile: { type: 'RuntimeDefault' } });
    }
  });

  it('classic: the 9443 proxy serves its own server certificate (the tunnel one is client-only there)', () => {
    const mode = resolveVpnMode(base, settings(false));
    const dep = renderSeed(base, mode, settings(false)).find((o) => o.kind === 'Deployment')!;
    const pod = (dep.spec as { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }>; volumes: Array<{ secret?: { secretName: string } }> } } }).template.spec;
    const env = Object.fromEntries(pod.containers[0]!.env.map((e) => [e.name, e.value]));
    expect(env.PROXY_TLS_CERT_FILE).toBe('/srv/secrets/vpn-seed-server-proxy-tls/tls.crt');
    expect(env.PROXY_TLS_KEY_FILE).toBe('/srv/secrets/vpn-seed-server-proxy-tls/tls.key');
    expect(pod.volumes.map((v) => v.secret?.secretName)).toContain('vpn-seed-server-proxy-tls');
    const rev = renderSeed(base, resolveVpnMode(base, settings(true)), settings(true)).find((o) => o.kind === 'Deployment')!;
    expect(JSON.stringify(rev)).not.toContain('PROXY_TLS_');
  });

  it('the NetworkPolicy admits wired apiservers by label and scrapers from the configured peers', () => {
    const np = (s: RenderSettings, spec = base) => renderSeed(spec, resolveVpnMode(spec, s), s).find((o) => o.kind === 'NetworkPolicy')!.spec as { ingress: Array<{ from: unknown[]; ports: Array<{ port: number }> }> };
    const byPort = (p: ReturnType<typeof np>, port: number) => p.ingress.filter((r) => r.ports[0]!.port === port).flatMap((r) => r.from);
    const def = np(settings(true));
    expect(byPort(def, 9443)).toEqual([{ podSelector: { matchLabels: { 'networking.reversed-vpn.dev/to-vpn-seed-server': 'allowed' } } }]);
    expect(byPort(def, 15000)).toEqual([{ namespaceSelector: { matchLabels: { 'networking.reversed-vpn.dev/monitoring': 'allowed' } } }]);
    expect(JSON.stringify(def)).not.toContain('"monitoring"');
    const peers = [{ namespaceSelector: { matchLabels: { team: 'obs' } }, podSelector: { matchLabels: { app: 'prometheus' } } }];
    expect(byPort(np({ ...settings(true), metricsFrom: peers }), 15000)).toEqual(peers);
    const ha = { ...base, highAvailability: { failureTolerance: 'zone' as const } };
    expect(byPort(np(settings(true), ha), 1194)).toContainEqual({ podSelector: { matchLabels: { 'networking.reversed-vpn.dev/to-vpn-seed-server': 'allowed' } } });
  });

  it('labels every object with the standard set and selects by name, instance and component', () => {
    const meta = { instance: 'vpn-demo', managedBy: 'Helm', labels: { team: 'net', 'app.kubernetes.io/name': 'ignored' } };
    const mode = resolveVpnMode(base, settings(true));
    for (const o of [...renderSeed(base, mode, settings(true), meta), ...renderShoot(base, mode, meta)]) {
      expect(o.metadata.labels, `${o.kind}/${o.metadata.name}`).toMatchObject({
        'app.kubernetes.io/instance': 'vpn-demo', 'app.kubernetes.io/managed-by': 'Helm', 'app.kubernetes.io/part-of': 'reversed-vpn', 'app.kubernetes.io/version': '0.1.0', team: 'net',
      });
      expect(o.metadata.labels!['app.kubernetes.io/name']).toMatch(/^vpn-(seed-server|shoot)$/);
      const selector = (o.spec as { selector?: { matchLabels?: Record<string, string> } } | undefined)?.selector?.matchLabels;
      if (selector) expect(Object.keys(selector).sort()).toEqual(['app.kubernetes.io/component', 'app.kubernetes.io/instance', 'app.kubernetes.io/name']);
    }
  });

  it('applies a platform team\'s overrides: resources and security contexts merge like Helm values, the rest replace', () => {
    const mode = resolveVpnMode(base, settings(true));
    const pod = {
      imagePullPolicy: 'Always', imagePullSecrets: [{ name: 'regcred' }], nodeSelector: { pool: 'vpn' }, tolerations: [{ key: 'dedicated', operator: 'Exists' }],
      affinity: { nodeAffinity: {} }, priorityClassName: 'vpn-critical', podAnnotations: { a: 'b' },
      resources: { limits: { memory: '1Gi', cpu: '1' }, requests: { cpu: null } }, containerSecurityContext: { readOnlyRootFilesystem: false },
    };
    const dep = renderSeed(base, mode, settings(true), { pod }).find((o) => o.kind === 'Deployment')!;
    const t = (dep.spec as { template: { metadata: { annotations: Record<string, string> }; spec: Record<string, unknown> & { containers: Array<Record<string, unknown>>; initContainers: Array<Record<string, unknown>> } } }).template;
    expect(t.metadata.annotations).toEqual({ a: 'b' });
    expect(t.spec).toMatchObject({ imagePullSecrets: [{ name: 'regcred' }], nodeSelector: { pool: 'vpn' }, tolerations: pod.tolerations, affinity: pod.affinity, priorityClassName: 'vpn-critical' });
    const c = t.spec.containers[0]!;
    expect(c.resources).toEqual({ requests: { memory: '96Mi' }, limits: { memory: '1Gi', cpu: '1' } });
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: false, capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] } });
    expect(c.imagePullPolicy).toBe('Always');
    expect(t.spec.initContainers[0]!.imagePullPolicy).toBe('Always');
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
    // the chart's static one carries SNI entries too
    const stat = renderSniProxyRoutesConfigMap({}, 'rvpn-system', 'static', { sni: { 'api.demo.example': '10.0.0.1:443' } });
    expect(JSON.parse((stat.data as Record<string, string>)['routes.json']!)).toEqual({ connect: {}, sni: { 'api.demo.example': '10.0.0.1:443' } });
  });
});

describe('certificate Secrets', () => {
  it('provide every Secret the rendered workloads mount, in each mode', async () => {
    const { renderCertificateSecrets } = await import('./index.js');
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
      for (const v of apiserverWiring(spec, mode).volumes as Array<{ secret?: { secretName: string } }>) if (v.secret) mounted.add(`${spec.namespace}/${v.secret.secretName}`);
      for (const m of mounted) expect(have, `${m} (tolerance ${tol}, gate ${gate})`).toContain(m);
    }
  });
});

describe('overlapping networks (issue 12): the mapping settings reach every tunnel container', () => {
  type Container = { name: string; env?: Array<{ name: string; value?: string }> };
  const containersOf = (objs: K8sObject[]): Container[] =>
    objs.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet').flatMap((o) => (o as unknown as { spec: { template: { spec: { containers: Container[] } } } }).spec.template.spec.containers);
  const envOf = (c: Container) => Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
  const MAPPING_ENV = ['SEED_NODE_NETWORKS', 'SEED_SERVICE_NETWORKS', 'NETWORK_MAPPING', 'MAPPED_SEED_POD_NETWORK_V6', 'MAPPED_SHOOT_NODE_NETWORK_V6', 'MAPPED_SHOOT_SERVICE_NETWORK_V6', 'MAPPED_SHOOT_POD_NETWORK_V6'];
  const overlapping: VpnSpec = {
    ...base,
    networks: {
      ...base.networks, seedNodes: ['10.250.0.0/16', 'fd00:10::/64'], seedServices: ['100.64.0.0/13'],
      mapping: { mode: 'always', ipv6: { seedPods: 'fd6d:1:100::/40', shootNodes: 'fd6d:1:200::/40', shootServices: 'fd6d:1:300::/40', shootPods: 'fd6d:1:400::/40' } },
    },
  };
  const want = {
    SEED_NODE_NETWORKS: '10.250.0.0/16,fd00:10::/64', SEED_SERVICE_NETWORKS: '100.64.0.0/13', NETWORK_MAPPING: 'always',
    MAPPED_SEED_POD_NETWORK_V6: 'fd6d:1:100::/40', MAPPED_SHOOT_NODE_NETWORK_V6: 'fd6d:1:200::/40', MAPPED_SHOOT_SERVICE_NETWORK_V6: 'fd6d:1:300::/40', MAPPED_SHOOT_POD_NETWORK_V6: 'fd6d:1:400::/40',
  };

  for (const ha of [false, true]) {
    it(`${ha ? 'HA' : 'non-HA'}: the seed server, vpn-shoot${ha ? ' and path-controller' : ''} get the same network env, the mapping settings included`, () => {
      const mode = resolveVpnMode({ ...overlapping, highAvailability: { failureTolerance: ha ? 'zone' : 'none' } }, settings(true));
      const tunnel = [
        ...containersOf(renderSeed(overlapping, mode, settings(true))).filter((c) => c.name === 'vpn-seed-server'),
        ...containersOf(renderShoot(overlapping, mode)).filter((c) => c.name === 'vpn-shoot'),
        ...(apiserverWiring(overlapping, mode).containers as Container[]),
      ];
      expect(tunnel.length).toBeGreaterThanOrEqual(ha ? 3 : 2);
      const networkVars = ['IP_FAMILIES', 'VPN_NETWORK', 'SHOOT_SERVICE_NETWORKS', 'SHOOT_POD_NETWORKS', 'SHOOT_NODE_NETWORKS', 'SEED_POD_NETWORK', ...MAPPING_ENV];
      const pick = (c: Container) => Object.fromEntries(Object.entries(envOf(c)).filter(([k]) => networkVars.includes(k)));
      for (const c of tunnel) {
        expect(envOf(c), c.name).toMatchObject(want);
        expect(pick(c), `${c.name} and ${tunnel[0]!.name} compute the same mapping`).toEqual(pick(tunnel[0]!));
      }
    });
  }

  it('leaves the variables out when unset, so the apps keep their defaults', () => {
    const mode = resolveVpnMode(base, settings(true));
    for (const c of [...containersOf(renderSeed(base, mode, settings(true))), ...containersOf(renderShoot(base, mode))]) {
      for (const v of MAPPING_ENV) expect(envOf(c), `${c.name} ${v}`).not.toHaveProperty(v);
    }
    const partial: VpnSpec = { ...base, networks: { ...base.networks, seedNodes: [], mapping: { ipv6: { shootPods: 'fd6d:1:400::/40' } } } };
    const env = envOf(containersOf(renderShoot(partial, mode)).find((c) => c.name === 'vpn-shoot')!);
    expect(Object.keys(env).filter((k) => MAPPING_ENV.includes(k))).toEqual(['MAPPED_SHOOT_POD_NETWORK_V6']);
  });

  it('networkMappingOf: the mapping the apps compute from that env, or their coded error', () => {
    expect(networkMappingOf(base).mapping!.isActive()).toBe(false);
    const gardener: VpnSpec = { ...base, networks: { ...base.networks, seedPods: '100.96.0.0/11' } };
    expect(networkMappingOf(gardener).mapping!.toJSON().families).toEqual([{ family: 4, active: true, reason: 'overlap', networks: ['seedPods 100.96.0.0/11 -> 241.0.0.0/11', 'shootNodes 10.250.0.0/16 -> 242.0.0.0/16', 'shootServices 100.64.0.0/13 -> 243.0.0.0/13', 'shootPods 100.96.0.0/11 -> 244.0.0.0/11'] }]);
    const never: VpnSpec = { ...gardener, networks: { ...gardener.networks, mapping: { mode: 'never' } } };
    expect(networkMappingOf(never).errors.map((e) => e.code)).toEqual(['RVPN_ERR_MAPPING_OVERLAP_NOT_ALLOWED']);
  });
});
