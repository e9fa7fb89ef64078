/**
 * The certificates of one shoot's VPN — one implementation for the operator's reconcile and for the
 * `shoot-setup` one-shot. Given what the Secrets `ca-vpn` and `vpn-certificates` hold now, it returns
 * the Secrets that should exist (with `data`, so removed keys vanish on apply):
 *
 * - the per-shoot CA (ca-vpn: ca.crt, ca.key; during a rotation also previous.crt and rotated-at);
 * - the issued set (vpn-certificates: material.json, reused while it comes from the current CA and
 *   fits the mode; each leaf re-issued on its own at 80 % of its validity, or when asked);
 * - the certificate Secrets the workloads mount (renderCertificateSecrets: seed side and shoot side).
 *
 * CA rotation: at 80 % of the CA's validity a new CA is made and the old one stays in every bundle for
 * `caRotationGraceMs` (7 days), so the shoot side, whose new certificates may arrive later, keeps
 * connecting meanwhile; then the old CA leaves the bundles. No tunnel has to drop.
 */
import { PROXY_CLIENT_SECRET, PROXY_SERVER_SECRET, SEED_CLIENT_SECRET, SEED_PROXY_TLS_SECRET, SEED_SERVER, SEED_SERVER_TLS_SECRET, objectLabels, renderCertificateSecrets, type CertificateMaterial, type K8sObject, type ObjectMeta, type VpnMode, type VpnSpec } from '@rvpn/k8s-render';
import { stableJson } from './applier.js';
import { caBundle, certificateInfo, createCa, createShootPki, issueCertificate, renewalDue, shootIdentityUri, type CertKeyPair } from '@rvpn/pki';

export interface CertificateSettings {
  certValidityDays: number;
  caValidityDays: number;
  /** How long the previous CA stays in the bundles after a rotation (default 7 days). */
  caRotationGraceMs?: number;
  /** The clock (tests move it). */
  now?: () => Date;
}

export interface Certificates {
  /** ca-vpn, vpn-certificates and the seed-side certificate Secrets, in `namespace`. */
  seedSecrets: K8sObject[];
  /** The shoot-side certificate Secret(s) (kube-system of the shoot). */
  shootSecrets: K8sObject[];
  /** Leaf certificates were (re-)issued. */
  issued: boolean;
  /** Which ones. */
  reissued: string[];
  /** A new CA was made (first issue or rotation). */
  caCreated: boolean;
  /** The previous CA is still in the bundles. */
  rotating: boolean;
  notAfter: Date;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : undefined);

/** A Secret with `data` from a map of strings. */
export function secretWithData(name: string, namespace: string, values: Record<string, string>, meta: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): K8sObject {
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
    metadata: { name, namespace, ...(meta.labels ? { labels: meta.labels } : {}), ...(meta.annotations ? { annotations: meta.annotations } : {}) },
    data: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, b64(v)])),
  };
}

/** A rendered Secret (stringData or data) as decoded strings. */
export function secretStrings(o: K8sObject | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((o?.data as Record<string, string> | undefined) ?? {})) out[k] = unb64(v) ?? '';
  Object.assign(out, (o?.stringData as Record<string, string> | undefined) ?? {});
  return out;
}

/** What a certificate Secret holds now: decoded data and the annotations users set on it. */
export interface SecretRead {
  data: Record<string, string>;
  annotations: Record<string, string>;
}

/**
 * Requests by annotation, for operators who must not wait for the 80 % mark (a leaked key, a drill):
 *   kubectl annotate secret vpn-certificates vpn.reversed-vpn.dev/renew=vpn-seed-server-tls[,<secret>...]@<any new token>
 *     re-issues the leaves behind those Secrets on the next run (the operator's, or the setup CronJob's);
 *   kubectl annotate secret ca-vpn vpn.reversed-vpn.dev/rotate-ca=<any new token>
 *     starts a CA rotation now (new CA; the old one stays in every bundle for the grace period; every
 *     leaf is re-issued by the new CA);
 *   kubectl annotate secret ca-vpn vpn.reversed-vpn.dev/finish-ca-rotation=<the same token>
 *     ends the overlap now (the old CA leaves the bundles).
 * A request is carried out once: the handled token is remembered in the Secret's data.
 */
