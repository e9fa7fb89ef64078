/**
 * The gauges of a tunnel data path, read when metrics are scraped: its send queue (libs/tunnel
 * FairQueue) `<prefix>tunnel_send_queue_bytes` and `<prefix>tunnel_send_queue_max_sojourn_seconds`,
 * and `<prefix>tunnel_offload_active` (1 while the session runs with TUN offload, GSO). One definition
 * for every app with a tunnel data path.
 */
import { Gauge, type Registry } from './metrics.js';

/** The send queue right now (undefined until the data path exists). */
export type SendQueueSource = () => { stats: { backlogBytes: number }; readAndResetMaxSojourn(): number } | undefined;

/** Whether the data path runs with offload right now. */
export type OffloadSource = () => boolean;

export function dataPathGauges(registry: Registry, prefix: string, sendQueue: SendQueueSource, offloadActive: OffloadSource = () => false) {
  return {
    offloadActive: new Gauge({
      name: `${prefix}tunnel_offload_active`, help: '1 while the tunnel session runs with TUN checksum offload and TSO (both ends offered "gso")', registers: [registry],
      collect() {
        this.set(offloadActive() ? 1 : 0);
      },
    }),
    sendQueueBytes: new Gauge({
      name: `${prefix}tunnel_send_queue_bytes`, help: 'Bytes waiting in the send queue in front of the tunnel (flow-fair, CoDel)', registers: [registry],
      collect() {
        this.set(sendQueue()?.stats.backlogBytes ?? 0);
      },
    }),
    sendQueueMaxSojournSeconds: new Gauge({
      name: `${prefix}tunnel_send_queue_max_sojourn_seconds`, help: 'Longest wait of a packet in the send queue since the previous scrape', registers: [registry],
      collect() {
        this.set((sendQueue()?.readAndResetMaxSojourn() ?? 0) / 1000);
      },
    }),
  };
}
