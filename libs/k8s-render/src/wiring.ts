/**
 * The shoot's kube-apiserver, wired to the VPN (finding 2 of issue 9). `apiserverWiring` says what its
 * Deployment needs; `wireApiserverPatch` / `unwireApiserverPatch` turn that into RFC 6902 JSON-patch
 * operations against the Deployment as it is now, guarded by `test` operations so a concurrent change
 * makes the API server refuse the patch instead of corrupting the pod template. Both are pure and
 * idempotent: a wired Deployment gets [] from wire, an unwired one [] from unwire. The operator and
 * the chart's one-shot setup job (`operator shoot-setup`) apply them.
 *
 * What the wiring adds, to the pod template of the Deployment:
 *   - the flag `--egress-selector-config-file=/etc/reversed-vpn/egress-selector/egress-selector-configuration.yaml`
 *     on the `kube-apiserver` container (in `args`, or in `command` when the flags live there),
 *   - volumes + mounts of the ConfigMap `kube-apiserver-egress-selector-configuration` and of the Secret
 *     `kube-apiserver-http-proxy-client` (at the paths the egress file names),
 *   - the pod label the seed server's NetworkPolicy admits (APISERVER_WIRING_LABEL),
 *   - the annotation `vpn.reversed-vpn.dev/proxy-client-checksum` when the caller passes the checksum
 *     of the proxy client Secret: kube-apiserver reads the egress TLS files only at start, so a renewal
 *     must restart it,
 *   - HA: the path-controller sidecar (bonded links to both seed servers, the local CONNECT proxy on
 *     127.0.0.1:9443), its `--init` init container and its volumes.
 *
 *   const ops = wireApiserverPatch(deployment, apiserverWiring(spec, mode, { proxyClientChecksum }));
 *   if (ops.length) await api.patch(path, ops, 'application/json-patch+json');
 */
import { createHash } from 'node:crypto';
import { Cidr, defineError, formatIp } from '@rvpn/config';
import { netAdminSecurity, networkEnv, podNameEnv, probes, DEFAULT_PULL_POLICY, RUNTIME_DEFAULT_SECCOMP, SECRETS_DIR, sysctlInit, tlsEnv } from './common.js';
import type { VpnMode } from './mode.js';
import { APISERVER_WIRING_LABEL, EGRESS_SELECTOR_CONFIGMAP, EGRESS_SELECTOR_FILE, HA_CLIENTS, HA_SERVERS, PROXY_CLIENT_SECRET, SEED_SERVER } from './seed.js';
import type { VpnSpec } from './types.js';

export const ApiserverWiringError = defineError(
  'RVPN_ERR_APISERVER_WIRING',
  'The kube-apiserver Deployment cannot be wired or unwired (it has no container named kube-apiserver); check the Deployment name given to the operator or the setup job (KUBE_APISERVER_DEPLOYMENT).',
);

export const APISERVER_CONTAINER = 'kube-apiserver';
export const PROXY_CLIENT_CHECKSUM_ANNOTATION = 'vpn.reversed-vpn.dev/proxy-client-checksum';
export const EGRESS_SELECTOR_DIR = '/etc/reversed-vpn/egress-selector';
export const EGRESS_SELECTOR_FLAG = '--egress-selector-config-file';
/** HA: the path-controller's certificates in the apiserver pod. */
export const SEED_CLIENT_SECRET = 'vpn-seed-client';
export const PROXY_SERVER_SECRET = 'kube-apiserver-http-proxy';

type Obj = Record<string, unknown>;

export interface ApiserverWiring {
  /** The container that gets the flag and the mounts. */
  container: string;
  /** Flags `--name=value` the container must carry (a flag of the same name with another value is replaced). */
  flags: string[];
  volumes: Obj[];
  /** Mounts of `volumes` into the kube-apiserver container. */
  volumeMounts: Obj[];
  podLabels: Record<string, string>;
  podAnnotations: Record<string, string>;
  /** HA: the path-controller sidecar and its init container. */
  initContainers: Obj[];
  containers: Obj[];
}

export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/**
 * A probe target inside the shoot for the path-controller and the chart's connect probe: the first
 * host of the shoot's first service network (the `kubernetes` Service's ClusterIP) on 443.
 */
export function kubernetesServiceTarget(spec: Pick<VpnSpec, 'networks'>): string {
  const first = spec.networks.services[0];
  if (!first) return '100.64.0.1:443';
  const ip = Cidr.parse(first).address(1);
  return ip.family === 6 ? `[${formatIp(ip)}]:443` : `${formatIp(ip)}:443`;
}

