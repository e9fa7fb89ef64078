/**
 * Wiring of vpn-seed-server (non-HA): one TUN device in this pod's network namespace, the shoot
 * networks routed into it, one tunnel session from the shoot's vpn-shoot, and the kube-apiserver's
 * CONNECT proxy on 9443 whose dials the kernel routes into the TUN.
 *
 * Data path facts pinned down here (see docs/architecture.md):
 * - Every shoot CIDR is routed permanently: `dev <tun>` while a session is attached, `unreachable`
 *   while none is, so a dial never falls through to the pod's default route.
 * - ip_forward is off; from the TUN only replies (conntrack direction reply: established/related)
 *   are accepted, never anything to this pod's own ports, so the shoot can answer but never open a
 *   connection into the seed nor ride on a connection the seed holds elsewhere.
 * - Before the kernel sees them, packets from the tunnel must come from the shoot networks or the
 *   shoot's own tunnel address (not all of VPN_NETWORK, never this side's address) and go to this
 *   side's addresses (the tunnel address and SEED_POD_NETWORK, or the pod's own addresses); ICMP
 *   errors must quote a packet that went into the tunnel (libs/tunnel filter.ts).
 * - IPv4 connections leave with this pod's eth0 address as source (the TUN has only the IPv6 transfer
 *   address); vpn-shoot routes SEED_POD_NETWORK back into the tunnel.
 * - The TUN, its addresses and routes outlive a session, so flows survive a reconnect.
 * - Overlapping seed and shoot networks (issue 12, `cfg.mapping`): what goes into the TUN are the
 *   shoot's MAPPED ranges (242/243/244 and their IPv6 prefixes), never the real ones, which may be
 *   the seed's own; the CONNECT proxy admits the real address the apiserver names and dials its mapped
 *   one; the seed pod source leaves the TUN in its mapped range (nftables prefix SNAT in this pod's
 *   table); the filter and firewall speak mapped addresses for what comes out of the tunnel. vpn-shoot
 *   maps destinations back to the real shoot addresses. Unmapped, all of it is the identity.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { Cidr, CidrSet, formatIp, errorCode, parseIp, readTlsFiles, seedTunnelNetworks, shootNetworksOf } from '@rvpn/config';
import type { SeedServerConfig } from '@rvpn/config';
import { createEgressProxy, PathGate, proxyDestinationMapper, type EgressProxy } from '@rvpn/egress';
import { createIntervalLog, createStatusServer, watchCertificates, watchDescriptors, type DescriptorWatch, type FileWatch, type Logger, type Registry } from '@rvpn/observability';
import {
  acceptErrorLabel,
  authorizeByIdentity,
  flushMappedConntrack,
  seedPodTunnelNetwork,
  knownCode,
  MAX_FRAME_PAYLOAD,
  FEATURE_GSO,
  MAX_HELLO_PAYLOAD,
  MAX_PEER_TEXT,
  NetConfig,
  peerText,
  openTunDevice,
  seedMappingChain,
  TunnelDataPath,
  TunnelDialer,
  TunnelListener,
  TUNNEL_TCP_SYSCTLS,
  type FilterRules,
  type LocalHello,
  type PeerHello,
  type TunnelSession,
  type TunDevice,
} from '@rvpn/tunnel';
import { createSeedServerMetrics, exportSeedServerLimits, type SeedServerMetrics } from './metrics.js';
import { probeTcpPath } from './probe.js';

/** The limits that hold against a hostile peer, for the limit gauge (units in the names). */
export function seedServerLimits(cfg: SeedServerConfig): Record<string, number> {
  return {
    tunnel_pending_handshakes: cfg.tunnelMaxPendingHandshakes,
    tunnel_tls_handshake_timeout_seconds: cfg.tunnelTlsHandshakeTimeoutMs / 1000,
    tunnel_handshake_timeout_seconds: cfg.tunnelHandshakeTimeoutMs / 1000,
    tunnel_frame_payload_bytes: MAX_FRAME_PAYLOAD,
    tunnel_hello_payload_bytes: MAX_HELLO_PAYLOAD,
    tunnel_peer_text_chars: MAX_PEER_TEXT,
    proxy_pending_requests: cfg.proxyMaxPending,
    ...(cfg.isHa ? { ha_ports: cfg.haMaxPorts, ha_broadcast_frames_per_second: cfg.haBroadcastRate } : {}),
  };
}

/**
 * Out of file descriptors, accept(2) fails inside libuv and never reaches a listener's 'error'
 * handler: a probe notices it, sets the gauge, counts the seconds and logs once per interval.
 */
