/**
 * Wiring of vpn-shoot: dials OUT to the seed (through the seed's shared CONNECT entry point with the
 * routing header, or directly), runs the tunnel, and forwards tunnel traffic into the shoot:
 * ip forwarding on, masquerade out of EGRESS_INTERFACE, TCP MSS clamped to the route MTU, and the
 * seed's source addresses (SEED_POD_NETWORK, the tunnel network) routed back into the TUN.
 * In the classic direction (TUNNEL_MODE=listen) it accepts the seed's connection on 4314 instead.
 *
 * Overlapping seed and shoot networks (issue 12, `cfg.mapping`): the seed sends to the shoot's
 * MAPPED addresses from its mapped seed pod range (the seed server translates its own sources). Here
 * mapped destinations become the real shoot addresses again (nftables prefix DNAT from the TUN), the
 * mapped seed range is routed back into the TUN and is what the inbound filter admits, and conntrack
 * forgets flows to the mapped ranges at start (a changed mapping leaves no stale translation).
 */
import { CidrSet, errorCode, readTlsFiles, type Cidr } from '@rvpn/config';
import type { ShootConfig } from '@rvpn/config';
import { createStatusServer, watchCertificates, type FileWatch, type Logger, type Registry } from '@rvpn/observability';
import {
  authorizeByIdentity,
  flushMappedConntrack,
  seedPodTunnelNetwork,
  FEATURE_GSO,
  knownCode,
  NetConfig,
  openTunDevice,
  shootMappingChain,
  shootMappingForwardRules,
  TunnelDataPath,
  TunnelDialer,
  TunnelConfigMismatchError,
  TunnelListener,
  TUNNEL_TCP_SYSCTLS,
  peerText,
  type LocalHello,
  type PeerHello,
  type TunnelSession,
  type TunDevice,
} from '@rvpn/tunnel';
import { createShootMetrics } from './metrics.js';

/** Connection mark given to flows that entered from the tunnel, so only they are masqueraded. */
const FROM_TUNNEL_MARK = '0x52565031';

export interface ShootClientDeps {
  logger: Logger;
  registry: Registry;
}

/**
 * vpn-shoot routes between the tunnel and the shoot (both families); replies may come back on another
 * interface; with the tunnel's TCP buffer lines (TUNNEL_TCP_SYSCTLS, libs/tunnel). Set by `--init`.
 */
export const SHOOT_SYSCTLS = {
  'net.ipv4.ip_forward': '1', 'net.ipv6.conf.all.forwarding': '1', 'net.ipv4.conf.all.rp_filter': '0',
  ...TUNNEL_TCP_SYSCTLS,
} as const;

export class ShootClient {
  private readonly cfg: ShootConfig;
  private readonly log: Logger;
  private readonly registry: Registry;
  private readonly metrics: ReturnType<typeof createShootMetrics>;
  private readonly net: NetConfig;
  private device: TunDevice | undefined;
  private datapath: TunnelDataPath | undefined;
  private dialer: TunnelDialer | undefined;
  private listener: TunnelListener | undefined;
  private status: ReturnType<typeof createStatusServer> | undefined;
  private session: TunnelSession | undefined;
  private address: string | undefined;
  private tlsWatch: FileWatch | undefined;
  private addressChange: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(cfg: ShootConfig, deps: ShootClientDeps) {
    this.cfg = cfg;
    this.log = deps.logger;
    this.registry = deps.registry;
    this.metrics = createShootMetrics(deps.registry, () => this.datapath?.queue, () => this.datapath?.offloadActive ?? false);
    this.net = new NetConfig({ logger: this.log });
  }

