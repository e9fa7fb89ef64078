import { describe, expect, it } from 'vitest';
import {
  apiserverWiring, proxyClientChecksum, unwireApiserverPatch, wireApiserverPatch, type ApiserverWiring, type JsonPatchOp, type VpnSpec,
} from './index.js';

const spec: VpnSpec = {
  shoot: { name: 'demo', project: 'dev' },
  namespace: 'shoot--dev--demo',
  networks: { services: ['10.96.0.0/12'], pods: ['100.96.0.0/11'], nodes: ['10.250.0.0/16'], seedPods: '10.1.0.0/16', ipFamilies: ['IPv4'] },
  highAvailability: { failureTolerance: 'zone' },
  annotations: {},
  endpoint: 'api.demo.dev.internal.example',
  images: { vpnSeedServer: 'r/vpn-seed-server:0.1.0', vpnShoot: 'r/vpn-shoot:0.1.0', pathController: 'r/path-controller:0.1.0' },
};
const NON_HA = { ha: false };
const HA = { ha: true };

/** RFC 6902 as the API server applies it (add, remove, replace, test); a failed test rejects the whole patch. */
function applyPatch<T>(doc: T, ops: JsonPatchOp[]): T {
  const out = structuredClone(doc) as unknown;
  const split = (p: string) => p.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  for (const op of ops) {
    const parts = split(op.path);
    const last = parts.pop()!;
    let parent = out as Record<string, unknown> | unknown[];
    for (const p of parts) {
      const next = (parent as Record<string, unknown>)[p];
      if (next === undefined) throw new Error(`${op.op} ${op.path}: no ${p}`);
      parent = next as Record<string, unknown>;
    }
    const arr = Array.isArray(parent);
    const idx: number = Array.isArray(parent) ? (last === '-' ? parent.length : Number(last)) : -1;
    const cur = arr ? (parent as unknown[])[idx] : (parent as Record<string, unknown>)[last];
    switch (op.op) {
      case 'test':
        if (JSON.stringify(cur) !== JSON.stringify(op.value)) throw new Error(`test ${op.path} failed: ${JSON.stringify(cur)} is not ${JSON.stringify(op.value)}`);
        break;
      case 'add':
        if (arr) (parent as unknown[]).splice(idx, 0, structuredClone(op.value));
        else (parent as Record<string, unknown>)[last] = structuredClone(op.value);
        break;
      case 'replace':
      case 'remove':
        if (cur === undefined) throw new Error(`${op.op} ${op.path}: nothing there`);
        if (op.op === 'remove') {
          if (arr) (parent as unknown[]).splice(idx, 1);
          else delete (parent as Record<string, unknown>)[last];
        } else if (arr) (parent as unknown[])[idx] = structuredClone(op.value);
        else (parent as Record<string, unknown>)[last] = structuredClone(op.value);
        break;
    }
  }
  return out as T;
}

interface Container { name: string; image?: string; command?: string[]; args?: string[]; volumeMounts?: Array<{ name: string; mountPath: string }>; [k: string]: unknown }
interface Deployment { spec: { template: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: { containers: Container[]; initContainers?: Container[]; volumes?: Array<Record<string, unknown>> } } } }

const deployment = (c: Partial<Container> = {}, extra: Partial<Deployment['spec']['template']['spec']> = {}): Deployment => ({
  spec: {
    template: {
      metadata: { labels: { app: 'kubernetes', role: 'apiserver' } },
      spec: {
        containers: [{ name: 'kube-apiserver', image: 'k8s/kube-apiserver:v1.34.4', command: ['/usr/local/bin/kube-apiserver'], args: ['--secure-port=443', '--egress-selector-config-file-x=keep'], volumeMounts: [{ name: 'etcd-ca', mountPath: '/srv/etcd' }], ...c }],
        volumes: [{ name: 'etcd-ca', secret: { secretName: 'etcd-ca' } }],
        ...extra,
      },
    },
  },
});