/** The checksum the wiring puts on the pod template: sha256 over the proxy client Secret's data (key order ignored). */
export function proxyClientChecksum(data: Record<string, string>): string {
  const canonical = JSON.stringify(Object.entries(data).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return createHash('sha256').update(canonical).digest('hex');
}

const volume = (name: string, source: Obj): Obj => ({ name, ...source });

export function apiserverWiring(spec: VpnSpec, mode: Pick<VpnMode, 'ha'>, opts: { proxyClientChecksum?: string; imagePullPolicy?: string } = {}): ApiserverWiring {
  const pullPolicy = opts.imagePullPolicy ?? DEFAULT_PULL_POLICY;
  const volumes: Obj[] = [
    volume('vpn-egress-selector', { configMap: { name: EGRESS_SELECTOR_CONFIGMAP } }),
    volume('vpn-http-proxy-client', { secret: { secretName: PROXY_CLIENT_SECRET, defaultMode: 0o400 } }),
  ];
  const volumeMounts: Obj[] = [
    { name: 'vpn-egress-selector', mountPath: EGRESS_SELECTOR_DIR, readOnly: true },
    { name: 'vpn-http-proxy-client', mountPath: `${SECRETS_DIR}/${PROXY_CLIENT_SECRET}`, readOnly: true },
  ];
  const wiring: ApiserverWiring = {
    container: APISERVER_CONTAINER,
    flags: [`${EGRESS_SELECTOR_FLAG}=${EGRESS_SELECTOR_DIR}/${EGRESS_SELECTOR_FILE}`],
    volumes,
    volumeMounts,
    podLabels: { ...APISERVER_WIRING_LABEL },
    podAnnotations: opts.proxyClientChecksum ? { [PROXY_CLIENT_CHECKSUM_ANNOTATION]: opts.proxyClientChecksum } : {},
    initContainers: [],
    containers: [],
  };
  if (!mode.ha) return wiring;

  const image = spec.images.pathController;
  const env = [
    ...networkEnv(spec),
    podNameEnv,
    ...tlsEnv(SEED_CLIENT_SECRET),
    { name: 'IS_HA', value: 'true' },
    { name: 'HA_VPN_SERVERS', value: String(HA_SERVERS) },
    { name: 'HA_VPN_CLIENTS', value: String(HA_CLIENTS) },
    { name: 'SEED_SERVERS', value: Array.from({ length: HA_SERVERS }, (_, i) => `${SEED_SERVER}-${i}:1194`).join(',') },
    { name: 'KEEPALIVE_INTERVAL', value: '100ms' },
    { name: 'KEEPALIVE_TIMEOUT', value: '500ms' },
    { name: 'PROBE_TARGET', value: kubernetesServiceTarget(spec) },
    { name: 'PROXY_LISTEN', value: '127.0.0.1:9443' },
    { name: 'PROXY_TLS_CERT_FILE', value: `${SECRETS_DIR}/${PROXY_SERVER_SECRET}/tls.crt` },
    { name: 'PROXY_TLS_KEY_FILE', value: `${SECRETS_DIR}/${PROXY_SERVER_SECRET}/tls.key` },
    { name: 'STATUS_LISTEN', value: '0.0.0.0:15001' },
  ];
  volumes.push(
    volume('vpn-seed-client', { secret: { secretName: SEED_CLIENT_SECRET, defaultMode: 0o400 } }),
    volume('vpn-http-proxy', { secret: { secretName: PROXY_SERVER_SECRET, defaultMode: 0o400 } }),
    volume('vpn-dev-net-tun', { hostPath: { path: '/dev/net/tun', type: 'CharDevice' } }),
  );
  wiring.initContainers.push({ ...sysctlInit(image), name: 'path-controller-init', imagePullPolicy: pullPolicy });
  wiring.containers.push({
    name: 'path-controller',
    image,
    imagePullPolicy: pullPolicy,
    env,
    ...probes(15001),
    ports: [{ name: 'path-metrics', containerPort: 15001, protocol: 'TCP' }],
    // the container's own seccomp profile: the kube-apiserver pod's settings are the platform's, not ours
    securityContext: { ...netAdminSecurity, ...RUNTIME_DEFAULT_SECCOMP },
    volumeMounts: [
      { name: 'vpn-seed-client', mountPath: `${SECRETS_DIR}/${SEED_CLIENT_SECRET}`, readOnly: true },
      { name: 'vpn-http-proxy', mountPath: `${SECRETS_DIR}/${PROXY_SERVER_SECRET}`, readOnly: true },
      { name: 'vpn-dev-net-tun', mountPath: '/dev/net/tun' },
    ],
    resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } },
  });
  return wiring;
}

// ---- JSON patch construction ----

const ptr = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
const isMap = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Whether the live value already holds everything we set. The API server adds defaults (a
 * container's terminationMessagePath, a volume's defaultMode), so equality would never hold.
 */