  /** Addresses the seed side sends from, as they appear in the tunnel: replies to them go back into the tunnel. */
  private seedSources(): Cidr[] {
    const pods = this.cfg.seedPodNetwork;
    return [this.cfg.vpnNetwork, ...(pods ? [seedPodTunnelNetwork(this.cfg.mapping, pods)] : [])];
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    try {
      for (const [name, value] of Object.entries(SHOOT_SYSCTLS)) await this.net.setSysctl(name, value);
      this.device = openTunDevice({ name: cfg.tunDevice, mode: 'tun', offload: cfg.tunnelOffload });
      const dev = this.device.name;
      await this.net.setMtu(dev, cfg.mtu);
      await this.net.linkUp(dev);
      for (const c of this.seedSources()) {
        if (c === cfg.vpnNetwork) continue; // on-link through the tunnel address once assigned
        await this.net.replaceRoute({ dst: c.toString(), dev });
      }
      await this.net.applyNftTable('inet', cfg.nftTable, shootFirewall(dev, cfg.egressInterface, shootMappingChain(dev, cfg.mapping), shootMappingForwardRules(dev, cfg.mapping)));
      await flushMappedConntrack(this.net, cfg.mapping, this.log);

      this.datapath = new TunnelDataPath({
        device: this.device,
        inboundFilter: { allowSource: new CidrSet(this.seedSources()) },
        logger: this.log,
        onDrop: (reason: string, count: number) => this.metrics.droppedPacketsTotal.inc({ reason }, count),
      });
      this.datapath.start();

      const tlsMaterial = () => readTlsFiles(cfg.tls);
      const hello = (): LocalHello => ({
        role: 'shoot',
        identity: `vpn-shoot/${cfg.namespace || 'shoot'}${cfg.podName ? `/${cfg.podName}` : ''}`,
        keepaliveIntervalMs: cfg.keepaliveIntervalMs,
        keepaliveTimeoutMs: cfg.keepaliveTimeoutMs,
        vpnNetwork: cfg.vpnNetwork.toString(),
        mtu: cfg.mtu,
        ...(this.datapath?.offloadCapable ? { features: [FEATURE_GSO] } : {}),
        mapping: cfg.mapping.fingerprint(),
      });
      const validatePeerHello = (peer: PeerHello) => {
        if (peer.role !== 'seed' || !peer.assignment) throw new TunnelConfigMismatchError('the peer is not a seed server (no address assignment)');
        if (peer.vpnNetwork !== cfg.vpnNetwork.toString()) throw new TunnelConfigMismatchError(`VPN_NETWORK differs: seed ${peerText(peer.vpnNetwork, 64)}, shoot ${cfg.vpnNetwork}`);
        cfg.mapping.assertSameAs(peer.mapping, `the seed server ${peerText(peer.identity, 64)}`);
      };
      if (cfg.tunnelMode === 'dial') {
        const endpoint = { host: cfg.endpoint!, port: cfg.openvpnPort };
        this.dialer = new TunnelDialer({
          target: endpoint,
          ...(cfg.directDial
            ? {}
            : { via: { proxyHost: endpoint.host, proxyPort: endpoint.port, target: `${cfg.tlsServerName}:1194`, headers: { [cfg.reversedVpnHeaderKey]: cfg.reversedVpnHeader } } }),
          tls: () => ({ ...tlsMaterial(), servername: cfg.tlsServerName }),
          hello,
          validatePeerHello,
          onSession: (s) => this.attach(s),
          onDialError: (code: string) => this.metrics.dialFailuresTotal.inc({ code: knownCode(code) }),
          backoff: { minMs: cfg.reconnectMinMs, maxMs: cfg.reconnectMaxMs },
          protocolMinor: cfg.protocolMinor,
          logger: this.log,
        });
        this.dialer.start();
      } else {
        this.listener = new TunnelListener({
          host: cfg.tunnelListen.host,
          port: cfg.tunnelListen.port,
          tls: tlsMaterial,
          authorize: authorizeByIdentity({ allowedCommonNames: ['vpn-seed-server', 'vpn-seed-client'] }),
          hello,
          validatePeerHello,
          onSession: (s) => this.attach(s),
          logger: this.log,
        });
        await this.listener.start();
        // the dialer reads the files at every dial; the classic listener reloads them on change
        this.tlsWatch = watchCertificates(Object.values(cfg.tls), () => this.listener?.reloadTls(), this.log);
      }

      this.status = createStatusServer({
        host: cfg.statusListen.host,
        port: cfg.statusListen.port,
        registry: this.registry,
        logger: this.log,
        live: () => ({ ok: !this.stopping }),
        ready: () => this.readiness(),
      });
      await this.status.start();
      this.log.info({ tun: dev, mode: cfg.tunnelMode, endpoint: cfg.endpoint, port: cfg.openvpnPort, ...(cfg.mapping.isActive() ? { mapping: cfg.mapping.toJSON() } : {}) }, 'vpn-shoot started');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private attach(session: TunnelSession): void {
    if (this.stopping) {
      session.close('client stopping');
      return;
    }
    const assignment = session.peerHello.assignment!;
    const previous = this.session;
    this.session = session;
    if (previous) previous.close('replaced');
    this.setAddress(`${assignment.shootAddress}/${assignment.prefixLength}`);
    this.datapath!.attach(session);
    this.metrics.sessionsTotal.inc();
    this.metrics.tunnelConnected.set(1);
    this.log.info({ address: assignment.shootAddress, minor: session.negotiatedMinor, offload: this.datapath!.offloadActive }, 'tunnel to the seed is up');
    void session.closed.then((end) => {
      this.metrics.sessionEndsTotal.inc({ code: end.code === undefined ? 'closed' : knownCode(end.code) });
      if (this.session !== session) return;
      this.session = undefined;
      this.datapath?.detach();
      this.metrics.tunnelConnected.set(0);
      this.log.warn({ reason: end.reason, code: end.code }, 'tunnel to the seed is down; reconnecting');
    });
  }

  /** The tunnel address comes from the seed; it is kept across sessions and changed only if the seed assigns another. */
  private setAddress(cidr: string): void {
    this.addressChange = this.addressChange.then(async () => {
      if (this.address === cidr || !this.device) return;
      if (this.address) await this.net.deleteAddress(this.device.name, this.address);
      await this.net.addAddress(this.device.name, cidr);
      this.address = cidr;
    }).catch((err) => this.log.error({ err: (err as Error).message, code: errorCode(err) }, 'tunnel address update failed'));
  }

  private readiness() {
    const s = this.session;
    if (s) this.metrics.rttSeconds.set((s.stats.rttSmoothedMs ?? 0) / 1000);
    const tunnel = { ok: !!s, detail: s ? `connected, rtt ${(s.stats.rttSmoothedMs ?? 0).toFixed(2)} ms` : `not connected${this.dialer?.lastError ? `: ${this.dialer.lastError.code}` : ''}` };
    return { ok: tunnel.ok && !this.stopping, checks: { tunnel } };
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.tlsWatch?.stop();
    await this.status?.stop().catch(() => undefined);
    await this.dialer?.stop();
    await this.listener?.stop().catch(() => undefined);
    this.session?.close('client stopping');
    this.datapath?.stop();
    await this.addressChange;
    await this.net.undoAll();
    this.device?.close();
    this.log.info({}, 'vpn-shoot stopped; devices, routes and firewall removed');
  }
}

/**
 * The shoot pod's firewall: flows entering from the tunnel are marked and masqueraded out of the
 * egress interface; TCP MSS is clamped to the route MTU both ways; nothing from the shoot may open
 * a connection into the tunnel (only replies go back).
 */
export function shootFirewall(tun: string, egress: string, mappingChain: readonly string[] = [], mappedOnly: readonly string[] = []): string {
  return [
    'chain prerouting {',
    '  type filter hook prerouting priority mangle; policy accept;',
    `  iifname "${tun}" ct state new ct mark set ${FROM_TUNNEL_MARK}`,
    '}',
    'chain forward {',
    '  type filter hook forward priority filter; policy accept;',
    `  iifname "${tun}" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu`,
    `  oifname "${tun}" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu`,
    ...mappedOnly,
    `  iifname "${tun}" accept`,
    `  oifname "${tun}" ct state established,related accept`,
    `  oifname "${tun}" counter drop comment "the shoot may not open connections into the seed"`,
    '}',
    'chain postrouting {',
    '  type nat hook postrouting priority srcnat; policy accept;',
    `  oifname "${egress}" ct mark ${FROM_TUNNEL_MARK} masquerade`,
    '}',
    ...mappingChain,
  ].join('\n');
}
