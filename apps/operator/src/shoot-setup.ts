/**
 * One shoot without the operator's CRD — what the chart's hook Job (`shoot-setup` at install/upgrade,
 * `shoot-teardown` at delete) and its renewal CronJob (`shoot-setup` again) run with the operator image.
 *
 * shoot-setup (idempotent): the CA in Secret ca-vpn (its key kept), leaf certificates (renewed at 80 %,
 * CA rotated at 80 % with the same overlap as the operator: ensureCertificates is shared), the seed's
 * certificate Secrets, the shoot's certificate Secret — applied into the shoot with
 * SHOOT_KUBECONFIG_FILE, else written to NAMESPACE as Secret vpn-shoot-certificates (key objects.json,
 * a v1 List) for the user to apply in the shoot —, and the kube-apiserver wiring (unless KUBE_APISERVER_DEPLOYMENT is empty). Secrets it no
 * longer needs (a mode change) are pruned.
 * shoot-teardown: unwires the kube-apiserver and deletes everything shoot-setup created (found by label).
 */
import { readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import type { OperatorConfig } from '@rvpn/config';
import {
  ApiserverWiringError, PARKED_SHOOT_SECRET, PROXY_CLIENT_SECRET, PROXY_SERVER_SECRET, SEED_CLIENT_SECRET, SEED_PROXY_TLS_SECRET, SEED_SERVER_TLS_SECRET, SHOOT_NAMESPACE,
  SpecInvalidError, shootSecretName, type K8sObject, type VpnMode, type VpnSpec,
} from '@rvpn/k8s-render';
import type { Logger } from '@rvpn/observability';
import { Applier } from './applier.js';
import { ensureCertificates, secretStrings, secretWithData } from './certificates.js';
import { Kube } from './kube.js';
import { MANAGED_BY } from './reconcile.js';
import { ApiserverWirer } from './wiring.js';

export const SETUP_LABEL = 'vpn.reversed-vpn.dev/shoot-setup';
export const SETUP_LABELS = { ...MANAGED_BY, [SETUP_LABEL]: 'true' };
/**
 * Every Secret shoot-setup may create, by name: the chart's Role lets the job get, create, patch and
 * delete Secrets, not list them, so a stale one (a mode change) is found by name and deleted only if
 * it carries SETUP_LABEL (a same-named Secret of someone else stays).
 */
const SEED_SECRETS = ['ca-vpn', 'vpn-certificates', SEED_SERVER_TLS_SECRET, PROXY_CLIENT_SECRET, SEED_CLIENT_SECRET, PROXY_SERVER_SECRET, SEED_PROXY_TLS_SECRET, PARKED_SHOOT_SECRET];
const SHOOT_SECRETS = [shootSecretName({ reversed: true }), shootSecretName({ reversed: false })];

/** Deletes the named Secrets that shoot-setup made (by label) and `keep` does not name. */
async function deleteStale(kube: Kube, namespace: string, names: string[], keep: Set<string>): Promise<string[]> {
  const deleted: string[] = [];
  for (const name of names) {
    if (keep.has(name)) continue;
    const s = await kube.get({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace, name } });
    if (s?.metadata.labels?.[SETUP_LABEL] !== 'true') continue;
    if (await kube.delete(s as K8sObject & { metadata: { name: string } })) deleted.push(`Secret/${name}`);
  }
  return deleted;
}

export interface ShootSpecFile {
  spec: VpnSpec;
  mode: { reversed: boolean; ha: boolean };
}

/** Reads and checks SHOOT_SPEC_FILE; a malformed file is a SpecInvalidError (RVPN_ERR_SPEC_INVALID). */
export function readShootSpecFile(path: string, namespace: string): { spec: VpnSpec; mode: VpnMode } {
  let parsed: ShootSpecFile;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as ShootSpecFile;
  } catch (err) {
    throw new SpecInvalidError(`SHOOT_SPEC_FILE ${path}: ${(err as Error).message}`, { cause: err });
  }
  const problems: string[] = [];
  if (!parsed || typeof parsed !== 'object' || !parsed.spec || typeof parsed.spec !== 'object') problems.push('needs "spec": the ShootVpn spec');
  if (typeof parsed?.mode?.reversed !== 'boolean' || typeof parsed?.mode?.ha !== 'boolean') problems.push('needs "mode": {"reversed": true|false, "ha": true|false}');
  else if (parsed.mode.ha && !parsed.mode.reversed) problems.push('mode: HA needs the reversed VPN');
  if (parsed?.spec?.namespace && parsed.spec.namespace !== namespace) problems.push(`spec.namespace ${parsed.spec.namespace} differs from NAMESPACE ${namespace}`);
  if (problems.length) throw new SpecInvalidError(`SHOOT_SPEC_FILE ${path}: ${problems.join('; ')}`, { details: { problems } });
  return { spec: { ...parsed.spec, namespace }, mode: { ...parsed.mode, reason: `reversed ${parsed.mode.reversed}, HA ${parsed.mode.ha} (SHOOT_SPEC_FILE)` } };
}