export function watchSeedDescriptors(metrics: Pick<SeedServerMetrics, 'descriptorsExhausted' | 'descriptorExhaustedSecondsTotal'>, log: Logger): DescriptorWatch {
  const events = createIntervalLog({ logger: log, level: 'error' });
  return watchDescriptors({
    onExhausted: (code) => {
      metrics.descriptorsExhausted.set(1);
      metrics.descriptorExhaustedSecondsTotal.inc();
      events.log(`descriptors:${code}`, { code }, 'out of file descriptors: new tunnel and proxy connections are not accepted until some close');
    },
    onRecovered: () => {
      metrics.descriptorsExhausted.set(0);
      log.warn({}, 'file descriptors available again');
    },
  });
}

/** The URI SAN that binds a client certificate to one shoot (see @rvpn/pki shootIdentityUri). */
export const shootIdentityUri = (namespace: string) => `urn:rvpn:shoot:${namespace}`;

/** Tunnel addresses inside VPN_NETWORK (non-HA): the seed side takes ::1, the shoot client ::2. */
export function tunnelAddresses(vpnNetwork: Cidr) {
  return { seed: formatIp(vpnNetwork.address(1)), shoot: formatIp(vpnNetwork.address(2)), prefixLength: vpnNetwork.prefix };
}

const host = (address: string) => Cidr.of(parseIp(address)!, address.includes(':') ? 128 : 32);

/**
 * What may come out of the tunnel: sources in the shoot networks or the shoot's tunnel address,
 * destinations among this side's addresses (`own`: SEED_POD_NETWORK, or the pod's addresses), and
 * ICMP errors only about packets this side sent into the tunnel.
 */
export function seedFilterRules(shootNets: readonly Cidr[], vpnNetwork: Cidr, own: readonly Cidr[]): FilterRules {
  const a = tunnelAddresses(vpnNetwork);
  const sources = new CidrSet([...shootNets, host(a.shoot)]);
  const destinations = new CidrSet([host(a.seed), ...own]);
  return { allowSource: sources, allowDestination: destinations, icmpErrors: { quotedSource: destinations, quotedDestination: sources } };
}

/** This pod's own addresses (all interfaces but loopback), as host prefixes. */
export function localAddresses(): Cidr[] {
  const out: Cidr[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) if (!i.internal && !i.address.startsWith('fe80') && parseIp(i.address)) out.push(host(i.address));
  }
  return out;
}

export interface SeedServerDeps {
  logger: Logger;
  registry: Registry;
}

/**
 * The seed server forwards nothing (the TUN may only answer) and must accept replies whose source is
 * routed elsewhere; with the tunnel's TCP buffer lines (TUNNEL_TCP_SYSCTLS, libs/tunnel). Set by the
 * privileged init container (`--init`), checked again at start.
 */
