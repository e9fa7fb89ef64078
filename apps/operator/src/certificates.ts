/**
 * The certificates of one shoot's VPN — one implementation for the operator's reconcile and for the
 * `shoot-setup` one-shot. Given what the Secrets `ca-vpn` and `vpn-certificates` hold now, it returns
 * the Secrets that should exist (with `data`, so removed keys vanish on apply):
 *
 * - the per-shoot CA (ca-vpn: ca.crt, ca.key; during a rotation also previous.crt and rotated-at);
 * - the issued set (vpn-certificates: material.json, reused while valid, from the current CA and for
 *   the same mode; re-issued at 80 % of the leaves' validity);
 * - the certificate Secrets the workloads mount (renderCertificateSecrets: seed side and shoot side).
 *
 * CA rotation: at 80 % of the CA's validity a new CA is made and the old one stays in every bundle for
 * `caRotationGraceMs` (7 days), so the shoot side, whose new certificates may arrive later, keeps
 * connecting meanwhile; then the old CA leaves the bundles. No tunnel has to drop.
 */
import { SEED_SERVER, objectLabels, renderCertificateSecrets, type CertificateMaterial, type K8sObject, type ObjectMeta, type VpnMode, type VpnSpec } from '@rvpn/k8s-render';
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

/**
 * `read(name)` returns the decoded data of a Secret in `namespace` (undefined when it does not exist).
 */
export async function ensureCertificates(
  read: (name: string) => Promise<Record<string, string> | undefined>,
  input: { namespace: string; spec: VpnSpec; mode: VpnMode; meta?: ObjectMeta },
  s: CertificateSettings,
): Promise<Certificates> {
  const ns = input.namespace;
  const now = s.now?.() ?? new Date();
  const grace = s.caRotationGraceMs ?? 7 * 86_400_000;
  const d = (await read('ca-vpn')) ?? {};
  let ca: CertKeyPair | undefined = d['ca.crt'] && d['ca.key'] ? { certPem: d['ca.crt'], keyPem: d['ca.key'] } : undefined;
  let previous = d['previous.crt'];
  let rotatedAt = d['rotated-at'];
  let caCreated = false;
  if (!ca) {
    ca = await createCa({ commonName: 'ca-vpn', validityDays: s.caValidityDays, notBefore: now });
    caCreated = true;
  } else if (renewalDue(ca.certPem, now)) {
    previous = ca.certPem;
    rotatedAt = now.toISOString();
    ca = await createCa({ commonName: 'ca-vpn', validityDays: s.caValidityDays, notBefore: now });
    caCreated = true;
  }
  if (previous && rotatedAt && now.getTime() - Date.parse(rotatedAt) > grace) {
    previous = undefined;
    rotatedAt = undefined;
  }
  const rotating = !!(previous && rotatedAt);
  const caBundleNow = rotating ? caBundle(previous!, ca.certPem) : ca.certPem;
  const labels = objectLabels(SEED_SERVER, 'certificates', input.meta ?? {});
  const caObj = secretWithData('ca-vpn', ns, { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem, ...(rotating ? { 'previous.crt': previous!, 'rotated-at': rotatedAt! } : {}) }, { labels });

  // reuse the issued set while it is valid, from the current CA, and for the same mode
  const stored = (await read('vpn-certificates'))?.['material.json'];
  const fingerprint = `${input.mode.reversed}/${input.mode.ha}/${certificateInfo(ca.certPem).serialNumber}`;
  let material: CertificateMaterial | undefined;
  let issued = false;
  if (stored) {
    try {
      const m = JSON.parse(stored) as CertificateMaterial & { fingerprint?: string };
      if (m.fingerprint === fingerprint && !renewalDue(m.seedServer.certPem, now)) material = m;
    } catch {
      /* unreadable: issue a new set */
    }
  }
  if (!material) {
    const pki = await createShootPki({ namespace: ns, ca, haServers: input.mode.ha ? 2 : 0, haClients: input.mode.ha ? 2 : 0, validityDays: s.certValidityDays, notBefore: now });
    const uri = shootIdentityUri(ns);
    const v = { validityDays: s.certValidityDays, notBefore: now };
    const direction = input.mode.reversed
      ? { seedServer: pki.server }
      : {
          seedServer: await issueCertificate(ca, { commonName: 'vpn-seed-client', usage: 'client', uris: [uri], ...v }),
          shootServer: await issueCertificate(ca, { commonName: 'vpn-shoot', usage: 'server', dnsNames: ['vpn-shoot'], uris: [uri], ...v }),
        };
    material = { caBundle: ca.certPem, proxyClient: pki.proxyClient, shootClient: pki.shootClient, shootClients: pki.shootClients, seedClient: pki.seedClient, proxyServer: pki.proxyServer, ...direction };
    issued = true;
  }
  // the bundle follows the rotation state on every run, whether or not leaves were re-issued
  const { caBundle: _stale, fingerprint: _fp, ...leaves } = material as CertificateMaterial & { fingerprint?: string };
  material = { ...leaves, caBundle: caBundleNow };
  const rendered = renderCertificateSecrets({ ...input.spec, namespace: ns }, input.mode, material, input.meta ?? {});
  const toData = (o: K8sObject) => secretWithData(o.metadata.name, o.metadata.namespace!, secretStrings(o), { ...(o.metadata.labels ? { labels: o.metadata.labels } : {}) });
  // material.json stores the leaves only: the bundle lives in the mounted Secrets and follows ca-vpn
  const bundleObj = secretWithData('vpn-certificates', ns, { 'material.json': stableJson({ ...leaves, caBundle: ca.certPem, fingerprint }) }, { labels });
  return {
    seedSecrets: [caObj, bundleObj, ...rendered.seed.map(toData)],
    shootSecrets: rendered.shoot.map(toData),
    issued,
    caCreated,
    rotating,
    notAfter: certificateInfo(material.seedServer.certPem).notAfter,
  };
}
