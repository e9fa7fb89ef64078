/** Every metric sni-proxy exports, in one place. Prefix `rvpn_sni_proxy_`, units in names. */
import { Counter, Gauge, type Registry } from '@rvpn/observability';

/** `relayBytes`: bytes the native relays copied so far (the stream pipes count per chunk instead). */
export function createSniProxyMetrics(registry: Registry, relayBytes?: () => { upstream: number; downstream: number }) {
  let reported = { upstream: 0, downstream: 0 };
  const p = 'rvpn_sni_proxy_';
  return {
    connectionsTotal: new Counter({ name: `${p}connections_total`, help: 'Accepted connections, by listener', labelNames: ['listener'], registers: [registry] }),
    routedTotal: new Counter({ name: `${p}routed_total`, help: 'Connections piped to an upstream, by listener', labelNames: ['listener'], registers: [registry] }),
    refusedTotal: new Counter({
      name: `${p}refused_total`,
      help: 'Refused connections, by listener and reason (max_connections, per_source, per_route, pending, pending_per_source, timeout, not_tls, unknown_sni, no_sni, …)',
      labelNames: ['listener', 'reason'],
      registers: [registry],
    }),
    acceptErrorsTotal: new Counter({ name: `${p}accept_errors_total`, help: 'Failed accepts of a listener (EMFILE: out of file descriptors), by listener and code; the listener keeps listening', labelNames: ['listener', 'code'], registers: [registry] }),
    descriptorsExhausted: new Gauge({ name: `${p}file_descriptors_exhausted`, help: '1 while the process is out of file descriptors (EMFILE/ENFILE): no new connection is accepted', registers: [registry] }),
    descriptorExhaustedSecondsTotal: new Counter({ name: `${p}file_descriptors_exhausted_seconds_total`, help: 'Seconds spent out of file descriptors (probed once a second)', registers: [registry] }),
    activeConnections: new Gauge({ name: `${p}active_connections`, help: 'Open client connections across all listeners', registers: [registry] }),
    pendingConnections: new Gauge({ name: `${p}pending_connections`, help: 'Client connections whose route is not known yet (PROXY header, request head or ClientHello in progress)', registers: [registry] }),
    sources: new Gauge({ name: `${p}sources`, help: 'Sources (IPv4 addresses, IPv6 /64s) with open connections', registers: [registry] }),
    connectionLimit: new Gauge({
      name: `${p}connection_limit_connections`,
      help: 'Configured caps: total (MAX_CONNECTIONS), per_source, per_route, pending, pending_per_source',
      labelNames: ['limit'],
      registers: [registry],
    }),
    headerTimeoutSeconds: new Gauge({ name: `${p}header_timeout_seconds`, help: 'Time a client has from connecting until its route is known (HEADER_TIMEOUT)', registers: [registry] }),
    bytesTotal: new Counter({
      name: `${p}bytes_total`,
      help: 'Bytes piped, by direction (upstream: from clients; downstream: to them)',
      labelNames: ['direction'],
      registers: [registry],
      // the native relays are read at each scrape rather than counted per chunk
      collect() {
        if (!relayBytes) return;
        const now = relayBytes();
        for (const d of ['upstream', 'downstream'] as const) if (now[d] > reported[d]) this.inc({ direction: d }, now[d] - reported[d]);
        reported = now;
      },
    }),
    relayEndsTotal: new Counter({ name: `${p}relay_ends_total`, help: 'Native relays that ended, by reason: closed (both sides ended), error (a reset or failed write), idle (IDLE_TIMEOUT), stopped (shutdown)', labelNames: ['reason'], registers: [registry] }),
    relayFallbacksTotal: new Counter({ name: `${p}relay_fallbacks_total`, help: 'Connections piped through Node streams because the native relay could not take them (RELAY_MODE=native)', registers: [registry] }),
    routeReloadsTotal: new Counter({ name: `${p}route_reloads_total`, help: 'Route table reloads, by result', labelNames: ['result'], registers: [registry] }),
    upstreamLookupsTotal: new Counter({ name: `${p}upstream_lookups_total`, help: 'Lookups of upstream names, by result and cause: routes (a table loaded), refresh (older than the TTL, once per TTL and name), retry (an unresolved name, in the background), connection (a connection waited: after a failed dial or for an unresolved name, at most once per second and name)', labelNames: ['result', 'cause'], registers: [registry] }),
    upstreamsUnresolved: new Gauge({ name: `${p}upstreams_unresolved`, help: 'Upstream names of the route table without an address (their connections get 502 until a retry resolves them)', registers: [registry] }),
    routes: new Gauge({ name: `${p}routes`, help: 'Routes in the active table, by kind', labelNames: ['kind'], registers: [registry] }),
  };
}

export type SniProxyMetrics = ReturnType<typeof createSniProxyMetrics>;
