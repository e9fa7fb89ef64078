/**
 * Reconcile(key) for one ShootVpn, level-based: it reads the ShootVpn and what exists, and converges;
 * it never acts on a watch event's payload (controller-runtime's Reconciler).
 *
 * 1. Gone (deleted without our finalizer): prune what it owned in the seed, republish routes.
 * 2. Being deleted with our finalizer `vpn.reversed-vpn.dev/cleanup`: delete the shoot-side objects in
 *    the shoot (when shootAccess is set), unwire the kube-apiserver, prune every seed object it owns,
 *    republish sni-proxy's routes without this shoot, then remove the finalizer.
 * 3. Otherwise: add the finalizer if missing; render (a spec that cannot be rendered is a terminal
 *    condition, no retry until the spec changes); ensure certificates; server-side apply every object
 *    (skipped when the applied hash is unchanged); apply the shoot side into the shoot via
 *    spec.shootAccess, or park it in Secret vpn-shoot-resources; prune what is no longer rendered;
 *    wire the kube-apiserver; publish routes; write status only if it changed; record Events for what
 *    happened.
 */
import {
  CRD_GROUP, CRD_KIND, CRD_VERSION, SHOOT_NAMESPACE, VPN_SHOOT, VPN_SHOOT_COMPONENT, objectLabels, SpecInvalidError, renderMonitoring, renderSeed, renderShoot, renderSniProxyRoutesConfigMap,
  resolveVpnMode, sniProxyRoutes, type K8sObject, type VpnMode, type VpnSpec,
} from '@rvpn/k8s-render';
import type { Logger } from '@rvpn/observability';
import { Applier, stableJson, type ApplyResult } from './applier.js';
import { ensureCertificates, secretStrings, secretWithData, type CertificateSettings, type SecretRead } from './certificates.js';
import type { EventRecorder } from './events.js';
import { Kube, kubeError, type LiveObject } from './kube.js';
import { ShootAccessProblem, ShootClients, type ShootAccess } from './shoot-access.js';
import { networksOutcome, type NetworksOutcome } from './networks.js';
import { nextStatus, statusPatch, type ConditionInput, type ShootVpnStatus } from './status.js';
import { ApiserverWirer, type WiringOutcome } from './wiring.js';

export const FINALIZER = 'vpn.reversed-vpn.dev/cleanup';
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'reversed-vpn-operator' };
export const OWNER_LABEL = 'vpn.reversed-vpn.dev/shootvpn';
export const API_VERSION = `${CRD_GROUP}/${CRD_VERSION}`;
export const PARKED_SHOOT_SECRET = 'vpn-shoot-resources';

/** Kinds the operator may create in a control-plane namespace (and so prunes). */
export const OWNED_KINDS: Array<[string, string]> = [
  ['apps/v1', 'Deployment'], ['apps/v1', 'StatefulSet'], ['v1', 'Service'], ['v1', 'ConfigMap'], ['v1', 'Secret'],
  ['networking.k8s.io/v1', 'NetworkPolicy'], ['policy/v1', 'PodDisruptionBudget'],
];
export const MONITORING_KINDS: Array<[string, string]> = [['monitoring.coreos.com/v1', 'ServiceMonitor'], ['monitoring.coreos.com/v1', 'PrometheusRule']];
/** Kinds of the shoot side (kube-system of the shoot). */
export const SHOOT_KINDS: Array<[string, string]> = [
  ['v1', 'ServiceAccount'], ['apps/v1', 'Deployment'], ['apps/v1', 'StatefulSet'], ['v1', 'Service'], ['v1', 'Secret'],
  ['networking.k8s.io/v1', 'NetworkPolicy'], ['policy/v1', 'PodDisruptionBudget'],
];

export interface OperatorSettings extends CertificateSettings {
  fieldManager: string;
  featureGates: { ReversedVPN: boolean };
  sniProxy: { namespace: string; routesConfigMap: string };
  monitoring: boolean;
  /** The shoot kube-apiserver's Deployment in each control-plane namespace ('' : do not wire). */
  kubeApiserverDeployment?: string;
}

