/**
 * The operator's control loop. With leader election (the default) every replica campaigns for the
 * Lease and only the leader runs the controllers; a replica that stops leading stops them.
 *
 * Controllers: an informer (list + watch, client-node's ListWatch cache) of every ShootVpn and one of
 * each kind it owns (label-selected by managed-by). Events become keys in a queue; one worker
 * reconciles them serially; failed keys are retried with capped exponential backoff; every key is
 * enqueued again each RESYNC from the cache (level-based). Predicates keep the operator quiet: a
 * ShootVpn update that changes neither generation, deletion state nor finalizers (e.g. our own status
 * write) is ignored; an owned object's change enqueues its ShootVpn, whose reconcile writes only what
 * differs (see applier.ts, status.ts).
 */
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { CRD_GROUP, CRD_PLURAL, CRD_VERSION } from '@rvpn/k8s-render';
import { errorCode, type OperatorConfig } from '@rvpn/config';
import { createStatusServer, type Logger, type Registry } from '@rvpn/observability';
import { Applier } from './applier.js';
import { EventRecorder } from './events.js';
import { Kube, kubeError, loadKubeConfig, statusOf } from './kube.js';
import { LeaderElector } from './leader.js';
import { createOperatorMetrics, type OperatorMetrics } from './metrics.js';
import { MANAGED_BY, MONITORING_KINDS, OWNED_KINDS, OWNER_LABEL, Reconciler, type OperatorSettings, type ShootVpnObject } from './reconcile.js';