export const RENEW_ANNOTATION = 'vpn.reversed-vpn.dev/renew';
export const ROTATE_CA_ANNOTATION = 'vpn.reversed-vpn.dev/rotate-ca';
export const FINISH_CA_ROTATION_ANNOTATION = 'vpn.reversed-vpn.dev/finish-ca-rotation';

type Leaf = 'seedServer' | 'proxyClient' | 'proxyServer' | 'seedClient' | 'shootClient' | 'shootClients' | 'shootServer';
/** Which leaves a certificate Secret carries (the names of a renewal request). */
export const LEAVES_OF_SECRET: Record<string, Leaf[]> = {
  [SEED_SERVER_TLS_SECRET]: ['seedServer'],
  [PROXY_CLIENT_SECRET]: ['proxyClient'],
  [SEED_CLIENT_SECRET]: ['seedClient'],
  [PROXY_SERVER_SECRET]: ['proxyServer'],
  [SEED_PROXY_TLS_SECRET]: ['proxyServer'],
  'vpn-shoot-client': ['shootClient', 'shootClients'],
  'vpn-shoot-server': ['shootServer'],
};

const LEAVES_ALL: Record<Leaf, true> = { seedServer: true, proxyClient: true, proxyServer: true, seedClient: true, shootClient: true, shootClients: true, shootServer: true };
const pick = (m: Partial<CertificateMaterial>, leaves: Leaf[]): Partial<CertificateMaterial> => Object.fromEntries(leaves.map((l) => [l, m[l]]));