export interface ShootVpnSpec extends VpnSpec {
  shootAccess?: ShootAccess;
}

export interface ShootVpnObject extends LiveObject {
  spec: ShootVpnSpec;
  status?: ShootVpnStatus;
}

export type ReconcileResult =
  | { result: 'applied'; changed: string[]; pruned: string[]; certificatesIssued: boolean; statusWritten: boolean }
  | { result: 'invalid'; reason: string; statusWritten: boolean }
  | { result: 'cleaned-up'; pruned: string[] }
  | { result: 'gone'; pruned: string[] }
  | { result: 'waiting'; reason: string };

export interface ReconcilerDeps {
  logger: Logger;
  events?: EventRecorder;
  /** Every ShootVpn of the seed (the informer cache in the controller; a LIST in tests). */
  listShootVpns: () => Promise<ShootVpnObject[]>;
}

/** The spec with the CRD's optional fields filled in as the render functions expect them. */
const normalized = (spec: ShootVpnSpec): ShootVpnSpec => ({ ...spec, annotations: spec.annotations ?? {} });

export const ownerLabels = (name: string) => ({ ...MANAGED_BY, [OWNER_LABEL]: name });
const selectorOf = (labels: Record<string, string>) => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
const id = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
const ref = (key: { namespace: string; name: string }) => ({ apiVersion: API_VERSION, kind: CRD_KIND, metadata: key });

export class Reconciler {
  readonly applier: Applier;
  private readonly shoots: ShootClients;
  private readonly wirer: ApiserverWirer;

  constructor(private readonly kube: Kube, private readonly s: OperatorSettings, private readonly deps: ReconcilerDeps, applier?: Applier) {
    this.applier = applier ?? new Applier(kube, s.fieldManager);
    this.shoots = new ShootClients(kube, s.fieldManager);
    this.wirer = new ApiserverWirer(kube, s.fieldManager, s.kubeApiserverDeployment ?? 'kube-apiserver');
  }

  private now() {
    return this.s.now?.() ?? new Date();
  }

  private get seedKinds() {
    return [...OWNED_KINDS, ...(this.s.monitoring ? MONITORING_KINDS : [])];
  }