export const SEED_SERVER_SYSCTLS = { 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.forwarding': '0', 'net.ipv4.conf.all.rp_filter': '0', ...TUNNEL_TCP_SYSCTLS } as const;

export class SeedServer {
  private readonly cfg: SeedServerConfig;
  private readonly log: Logger;
  private readonly metrics: ReturnType<typeof createSeedServerMetrics>;
  private readonly net: NetConfig;
  private readonly gate = new PathGate();
  /** The shoot networks as the apiserver names them (the proxy's allow-list). */
  private readonly shootNets: Cidr[];
  /** The shoot networks as they appear in the tunnel (routed into the TUN; the filter's sources). */
  private readonly tunnelNets: Cidr[];
  private readonly addrs: ReturnType<typeof tunnelAddresses>;
  private device: TunDevice | undefined;
  private datapath: TunnelDataPath | undefined;
  private listener: TunnelListener | undefined;
  private dialer: TunnelDialer | undefined;
  private proxy: EgressProxy | undefined;
  private status: ReturnType<typeof createStatusServer> | undefined;
  private session: TunnelSession | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private tlsWatch: FileWatch | undefined;
  private descriptors: DescriptorWatch | undefined;
  private lastProbe: { ok: boolean; at: number; detail: string } = { ok: false, at: 0, detail: 'no probe yet' };
  private routesUp: boolean | undefined;
  private routeChange: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(cfg: SeedServerConfig, deps: SeedServerDeps) {
    this.cfg = cfg;
    this.log = deps.logger;
    this.metrics = createSeedServerMetrics(deps.registry, () => this.datapath?.queue, () => this.datapath?.offloadActive ?? false);
    exportSeedServerLimits(deps.registry, seedServerLimits(cfg));
    this.net = new NetConfig({ logger: this.log });
    this.shootNets = shootNetworksOf(cfg);
    this.tunnelNets = seedTunnelNetworks(cfg, cfg.mapping);
    this.addrs = tunnelAddresses(cfg.vpnNetwork);
    this.statusRegistry = deps.registry;
  }
  private readonly statusRegistry: Registry;

  async start(): Promise<void> {
    const cfg = this.cfg;
    try {
      // 1. Kernel side: sysctls, TUN, address, permanent routes (unreachable until a session exists), firewall.
      for (const [name, value] of Object.entries(SEED_SERVER_SYSCTLS)) await this.net.setSysctl(name, value);
      this.device = openTunDevice({ name: cfg.tunDevice, mode: 'tun', offload: cfg.tunnelOffload });
      const dev = this.device.name;
      await this.net.setMtu(dev, cfg.mtu);
      await this.net.addAddress(dev, `${this.addrs.seed}/${this.addrs.prefixLength}`);
      await this.net.linkUp(dev);
      await this.setRoutes(false);
      await this.net.applyNftTable('inet', cfg.nftTable, seedFirewall(dev, this.ownPorts(), seedMappingChain(dev, cfg.mapping)));
      // flows bound to an earlier translation (a shoot whose networks changed) must not live on
      await flushMappedConntrack(this.net, cfg.mapping, this.log);

      // 2. The data path: packets from the shoot must come from a shoot or its tunnel address, go to
      // this side, and ICMP errors must be about packets that went into the tunnel.
      this.datapath = new TunnelDataPath({
        device: this.device,
        inboundFilter: seedFilterRules(this.tunnelNets, cfg.vpnNetwork, cfg.seedPodNetwork ? [seedPodTunnelNetwork(cfg.mapping, cfg.seedPodNetwork)] : localAddresses()),
        logger: this.log,
        onDrop: (reason: string, count: number) => this.metrics.droppedPacketsTotal.inc({ reason }, count),
      });
      this.datapath.start();

      // 3. The tunnel: accept the shoot client (reversed) or dial the shoot (classic direction).
      const tlsMaterial = () => readTlsFiles(cfg.tls);
      const hello = (): LocalHello => ({
        role: 'seed',
        identity: `vpn-seed-server/${cfg.namespace}`,
        keepaliveIntervalMs: cfg.keepaliveIntervalMs,
        keepaliveTimeoutMs: cfg.keepaliveTimeoutMs,
        vpnNetwork: cfg.vpnNetwork.toString(),
        mtu: cfg.mtu,
        ...(this.datapath?.offloadCapable ? { features: [FEATURE_GSO] } : {}),
        assignment: { seedAddress: this.addrs.seed, shootAddress: this.addrs.shoot, prefixLength: this.addrs.prefixLength },
        mapping: cfg.mapping.fingerprint(),
      });
      // both ends must translate alike (issue 12): a vpn-shoot given other networks is refused, coded
      const validatePeerHello = (peer: PeerHello) => cfg.mapping.assertSameAs(peer.mapping, `the shoot client ${peerText(peer.identity, 64)}`);
      const authorize = authorizeByIdentity({
        allowedCommonNames: cfg.clientAllowedCommonNames,
        requiredUri: shootIdentityUri(cfg.namespace),
      });
      if (cfg.tunnelMode === 'listen') {
        this.listener = new TunnelListener({
          host: cfg.tunnelListen.host,
          port: cfg.tunnelListen.port,
          tls: tlsMaterial,
          authorize,
          hello,
          validatePeerHello,
          onSession: (s) => this.attach(s),
          onRefused: (code: string) => this.metrics.refusedTotal.inc({ code: knownCode(code) }),
          onAcceptError: (errno) => this.metrics.acceptErrorsTotal.inc({ listener: 'tunnel', errno }),
          maxPendingHandshakes: cfg.tunnelMaxPendingHandshakes,
          tlsHandshakeTimeoutMs: cfg.tunnelTlsHandshakeTimeoutMs,
          handshakeTimeoutMs: cfg.tunnelHandshakeTimeoutMs,
          logger: this.log,
        });
        await this.listener.start();
      } else {
        const target = cfg.tunnelDialAddress!;
        this.dialer = new TunnelDialer({
          target,
          tls: () => ({ ...tlsMaterial(), servername: cfg.tunnelServerName }),
          hello,
          validatePeerHello,
          authorizePeer: authorize,
          onSession: (s) => this.attach(s),
          backoff: { minMs: 100, maxMs: 5000 },
          logger: this.log,
        });
        this.dialer.start();
      }

      // 4. The kube-apiserver's egress proxy.
      const proxyTls = () => readTlsFiles(cfg.proxyTls);
      this.proxy = createEgressProxy({
        host: cfg.proxyListen.host,
        port: cfg.proxyListen.port,
        tls: proxyTls,
        allowedCommonNames: cfg.proxyAllowedCommonNames,
        allowedDestinations: new CidrSet(this.shootNets),
        ...(proxyDestinationMapper(cfg.mapping) ? { mapDestination: proxyDestinationMapper(cfg.mapping) } : {}),
        gate: this.gate,
        holdTimeoutMs: cfg.proxyHoldTimeoutMs,
        maxPending: cfg.proxyMaxPending,
        dialTimeoutMs: cfg.proxyDialTimeoutMs,
        logger: this.log,
        onOutcome: (outcome, { heldMs }) => {
          this.metrics.proxyRequestsTotal.inc({ outcome });
          this.metrics.proxyHoldSeconds.observe(heldMs / 1000);
        },
        onAcceptError: (errno) => this.metrics.acceptErrorsTotal.inc({ listener: 'proxy', errno }),
      });
      await this.proxy.start();

      // Certificates are reloaded from disk when they change (renewal, CA rotation; Secret volumes
      // swap a ..data symlink): new connections use them, established tunnels are not touched.
      this.recordCertificateExpiry();
      this.tlsWatch = watchCertificates([...Object.values(cfg.tls), ...Object.values(cfg.proxyTls)], () => {
        this.recordCertificateExpiry();
        this.listener?.reloadTls();
        this.proxy?.reloadTls();
        this.metrics.tlsReloadsTotal.inc();
      }, this.log);

      // 5. Readiness follows a probe through the tunnel, not merely a connected client.
      this.probeTimer = setInterval(() => void this.probe(), cfg.probeIntervalMs);
      this.probeTimer.unref();
      this.status = createStatusServer({
        host: cfg.statusListen.host,
        port: cfg.statusListen.port,
        registry: this.statusRegistry,
        logger: this.log,
        live: () => ({ ok: !this.stopping }),
        ready: () => this.readiness(),
        onError: (err) => this.metrics.acceptErrorsTotal.inc({ listener: 'status', errno: acceptErrorLabel(err) }),
      });
      await this.status.start();
      this.descriptors = watchSeedDescriptors(this.metrics, this.log);
      this.log.info({ tun: dev, mode: cfg.tunnelMode, seedAddress: this.addrs.seed, shootNetworks: this.shootNets.map(String), ...(cfg.mapping.isActive() ? { mapping: cfg.mapping.toJSON() } : {}) }, 'vpn-seed-server started');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private attach(session: TunnelSession): void {
    if (this.stopping) {
      session.close('server stopping');
      return;
    }
    const previous = this.session;
    this.session = session;
    if (previous) previous.close('replaced by a new session from the same shoot');
    this.datapath!.attach(session);
    this.metrics.sessionsTotal.inc();
    this.metrics.tunnelConnected.set(1);
    this.log.info({ peer: peerText(session.peerHello.identity), minor: session.negotiatedMinor, offload: this.datapath!.offloadActive }, 'shoot tunnel attached');
    // Held CONNECTs are released only once the routes point into the TUN again.
    void this.setRoutes(true).then(() => {
      if (this.session !== session) return;
      this.gate.set(true);
      void this.probe();
    });
    void session.closed.then((end) => {
      this.metrics.sessionEndsTotal.inc({ code: end.code === undefined ? 'closed' : knownCode(end.code) });
      if (this.session !== session) return;
      this.session = undefined;
      this.datapath?.detach();
      this.metrics.tunnelConnected.set(0);
      this.gate.set(false);
      this.lastProbe = { ok: false, at: Date.now(), detail: `session ended: ${end.reason}` };
      this.metrics.probeSuccess.set(0);
      this.log.warn({ reason: end.reason, code: end.code }, 'shoot tunnel detached');
      if (!this.stopping) void this.setRoutes(false);
    });
  }

  /** Exposes when each certificate in use expires (alerting: docs and the rendered PrometheusRule). */
  private recordCertificateExpiry(): void {
    for (const file of new Set([this.cfg.tls.certFile, this.cfg.proxyTls.certFile])) {
      try {
        this.metrics.certificateNotAfter.set({ file }, Date.parse(new X509Certificate(readFileSync(file)).validTo) / 1000);
      } catch (err) {
        this.log.warn({ file, err: (err as Error).message }, 'cannot read the certificate expiry');
      }
    }
  }

  /** Swaps every shoot route between `dev <tun>` and `unreachable`; serialized, idempotent. */
  private setRoutes(up: boolean): Promise<void> {
    this.routeChange = this.routeChange.then(async () => {
      if (this.routesUp === up || !this.device) return;
      for (const c of this.tunnelNets) {
        await this.net.replaceRoute(up ? { dst: c.toString(), dev: this.device.name } : { dst: c.toString(), type: 'unreachable' });
      }
      this.routesUp = up;
    }).catch((err) => {
      this.log.error({ err: (err as Error).message, code: errorCode(err) }, 'route update failed');
    });
    return this.routeChange;
  }

  /** A TCP connect to the shoot's tunnel address: an answer (accept or RST) proves both directions. */
  private async probe(): Promise<void> {
    if (!this.session) return;
    const t0 = performance.now();
    const r = await probeTcpPath({ host: this.addrs.shoot, port: 1, timeoutMs: Math.max(500, this.cfg.probeIntervalMs) });
    const dur = (performance.now() - t0) / 1000;
    this.lastProbe = { ok: r.ok, at: Date.now(), detail: r.detail };
    this.metrics.probeSuccess.set(r.ok ? 1 : 0);
    this.metrics.probeDurationSeconds.set(dur);
    if (!r.ok) this.log.warn({ detail: r.detail }, 'data-path probe through the tunnel failed');
  }

  private readiness() {
    const fresh = Date.now() - this.lastProbe.at < 3 * this.cfg.probeIntervalMs + 1000;
    const tunnel = { ok: !!this.session, detail: this.session ? 'shoot client attached' : 'no shoot client' };
    const probe = { ok: this.lastProbe.ok && fresh, detail: fresh ? this.lastProbe.detail : 'probe result is stale' };
    if (this.session) this.metrics.rttSeconds.set((this.session.stats.rttSmoothedMs ?? 0) / 1000);
    this.metrics.pendingHandshakes.set(this.listener?.pendingHandshakes ?? 0);
    this.metrics.proxyPending.set(this.proxy?.pending ?? 0);
    return { ok: tunnel.ok && probe.ok && !this.stopping, checks: { tunnel, probe } };
  }

  /** The ports this pod serves on: nothing from the tunnel may reach them. */
  private ownPorts(): number[] {
    const c = this.cfg;
    return [...new Set([...(c.tunnelMode === 'listen' ? [c.tunnelListen.port] : []), c.proxyListen.port, c.statusListen.port].filter((p) => p > 0))];
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.tlsWatch?.stop();
    this.descriptors?.stop();
    await this.status?.stop().catch(() => undefined);
    await this.proxy?.stop().catch(() => undefined);
    await this.listener?.stop().catch(() => undefined);
    await this.dialer?.stop();
    this.session?.close('server stopping');
    this.datapath?.stop();
    await this.routeChange;
    await this.net.undoAll();
    this.device?.close();
    this.log.info({}, 'vpn-seed-server stopped; devices, routes and firewall removed');
  }
}

/**
 * The seed pod's firewall: from the TUN only replies enter (conntrack's reply direction, so a packet
 * in the original direction of a connection someone else opened to this pod never matches), never
 * anything for this pod's own ports; nothing is forwarded; no ICMP error goes into the TUN about a
 * packet conntrack never took for a connection (the kernel answers some malformed packets before
 * any input rule runs). The kernel reassembles fragments before
 * these rules (nf_defrag ahead of conntrack), so fragments cannot slip past them.
 */
export function seedFirewall(tun: string, ownPorts: readonly number[] = [], mappingChain: readonly string[] = []): string {
  return [
    'chain input {',
    '  type filter hook input priority filter; policy accept;',
    ...(ownPorts.length > 0 ? [`  iifname "${tun}" meta l4proto { tcp, udp } th dport { ${ownPorts.join(', ')} } counter drop comment "never the seed server's own ports"`] : []),
    `  iifname "${tun}" ct direction reply ct state established,related accept`,
    `  iifname "${tun}" counter drop comment "the shoot may only answer"`,
    '}',
    'chain forward {',
    '  type filter hook forward priority filter; policy accept;',
    `  iifname "${tun}" counter drop`,
    `  oifname "${tun}" counter drop`,
    '}',
    'chain output {',
    '  type filter hook output priority filter; policy accept;',
    `  oifname "${tun}" icmp type { destination-unreachable, time-exceeded, parameter-problem } ct state invalid counter drop comment "no error about a packet that was never a connection"`,
    `  oifname "${tun}" icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } ct state invalid counter drop comment "no error about a packet that was never a connection"`,
    '}',
    ...mappingChain,
  ].join('\n');
}

