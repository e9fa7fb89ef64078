/**
 * Reconcile(key) for one ShootVpn, level-based: read it, render what it should be, apply that
 * server-side with our field manager, prune what we own and no longer render, publish sni-proxy's
 * routes, and write status. A spec that cannot be rendered becomes a terminal condition (no retry until
 * the spec changes); any other error is thrown for the caller to back off.
 *
 * Certificates: a per-shoot CA lives in the Secret `ca-vpn`; leaf certificates are issued from it when
 * missing and re-issued at 80 % of their validity (the apps reload them from disk). The shoot-side
 * objects (vpn-shoot and its certificate Secret) go into the Secret `vpn-shoot-resources` of the
 * control-plane namespace for a shoot-side applier, as Gardener's ManagedResources do.
 */
import {
  CRD_GROUP, CRD_KIND, CRD_VERSION, SpecInvalidError, renderCertificateSecrets, renderMonitoring, renderSeed, renderShoot,
  renderSniProxyRoutesConfigMap, resolveVpnMode, sniProxyRoutes, type CertificateMaterial, type K8sObject, type VpnMode, type VpnSpec,
} from '@rvpn/k8s-render';
import { caBundle, certificateInfo, createCa, createShootPki, issueCertificate, renewalDue, shootIdentityUri, type CertKeyPair } from '@rvpn/pki';
import { KubeClient, resourcePath } from './kube.js';

export interface OperatorSettings {
  fieldManager: string;
  featureGates: { ReversedVPN: boolean };
  sniProxy: { namespace: string; routesConfigMap: string };
  monitoring: boolean;
  certValidityDays: number;
  caValidityDays: number;
  /** How long the previous CA stays in the bundle after a CA rotation (default 7 days). */
  caRotationGraceMs?: number;
  /** The clock (tests move it). */
  now?: () => Date;
}

export interface ShootVpnObject extends K8sObject {
  metadata: K8sObject['metadata'] & { generation?: number; uid?: string };
  spec: VpnSpec;
  status?: Record<string, unknown>;
}

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'reversed-vpn-operator' };
export const OWNER_LABEL = 'vpn.reversed-vpn.dev/shootvpn';
const API_VERSION = `${CRD_GROUP}/${CRD_VERSION}`;
/** Kinds the operator may create in a control-plane namespace (and so prunes). */
export const OWNED_KINDS: Array<[string, string]> = [
  ['apps/v1', 'Deployment'], ['apps/v1', 'StatefulSet'], ['v1', 'Service'], ['v1', 'ConfigMap'], ['v1', 'Secret'],
  ['networking.k8s.io/v1', 'NetworkPolicy'], ['policy/v1', 'PodDisruptionBudget'],
];
const MONITORING_KINDS: Array<[string, string]> = [['monitoring.coreos.com/v1', 'ServiceMonitor'], ['monitoring.coreos.com/v1', 'PrometheusRule']];

export type ReconcileResult = { result: 'applied'; applied: number; pruned: number; certificatesIssued: boolean } | { result: 'deleted'; pruned: number } | { result: 'invalid'; reason: string };

const kindKey = (o: { kind: string; metadata: { name: string } }) => `${o.kind}/${o.metadata.name}`;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : undefined);
const secretData = (o: K8sObject | undefined) => (o?.data ?? {}) as Record<string, string>;

function condition(type: string, ok: boolean | 'Unknown', reason: string, message: string, generation?: number) {
  return { type, status: ok === 'Unknown' ? 'Unknown' : ok ? 'True' : 'False', reason, message, lastTransitionTime: new Date().toISOString(), ...(generation !== undefined ? { observedGeneration: generation } : {}) };
}