  async reconcile(key: { namespace: string; name: string }): Promise<ReconcileResult> {
    const cr = await this.kube.get<ShootVpnObject>(ref(key));
    if (!cr) {
      const pruned = await this.applier.prune({ namespace: key.namespace, labelSelector: selectorOf(ownerLabels(key.name)), kinds: this.seedKinds, keep: new Set() });
      await this.publishRoutes();
      this.shoots.forget(key.namespace, key.name);
      return { result: 'gone', pruned };
    }
    if (cr.metadata.deletionTimestamp) {
      if (!cr.metadata.finalizers?.includes(FINALIZER)) return { result: 'waiting', reason: 'deleting; not our finalizer' };
      return this.cleanup(cr);
    }
    if (!cr.metadata.finalizers?.includes(FINALIZER)) await this.addFinalizer(cr);

    const spec = normalized(cr.spec);
    const generation = cr.metadata.generation;
    const meta = { instance: cr.metadata.name, managedBy: MANAGED_BY['app.kubernetes.io/managed-by'] };
    let mode: VpnMode;
    let seedObjects: K8sObject[];
    let networks: NetworksOutcome;
    try {
      if (spec.namespace !== key.namespace) throw new SpecInvalidError(`spec.namespace ${spec.namespace} differs from the resource's namespace ${key.namespace}`);
      mode = resolveVpnMode(spec, { featureGates: this.s.featureGates });
      seedObjects = renderSeed(spec, mode, { featureGates: this.s.featureGates, sniProxy: { namespace: this.s.sniProxy.namespace, podLabels: { 'app.kubernetes.io/name': 'sni-proxy' } } }, meta);
      networks = networksOutcome(spec);
    } catch (err) {
      if (!SpecInvalidError.is(err)) throw err;
      const message = (err as Error).message;
      const statusWritten = await this.writeStatus(cr, { generation, conditions: [{ type: 'Ready', status: 'False', reason: 'SpecInvalid', message }] });
      if (statusWritten) await this.deps.events?.record(cr, 'Warning', 'SpecInvalid', message);
      await this.publishRoutes(); // an invalid spec publishes no route
      return { result: 'invalid', reason: message, statusWritten };
    }
    if (networks.invalid) {
      // the apps would refuse these networks at start: a terminal condition, like an invalid spec
      const c = networks.condition;
      const statusWritten = await this.writeStatus(cr, {
        generation,
        fields: { reversed: mode.reversed, ha: mode.ha, networkMapping: networks.networkMapping },
        conditions: [{ type: 'Ready', status: 'False', reason: 'NetworksInvalid', message: c.message }, c],
      });
      if (statusWritten) await this.deps.events?.record(cr, 'Warning', c.reason, c.message);
      await this.publishRoutes();
      return { result: 'invalid', reason: c.message, statusWritten };
    }

    const certs = await ensureCertificates((name) => this.readSecret(key.namespace, name), { namespace: key.namespace, spec, mode, meta }, this.s);
    const labels = ownerLabels(cr.metadata.name);
    const shootObjects = [...renderShoot(spec, mode, meta), ...certs.shootSecrets].map((o) => this.label(o, labels));
    const desired: K8sObject[] = [
      ...seedObjects,
      ...(this.s.monitoring ? renderMonitoring(spec, mode, {}, meta) : []),
      ...certs.seedSecrets,
      ...(spec.shootAccess ? [] : [secretWithData(PARKED_SHOOT_SECRET, key.namespace, { 'objects.json': JSON.stringify({ apiVersion: 'v1', kind: 'List', items: shootObjects }) }, { labels: objectLabels(VPN_SHOOT, VPN_SHOOT_COMPONENT, meta) })]),
    ];
    const ownerRef = { apiVersion: API_VERSION, kind: CRD_KIND, name: cr.metadata.name, uid: cr.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
    const changed: string[] = [];
    for (const o of desired) {
      this.label(o, labels);
      (o.metadata as Record<string, unknown>).ownerReferences = [ownerRef];
      if ((await this.applier.apply(o)) !== 'unchanged') changed.push(id(o));
    }

    // the shoot side: into the shoot, or parked above
    let shootCondition: ConditionInput | undefined;
    let shootError: unknown;
    if (spec.shootAccess) {
      try {
        const shoot = await this.shoots.get(key.namespace, cr.metadata.name, spec.shootAccess);
        const shootChanged: string[] = [];
        for (const o of shootObjects) if ((await shoot.applier.apply(o)) !== 'unchanged') shootChanged.push(`shoot:${id(o)}`);
        const shootPruned = await shoot.applier.prune({ namespace: SHOOT_NAMESPACE, labelSelector: selectorOf(labels), kinds: SHOOT_KINDS, keep: new Set(shootObjects.map(id)) });
        changed.push(...shootChanged, ...shootPruned.map((p) => `shoot:-${p}`));
        shootCondition = { type: 'ShootApplied', status: 'True', reason: 'Applied', message: `${shootObjects.length} objects applied in the shoot's ${SHOOT_NAMESPACE}` };
      } catch (err) {
        shootError = err instanceof ShootAccessProblem ? err : kubeError('apply the shoot side', err);
        const reason = err instanceof ShootAccessProblem ? err.reason : 'ShootUnreachable';
        shootCondition = { type: 'ShootApplied', status: 'False', reason, message: (shootError as Error).message };
      }
    }

    const pruned = await this.applier.prune({ namespace: key.namespace, labelSelector: selectorOf(labels), kinds: this.seedKinds, keep: new Set(desired.map(id)) });
    const wiring = await this.wirer.wire(spec, mode, key.namespace, certs);
    const routes = await this.publishRoutes();

    const workload = await this.kube.get<LiveObject & { status?: { readyReplicas?: number; replicas?: number; observedGeneration?: number } }>({ apiVersion: 'apps/v1', kind: mode.ha ? 'StatefulSet' : 'Deployment', metadata: { namespace: key.namespace, name: 'vpn-seed-server' } });
    const st = workload?.status;
    const reported = st && (st.observedGeneration !== undefined || st.replicas !== undefined || st.readyReplicas !== undefined);
    const ready = (st?.readyReplicas ?? 0) > 0;
    const conditions: ConditionInput[] = [
      { type: 'Ready', status: 'True', reason: 'Applied', message: `${desired.length} objects applied in the seed; ${mode.reason}` },
      reported
        ? { type: 'TunnelConnected', status: ready ? 'True' : 'False', reason: ready ? 'ServerReady' : 'ServerNotReady', message: ready ? 'a vpn-seed-server is ready (its readiness probes the data path)' : 'no ready vpn-seed-server' }
        : { type: 'TunnelConnected', status: 'Unknown', reason: 'NoServerStatus', message: 'vpn-seed-server reports no status yet' },
      { type: 'CertificatesValid', status: 'True', reason: certs.rotating ? 'CARotating' : 'Valid', message: `leaf certificates expire ${certs.notAfter.toISOString()}; renewed at 80 % of their validity${certs.rotating ? '; the previous CA is still trusted during the rotation' : ''}` },
      ...(wiring.condition ? [wiring.condition] : []),
      ...(shootCondition ? [shootCondition] : []),
      networks.condition,
    ];
    const mappingChanged = stableJson(cr.status?.networkMapping ?? null) !== stableJson(networks.networkMapping ?? null);
    const statusWritten = await this.writeStatus(cr, {
      generation,
      fields: { reversed: mode.reversed, ha: mode.ha, networkMapping: networks.networkMapping },
      conditions,
      drop: [...(shootCondition ? [] : ['ShootApplied' as const]), ...(wiring.condition ? [] : ['ApiserverWired' as const])],
    });

    if (wiring.changed) changed.push(`Deployment/${wiring.deployment} (wiring)`);
    if (routes !== 'unchanged') changed.push(`ConfigMap/${this.s.sniProxy.namespace}/${this.s.sniProxy.routesConfigMap}`);
    if (certs.caCreated && certs.rotating) await this.deps.events?.record(cr, 'Normal', 'CARotated', 'a new CA was made at 80 % of the old one\'s validity; both are trusted during the grace period');
    if (mappingChanged && networks.condition.reason === 'Mapped') await this.deps.events?.record(cr, 'Normal', 'NetworksMapped', networks.condition.message);
    if (certs.issued) await this.deps.events?.record(cr, 'Normal', 'CertificatesIssued', `leaf certificates issued, valid until ${certs.notAfter.toISOString()}`);
    if (changed.length || pruned.length) await this.deps.events?.record(cr, 'Normal', 'Applied', [changed.length ? `applied ${changed.join(', ')}` : '', pruned.length ? `pruned ${pruned.join(', ')}` : ''].filter(Boolean).join('; '));
    if (shootError) {
      await this.deps.events?.record(cr, 'Warning', shootCondition!.reason, shootCondition!.message);
      throw shootError; // status says why; the controller retries with backoff
    }
    return { result: 'applied', changed, pruned, certificatesIssued: certs.issued, statusWritten };
  }

  private label(o: K8sObject, labels: Record<string, string>): K8sObject {
    o.metadata.labels = { ...(o.metadata.labels ?? {}), ...labels };
    return o;
  }

  private async readSecret(namespace: string, name: string): Promise<SecretRead | undefined> {
    const s = await this.kube.get<LiveObject & { data?: Record<string, string> }>({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace, name } });
    return s ? { data: secretStrings(s), annotations: s.metadata.annotations ?? {} } : undefined;
  }

