/**
 * vpn-shoot in HA mode (IS_HA=true, StatefulSet pod vpn-shoot-<j>): one tunnel link to EACH HA
 * vpn-seed-server (through the seed's CONNECT entry point, header
 * `outbound|1194||vpn-seed-server-<i>.<namespace>.svc.cluster.local`), bonded into one TAP device with
 * this pod's fixed bond addresses (slot j). Traffic the kube-apiserver side sends over the bond is
 * forwarded into the shoot and masqueraded out of EGRESS_INTERFACE, as in non-HA mode; replies to
 * the apiserver endpoints' bond addresses are on-link on the bond.
 *
 * Overlapping seed and shoot networks (issue 12, `cfg.mapping`): the path-controllers send to the
 * shoot's MAPPED addresses from their bond addresses (no seed pod address reaches the bond, so there
 * is no seed source to map back). As in non-HA, mapped destinations arriving from the bond become the
 * real shoot addresses (the same nftables prefix DNAT, `shootMappingChain`), a new flow from the bond
 * must have been so translated (`shootFirewall`), and conntrack forgets flows to the mapped ranges at
 * start. Replies go back to the bond addresses, on-link; conntrack restores the mapped source, which
 * is what the seed servers' port guards admit from a shoot pod.
 */
import { haIndexOf, readTlsFiles, type ShootConfig } from '@rvpn/config';
import { BOND_DEFAULT_SYSCTLS, BondEndpoint, formatMac, hardenBondDevice, macFromAddress, shootBondAddresses } from '@rvpn/bonding';
import { bondTapGauges, Counter, createStatusServer, Gauge, type Logger, type Registry } from '@rvpn/observability';
import { flushMappedConntrack, NetConfig, openTunDevice, shootMappingChain, shootMappingForwardRules, TUNNEL_SOCKET_CAPS, type TunDevice } from '@rvpn/tunnel';
import { SHOOT_SYSCTLS, shootFirewall } from './shoot-client.js';

/** vpn-shoot's sysctls in HA mode: the bond's defaults too (written by --init, see main.ts). */
export const SHOOT_HA_SYSCTLS = { ...SHOOT_SYSCTLS, ...BOND_DEFAULT_SYSCTLS } as const;

export class HaShootClient {
  private readonly cfg: ShootConfig;
  private readonly log: Logger;
  private readonly registry: Registry;
  private readonly net: NetConfig;
  readonly index: number;
  private device: TunDevice | undefined;
  private endpoint: BondEndpoint | undefined;
  private status: ReturnType<typeof createStatusServer> | undefined;
  private stopping = false;
  private readonly switches: Counter;
  private readonly sendDrops: Counter;
  private readonly linkUp: Gauge;
  private readonly activeLink: Gauge;