function pemsOf(m: Partial<CertificateMaterial>, leaf: Leaf): Array<{ certPem: string }> {
  const v = m[leaf];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Every leaf of the mode, freshly issued by `ca` (one call to @rvpn/pki; unused ones are dropped by the caller). */
async function issueAll(ca: CertKeyPair, ns: string, mode: VpnMode, v: { validityDays: number; notBefore: Date }): Promise<Partial<CertificateMaterial>> {
  const pki = await createShootPki({ namespace: ns, ca, haServers: mode.ha ? 2 : 0, haClients: mode.ha ? 2 : 0, ...v });
  const uri = shootIdentityUri(ns);
  const direction = mode.reversed
    ? { seedServer: pki.server }
    : {
        seedServer: await issueCertificate(ca, { commonName: 'vpn-seed-client', usage: 'client', uris: [uri], ...v }),
        shootServer: await issueCertificate(ca, { commonName: 'vpn-shoot', usage: 'server', dnsNames: ['vpn-shoot'], uris: [uri], ...v }),
      };
  return { proxyClient: pki.proxyClient, shootClient: pki.shootClient, shootClients: pki.shootClients, seedClient: pki.seedClient, proxyServer: pki.proxyServer, ...direction };
}

/**
 * `read(name)` returns a Secret of `namespace` as SecretRead (undefined when it does not exist).
 */
export async function ensureCertificates(
  read: (name: string) => Promise<SecretRead | undefined>,
  input: { namespace: string; spec: VpnSpec; mode: VpnMode; meta?: ObjectMeta },
  s: CertificateSettings,
): Promise<Certificates> {
  const ns = input.namespace;
  const now = s.now?.() ?? new Date();
  const grace = s.caRotationGraceMs ?? 7 * 86_400_000;
  const caRead = await read('ca-vpn');
  const d = caRead?.data ?? {};
  let ca: CertKeyPair | undefined = d['ca.crt'] && d['ca.key'] ? { certPem: d['ca.crt'], keyPem: d['ca.key'] } : undefined;
  let previous = d['previous.crt'];
  let rotatedAt = d['rotated-at'];
  let rotateHandled = d['rotation-request'];
  const rotateRequest = caRead?.annotations[ROTATE_CA_ANNOTATION];
  const finishRequest = caRead?.annotations[FINISH_CA_ROTATION_ANNOTATION];
  let caCreated = false;
  if (!ca) {
    ca = await createCa({ commonName: 'ca-vpn', validityDays: s.caValidityDays, notBefore: now });
    caCreated = true;
  } else if (renewalDue(ca.certPem, now) || (rotateRequest && rotateRequest !== rotateHandled)) {
    previous = ca.certPem;
    rotatedAt = now.toISOString();
    ca = await createCa({ commonName: 'ca-vpn', validityDays: s.caValidityDays, notBefore: now });
    caCreated = true;
    if (rotateRequest) rotateHandled = rotateRequest;
  }
  const finishNow = !!finishRequest && finishRequest === rotateHandled && !caCreated;
  if (previous && rotatedAt && (now.getTime() - Date.parse(rotatedAt) > grace || finishNow)) {
    previous = undefined;
    rotatedAt = undefined;
  }
  const rotating = !!(previous && rotatedAt);
  const caBundleNow = rotating ? caBundle(previous!, ca.certPem) : ca.certPem;
  const labels = objectLabels(SEED_SERVER, 'certificates', input.meta ?? {});
  const caObj = secretWithData('ca-vpn', ns, {
    'ca.crt': ca.certPem, 'ca.key': ca.keyPem,
    ...(rotating ? { 'previous.crt': previous!, 'rotated-at': rotatedAt! } : {}),
    ...(rotateHandled ? { 'rotation-request': rotateHandled } : {}),
  }, { labels });

  // The issued set is kept while it comes from the current CA and fits the mode; each leaf is re-issued
  // on its own when it reaches 80 % of its validity or a renewal request names its Secret.
  const storedRead = await read('vpn-certificates');
  const fingerprint = `${input.mode.reversed}/${input.mode.ha}/${certificateInfo(ca.certPem).serialNumber}`;
  let stored: (Partial<CertificateMaterial> & { fingerprint?: string; renewRequest?: string }) | undefined;
  try {
    stored = storedRead?.data['material.json'] ? (JSON.parse(storedRead.data['material.json']) as typeof stored) : undefined;
  } catch {
    stored = undefined; // unreadable: issue a new set
  }
  const renewRequest = storedRead?.annotations[RENEW_ANNOTATION];
  const requested = new Set<Leaf>(renewRequest && renewRequest !== stored?.renewRequest
    ? renewRequest.split('@')[0]!.split(',').map((x) => x.trim()).flatMap((name) => LEAVES_OF_SECRET[name] ?? [])
    : []);
  const reuse = stored?.fingerprint === fingerprint ? stored : undefined;
  const storedLeaves = (Object.keys(LEAVES_ALL) as Leaf[]).filter((l) => reuse?.[l] !== undefined);
  const allGood = !!reuse && requested.size === 0 && storedLeaves.length > 0 && !storedLeaves.some((l) => pemsOf(reuse, l).some((p) => renewalDue(p.certPem, now)));
  // nothing due and nothing asked: no key is generated (this runs on every reconcile)
  const fresh = allGood ? pick(reuse!, storedLeaves) : await issueAll(ca, ns, input.mode, { validityDays: s.certValidityDays, notBefore: now });
  const leaves: Partial<CertificateMaterial> = {};
  const reissued: Leaf[] = [];
  for (const leaf of Object.keys(fresh) as Leaf[]) {
    if (fresh[leaf] === undefined || (Array.isArray(fresh[leaf]) && (fresh[leaf] as unknown[]).length === 0)) continue;
    const old = reuse?.[leaf];
    const keep = old !== undefined && !requested.has(leaf) && pemsOf(reuse!, leaf).length === pemsOf(fresh, leaf).length && !pemsOf(reuse!, leaf).some((p) => renewalDue(p.certPem, now));
    (leaves as Record<string, unknown>)[leaf] = keep ? old : fresh[leaf];
    if (!keep) reissued.push(leaf);
  }
  const issued = reissued.length > 0;
  // the bundle follows the rotation state on every run, whether or not leaves were re-issued
  const material = { ...leaves, caBundle: caBundleNow } as CertificateMaterial;
  const rendered = renderCertificateSecrets({ ...input.spec, namespace: ns }, input.mode, material, input.meta ?? {});
  const toData = (o: K8sObject) => secretWithData(o.metadata.name, o.metadata.namespace!, secretStrings(o), { ...(o.metadata.labels ? { labels: o.metadata.labels } : {}) });
  // material.json stores the leaves only: the bundle lives in the mounted Secrets and follows ca-vpn
  const bundleObj = secretWithData('vpn-certificates', ns, {
    'material.json': stableJson({ ...leaves, caBundle: ca.certPem, fingerprint, ...(renewRequest ? { renewRequest } : {}) }),
  }, { labels });
  return {
    seedSecrets: [caObj, bundleObj, ...rendered.seed.map(toData)],
    shootSecrets: rendered.shoot.map(toData),
    issued,
    reissued,
    caCreated,
    rotating,
    notAfter: certificateInfo(material.seedServer.certPem).notAfter,
  };
}
