/**
 * Events on ShootVpns (events.k8s.io/v1), the way `kubectl describe shootvpn` shows them. They are
 * recorded for what happened — objects applied or pruned, certificates issued, a CA rotated, a spec
 * rejected, a failure — never for a reconcile that changed nothing, so an idle operator creates none.
 * A repeated identical warning is recorded once per `repeatAfterMs` (10 min). Recording is best
 * effort: a failure is logged (with its HTTP status), never fails the reconcile.
 */
import { EventsV1Api, V1MicroTime, type KubeConfig } from '@kubernetes/client-node';
import { errorCode } from '@rvpn/config';
import type { Logger } from '@rvpn/observability';
import { randomBytes } from 'node:crypto';
import { kubeError, statusOf } from './kube.js';

export const REPORTING_CONTROLLER = 'vpn.reversed-vpn.dev/operator';

export interface Regarding {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export interface EventRecorderOptions {
  /** This replica (POD_NAME). */
  instance: string;
  logger: Logger;
  repeatAfterMs?: number;
  now?: () => Date;
}

export class EventRecorder {
  private readonly api: EventsV1Api;
  private readonly lastWarning = new Map<string, { text: string; at: number }>();

  constructor(kc: KubeConfig, private readonly opts: EventRecorderOptions) {
    this.api = kc.makeApiClient(EventsV1Api);
  }

  async record(regarding: Regarding, type: 'Normal' | 'Warning', reason: string, note: string, action = 'Reconcile'): Promise<void> {
    const now = this.opts.now?.() ?? new Date();
    const key = `${regarding.metadata.namespace}/${regarding.metadata.name}`;
    if (type === 'Warning') {
      const last = this.lastWarning.get(key);
      if (last && last.text === `${reason}:${note}` && now.getTime() - last.at < (this.opts.repeatAfterMs ?? 600_000)) return;
      this.lastWarning.set(key, { text: `${reason}:${note}`, at: now.getTime() });
    } else this.lastWarning.delete(key);
    const namespace = regarding.metadata.namespace ?? 'default';
    try {
      await this.api.createNamespacedEvent({
        namespace,
        body: {
          apiVersion: 'events.k8s.io/v1', kind: 'Event',
          metadata: { name: `${regarding.metadata.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`, namespace },
          eventTime: new V1MicroTime(now.getTime()),
          reportingController: REPORTING_CONTROLLER,
          reportingInstance: this.opts.instance.slice(0, 128),
          action, reason, type,
          note: note.slice(0, 1024),
          regarding: { apiVersion: regarding.apiVersion, kind: regarding.kind, name: regarding.metadata.name, namespace, ...(regarding.metadata.uid ? { uid: regarding.metadata.uid } : {}) },
        },
      });
    } catch (err) {
      const e = kubeError(`record event ${reason} on ${key}`, err);
      this.opts.logger.warn({ err: e.message, code: errorCode(e), status: statusOf(e), reason }, 'could not record an event');
    }
  }

  /** Forget a ShootVpn (it is gone). */
  forget(key: string): void {
    this.lastWarning.delete(key);
  }
}
