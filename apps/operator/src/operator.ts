/**
 * The operator's control loop: list every ShootVpn and reconcile it, watch for changes from the list's
 * resourceVersion (a 410 Gone or any end of the watch means: list again), resync everything every
 * RESYNC, and retry failed keys with capped exponential backoff. One worker: reconciles are serialized.
 */
import { CRD_GROUP, CRD_KIND, CRD_VERSION } from '@rvpn/k8s-render';
import { errorCode, type OperatorConfig } from '@rvpn/config';
import { createStatusServer, type Logger } from '@rvpn/observability';
import { Counter, type Registry } from 'prom-client';
import { KubeClient, resourcePath, type WatchEvent } from './kube.js';
import { publishRoutes, reconcile, type OperatorSettings, type ShootVpnObject } from './reconcile.js';

const API_VERSION = `${CRD_GROUP}/${CRD_VERSION}`;

export class Operator {
  private readonly client: KubeClient;
  private readonly settings: OperatorSettings;
  private readonly queue = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;
  private loops: Promise<void>[] = [];
  private status: ReturnType<typeof createStatusServer> | undefined;
  private synced = false;
  private readonly reconciles: Counter;
  readonly bound: { status?: number } = {};

  constructor(private readonly cfg: OperatorConfig, private readonly deps: { logger: Logger; registry: Registry; client?: KubeClient }) {
    this.client = deps.client ?? (cfg.kubeApiServer ? new KubeClient({ server: cfg.kubeApiServer }) : KubeClient.inCluster());
    this.settings = {
      fieldManager: cfg.fieldManager,
      featureGates: cfg.gates,
      sniProxy: { namespace: cfg.sniProxyNamespace, routesConfigMap: cfg.sniProxyRoutesConfigMap },
      monitoring: cfg.monitoring,
      certValidityDays: cfg.certValidityDays,
      caValidityDays: cfg.caValidityDays,
    };
    this.reconciles = new Counter({ name: 'rvpn_operator_reconciles_total', help: 'Reconciles by result', labelNames: ['result'], registers: [deps.registry] });
  }

  private enqueue(key: string) {
    this.queue.add(key);
    this.wake?.();
  }

  async start(): Promise<void> {
    this.status = createStatusServer({
      host: this.cfg.statusListen.host, port: this.cfg.statusListen.port, registry: this.deps.registry, logger: this.deps.logger,
      live: () => ({ ok: true }),
      ready: () => ({ ok: this.synced, checks: { synced: { ok: this.synced, detail: this.synced ? 'listed and watching ShootVpns' : 'first list pending' } } }),
    });
    this.bound.status = (await this.status.start()).port;
    this.loops = [this.listWatch(), this.worker(), this.resync()];
    this.deps.logger.info({ gates: this.settings.featureGates }, 'operator started');
  }

  private async listWatch(): Promise<void> {
    const signal = this.abort.signal;
    const path = resourcePath(API_VERSION, CRD_KIND);
    while (!signal.aborted) {
      try {
        const { items, resourceVersion } = await this.client.list<ShootVpnObject>(path);
        for (const cr of items) this.enqueue(`${cr.metadata.namespace}/${cr.metadata.name}`);
        // sni-proxy mounts the route ConfigMap: it must exist even before the first ShootVpn
        if (items.length === 0) await publishRoutes(this.client, this.settings);
        this.synced = true;
        let gone = false;
        await this.client.watch(path, resourceVersion, (e: WatchEvent) => {
          if (e.type === 'ERROR') {
            gone = true; // 410 Gone: our version is too old; list again
            return;
          }
          this.enqueue(`${e.object.metadata.namespace}/${e.object.metadata.name}`);
        }, signal);
        if (gone) this.deps.logger.info({}, 'watch expired (410); listing again');
      } catch (err) {
        this.deps.logger.warn({ err: (err as Error).message, code: errorCode(err) }, 'list/watch failed; retrying');
        await this.sleep(1000);
      }
    }
  }

  private async resync(): Promise<void> {
    while (!this.abort.signal.aborted) {
      await this.sleep(this.cfg.resyncMs);
      try {
        const { items } = await this.client.list<ShootVpnObject>(resourcePath(API_VERSION, CRD_KIND));
        for (const cr of items) this.enqueue(`${cr.metadata.namespace}/${cr.metadata.name}`);
      } catch {
        /* the list/watch loop reports API trouble */
      }
    }
  }

  private async worker(): Promise<void> {
    while (!this.abort.signal.aborted) {
      const key = this.queue.values().next().value as string | undefined;
      if (!key) {
        await new Promise<void>((r) => {
          this.wake = r;
          this.abort.signal.addEventListener('abort', () => r(), { once: true });
        });
        this.wake = undefined;
        continue;
      }
      this.queue.delete(key);
      const [namespace, name] = key.split('/') as [string, string];
      try {
        const r = await reconcile(this.client, { namespace, name }, this.settings);
        this.reconciles.inc({ result: r.result });
        this.failures.delete(key);
        this.deps.logger.info({ key, ...r }, 'reconciled');
      } catch (err) {
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        const delay = Math.min(60_000, 250 * 2 ** (n - 1));
        this.reconciles.inc({ result: 'error' });
        this.deps.logger.warn({ key, err: (err as Error).message, code: errorCode(err), retryInMs: delay }, 'reconcile failed; backing off');
        setTimeout(() => this.enqueue(key), delay).unref();
      }
    }
  }

  private sleep(ms: number) {
    return new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      t.unref();
      this.abort.signal.addEventListener('abort', () => {
        clearTimeout(t);
        r();
      }, { once: true });
    });
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all(this.loops);
    await this.status?.stop().catch(() => undefined);
  }
}