  private async writeStatus(cr: ShootVpnObject, update: Parameters<typeof nextStatus>[1]): Promise<boolean> {
    const next = nextStatus(cr.status, update, this.now());
    const patch = statusPatch(cr.status, next);
    if (!patch) return false;
    await this.kube.patchShootVpnStatus({ namespace: cr.metadata.namespace!, name: cr.metadata.name }, patch);
    return true;
  }

  private async addFinalizer(cr: ShootVpnObject) {
    const key = { namespace: cr.metadata.namespace!, name: cr.metadata.name };
    const guard = { op: 'test', path: '/metadata/resourceVersion', value: cr.metadata.resourceVersion };
    await this.kube.jsonPatchShootVpn(key, cr.metadata.finalizers?.length
      ? [guard, { op: 'add', path: '/metadata/finalizers/-', value: FINALIZER }]
      : [guard, { op: 'add', path: '/metadata/finalizers', value: [FINALIZER] }]);
  }

  private async removeFinalizer(cr: ShootVpnObject) {
    const i = cr.metadata.finalizers?.indexOf(FINALIZER) ?? -1;
    if (i < 0) return;
    await this.kube.jsonPatchShootVpn({ namespace: cr.metadata.namespace!, name: cr.metadata.name }, [
      { op: 'test', path: `/metadata/finalizers/${i}`, value: FINALIZER },
      { op: 'remove', path: `/metadata/finalizers/${i}` },
    ]);
  }

