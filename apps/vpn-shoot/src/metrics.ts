/**
 * Every metric vpn-shoot exports, in one place. Prefix `rvpn_vpn_shoot_`, units in names.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** The data path's send queue, read when metrics are scraped (undefined until the data path exists). */
export type SendQueueSource = () => { stats: { backlogBytes: number }; readAndResetMaxSojourn(): number } | undefined;

export function createShootMetrics(registry: Registry, sendQueue: SendQueueSource = () => undefined) {
  const p = 'rvpn_vpn_shoot_';
  return {
    tunnelConnected: new Gauge({ name: `${p}tunnel_connected`, help: '1 while the tunnel session to the seed is up', registers: [registry] }),
    sessionsTotal: new Counter({ name: `${p}tunnel_sessions_total`, help: 'Tunnel sessions established', registers: [registry] }),
    sessionEndsTotal: new Counter({ name: `${p}tunnel_session_ends_total`, help: 'Tunnel sessions ended, by reason code', labelNames: ['code'], registers: [registry] }),
    dialFailuresTotal: new Counter({ name: `${p}tunnel_dial_failures_total`, help: 'Failed dial attempts, by error code', labelNames: ['code'], registers: [registry] }),
    rttSeconds: new Gauge({ name: `${p}tunnel_rtt_seconds`, help: 'Smoothed keepalive round-trip time', registers: [registry] }),
    sendQueueBytes: new Gauge({
      name: `${p}tunnel_send_queue_bytes`, help: 'Bytes waiting in the send queue in front of the tunnel (flow-fair, CoDel)', registers: [registry],
      collect() {
        this.set(sendQueue()?.stats.backlogBytes ?? 0);
      },
    }),
    sendQueueMaxSojournSeconds: new Gauge({
      name: `${p}tunnel_send_queue_max_sojourn_seconds`, help: 'Longest wait of a packet in the send queue since the previous scrape', registers: [registry],
      collect() {
        this.set((sendQueue()?.readAndResetMaxSojourn() ?? 0) / 1000);
      },
    }),
    droppedPacketsTotal: new Counter({ name: `${p}tunnel_dropped_packets_total`, help: 'Packets dropped by the data path, by reason', labelNames: ['reason'], registers: [registry] }),
  };
}
