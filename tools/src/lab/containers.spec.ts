import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { containerRunArgs, quantityBytes, quantityMilliCpu, resolveEnv, type RunArgsOptions } from './containers.js';
import { labPods, secretData, type LabMode, type LabPod } from './pods.js';
import { volumeModes, writeAtomicVolume } from './volumes.js';

const MODES: Array<[string, LabMode]> = [
  ['reversed', { ha: false, direction: 'reversed' }],
  ['classic', { ha: false, direction: 'classic' }],
  ['HA', { ha: true, direction: 'reversed' }],
];

const opts = (p: LabPod, init = false): RunArgsOptions => ({
  prefix: 'rv0000', app: p.app, name: `rv0000-${p.app}`, netns: `rv0000-${p.role}`, logFile: `/tmp/rv0000-x/${p.app}.log`,
  volumeDirs: Object.fromEntries((p.spec.volumes ?? []).filter((v) => !v.hostPath).map((v) => [v.name, `/tmp/rv0000-x/pods/${p.app}/${v.name}`])),
  env: resolveEnv(p.spec.containers[0]!, p, p.labEnv), init,
});
const pod = (mode: LabMode, app: string) => labPods(mode).find((p) => p.app === app)!;
/** The value following a flag, for every occurrence. */
const values = (args: string[], flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

describe('lab pods from the rendered manifests', () => {
  it('has the apps of each lab, in start order, in their namespaces', () => {
    expect(labPods(MODES[0]![1]).map((p) => `${p.app}@${p.role}`)).toEqual(['sni-proxy@lb', 'vpn-seed-server@srv', 'vpn-shoot@vsh']);
    expect(labPods(MODES[1]![1]).map((p) => p.app)).toEqual(['vpn-seed-server', 'vpn-shoot']);
    expect(labPods(MODES[2]![1]).map((p) => `${p.app}@${p.role}`)).toEqual([
      'sni-proxy@lb', 'vpn-seed-server-0@srv0', 'vpn-seed-server-1@srv1', 'vpn-shoot-0@vsh0', 'vpn-shoot-1@vsh1', 'path-controller-0@kapi0', 'path-controller-1@kapi1',
    ]);
  });

  for (const [name, mode] of MODES) {
    it(`${name}: every file the env names lies in a volume the container mounts, and the lab has data for every Secret`, () => {
      const table = secretData(mode);
      for (const p of labPods(mode)) {
        const c = p.spec.containers[0]!;
        const mounts = (c.volumeMounts ?? []).map((m) => m.mountPath);
        const env = resolveEnv(c, p, p.labEnv);
        const files = Object.entries(env).filter(([k]) => /_FILE$/.test(k)).flatMap(([, v]) => v.split(','));
        expect(files.length, `${p.app} names no files`).toBeGreaterThan(0);
        for (const f of files) expect(mounts.some((m) => f.startsWith(`${m}/`)), `${p.app}: ${f} outside ${mounts.join(', ')}`).toBe(true);
        for (const v of p.spec.volumes ?? []) if (v.secret) expect(table[v.secret.secretName], `${p.app}: Secret ${v.secret.secretName}`).toBeDefined();
      }
    });
  }

  it('the NET_ADMIN seed server: root with NET_ADMIN only, no privilege escalation, read-only root without podman tmpfs, TUN as a bind mount', () => {
    const p = pod(MODES[0]![1], 'vpn-seed-server');
    const a = containerRunArgs(p, p.spec.containers[0]!, opts(p));
    expect(a.slice(0, 2)).toEqual(['run', '--detach']);
    expect(values(a, '--cap-drop')).toEqual(['ALL']);
    expect(values(a, '--cap-add')).toEqual(['NET_ADMIN']);
    expect(values(a, '--user')).toEqual(['0']);
    expect(a).toContain('--read-only');
    expect(a).toContain('--read-only-tmpfs=false');
    expect(values(a, '--security-opt')).toEqual(['no-new-privileges']); // RuntimeDefault: podman's default profile
    expect(values(a, '--network')).toEqual(['ns:/run/netns/rv0000-srv']);
    expect(values(a, '--label')).toContain('rvpn.lab.prefix=rv0000');
    expect(values(a, '--log-opt')).toEqual(['path=/tmp/rv0000-x/vpn-seed-server.log']);
    expect(values(a, '--volume')).toEqual(['/tmp/rv0000-x/pods/vpn-seed-server/vpn-seed-server-tls:/srv/secrets/vpn-seed-server-tls:ro', '/dev/net/tun:/dev/net/tun']);
    expect(values(a, '--env')).toContain('TLS_KEY_FILE=/srv/secrets/vpn-seed-server-tls/tls.key');
    expect(values(a, '--env')).toContain('POD_NAME=vpn-seed-server-7d9c');
    expect(values(a, '--memory')).toEqual([String(256 * 1024 * 1024)]);
    expect(a).not.toContain('--privileged');
    expect(a.at(-1)).toBe('localhost/reversed-vpn/vpn-seed-server:0.1.0');
  });

  it('the sysctl init container: privileged, root, --init, run to completion', () => {
    const p = pod(MODES[0]![1], 'vpn-shoot');
    const init = p.spec.initContainers![0]!;
    const a = containerRunArgs(p, init, { ...opts(p, true), env: resolveEnv(init, p) });
    expect(a.slice(0, 2)).toEqual(['run', '--rm']);
    expect(a).toContain('--privileged');
    expect(values(a, '--user')).toEqual(['0']);
    expect(a).not.toContain('--read-only');
    expect(a).not.toContain('--cap-drop');
    expect(a.slice(-2)).toEqual(['localhost/reversed-vpn/vpn-shoot:0.1.0', '--init']);
  });

  it('the HA seed server runs as 65532 with fsGroup and no capability; sni-proxy reads its routes from the ConfigMap directory', () => {
    const srv = pod(MODES[2]![1], 'vpn-seed-server-1');
    const a = containerRunArgs(srv, srv.spec.containers[0]!, opts(srv));
    expect(values(a, '--user')).toEqual(['65532:65532']);
    expect(values(a, '--group-add')).toEqual(['65532']);
    expect(values(a, '--cap-drop')).toEqual(['ALL']);
    expect(values(a, '--cap-add')).toEqual([]);
    expect(values(a, '--volume').join()).not.toContain('/dev/net/tun');
    expect(srv.spec.initContainers ?? []).toEqual([]);
    const sni = pod(MODES[2]![1], 'sni-proxy');
    const b = containerRunArgs(sni, sni.spec.containers[0]!, opts(sni));
    expect(values(b, '--volume')).toEqual(['/tmp/rv0000-x/pods/sni-proxy/static-routes:/etc/sni-proxy/routes/static:ro']);
    expect(values(b, '--env')).toContain('ROUTES_FILE=/etc/sni-proxy/routes/static/routes.json');
    expect(sni.servicePorts).toEqual(expect.arrayContaining([{ port: 443, targetPort: 8443 }, { port: 8443, targetPort: 9443 }]));
  });

  it('HA vpn-shoot finds its own certificate through $(POD_NAME); the path-controller gets the lab addresses', () => {
    const p = pod(MODES[2]![1], 'vpn-shoot-1');
    const env = resolveEnv(p.spec.containers[0]!, p, p.labEnv);
    expect(env.TLS_CERT_FILE).toBe('/srv/secrets/vpn-shoot-client/vpn-shoot-1.crt');
    expect(env.TLS_KEY_FILE).toBe('/srv/secrets/vpn-shoot-client/vpn-shoot-1.key');
    const pc = pod(MODES[2]![1], 'path-controller-0');
    const pcEnv = resolveEnv(pc.spec.containers[0]!, pc, pc.labEnv);
    expect(pcEnv.SEED_SERVERS).toBe('10.1.0.21:1194,10.1.0.22:1194');
    expect(pcEnv.POD_NAME).toBe('kube-apiserver-0');
    expect(pc.spec.initContainers!.map((c) => c.args)).toEqual([['--init']]);
  });
});

describe('kubelet semantics the lab reproduces', () => {
  const c = { name: 'c', image: 'i', env: [{ name: 'A', value: 'a' }, { name: 'B', value: '$(A)/$(MISSING)/$$(A)' }, { name: 'N', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }] };
  const p = { podName: 'p-0', namespace: 'ns' };

  it('expands $(VAR) from earlier variables, keeps unknown references, unescapes $$, fills the downward API', () => {
    expect(resolveEnv(c, p)).toEqual({ A: 'a', B: 'a/$(MISSING)/$(A)', N: 'ns' });
  });

  it('lab substitutions must name a variable of the manifest; caller overrides may add', () => {
    expect(() => resolveEnv(c, p, { GONE: 'x' })).toThrow(/no longer sets/);
    expect(resolveEnv(c, p, { A: 'lab' }, { EXTRA: '1' })).toMatchObject({ A: 'lab', EXTRA: '1' });
  });

  it('refuses runAsNonRoot with user 0, as the kubelet does', () => {
    const bad: LabPod = { ...pod(MODES[0]![1], 'sni-proxy') };
    bad.spec = { ...bad.spec, containers: [{ ...bad.spec.containers[0]!, securityContext: { runAsUser: 0 } }] };
    expect(() => containerRunArgs(bad, bad.spec.containers[0]!, opts(bad))).toThrow(/runAsNonRoot/);
  });

  it('reads Kubernetes quantities', () => {
    expect(quantityBytes('256Mi')).toBe(268435456);
    expect(quantityBytes('1G')).toBe(1e9);
    expect(quantityMilliCpu('50m')).toBe(50);
    expect(quantityMilliCpu('1.5')).toBe(1500);
    expect(() => quantityBytes('lots')).toThrow();
  });
});

describe.runIf(process.getuid?.() === 0)('Secret volumes in the kubelet layout (root: it sets owners)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rvpn-volume-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('without fsGroup: root-owned 0400 files behind ..data; with fsGroup 65532: group-owned and group-readable', async () => {
    const plain = join(dir, 'plain');
    await writeAtomicVolume(plain, { 'tls.key': 'k1', 'ca.crt': 'c1' }, { defaultMode: 0o400 });
    const key = statSync(join(plain, 'tls.key'));
    expect([key.uid, key.gid, key.mode & 0o7777]).toEqual([0, 0, 0o400]);
    expect(readlinkSync(join(plain, 'tls.key'))).toBe('..data/tls.key');
    expect(lstatSync(join(plain, '..data')).isSymbolicLink()).toBe(true);
    const grouped = join(dir, 'grouped');
    await writeAtomicVolume(grouped, { 'tls.key': 'k1' }, { defaultMode: 0o400, fsGroup: 65532 });
    const gkey = statSync(join(grouped, 'tls.key'));
    expect([gkey.uid, gkey.gid, gkey.mode & 0o7777]).toEqual([0, 65532, 0o440]);
    expect(statSync(join(grouped, '..data')).mode & 0o7777).toBe(volumeModes({ defaultMode: 0o400, fsGroup: 65532 }).dir);
  });

  it('an update swaps ..data to a new directory, removes the old one and keys that left', async () => {
    const v = join(dir, 'update');
    await writeAtomicVolume(v, { 'tls.crt': 'old', 'old.crt': 'x' }, { defaultMode: 0o400 });
    const first = readlinkSync(join(v, '..data'));
    await writeAtomicVolume(v, { 'tls.crt': 'new' }, { defaultMode: 0o400 });
    expect(readlinkSync(join(v, '..data'))).not.toBe(first);
    expect(readFileSync(join(v, 'tls.crt'), 'utf8')).toBe('new');
    expect(readdirSync(v).sort()).toEqual([readlinkSync(join(v, '..data')), '..data', 'tls.crt'].sort());
  });
});