export function holds(live: unknown, want: unknown): boolean {
  if (Array.isArray(want)) return Array.isArray(live) && live.length === want.length && want.every((w, i) => holds(live[i], w));
  if (isMap(want)) return isMap(live) && Object.entries(want).every(([k, w]) => holds(live[k], w));
  return live === want;
}

const TEMPLATE = '/spec/template';
const POD = `${TEMPLATE}/spec`;

interface Pod {
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers: Obj[]; initContainers?: Obj[]; volumes?: Obj[] };
}

function podOf(deployment: { spec?: unknown }): Pod {
  const t = (deployment.spec as { template?: { metadata?: Pod['metadata']; spec?: Pod['spec'] } } | undefined)?.template;
  return { metadata: t?.metadata ?? {}, spec: t?.spec ?? { containers: [] } };
}

function apiserverIndex(pod: Pod, name: string): number {
  const i = (pod.spec.containers ?? []).findIndex((c) => c.name === name);
  if (i < 0) throw new ApiserverWiringError(`the Deployment's pod template has no container named ${name} (containers: ${(pod.spec.containers ?? []).map((c) => c.name).join(', ') || 'none'})`);
  return i;
}

/**
 * Ops that make the named list hold `wanted` (matched by name) and nothing named in `stale`: index-based
 * replaces first (they keep every position), then removals from the highest index down, then appends.
 */
function syncNamed(path: string, live: Obj[] | undefined, wanted: Obj[], stale: readonly unknown[] = []): JsonPatchOp[] {
  if (!live) return wanted.length > 0 ? [{ op: 'add', path, value: wanted }] : [];
  const ops: JsonPatchOp[] = [];
  const adds: JsonPatchOp[] = [];
  for (const w of wanted) {
    const i = live.findIndex((x) => x.name === w.name);
    if (i < 0) adds.push({ op: 'add', path: `${path}/-`, value: w });
    else if (!holds(live[i], w)) ops.push({ op: 'test', path: `${path}/${i}/name`, value: w.name }, { op: 'replace', path: `${path}/${i}`, value: w });
  }
  const keep = new Set(wanted.map((w) => w.name));
  const gone = live.flatMap((x, i) => (stale.includes(x.name) && !keep.has(x.name) ? [i] : [])).sort((a, b) => b - a);
  // a list that held only our entries goes entirely (unwiring restores a pod that had none)
  if (wanted.length === 0 && gone.length > 0 && gone.length === live.length) return [{ op: 'test', path, value: live }, { op: 'remove', path }];
  for (const i of gone) ops.push({ op: 'test', path: `${path}/${i}/name`, value: live[i]!.name }, { op: 'remove', path: `${path}/${i}` });
  return [...ops, ...adds];
}

function ensureMap(path: string, live: Record<string, string> | undefined, wanted: Record<string, string>): JsonPatchOp[] {
  if (Object.keys(wanted).length === 0) return [];
  if (!live) return [{ op: 'add', path, value: wanted }];
  return Object.entries(wanted).flatMap(([k, v]): JsonPatchOp[] => {
    if (live[k] === v) return [];
    if (k in live) return [{ op: 'test', path: `${path}/${ptr(k)}`, value: live[k] }, { op: 'replace', path: `${path}/${ptr(k)}`, value: v }];
    return [{ op: 'add', path: `${path}/${ptr(k)}`, value: v }];
  });
}

const flagName = (f: string) => f.split('=')[0]!;

/** Everything a wiring of either mode may have added, by name: a mode change or an unwire removes it. */
const WIRED_MOUNTS = ['vpn-egress-selector', 'vpn-http-proxy-client'];
const WIRED_VOLUMES = [...WIRED_MOUNTS, 'vpn-seed-client', 'vpn-http-proxy', 'vpn-dev-net-tun'];
const WIRED_INIT_CONTAINERS = ['path-controller-init'];
const WIRED_CONTAINERS = ['path-controller'];

