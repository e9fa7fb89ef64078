/**
 * The gauges of an HA bond endpoint's TAP (vpn-shoot in HA mode, path-controller), read when metrics
 * are scraped: `<prefix>bond_coalesce` (BOND_COALESCE: frames from the links, TAP writes, segments
 * merged) and `<prefix>bond_offload` (BOND_OFFLOAD: super-frames cut for a link without "gso",
 * frames whose virtio_net_hdr was refused) and `<prefix>bond_gso_links`. One definition for both apps.
 */
import { Gauge, type Registry } from './metrics.js';

/** The endpoint's counters right now (undefined until the endpoint exists); libs/bonding BondEndpoint fits. */
export type BondTapSource = () =>
  | { coalesce: { packets: number; entries: number; merged: number }; offload: { split: number; badHeaders: number }; gsoLinks: number }
  | undefined;

export function bondTapGauges(registry: Registry, prefix: string, source: BondTapSource) {
  return {
    coalesce: new Gauge({
      name: `${prefix}bond_coalesce`, help: 'Frames from the links to the bond TAP since start (BOND_COALESCE): frames in, writes (super-frames and frames as they came), segments merged into a super-frame', labelNames: ['count'], registers: [registry],
      collect() {
        const c = source()?.coalesce;
        if (c) for (const [k, v] of [['frames', c.packets], ['writes', c.entries], ['merged', c.merged]] as const) this.set({ count: k }, v);
      },
    }),
    offload: new Gauge({
      name: `${prefix}bond_offload`, help: 'Bond TAP offload since start (BOND_OFFLOAD): super-frames cut into frames for a link without "gso" (split), frames from the links dropped because their virtio_net_hdr does not describe them (bad_header)', labelNames: ['count'], registers: [registry],
      collect() {
        const o = source()?.offload;
        if (o) for (const [k, v] of [['split', o.split], ['bad_header', o.badHeaders]] as const) this.set({ count: k }, v);
      },
    }),
    gsoLinks: new Gauge({
      name: `${prefix}bond_gso_links`, help: 'Links that carry TCP super-frames whole right now (BOND_OFFLOAD, and the server offered "gso" too)', registers: [registry],
      collect() {
        this.set(source()?.gsoLinks ?? 0);
      },
    }),
  };
}