  /** The finalizer's work: shoot side, apiserver wiring, seed objects, routes; then let go. */
  private async cleanup(cr: ShootVpnObject): Promise<ReconcileResult> {
    const namespace = cr.metadata.namespace!;
    const labels = ownerLabels(cr.metadata.name);
    const pruned: string[] = [];
    if (cr.spec.shootAccess) {
      try {
        const shoot = await this.shoots.get(namespace, cr.metadata.name, cr.spec.shootAccess);
        pruned.push(...(await shoot.applier.prune({ namespace: SHOOT_NAMESPACE, labelSelector: selectorOf(labels), kinds: SHOOT_KINDS, keep: new Set() })).map((p) => `shoot:${p}`));
      } catch (err) {
        // without its kubeconfig (e.g. the namespace is being deleted and took the Secret first) the shoot
        // side cannot be reached: leave it rather than block the deletion forever; an unreachable shoot is retried
        if (!(err instanceof ShootAccessProblem) || err.reason === 'ShootUnreachable') throw err instanceof ShootAccessProblem ? err : kubeError('delete the shoot side', err);
        await this.deps.events?.record(cr, 'Warning', 'ShootSideLeft', `the shoot side was not deleted: ${err.message}`, 'Cleanup');
      }
    }
    let mode: VpnMode;
    try {
      mode = resolveVpnMode(normalized(cr.spec), { featureGates: this.s.featureGates });
    } catch {
      // the spec turned invalid after it was wired: unwiring takes out what either mode adds, by name
      mode = { reversed: true, ha: false, reason: 'spec invalid' };
    }
    if (await this.wirer.unwire(normalized(cr.spec), mode, namespace)) pruned.push('kube-apiserver wiring');
    pruned.push(...(await this.applier.prune({ namespace, labelSelector: selectorOf(labels), kinds: this.seedKinds, keep: new Set() })));
    await this.publishRoutes();
    await this.deps.events?.record(cr, 'Normal', 'CleanedUp', pruned.length ? `deleted ${pruned.join(', ')}` : 'nothing to delete', 'Cleanup');
    await this.removeFinalizer(cr);
    this.shoots.forget(namespace, cr.metadata.name);
    return { result: 'cleaned-up', pruned };
  }

  /** sni-proxy's route ConfigMap from every valid reversed ShootVpn not being deleted (also when there is none: sni-proxy mounts it). */
  async publishRoutes(): Promise<ApplyResult> {
    const routes: Record<string, string> = {};
    for (const cr of await this.deps.listShootVpns()) {
      if (cr.metadata.deletionTimestamp) continue;
      try {
        const spec = normalized(cr.spec);
        if (spec.namespace !== cr.metadata.namespace) continue;
        const mode = resolveVpnMode(spec, { featureGates: this.s.featureGates });
        if (networksOutcome(spec).invalid) continue;
        Object.assign(routes, sniProxyRoutes(spec, mode));
      } catch {
        /* an invalid spec publishes no route; its own reconcile reports why */
      }
    }
    const cm = renderSniProxyRoutesConfigMap(routes, this.s.sniProxy.namespace, this.s.sniProxy.routesConfigMap, {}, { managedBy: MANAGED_BY['app.kubernetes.io/managed-by'] });
    this.label(cm, MANAGED_BY);
    return this.applier.apply(cm);
  }
}

export type { WiringOutcome };