export async function reconcile(client: KubeClient, key: { namespace: string; name: string }, s: OperatorSettings): Promise<ReconcileResult> {
  const cr = await client.get<ShootVpnObject>(resourcePath(API_VERSION, CRD_KIND, key.namespace, key.name));
  const owner = { ...MANAGED_BY, [OWNER_LABEL]: key.name };
  if (!cr) {
    const pruned = await prune(client, key.namespace, owner, new Set(), s);
    await publishRoutes(client, s);
    return { result: 'deleted', pruned };
  }
  const generation = cr.metadata.generation;
  let mode: VpnMode;
  let seedObjects: K8sObject[];
  try {
    if (cr.spec.namespace !== key.namespace) throw new SpecInvalidError(`spec.namespace ${cr.spec.namespace} differs from the resource's namespace ${key.namespace}`);
    mode = resolveVpnMode(cr.spec, { featureGates: s.featureGates });
    seedObjects = renderSeed(cr.spec, mode, settingsFor(s)); // a render error is a spec error too
  } catch (err) {
    if (!SpecInvalidError.is(err)) throw err;
    await client.patchStatus(cr, { observedGeneration: generation, conditions: [condition('Ready', false, 'SpecInvalid', (err as Error).message, generation)] });
    return { result: 'invalid', reason: (err as Error).message };
  }

  const certs = await ensureCertificates(client, cr, mode, s);
  const shootObjects = [...renderShoot(cr.spec, mode), ...certs.shootSecrets];
  const desired: K8sObject[] = [
    ...seedObjects,
    ...(s.monitoring ? renderMonitoring(cr.spec, mode) : []),
    ...certs.seedSecrets,
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'vpn-shoot-resources', namespace: key.namespace }, type: 'Opaque', data: { 'objects.json': b64(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: shootObjects })) } },
  ];
  const ownerRef = { apiVersion: API_VERSION, kind: CRD_KIND, name: cr.metadata.name, uid: cr.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
  for (const o of desired) {
    o.metadata.labels = { ...(o.metadata.labels ?? {}), ...owner };
    (o.metadata as Record<string, unknown>).ownerReferences = [ownerRef];
    await client.apply(o, s.fieldManager);
  }
  const pruned = await prune(client, key.namespace, owner, new Set(desired.map(kindKey)), s);
  await publishRoutes(client, s);

  const workload = await client.get<K8sObject>(resourcePath('apps/v1', mode.ha ? 'StatefulSet' : 'Deployment', key.namespace, 'vpn-seed-server'));
  const ready = ((workload?.status as { readyReplicas?: number } | undefined)?.readyReplicas ?? 0) > 0;
  await client.patchStatus(cr, {
    observedGeneration: generation,
    reversed: mode.reversed,
    ha: mode.ha,
    conditions: [
      condition('Ready', true, 'Applied', `${desired.length} objects applied, ${pruned} pruned; ${mode.reason}`, generation),
      condition('TunnelConnected', workload?.status ? ready : 'Unknown', ready ? 'ServerReady' : 'ServerNotReady', ready ? 'a vpn-seed-server is ready (its readiness probes the data path)' : 'no ready vpn-seed-server yet', generation),
      condition('CertificatesValid', true, certs.issued ? 'Issued' : 'Valid', `leaf certificates expire ${certs.notAfter.toISOString()}; renewed at 80 % of their validity`, generation),
    ],
  });
  return { result: 'applied', applied: desired.length, pruned, certificatesIssued: certs.issued };
}

function settingsFor(s: OperatorSettings) {
  return { featureGates: s.featureGates, sniProxy: { namespace: s.sniProxy.namespace, podLabels: { 'app.kubernetes.io/name': 'sni-proxy' } } };
}

/** Deletes the objects with our owner labels that are no longer rendered. */
async function prune(client: KubeClient, namespace: string, owner: Record<string, string>, keep: Set<string>, s: OperatorSettings): Promise<number> {
  const selector = Object.entries(owner).map(([k, v]) => `${k}=${v}`).join(',');
  let n = 0;
  for (const [apiVersion, kind] of [...OWNED_KINDS, ...(s.monitoring ? MONITORING_KINDS : [])]) {
    const { items } = await client.list(resourcePath(apiVersion, kind, namespace), selector);
    for (const o of items) {
      if (keep.has(`${kind}/${o.metadata.name}`)) continue;
      await client.delete(resourcePath(apiVersion, kind, namespace, o.metadata.name));
      n++;
    }
  }
  return n;
}

/** sni-proxy's route ConfigMap, from every valid reversed ShootVpn of the seed (also when there is none: sni-proxy mounts it). */
export async function publishRoutes(client: KubeClient, s: OperatorSettings): Promise<void> {
  const { items } = await client.list<ShootVpnObject>(resourcePath(API_VERSION, CRD_KIND));
  const routes: Record<string, string> = {};
  for (const cr of items) {
    try {
      Object.assign(routes, sniProxyRoutes(cr.spec, resolveVpnMode(cr.spec, { featureGates: s.featureGates })));
    } catch {
      /* an invalid spec publishes no route; its own reconcile reports why */
    }
  }
  const cm = renderSniProxyRoutesConfigMap(routes, s.sniProxy.namespace, s.sniProxy.routesConfigMap);
  cm.metadata.labels = { ...(cm.metadata.labels ?? {}), ...MANAGED_BY };
  await client.apply(cm, s.fieldManager);
}

