/**
 * Every metric vpn-seed-server exports, in one place. Prefix `rvpn_seed_server_`, units in names.
 */
import { Counter, dataPathGauges, Gauge, Histogram, type OffloadSource, type Registry, type SendQueueSource } from '@rvpn/observability';

export function createSeedServerMetrics(registry: Registry, sendQueue: SendQueueSource = () => undefined, offloadActive: OffloadSource = () => false) {
  const p = 'rvpn_seed_server_';
  return {
    tunnelConnected: new Gauge({ name: `${p}tunnel_connected`, help: '1 while a shoot client session is attached', registers: [registry] }),
    sessionsTotal: new Counter({ name: `${p}tunnel_sessions_total`, help: 'Tunnel sessions established', registers: [registry] }),
    sessionEndsTotal: new Counter({ name: `${p}tunnel_session_ends_total`, help: 'Tunnel sessions ended, by reason code', labelNames: ['code'], registers: [registry] }),
    refusedTotal: new Counter({ name: `${p}tunnel_refused_total`, help: 'Tunnel connections refused, by code (a known error code or other)', labelNames: ['code'], registers: [registry] }),
    acceptErrorsTotal: new Counter({ name: `${p}accept_errors_total`, help: 'Errors of a listening socket (EMFILE: out of descriptors); the listener keeps serving', labelNames: ['listener', 'errno'], registers: [registry] }),
    descriptorsExhausted: new Gauge({ name: `${p}descriptors_exhausted`, help: '1 while the process has no file descriptor left (new connections wait in the backlog or are closed by libuv)', registers: [registry] }),
    descriptorExhaustedSecondsTotal: new Counter({ name: `${p}descriptor_exhausted_seconds_total`, help: 'Seconds (probes) the process spent without a free file descriptor', registers: [registry] }),
    pendingHandshakes: new Gauge({ name: `${p}tunnel_pending_handshakes`, help: 'Tunnel connections in their handshake right now', registers: [registry] }),
    rttSeconds: new Gauge({ name: `${p}tunnel_rtt_seconds`, help: 'Smoothed keepalive round-trip time of the attached session', registers: [registry] }),
    bytesTotal: new Gauge({ name: `${p}tunnel_bytes_total`, help: 'Tunnel payload bytes of the attached session, by direction', labelNames: ['direction'], registers: [registry] }),
    ...dataPathGauges(registry, p, sendQueue, offloadActive),
    droppedPacketsTotal: new Counter({ name: `${p}tunnel_dropped_packets_total`, help: 'Packets dropped by the data path, by reason', labelNames: ['reason'], registers: [registry] }),
    certificateNotAfter: new Gauge({ name: `${p}certificate_not_after_seconds`, help: 'Expiry (unix seconds) of each loaded certificate, by file', labelNames: ['file'], registers: [registry] }),
    tlsReloadsTotal: new Counter({ name: `${p}tls_reloads_total`, help: 'Certificate reloads from disk (renewal, CA rotation)', registers: [registry] }),
    probeSuccess: new Gauge({ name: `${p}probe_success`, help: '1 when the last data-path probe through the tunnel succeeded', registers: [registry] }),
    probeDurationSeconds: new Gauge({ name: `${p}probe_duration_seconds`, help: 'Duration of the last data-path probe', registers: [registry] }),
    proxyRequestsTotal: new Counter({ name: `${p}proxy_requests_total`, help: 'CONNECT requests on the egress proxy, by outcome', labelNames: ['outcome'], registers: [registry] }),
    proxyPending: new Gauge({ name: `${p}proxy_pending_requests`, help: 'CONNECT requests held while the tunnel reconnects', registers: [registry] }),
    proxyHoldSeconds: new Histogram({ name: `${p}proxy_hold_seconds`, help: 'Time a CONNECT waited for the tunnel before being dialed or refused', buckets: [0.001, 0.01, 0.1, 0.25, 0.5, 1, 2, 5, 10], registers: [registry] }),
  };
}

export type SeedServerMetrics = ReturnType<typeof createSeedServerMetrics>;

/** The limits in force, exported once at start so dashboards can compare usage with them. */
export function exportSeedServerLimits(registry: Registry, limits: Record<string, number>): void {
  const g = new Gauge({ name: 'rvpn_seed_server_limit', help: 'Configured limits, by name (units in the name: _bytes, _seconds, _per_second)', labelNames: ['limit'], registers: [registry] });
  for (const [limit, v] of Object.entries(limits)) g.set({ limit }, v);
}