/** What the API server adds on create (defaults): wiring must not see them as drift. */
function withServerDefaults(d: Deployment): Deployment {
  const out = structuredClone(d);
  const pod = out.spec.template.spec;
  for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) Object.assign(c, { terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' });
  for (const v of pod.volumes ?? []) {
    if (v.configMap) (v.configMap as Record<string, unknown>).defaultMode = 420;
  }
  return out;
}

const apiserver = (d: Deployment) => d.spec.template.spec.containers.find((c) => c.name === 'kube-apiserver')!;
const FLAG = '--egress-selector-config-file=/etc/reversed-vpn/egress-selector/egress-selector-configuration.yaml';

describe('kube-apiserver wiring', () => {
  const rows: Array<{ name: string; d: Deployment; mode: { ha: boolean }; check: (wired: Deployment, w: ApiserverWiring) => void }> = [
    {
      name: 'flags in args: the flag is appended to args, mounts and volumes added, label set',
      d: deployment(), mode: NON_HA,
      check: (wired) => {
        expect(apiserver(wired).args).toEqual(['--secure-port=443', '--egress-selector-config-file-x=keep', FLAG]);
        expect(apiserver(wired).command).toEqual(['/usr/local/bin/kube-apiserver']);
        expect(apiserver(wired).volumeMounts!.map((m) => m.mountPath)).toEqual(['/srv/etcd', '/etc/reversed-vpn/egress-selector', '/srv/secrets/kube-apiserver-http-proxy-client']);
        expect(wired.spec.template.spec.volumes!.map((v) => v.name)).toEqual(['etcd-ca', 'vpn-egress-selector', 'vpn-http-proxy-client']);
        expect(wired.spec.template.metadata.labels).toEqual({ app: 'kubernetes', role: 'apiserver', 'networking.reversed-vpn.dev/to-vpn-seed-server': 'allowed' });
        expect(wired.spec.template.spec.containers).toHaveLength(1);
      },
    },
    {
      name: 'flags in command (no args): the flag joins them there',
      d: deployment({ command: ['/usr/local/bin/kube-apiserver', '--secure-port=443'], args: undefined }), mode: NON_HA,
      check: (wired) => {
        expect(apiserver(wired).command).toEqual(['/usr/local/bin/kube-apiserver', '--secure-port=443', FLAG]);
        expect(apiserver(wired).args).toBeUndefined();
      },
    },
    {
      name: 'neither args nor flags in command: args are created',
      d: deployment({ command: undefined, args: undefined, volumeMounts: undefined }, { volumes: undefined }), mode: NON_HA,
      check: (wired) => {
        expect(apiserver(wired).args).toEqual([FLAG]);
        expect(apiserver(wired).volumeMounts).toHaveLength(2);
        expect(wired.spec.template.spec.volumes).toHaveLength(2);
      },
    },
    {
      name: 'another egress file configured: ours replaces it, guarded by a test of the old value',
      d: deployment({ args: ['--egress-selector-config-file=/etc/other.yaml', '--secure-port=443'] }), mode: NON_HA,
      check: (wired) => expect(apiserver(wired).args).toEqual([FLAG, '--secure-port=443']),
    },
    {
      name: 'HA: the path-controller sidecar, its --init init container and volumes join the pod',
      d: deployment({}, { initContainers: [{ name: 'wait-for-etcd', image: 'busybox' }] }), mode: HA,
      check: (wired, w) => {
        const pod = wired.spec.template.spec;
        expect(pod.containers.map((c) => c.name)).toEqual(['kube-apiserver', 'path-controller']);
        expect(pod.initContainers!.map((c) => [c.name, c.args])).toEqual([['wait-for-etcd', undefined], ['path-controller-init', ['--init']]]);
        expect(pod.volumes!.map((v) => v.name)).toEqual(['etcd-ca', 'vpn-egress-selector', 'vpn-http-proxy-client', 'vpn-seed-client', 'vpn-http-proxy', 'vpn-dev-net-tun']);
        const env = Object.fromEntries((w.containers[0]!.env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]));
        // the probe target follows the shoot's service network (its first host), not a fixed 100.64.0.1
        expect(env.PROBE_TARGET).toBe('10.96.0.1:443');
        expect(env.PROXY_LISTEN).toBe('127.0.0.1:9443');
      },
    },
  ];

  for (const row of rows) {
    it(`${row.name}; wiring again changes nothing; unwiring restores the original`, () => {
      const w = apiserverWiring(spec, row.mode);
      const ops = wireApiserverPatch(row.d, w);
      expect(ops.length).toBeGreaterThan(0);
      const wired = applyPatch(row.d, ops);
      row.check(wired, w);
      // already wired (also with the API server's defaults filled in): no operations
      expect(wireApiserverPatch(wired, w)).toEqual([]);
      expect(wireApiserverPatch(withServerDefaults(wired), w)).toEqual([]);
      const unwired = applyPatch(wired, unwireApiserverPatch(wired, w));
      if (row.name.startsWith('another egress')) {
        // the replaced value is not ours to restore; everything else is
        expect(apiserver(unwired).args).toEqual(['--secure-port=443']);
      } else {
        expect(unwired).toEqual(JSON.parse(JSON.stringify(row.d)));
      }
      expect(unwireApiserverPatch(unwired, w)).toEqual([]);
    });
  }

  it('keeps every other flag, mount, volume and label', () => {
    const d = deployment();
    const wired = applyPatch(d, wireApiserverPatch(d, apiserverWiring(spec, NON_HA)));
    expect(apiserver(wired).args).toEqual(expect.arrayContaining(['--secure-port=443', '--egress-selector-config-file-x=keep']));
    expect(wired.spec.template.spec.volumes).toContainEqual({ name: 'etcd-ca', secret: { secretName: 'etcd-ca' } });
    expect(wired.spec.template.metadata.labels).toMatchObject({ app: 'kubernetes', role: 'apiserver' });
  });

  it('a mode change converges: HA → non-HA takes the sidecar out, non-HA → HA puts it in', () => {
    const d = deployment();
    const ha = applyPatch(d, wireApiserverPatch(d, apiserverWiring(spec, HA)));
    const nonHa = applyPatch(ha, wireApiserverPatch(ha, apiserverWiring(spec, NON_HA)));
    expect(nonHa).toEqual(applyPatch(d, wireApiserverPatch(d, apiserverWiring(spec, NON_HA))));
    expect(applyPatch(nonHa, wireApiserverPatch(nonHa, apiserverWiring(spec, HA)))).toEqual(ha);
  });

  it('a changed checksum of the proxy client Secret changes the pod template (kube-apiserver restarts), the same one does not', () => {
    const d = deployment();
    const sum1 = proxyClientChecksum({ 'tls.crt': 'YQ==', 'tls.key': 'Yg==', 'ca.crt': 'Yw==' });
    expect(proxyClientChecksum({ 'ca.crt': 'Yw==', 'tls.key': 'Yg==', 'tls.crt': 'YQ==' })).toBe(sum1);
    const sum2 = proxyClientChecksum({ 'tls.crt': 'ZA==', 'tls.key': 'Yg==', 'ca.crt': 'Yw==' });
    const wired = applyPatch(d, wireApiserverPatch(d, apiserverWiring(spec, NON_HA, { proxyClientChecksum: sum1 })));
    expect(wired.spec.template.metadata.annotations).toEqual({ 'vpn.reversed-vpn.dev/proxy-client-checksum': sum1 });
    expect(wireApiserverPatch(wired, apiserverWiring(spec, NON_HA, { proxyClientChecksum: sum1 }))).toEqual([]);
    const renewed = wireApiserverPatch(wired, apiserverWiring(spec, NON_HA, { proxyClientChecksum: sum2 }));
    expect(renewed).toEqual([
      { op: 'test', path: '/spec/template/metadata/annotations/vpn.reversed-vpn.dev~1proxy-client-checksum', value: sum1 },
      { op: 'replace', path: '/spec/template/metadata/annotations/vpn.reversed-vpn.dev~1proxy-client-checksum', value: sum2 },
    ]);
    expect(applyPatch(wired, unwireApiserverPatch(wired, apiserverWiring(spec, NON_HA))).spec.template.metadata.annotations).toBeUndefined();
  });

  it('its test guards make a patch computed from a stale Deployment fail instead of editing the wrong container', () => {
    const d = deployment();
    const ops = wireApiserverPatch(d, apiserverWiring(spec, NON_HA));
    // meanwhile someone put another container first
    const moved = structuredClone(d);
    moved.spec.template.spec.containers.unshift({ name: 'log-shipper', image: 'x' });
    expect(() => applyPatch(moved, ops)).toThrow(/test \/spec\/template\/spec\/containers\/0\/name failed/);
  });

  it('refuses a Deployment without a kube-apiserver container, with a stable code', () => {
    const d = deployment({ name: 'apiserver' });
    expect(() => wireApiserverPatch(d, apiserverWiring(spec, NON_HA))).toThrow(expect.objectContaining({ code: 'RVPN_ERR_APISERVER_WIRING' }));
  });

  it('an IPv6 service network gives an IPv6 probe target', () => {
    const v6 = { ...spec, networks: { ...spec.networks, services: ['fd00:10:96::/112'], ipFamilies: ['IPv6' as const] } };
    const env = (apiserverWiring(v6, HA).containers[0]!.env as Array<{ name: string; value?: string }>).find((e) => e.name === 'PROBE_TARGET');
    expect(env?.value).toBe('[fd00:10:96::1]:443');
  });
});
