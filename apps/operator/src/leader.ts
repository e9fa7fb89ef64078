/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it (client-node
 * has none), so that two or more replicas can run and exactly one reconciles:
 *
 * - A candidate reads the Lease every `retryPeriodMs`. It takes it when nobody holds it, when the
 *   holder released it (empty holderIdentity), or when the record has not changed for
 *   `leaseDurationMs` as measured on the candidate's OWN clock since it last saw the record change
 *   (never the holder's renewTime: the clocks of two nodes need not agree).
 * - Every write is a replace with the read resourceVersion, so of two candidates racing for an expired
 *   Lease only one wins (the other gets 409 Conflict).
 * - The leader renews every `retryPeriodMs`. When it could not renew for `renewDeadlineMs` (shorter
 *   than the lease duration), it stops leading before any standby may take over.
 * - `stop()` releases the Lease (holder "", duration 1 s), so a standby takes over at its next try.
 */
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { errorCode } from '@rvpn/config';
import type { Logger } from '@rvpn/observability';
import { kubeError, statusOf } from './kube.js';

export interface LeaderElectorOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  logger: Logger;
  onStartedLeading: () => void | Promise<void>;
  onStoppedLeading: () => void | Promise<void>;
  /** Called when the observed holder changes (including to this replica). */
  onNewLeader?: (identity: string) => void;
  now?: () => number;
}

type LeaseSpec = NonNullable<V1Lease['spec']>;

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private leading = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private observed: { record: string; at: number } | undefined;
  private lastRenew = 0;
  private holder: string | undefined;

  constructor(kc: KubeConfig, private readonly o: LeaderElectorOptions) {
    this.api = kc.makeApiClient(CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The holder last seen in the Lease. */
  get leader(): string | undefined {
    return this.holder;
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  start(): void {
    this.stopped = false;
    this.loop ??= this.run();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (err) {
        const e = kubeError(`lease ${this.o.namespace}/${this.o.name}`, err);
        this.o.logger.warn({ err: e.message, code: errorCode(e), status: statusOf(e) }, 'leader election: cannot read or write the lease');
      }
      if (this.stopped) break;
      if (ok) {
        this.lastRenew = this.now();
        if (!this.leading) {
          this.leading = true;
          this.o.logger.info({ identity: this.o.identity, lease: `${this.o.namespace}/${this.o.name}` }, 'leader election: leading');
          await this.callback(this.o.onStartedLeading);
        }
      } else if (this.leading && this.now() - this.lastRenew >= this.o.renewDeadlineMs) {
        this.leading = false;
        this.o.logger.warn({ identity: this.o.identity, renewDeadlineMs: this.o.renewDeadlineMs }, 'leader election: could not renew in time; stopped leading');
        await this.callback(this.o.onStoppedLeading);
      }
      // ±10 % jitter keeps replicas that started together from trying in lockstep
      await this.sleep(this.o.retryPeriodMs * (0.9 + Math.random() * 0.2));
    }
  }

  private async callback(fn: () => void | Promise<void>) {
    try {
      await fn();
    } catch (err) {
      this.o.logger.error({ err: (err as Error).message, code: errorCode(err) }, 'leader election callback failed');
    }
  }

  private spec(previous: LeaseSpec | undefined, now: number): LeaseSpec {
    const mine = previous?.holderIdentity === this.o.identity;
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.o.leaseDurationMs / 1000)),
      acquireTime: mine && previous?.acquireTime ? previous.acquireTime : new V1MicroTime(now),
      renewTime: new V1MicroTime(now),
      leaseTransitions: (previous?.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ namespace: this.o.namespace, name: this.o.name });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      try {
        await this.api.createNamespacedLease({ namespace: this.o.namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.o.name, namespace: this.o.namespace }, spec: { ...this.spec(undefined, now), leaseTransitions: 0 } } });
      } catch (e) {
        if (statusOf(e) === 409) return false; // another candidate created it first
        throw e;
      }
      this.observe(this.o.identity);
      return true;
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, String(spec.renewTime ?? ''), spec.leaseDurationSeconds]);
    if (this.observed?.record !== record) this.observed = { record, at: now };
    this.observe(spec.holderIdentity ?? '');
    const holder = spec.holderIdentity ?? '';
    const durationMs = (spec.leaseDurationSeconds ?? 0) * 1000;
    if (holder && holder !== this.o.identity && this.observed.at + durationMs > now) return false;
    try {
      await this.api.replaceNamespacedLease({ namespace: this.o.namespace, name: this.o.name, body: { ...lease, spec: this.spec(spec, now) } });
    } catch (err) {
      if (statusOf(err) === 409) return false; // someone wrote it since we read it
      throw err;
    }
    this.observe(this.o.identity);
    return true;
  }

  private observe(holder: string) {
    if (holder !== this.holder) {
      this.holder = holder;
      if (holder) this.o.onNewLeader?.(holder);
    }
  }

  /** Stops campaigning; a leader releases the Lease and runs onStoppedLeading. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    this.loop = undefined;
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({ namespace: this.o.namespace, name: this.o.name });
      if (lease.spec?.holderIdentity === this.o.identity) {
        const now = this.now();
        await this.api.replaceNamespacedLease({ namespace: this.o.namespace, name: this.o.name, body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: new V1MicroTime(now), acquireTime: new V1MicroTime(now) } } });
        this.o.logger.info({ identity: this.o.identity }, 'leader election: released the lease');
      }
    } catch (err) {
      const e = kubeError('release lease', err);
      this.o.logger.warn({ err: e.message, code: errorCode(e), status: statusOf(e) }, 'leader election: could not release the lease (a standby takes over when it expires)');
    }
    await this.callback(this.o.onStoppedLeading);
  }
}