/** RFC 6902 operations that wire the Deployment (none when it is wired already). */
export function wireApiserverPatch(deployment: { spec?: unknown }, wiring: ApiserverWiring): JsonPatchOp[] {
  const pod = podOf(deployment);
  const ci = apiserverIndex(pod, wiring.container);
  const c = pod.spec.containers[ci]!;
  const cpath = `${POD}/containers/${ci}`;
  const ops: JsonPatchOp[] = [];
  const args = c.args as string[] | undefined;
  const command = c.command as string[] | undefined;
  for (const flag of wiring.flags) {
    const name = flagName(flag);
    const lists: Array<['args' | 'command', string[] | undefined]> = [['args', args], ['command', command]];
    const found = lists.flatMap(([field, list]) => (list ?? []).flatMap((x, i) => (flagName(x) === name ? [{ field, i, x }] : [])));
    if (found.some((f) => f.x === flag)) continue;
    if (found.length > 0) {
      // another value of our flag: ours replaces it (one egress configuration per apiserver)
      const f = found[0]!;
      ops.push({ op: 'test', path: `${cpath}/${f.field}/${f.i}`, value: f.x }, { op: 'replace', path: `${cpath}/${f.field}/${f.i}`, value: flag });
    } else if (args) ops.push({ op: 'add', path: `${cpath}/args/-`, value: flag });
    else if (command && command.length > 1) ops.push({ op: 'add', path: `${cpath}/command/-`, value: flag }); // flags live in command
    else ops.push({ op: 'add', path: `${cpath}/args`, value: [flag] });
  }
  ops.push(...syncNamed(`${cpath}/volumeMounts`, c.volumeMounts as Obj[] | undefined, wiring.volumeMounts, WIRED_MOUNTS));
  // every edit of the container is guarded by its name at that index
  if (ops.length > 0) ops.unshift({ op: 'test', path: `${cpath}/name`, value: wiring.container });
  // a mode change (HA → non-HA) takes the other mode's pieces out
  ops.push(...syncNamed(`${POD}/volumes`, pod.spec.volumes, wiring.volumes, WIRED_VOLUMES));
  ops.push(...syncNamed(`${POD}/initContainers`, pod.spec.initContainers, wiring.initContainers, WIRED_INIT_CONTAINERS));
  // the sidecars go last: removing one placed before kube-apiserver would shift its index
  ops.push(...syncNamed(`${POD}/containers`, pod.spec.containers, wiring.containers, WIRED_CONTAINERS));
  ops.push(...ensureMap(`${TEMPLATE}/metadata/labels`, pod.metadata.labels, wiring.podLabels));
  ops.push(...ensureMap(`${TEMPLATE}/metadata/annotations`, pod.metadata.annotations, wiring.podAnnotations));
  return ops;
}

/**
 * RFC 6902 operations that take the wiring out again (none when nothing of it is there): our flag,
 * mounts, volumes, sidecar and init container (of either mode), label and checksum annotation. A flag
 * of the same name with another value is not ours and stays (a value ours replaced is not restored).
 */
export function unwireApiserverPatch(deployment: { spec?: unknown }, wiring: ApiserverWiring): JsonPatchOp[] {
  const pod = podOf(deployment);
  const ci = apiserverIndex(pod, wiring.container);
  const c = pod.spec.containers[ci]!;
  const cpath = `${POD}/containers/${ci}`;
  const ops: JsonPatchOp[] = [];
  for (const field of ['args', 'command'] as const) {
    const list = (c[field] as string[] | undefined) ?? [];
    const idx = list.flatMap((x, i) => (wiring.flags.includes(x) ? [i] : [])).sort((a, b) => b - a);
    if (field === 'args' && idx.length > 0 && idx.length === list.length) ops.push({ op: 'test', path: `${cpath}/args`, value: list }, { op: 'remove', path: `${cpath}/args` });
    else for (const i of idx) ops.push({ op: 'test', path: `${cpath}/${field}/${i}`, value: list[i] }, { op: 'remove', path: `${cpath}/${field}/${i}` });
  }
  ops.push(...syncNamed(`${cpath}/volumeMounts`, c.volumeMounts as Obj[] | undefined, [], WIRED_MOUNTS));
  if (ops.length > 0) ops.unshift({ op: 'test', path: `${cpath}/name`, value: wiring.container });
  ops.push(...syncNamed(`${POD}/volumes`, pod.spec.volumes, [], WIRED_VOLUMES));
  ops.push(...syncNamed(`${POD}/initContainers`, pod.spec.initContainers, [], WIRED_INIT_CONTAINERS));
  // the sidecars go last: removing one placed before kube-apiserver would shift its index
  ops.push(...syncNamed(`${POD}/containers`, pod.spec.containers, [], WIRED_CONTAINERS));
  ops.push(...removeKeys(`${TEMPLATE}/metadata/labels`, pod.metadata.labels, Object.keys(wiring.podLabels)));
  ops.push(...removeKeys(`${TEMPLATE}/metadata/annotations`, pod.metadata.annotations, [PROXY_CLIENT_CHECKSUM_ANNOTATION]));
  return ops;
}

/** Removes our keys from a label or annotation map, the whole map when nothing else is in it. */
function removeKeys(path: string, live: Record<string, string> | undefined, keys: string[]): JsonPatchOp[] {
  const ours = keys.filter((k) => live && k in live);
  if (!live || ours.length === 0) return [];
  if (ours.length === Object.keys(live).length) return [{ op: 'test', path, value: live }, { op: 'remove', path }];
  return ours.map((k): JsonPatchOp => ({ op: 'remove', path: `${path}/${ptr(k)}` }));
}