interface Certs {
  seedSecrets: K8sObject[];
  shootSecrets: K8sObject[];
  issued: boolean;
  notAfter: Date;
}

/**
 * The per-shoot CA (kept in Secret ca-vpn) and the leaf certificates, issued when missing or due.
 * CA rotation: at 80 % of the CA's validity a new CA is made and the old one stays in every bundle for
 * caRotationGraceMs, so the shoot side (whose new certificates arrive later through its applier) keeps
 * connecting with the old ones meanwhile; then the old CA leaves the bundle. No tunnel has to drop.
 */
async function ensureCertificates(client: KubeClient, cr: ShootVpnObject, mode: VpnMode, s: OperatorSettings): Promise<Certs> {
  const ns = cr.metadata.namespace!;
  const now = s.now?.() ?? new Date();
  const grace = s.caRotationGraceMs ?? 7 * 86_400_000;
  const caSecret = await client.get<K8sObject>(resourcePath('v1', 'Secret', ns, 'ca-vpn'));
  const d = secretData(caSecret);
  let ca: CertKeyPair | undefined = d['ca.crt'] ? { certPem: unb64(d['ca.crt'])!, keyPem: unb64(d['ca.key']) ?? '' } : undefined;
  let previous = unb64(d['previous.crt']);
  let rotatedAt = unb64(d['rotated-at']);
  if (!ca) {
    ca = await createCa({ commonName: 'ca-vpn', validityDays: s.caValidityDays, notBefore: now });
  } else if (renewalDue(ca.certPem, now)) {
    previous = ca.certPem;
    rotatedAt = now.toISOString();
    ca = await createCa({ commonName: 'ca-vpn', validityDays: s.caValidityDays, notBefore: now });
  }
  if (previous && rotatedAt && now.getTime() - Date.parse(rotatedAt) > grace) {
    previous = undefined;
    rotatedAt = undefined;
  }
  const caBundleNow = previous ? caBundle(previous, ca.certPem) : ca.certPem;
  const caObj: K8sObject = {
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'ca-vpn', namespace: ns },
    data: { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem), ...(previous && rotatedAt ? { 'previous.crt': b64(previous), 'rotated-at': b64(rotatedAt) } : {}) },
  };

  // reuse the issued set while it is valid, from the current CA, and for the same mode
  const bundle = await client.get<K8sObject>(resourcePath('v1', 'Secret', ns, 'vpn-certificates'));
  const stored = unb64(secretData(bundle)['material.json']);
  const fingerprint = `${mode.reversed}/${mode.ha}/${certificateInfo(ca.certPem).serialNumber}`;
  let material: CertificateMaterial | undefined;
  let issued = false;
  if (stored) {
    const m = JSON.parse(stored) as CertificateMaterial & { fingerprint?: string };
    if (m.fingerprint === fingerprint && !renewalDue(m.seedServer.certPem, now)) material = m;
  }
  if (!material) {
    const pki = await createShootPki({ namespace: ns, ca, haServers: mode.ha ? 2 : 0, haClients: mode.ha ? 2 : 0, validityDays: s.certValidityDays, notBefore: now });
    const uri = shootIdentityUri(ns);
    const v = { validityDays: s.certValidityDays, notBefore: now };
    const classic = mode.reversed
      ? { seedServer: pki.server }
      : {
          seedServer: await issueCertificate(ca, { commonName: 'vpn-seed-client', usage: 'client', uris: [uri], ...v }),
          shootServer: await issueCertificate(ca, { commonName: 'vpn-shoot', usage: 'server', dnsNames: ['vpn-shoot'], uris: [uri], ...v }),
        };
    material = { caBundle: ca.certPem, proxyClient: pki.proxyClient, shootClient: pki.shootClient, shootClients: pki.shootClients, seedClient: pki.seedClient, proxyServer: pki.proxyServer, ...classic };
    issued = true;
  }
  // the bundle follows the rotation state on every reconcile, whether or not leaves were re-issued
  material = { ...material, caBundle: caBundleNow };
  const { seed, shoot } = renderCertificateSecrets(cr.spec, mode, material);
  const bundleObj: K8sObject = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'vpn-certificates', namespace: ns }, data: { 'material.json': b64(JSON.stringify({ ...material, fingerprint })) } };
  return { seedSecrets: [caObj, bundleObj, ...seed], shootSecrets: shoot, issued, notAfter: certificateInfo(material.seedServer.certPem).notAfter };
}