  constructor(cfg: ShootConfig, deps: { logger: Logger; registry: Registry }) {
    this.cfg = cfg;
    this.log = deps.logger;
    this.registry = deps.registry;
    this.net = new NetConfig({ logger: this.log });
    this.index = haIndexOf(cfg.podName) ?? 0;
    const r = [deps.registry];
    this.switches = new Counter({ name: 'rvpn_vpn_shoot_bond_switches_total', help: 'Active-link switches of the bond', registers: r });
    this.sendDrops = new Counter({ name: 'rvpn_vpn_shoot_bond_send_dropped_frames_total', help: 'Frames the per-link send queues dropped, by server and reason (queue_full: over the byte cap; codel: a standing queue)', labelNames: ['server', 'reason'], registers: r });
    this.linkUp = new Gauge({ name: 'rvpn_vpn_shoot_bond_link_up', help: '1 while the link to a server is up', labelNames: ['server'], registers: r });
    this.activeLink = new Gauge({ name: 'rvpn_vpn_shoot_bond_active_link', help: '1 for the server the bond currently sends through', labelNames: ['server'], registers: r });
    bondTapGauges(deps.registry, 'rvpn_vpn_shoot_', () => this.endpoint);
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    try {
      const addrs = shootBondAddresses({ v6: cfg.vpnNetwork, v4: cfg.ipFamilies.includes(4) ? cfg.bondNetworkV4 : undefined }, this.index);
      for (const [name, value] of Object.entries(SHOOT_HA_SYSCTLS)) await this.net.setSysctl(name, value);
      this.device = openTunDevice({ name: cfg.bondDevice, mode: 'tap', offload: cfg.bondCoalesce || cfg.bondOffload });
      const dev = this.device.name;
      const mac = formatMac(macFromAddress(addrs.v6));
      await this.net.setLinkAddress(dev, mac);
      // RAs and redirects from the bond have no effect; link-local from the MAC (what the servers allow)
      await hardenBondDevice(this.net, dev);
      await this.net.setMtu(dev, cfg.mtu);
      await this.net.addAddress(dev, `${addrs.v6}/${cfg.vpnNetwork.prefix}`);
      if (addrs.v4) await this.net.addAddress(dev, `${addrs.v4}/${cfg.bondNetworkV4.prefix}`);
      await this.net.linkUp(dev);
      await this.net.applyNftTable('inet', cfg.nftTable, shootFirewall(dev, cfg.egressInterface, shootMappingChain(dev, cfg.mapping), shootMappingForwardRules(dev, cfg.mapping)));
      await flushMappedConntrack(this.net, cfg.mapping, this.log);

      const servers = Array.from({ length: cfg.haVpnServers }, (_, i) => {
        const name = `vpn-seed-server-${i}`;
        return {
          id: name,
          target: { host: cfg.endpoint!, port: cfg.openvpnPort },
          ...(cfg.directDial
            ? {}
            : { via: { proxyHost: cfg.endpoint!, proxyPort: cfg.openvpnPort, target: `${name}:1194`, headers: { [cfg.reversedVpnHeaderKey]: `outbound|1194||${name}.${cfg.namespace}.svc.cluster.local` } } }),
          servername: name,
        };
      });
      this.endpoint = new BondEndpoint({
        device: this.device,
        servers,
        tls: () => readTlsFiles(cfg.tls),
        role: 'shoot',
        identity: `vpn-shoot/${cfg.namespace}/${cfg.podName}`,
        address: addrs.v6,
        addresses: [addrs.v6, ...(addrs.v4 ? [addrs.v4] : [])],
        vpnNetwork: cfg.vpnNetwork.toString(),
        mapping: cfg.mapping,
        keepaliveIntervalMs: cfg.keepaliveIntervalMs,
        keepaliveTimeoutMs: cfg.keepaliveTimeoutMs,
        mtu: cfg.mtu,
        mode: cfg.bondingMode,
        primary: 'vpn-seed-server-0',
        failbackDelayMs: cfg.bondFailbackDelayMs,
        backoff: { minMs: cfg.reconnectMinMs, maxMs: cfg.reconnectMaxMs },
        protocolMinor: cfg.protocolMinor,
        socketBuffers: TUNNEL_SOCKET_CAPS,
        offload: cfg.bondOffload,
        coalesce: cfg.bondCoalesce,
        logger: this.log,
        onSwitch: (e) => {
          this.switches.inc();
          this.activeLink.reset();
          if (e.to) this.activeLink.set({ server: e.to }, 1);
        },
        onLinkChange: (id, up) => this.linkUp.set({ server: id }, up ? 1 : 0),
        onSendDrop: (id, reason, n) => this.sendDrops.inc({ server: id, reason }, n),
      });
      this.endpoint.start();

      this.status = createStatusServer({
        host: cfg.statusListen.host,
        port: cfg.statusListen.port,
        registry: this.registry,
        logger: this.log,
        live: () => ({ ok: !this.stopping }),
        ready: () => this.readiness(),
      });
      await this.status.start();
      this.log.info({ bond: dev, index: this.index, address: addrs, mac, servers: servers.map((s) => s.id), ...(cfg.mapping.isActive() ? { mapping: cfg.mapping.toJSON() } : {}) }, 'vpn-shoot (HA) started');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private readiness() {
    const b = this.endpoint?.bond;
    const up = (b ? Array.from({ length: this.cfg.haVpnServers }, (_, i) => `vpn-seed-server-${i}`).filter((id) => b.linkUp(id)) : []);
    return { ok: up.length > 0 && !this.stopping, checks: { bond: { ok: up.length > 0, detail: `links up: ${up.join(', ') || 'none'}; active: ${b?.active ?? 'none'}` } } };
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.status?.stop().catch(() => undefined);
    await this.endpoint?.stop();
    await this.net.undoAll();
    this.device?.close();
    this.log.info({}, 'vpn-shoot (HA) stopped; bond device, addresses and firewall removed');
  }
}
