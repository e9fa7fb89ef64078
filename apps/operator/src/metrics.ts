/** Every metric the operator exports, in one place. Prefix `rvpn_operator_`. */
import { Counter, Gauge, type Registry } from '@rvpn/observability';

export function createOperatorMetrics(registry: Registry) {
  const p = 'rvpn_operator_';
  return {
    reconcilesTotal: new Counter({ name: `${p}reconciles_total`, help: 'Reconciles by result (applied, invalid, cleaned-up, gone, waiting, error)', labelNames: ['result'], registers: [registry] }),
    appliesTotal: new Counter({ name: `${p}applies_total`, help: 'Objects considered for server-side apply, by result (created, updated, unchanged: nothing sent)', labelNames: ['result'], registers: [registry] }),
    leader: new Gauge({ name: `${p}leader`, help: '1 while this replica holds the leader Lease and reconciles', registers: [registry] }),
    queueDepth: new Gauge({ name: `${p}queue_depth`, help: 'ShootVpn keys waiting for a reconcile', registers: [registry] }),
  };
}

export type OperatorMetrics = ReturnType<typeof createOperatorMetrics>;
