/**
 * Every metric vpn-shoot exports, in one place. Prefix `rvpn_vpn_shoot_`, units in names.
 */
import { Counter, dataPathGauges, Gauge, type OffloadSource, type Registry, type SendQueueSource } from '@rvpn/observability';

export function createShootMetrics(registry: Registry, sendQueue: SendQueueSource = () => undefined, offloadActive: OffloadSource = () => false) {
  const p = 'rvpn_vpn_shoot_';
  return {
    tunnelConnected: new Gauge({ name: `${p}tunnel_connected`, help: '1 while the tunnel session to the seed is up', registers: [registry] }),
    sessionsTotal: new Counter({ name: `${p}tunnel_sessions_total`, help: 'Tunnel sessions established', registers: [registry] }),
    sessionEndsTotal: new Counter({ name: `${p}tunnel_session_ends_total`, help: 'Tunnel sessions ended, by reason code', labelNames: ['code'], registers: [registry] }),
    dialFailuresTotal: new Counter({ name: `${p}tunnel_dial_failures_total`, help: 'Failed dial attempts, by error code', labelNames: ['code'], registers: [registry] }),
    rttSeconds: new Gauge({ name: `${p}tunnel_rtt_seconds`, help: 'Smoothed keepalive round-trip time', registers: [registry] }),
    ...dataPathGauges(registry, p, sendQueue, offloadActive),
    droppedPacketsTotal: new Counter({ name: `${p}tunnel_dropped_packets_total`, help: 'Packets dropped by the data path, by reason', labelNames: ['reason'], registers: [registry] }),
  };
}
