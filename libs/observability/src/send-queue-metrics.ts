/**
 * The gauges of a data path's send queue (libs/tunnel FairQueue), read when metrics are scraped:
 * `<prefix>tunnel_send_queue_bytes` and `<prefix>tunnel_send_queue_max_sojourn_seconds`. One definition
 * for every app with a tunnel data path.
 */
import { Gauge, type Registry } from 'prom-client';

/** The send queue right now (undefined until the data path exists). */
export type SendQueueSource = () => { stats: { backlogBytes: number }; readAndResetMaxSojourn(): number } | undefined;

export function sendQueueGauges(registry: Registry, prefix: string, sendQueue: SendQueueSource) {
  return {
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