const PLURALS: Record<string, string> = {
  Deployment: 'deployments', StatefulSet: 'statefulsets', Service: 'services', ConfigMap: 'configmaps', Secret: 'secrets',
  NetworkPolicy: 'networkpolicies', PodDisruptionBudget: 'poddisruptionbudgets', ServiceMonitor: 'servicemonitors', PrometheusRule: 'prometheusrules',
};
const collectionPath = (apiVersion: string, kind: string) => `${apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`}/${PLURALS[kind]}`;

type Watched = Informer<KubernetesObject> & ObjectCache<KubernetesObject> & { latestResourceVersion?: () => string };

export interface OperatorDeps {
  logger: Logger;
  registry: Registry;
  /** Credentials (default: KUBECONFIG, ~/.kube/config or in-cluster). */
  kubeConfig?: KubeConfig;
  /** Overrides for tests (fake clock, short CA grace). */
  settings?: Partial<OperatorSettings>;
}

/** The operator's namespace: POD_NAMESPACE, else the in-cluster ServiceAccount's, else the kubeconfig context's, else default. */
function operatorNamespace(cfg: OperatorConfig, kc: KubeConfig): string {
  if (cfg.podNamespace) return cfg.podNamespace;
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  }
}

export class Operator {
  readonly kube: Kube;
  readonly identity: string;
  readonly metrics: OperatorMetrics;
  readonly reconciler: Reconciler;
  readonly bound: { status?: number } = {};
  private readonly settings: OperatorSettings;
  private readonly elector: LeaderElector | undefined;
  private readonly events: EventRecorder;
  private status: ReturnType<typeof createStatusServer> | undefined;
  private controllers: Controllers | undefined;
  private starting: Promise<void> = Promise.resolve();

  constructor(private readonly cfg: OperatorConfig, private readonly deps: OperatorDeps) {
    const kc = deps.kubeConfig ?? loadKubeConfig();
    this.kube = new Kube(kc);
    this.identity = cfg.podName || `${hostname()}-${randomBytes(4).toString('hex')}`;
    this.metrics = createOperatorMetrics(deps.registry);
    this.settings = {
      fieldManager: cfg.fieldManager,
      featureGates: cfg.gates,
      sniProxy: { namespace: cfg.sniProxyNamespace, routesConfigMap: cfg.sniProxyRoutesConfigMap },
      monitoring: cfg.monitoring,
      certValidityDays: cfg.certValidityDays,
      caValidityDays: cfg.caValidityDays,
      caRotationGraceMs: cfg.caRotationGraceMs,
      kubeApiserverDeployment: cfg.kubeApiserverDeployment,
      ...deps.settings,
    };
    this.events = new EventRecorder(kc, { instance: this.identity, logger: deps.logger });
    const applier = new Applier(this.kube, this.settings.fieldManager, (r) => this.metrics.appliesTotal.inc({ result: r }));
    this.reconciler = new Reconciler(this.kube, this.settings, { logger: deps.logger, events: this.events, listShootVpns: async () => this.controllers?.shootVpns() ?? [] }, applier);
    if (cfg.leaderElect) {
      this.elector = new LeaderElector(kc, {
        namespace: operatorNamespace(cfg, kc), name: cfg.leaseName, identity: this.identity,
        leaseDurationMs: cfg.leaseDurationMs, renewDeadlineMs: cfg.renewDeadlineMs, retryPeriodMs: cfg.retryPeriodMs,
        logger: deps.logger,
        onStartedLeading: () => this.startControllers(),
        onStoppedLeading: () => this.stopControllers(),
        onNewLeader: (leader) => deps.logger.info({ leader, me: this.identity }, 'leader election: leader is now'),
      });
    }
  }

  /** True while this replica runs the controllers (it is the leader, or leader election is off). */
  get leading(): boolean {
    return !!this.controllers;
  }

  async start(): Promise<void> {
    this.status = createStatusServer({
      host: this.cfg.statusListen.host, port: this.cfg.statusListen.port, registry: this.deps.registry, logger: this.deps.logger,
      live: () => ({ ok: true }),
      ready: () => {
        // a standby is ready (it is campaigning); the leader once its caches are filled
        const synced = !this.controllers || this.controllers.synced();
        return { ok: synced, checks: { leader: { ok: true, detail: this.controllers ? 'leading' : `standby (leader: ${this.elector?.leader ?? 'unknown'})` }, synced: { ok: synced, detail: synced ? 'caches synced' : 'first list pending' } } };
      },
    });
    this.bound.status = (await this.status.start()).port;
    if (this.elector) this.elector.start();
    else await this.startControllers();
    this.deps.logger.info({ identity: this.identity, gates: this.settings.featureGates, leaderElection: !!this.elector }, 'operator started');
  }

  private startControllers(): Promise<void> {
    this.starting = this.starting.then(async () => {
      if (this.controllers) return;
      this.metrics.leader.set(1);
      this.controllers = new Controllers(this.kube, this.reconciler, this.cfg, this.settings, this.deps.logger, this.metrics, this.events);
      await this.controllers.start();
    });
    return this.starting;
  }

  private stopControllers(): Promise<void> {
    this.starting = this.starting.then(async () => {
      const c = this.controllers;
      this.controllers = undefined;
      this.metrics.leader.set(0);
      await c?.stop();
    });
    return this.starting;
  }

  async stop(): Promise<void> {
    if (this.elector) await this.elector.stop();
    await this.stopControllers();
    await this.status?.stop().catch(() => undefined);
  }
}

/** Informers, queue, worker and resync: what runs while leading. */
class Controllers {
  private readonly queue = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly seen = new Map<string, string>();
  private readonly informers: Watched[] = [];
  private shootVpnInformer: Watched | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private worker: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly kube: Kube,
    private readonly reconciler: Reconciler,
    private readonly cfg: OperatorConfig,
    private readonly settings: OperatorSettings,
    private readonly logger: Logger,
    private readonly metrics: OperatorMetrics,
    private readonly events: EventRecorder,
  ) {}

  shootVpns(): ShootVpnObject[] {
    return (this.shootVpnInformer?.list() ?? []) as unknown as ShootVpnObject[];
  }

  synced(): boolean {
    return this.informers.every((i) => !!i.latestResourceVersion?.());
  }

  private enqueue(key: string) {
    if (this.stopped) return;
    this.queue.add(key);
    this.metrics.queueDepth.set(this.queue.size);
    this.wake?.();
  }

  /** What of a ShootVpn makes it worth a reconcile: spec (generation), deletion, finalizers. */
  private static relevant(o: ShootVpnObject): string {
    return JSON.stringify([o.metadata.generation, !!o.metadata.deletionTimestamp, o.metadata.finalizers ?? []]);
  }

  private watch(path: string, list: () => Promise<{ items: KubernetesObject[]; metadata?: { resourceVersion?: string } }>, labelSelector: string | undefined, what: string): Watched {
    const informer = makeInformer(this.kube.kc, path, list as never, labelSelector) as Watched;
    let delay = 500;
    informer.on('connect', () => undefined);
    informer.on('error', (err: unknown) => {
      if (this.stopped) return;
      const e = kubeError(`watch ${what}`, err);
      this.logger.warn({ err: e.message, code: errorCode(e), status: statusOf(err), retryInMs: delay }, 'list/watch failed; retrying');
      const t = setTimeout(() => {
        this.retryTimers.delete(t);
        if (!this.stopped) void informer.start();
      }, delay);
      this.retryTimers.add(t);
      delay = Math.min(30_000, delay * 2);
    });
    informer.on('add', () => {
      delay = 500;
    });
    this.informers.push(informer);
    return informer;
  }

  async start(): Promise<void> {
    const group = `/apis/${CRD_GROUP}/${CRD_VERSION}/${CRD_PLURAL}`;
    const svpn = this.watch(group, () => this.kube.custom.listClusterCustomObject({ group: CRD_GROUP, version: CRD_VERSION, plural: CRD_PLURAL }), undefined, 'ShootVpns');
    this.shootVpnInformer = svpn;
    const keyOf = (o: { metadata?: { namespace?: string; name?: string } }) => `${o.metadata?.namespace}/${o.metadata?.name}`;
    svpn.on('add', (o) => {
      this.seen.set(keyOf(o), Controllers.relevant(o as ShootVpnObject));
      this.enqueue(keyOf(o));
    });
    svpn.on('update', (o) => {
      const now = Controllers.relevant(o as ShootVpnObject);
      if (this.seen.get(keyOf(o)) === now) return; // status or labels only: nothing to reconcile
      this.seen.set(keyOf(o), now);
      this.enqueue(keyOf(o));
    });
    svpn.on('delete', (o) => {
      this.seen.delete(keyOf(o));
      this.events.forget(keyOf(o));
      this.enqueue(keyOf(o));
    });
    const selector = Object.entries(MANAGED_BY).map(([k, v]) => `${k}=${v}`).join(',');
    for (const [apiVersion, kind] of [...OWNED_KINDS, ...(this.settings.monitoring ? MONITORING_KINDS : [])]) {
      const inf = this.watch(collectionPath(apiVersion, kind), () => this.kube.objects.list(apiVersion, kind, undefined, undefined, undefined, undefined, undefined, selector) as never, selector, `${kind}s`);
      const owner = (o: KubernetesObject) => {
        const name = o.metadata?.labels?.[OWNER_LABEL];
        if (name && o.metadata?.namespace) this.enqueue(`${o.metadata.namespace}/${name}`);
      };
      inf.on('add', owner);
      inf.on('update', owner);
      inf.on('delete', owner);
    }
    await Promise.all(this.informers.map((i) => i.start()));
    // sni-proxy mounts the route ConfigMap: it must exist before the first ShootVpn
    try {
      await this.reconciler.publishRoutes();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, code: errorCode(err), status: statusOf(err) }, 'could not publish the sni-proxy routes; the first reconcile retries');
    }
    this.worker = this.work();
    const resync = () => {
      this.resyncTimer = setTimeout(() => {
        for (const o of this.shootVpns()) this.enqueue(keyOf(o));
        resync();
      }, this.cfg.resyncMs);
    };
    resync();
    this.logger.info({ informers: this.informers.length }, 'controllers started');
  }

  private async work(): Promise<void> {
    while (!this.stopped) {
      const key = this.queue.values().next().value as string | undefined;
      if (!key) {
        await new Promise<void>((r) => {
          this.wake = r;
        });
        this.wake = undefined;
        continue;
      }
      this.queue.delete(key);
      this.metrics.queueDepth.set(this.queue.size);
      const [namespace, name] = key.split('/') as [string, string];
      try {
        const r = await this.reconciler.reconcile({ namespace, name });
        this.metrics.reconcilesTotal.inc({ result: r.result });
        this.failures.delete(key);
        const quiet = r.result === 'applied' && !r.changed.length && !r.pruned.length && !r.statusWritten;
        this.logger[quiet ? 'debug' : 'info']({ key, ...r }, 'reconciled');
      } catch (err) {
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        const delay = Math.min(60_000, 250 * 2 ** (n - 1));
        this.metrics.reconcilesTotal.inc({ result: 'error' });
        this.logger.warn({ key, err: (err as Error).message, code: errorCode(err), status: statusOf(err), retryInMs: delay }, 'reconcile failed; backing off');
        const cr = this.shootVpns().find((o) => o.metadata.namespace === namespace && o.metadata.name === name);
        if (cr) await this.events.record(cr, 'Warning', 'ReconcileFailed', (err as Error).message);
        const t = setTimeout(() => {
          this.retryTimers.delete(t);
          this.enqueue(key);
        }, delay);
        this.retryTimers.add(t);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.resyncTimer);
    for (const t of this.retryTimers) clearTimeout(t);
    await Promise.all(this.informers.map((i) => i.stop()));
    this.wake?.();
    await this.worker;
    this.logger.info({}, 'controllers stopped');
  }
}
