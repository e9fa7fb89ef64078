/** Every metric sni-proxy exports, in one place. Prefix `rvpn_sni_proxy_`, units in names. */
import { Counter, Gauge, type Registry } from 'prom-client';

export function createSniProxyMetrics(registry: Registry) {
  const p = 'rvpn_sni_proxy_';
  return {
    connectionsTotal: new Counter({ name: `${p}connections_total`, help: 'Accepted connections, by listener', labelNames: ['listener'], registers: [registry] }),
    routedTotal: new Counter({ name: `${p}routed_total`, help: 'Connections piped to an upstream, by listener', labelNames: ['listener'], registers: [registry] }),
    refusedTotal: new Counter({ name: `${p}refused_total`, help: 'Refused connections, by listener and reason', labelNames: ['listener', 'reason'], registers: [registry] }),
    activeConnections: new Gauge({ name: `${p}active_connections`, help: 'Open downstream connections', registers: [registry] }),
    bytesTotal: new Counter({ name: `${p}bytes_total`, help: 'Bytes piped, by direction', labelNames: ['direction'], registers: [registry] }),
    routeReloadsTotal: new Counter({ name: `${p}route_reloads_total`, help: 'Route table reloads, by result', labelNames: ['result'], registers: [registry] }),
    routes: new Gauge({ name: `${p}routes`, help: 'Routes in the active table, by kind', labelNames: ['kind'], registers: [registry] }),
  };
}

export type SniProxyMetrics = ReturnType<typeof createSniProxyMetrics>;