export interface OneShotDeps {
  logger: Logger;
  seed: KubeConfig;
  /** The shoot (SHOOT_KUBECONFIG_FILE), when given. */
  shoot?: KubeConfig;
  now?: () => Date;
  caRotationGraceMs?: number;
}

export interface ShootSetupResult {
  changed: string[];
  pruned: string[];
  certificatesIssued: boolean;
  shootSecrets: 'applied' | 'parked';
  wired: boolean;
}

const label = (o: K8sObject) => {
  o.metadata.labels = { ...(o.metadata.labels ?? {}), ...SETUP_LABELS };
  return o;
};

export async function shootSetup(cfg: OperatorConfig, deps: OneShotDeps): Promise<ShootSetupResult> {
  const namespace = cfg.namespace;
  const { spec, mode } = readShootSpecFile(cfg.shootSpecFile!, namespace);
  const seed = new Kube(deps.seed);
  const applier = new Applier(seed, cfg.fieldManager);
  const readSecret = async (name: string) => {
    const s = await seed.get<K8sObject & { metadata: { name: string } }>({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace, name } });
    return s ? { data: secretStrings(s), annotations: s.metadata.annotations ?? {} } : undefined;
  };
  const certs = await ensureCertificates(readSecret, { namespace, spec, mode }, { certValidityDays: cfg.certValidityDays, caValidityDays: cfg.caValidityDays, caRotationGraceMs: deps.caRotationGraceMs ?? cfg.caRotationGraceMs, ...(deps.now ? { now: deps.now } : {}) });
  const changed: string[] = [];
  const desired = certs.seedSecrets.map(label);
  if (!deps.shoot) {
    // for the user to copy: kubectl get secret vpn-shoot-certificates -o jsonpath='{.data.objects\.json}' | base64 -d | kubectl --kubeconfig <shoot> apply -f -
    desired.push(label(secretWithData(PARKED_SHOOT_SECRET, namespace, { 'objects.json': JSON.stringify({ apiVersion: 'v1', kind: 'List', items: certs.shootSecrets }) })));
  }
  for (const o of desired) if ((await applier.apply(o)) !== 'unchanged') changed.push(`Secret/${o.metadata.name}`);
  const pruned = await deleteStale(seed, namespace, SEED_SECRETS, new Set(desired.map((o) => o.metadata.name)));
  if (deps.shoot) {
    const shoot = new Kube(deps.shoot);
    const shootApplier = new Applier(shoot, cfg.fieldManager);
    const shootSecrets = certs.shootSecrets.map(label);
    for (const o of shootSecrets) if ((await shootApplier.apply(o)) !== 'unchanged') changed.push(`shoot:Secret/${o.metadata.name}`);
    pruned.push(...(await deleteStale(shoot, SHOOT_NAMESPACE, SHOOT_SECRETS, new Set(shootSecrets.map((o) => o.metadata.name)))).map((p) => `shoot:${p}`));
  }
  let wired = false;
  if (cfg.kubeApiserverDeployment) {
    const w = await new ApiserverWirer(seed, cfg.fieldManager, cfg.kubeApiserverDeployment).wire(spec, mode, namespace, certs);
    if (w.condition?.status === 'False') throw new ApiserverWiringError(`kube-apiserver wiring: ${w.condition.message}`);
    wired = !!w.condition;
    if (w.changed) changed.push(`Deployment/${w.deployment} (wiring)`);
  }
  const result: ShootSetupResult = { changed, pruned, certificatesIssued: certs.issued, shootSecrets: deps.shoot ? 'applied' : 'parked', wired };
  deps.logger.info({ namespace, ...result, reissued: certs.reissued, caCreated: certs.caCreated, rotating: certs.rotating, notAfter: certs.notAfter.toISOString() }, 'shoot-setup done');
  return result;
}

export async function shootTeardown(cfg: OperatorConfig, deps: OneShotDeps): Promise<{ deleted: string[]; unwired: boolean }> {
  const namespace = cfg.namespace;
  const { spec, mode } = readShootSpecFile(cfg.shootSpecFile!, namespace);
  const seed = new Kube(deps.seed);
  let unwired = false;
  if (cfg.kubeApiserverDeployment) unwired = await new ApiserverWirer(seed, cfg.fieldManager, cfg.kubeApiserverDeployment).unwire(spec, mode, namespace);
  const deleted = await deleteStale(seed, namespace, SEED_SECRETS, new Set());
  if (deps.shoot) deleted.push(...(await deleteStale(new Kube(deps.shoot), SHOOT_NAMESPACE, SHOOT_SECRETS, new Set())).map((p) => `shoot:${p}`));
  deps.logger.info({ namespace, deleted, unwired }, 'shoot-teardown done');
  return { deleted, unwired };
}
