/**
 * path-controller: the HA sidecar of a kube-apiserver pod.
 *
 * - Owns this pod's bond endpoint: a TAP device with an endpoint slot's addresses (IPv6 in
 *   VPN_NETWORK, IPv4 in BOND_NETWORK_V4) and one tunnel link to each HA vpn-seed-server. When a
 *   server refuses the slot (RVPN_ERR_BOND_ADDRESS_IN_USE: another replica drew it), it draws again.
 * - Probes every shoot pod j THROUGH that pod every PROBE_INTERVAL: probes leave from local ports
 *   PROBE_PORT_BASE+100j…, the firewall marks them 0x100+j, and a policy rule sends the mark to a
 *   table that routes the shoot networks via pod j's bond address.
 * - Points the main routes for the shoot networks at the current path (PathSelector: switch after
 *   PROBE_MISSES misses, reuse a failed path only after PROBE_HEALTHY_PERIOD). Every switch is logged
 *   and counted.
 * - Serves the kube-apiserver's mTLS CONNECT proxy locally (libs/egress): new requests are held while
 *   no path is usable, so egress-selector configuration is the same as in non-HA.
 * - Firewall: from the bond only established/related traffic (and neighbour discovery) enters this
 *   pod; nothing is forwarded.
 * - Overlapping seed and shoot networks (issue 12, `cfg.mapping`): the proxy checks the REAL target
 *   and dials its mapped address (`proxyDestinationMapper`, as vpn-seed-server's proxy does); only the
 *   mapped shoot ranges are routed via the bond (the real ones are the seed's own networks: its
 *   ClusterIPs and pods must stay reachable from this pod); PROBE_TARGET is a real shoot address,
 *   probed at its mapped address. No source translation: flows leave with this endpoint's bond
 *   addresses (BOND_NETWORK_V4, VPN_NETWORK), which the mapping keeps apart from every mapped range and
 *   which no seed or shoot network uses, so the seed's pod network never appears on the bond and the
 *   seed-pod mapping (241.0.0.0/8) is not needed here. vpn-shoot turns the mapped destinations back
 *   into the real ones.
 */
import { CidrSet, errorCode, readTlsFiles, type Cidr, type PathControllerConfig } from '@rvpn/config';
import { BOND_DEFAULT_SYSCTLS, BondEndpoint, endpointBondAddresses, hardenBondDevice, formatMac, macFromAddress, randomEndpointSlot, shootBondAddresses, type BondAddresses } from '@rvpn/bonding';
import { createEgressProxy, PathGate, proxyDestinationMapper, type EgressProxy } from '@rvpn/egress';
import { bondTapGauges, Counter, createIntervalLog, createStatusServer, Gauge, watchCertificates, watchDescriptors, type BondTapSource, type DescriptorWatch, type FileWatch, type Logger, type Registry } from '@rvpn/observability';
import { NetConfig, openTunDevice, TUNNEL_SOCKET_CAPS, type TunDevice } from '@rvpn/tunnel';
import { PathSelector } from './path-selector.js';
import { probeThrough } from './probe.js';

const MARK_BASE = 0x100;
const RULE_PRIORITY_BASE = 1000;

/**
 * Probe replies return over the bond while the route may point elsewhere: no reverse-path filter;
 * RAs and redirects from the bond have no effect (the bond's defaults). Set by `--init`.
 */
export const PATH_CONTROLLER_SYSCTLS = { 'net.ipv4.conf.all.rp_filter': '0', ...BOND_DEFAULT_SYSCTLS } as const;

export class PathController {
  private readonly cfg: PathControllerConfig;
  private readonly log: Logger;
  private readonly registry: Registry;
  private readonly net: NetConfig;
  private readonly gate = new PathGate();
  readonly selector: PathSelector;
  /** The shoot networks as the kube-apiserver names them (the proxy's allow-list). */
  private readonly shootNets: Cidr[];
  /** The shoot networks as they appear on the bond: routed via a shoot pod (the mapped ranges when mapped). */
  private readonly tunnelNets: Cidr[];
  /** Where the probes go: PROBE_TARGET's host, mapped when its family is. */
  private readonly probeHost: string;
  private readonly shootAddrs: BondAddresses[];
  private slot: number;
  private addrs: BondAddresses;
  private device: TunDevice | undefined;
  private endpoint: BondEndpoint | undefined;
  private proxy: EgressProxy | undefined;
  private status: ReturnType<typeof createStatusServer> | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private tlsWatch: FileWatch | undefined;
  private descriptors: DescriptorWatch | undefined;
  private readonly probePortNext: number[];
  private routeChange: Promise<void> = Promise.resolve();
  private readdressing = false;
  private stopping = false;
  private readonly m: ReturnType<typeof metrics>;
  readonly bound: { proxy?: number; status?: number } = {};

  constructor(cfg: PathControllerConfig, deps: { logger: Logger; registry: Registry; random?: () => number }) {
    this.cfg = cfg;
    this.log = deps.logger;
    this.registry = deps.registry;
    this.net = new NetConfig({ logger: this.log });
    this.selector = new PathSelector(cfg.haVpnClients, { misses: cfg.probeMisses, healthyPeriodMs: cfg.probeHealthyPeriodMs, allFailGraceMs: 2 * cfg.keepaliveTimeoutMs });
    this.shootNets = [...cfg.shootServiceNetworks, ...cfg.shootPodNetworks, ...cfg.shootNodeNetworks];
    this.tunnelNets = cfg.mapping.isActive() ? cfg.mapping.tunnelCidrs('shoot') : this.shootNets;
    this.probeHost = probeDestination(cfg);
    const nets = { v6: cfg.vpnNetwork, v4: cfg.ipFamilies.includes(4) ? cfg.bondNetworkV4 : undefined };
    this.shootAddrs = Array.from({ length: cfg.haVpnClients }, (_, j) => shootBondAddresses(nets, j));
    this.slot = cfg.bondSlot >= 0 ? cfg.bondSlot : randomEndpointSlot(deps.random);
    this.addrs = endpointBondAddresses(nets, this.slot);
    this.probePortNext = Array.from({ length: cfg.haVpnClients }, () => 0);
    this.m = metrics(deps.registry, () => this.endpoint);
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    try {
      for (const [name, value] of Object.entries(PATH_CONTROLLER_SYSCTLS)) await this.net.setSysctl(name, value);
      this.device = openTunDevice({ name: cfg.bondDevice, mode: 'tap', offload: cfg.bondCoalesce || cfg.bondOffload });
      const dev = this.device.name;
      await this.net.setMtu(dev, cfg.mtu);
      await hardenBondDevice(this.net, dev);
      await this.applyAddresses(undefined);
      await this.net.linkUp(dev);
      await this.net.applyNftTable('inet', cfg.nftTable, pathFirewall(dev, cfg.haVpnClients, cfg.probePortBase));
      // per-path probe routing: mark 0x100+j → table base+j → shoot networks via pod j
      for (let j = 0; j < cfg.haVpnClients; j++) await this.net.addFwmarkRule(MARK_BASE + j, cfg.routeTableBase + j, RULE_PRIORITY_BASE + j);
      // until a path is known the routes point at pod 0 and new requests are held (never the default route)
      await this.installRoutes();
      this.startEndpoint();

      this.proxy = createEgressProxy({
        host: cfg.proxyListen.host,
        port: cfg.proxyListen.port,
        tls: () => readTlsFiles({ caFile: cfg.tls.caFile, certFile: cfg.proxyTlsCertFile, keyFile: cfg.proxyTlsKeyFile }),
        allowedCommonNames: cfg.proxyAllowedCommonNames,
        allowedDestinations: new CidrSet(this.shootNets),
        ...(proxyDestinationMapper(cfg.mapping) ? { mapDestination: proxyDestinationMapper(cfg.mapping) } : {}),
        gate: this.gate,
        holdTimeoutMs: cfg.proxyHoldTimeoutMs,
        maxPending: cfg.proxyMaxPending,
        dialTimeoutMs: cfg.proxyDialTimeoutMs,
        // retry a dial that saw no answer after a few probe intervals: it then takes a moved route
        dialAttemptTimeoutMs: Math.max(300, 4 * cfg.probeIntervalMs),
        logger: this.log,
        onOutcome: (outcome) => this.m.proxyRequests.inc({ outcome }),
        onAcceptError: (errno) => this.m.acceptErrors.inc({ errno }),
      });
      this.bound.proxy = (await this.proxy.start()).port;
      this.descriptors = this.watchDescriptors();
      // the links read their certificates at every dial; the local proxy reloads them on change
      this.tlsWatch = watchCertificates([cfg.tls.caFile, cfg.proxyTlsCertFile, cfg.proxyTlsKeyFile], () => this.proxy?.reloadTls(), this.log);
      this.probeTimer = setInterval(() => void this.probeAll(), cfg.probeIntervalMs);
      this.probeTimer.unref();
      this.status = createStatusServer({
        host: cfg.statusListen.host,
        port: cfg.statusListen.port,
        registry: this.registry,
        logger: this.log,
        live: () => ({ ok: !this.stopping }),
        ready: () => this.readiness(),
      });
      this.bound.status = (await this.status.start()).port;
      this.log.info({ bond: dev, slot: this.slot, address: this.addrs, paths: this.shootAddrs, routed: this.tunnelNets.map(String), probe: `${this.probeHost}:${cfg.probeTarget.port}`, ...(cfg.mapping.isActive() ? { mapping: cfg.mapping.toJSON() } : {}) }, 'path-controller started');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private startEndpoint(): void {
    const cfg = this.cfg;
    this.endpoint = new BondEndpoint({
      device: this.device!,
      servers: cfg.seedServers.map((s, i) => ({ id: `vpn-seed-server-${i}`, target: s, servername: `vpn-seed-server-${i}` })),
      tls: () => readTlsFiles(cfg.tls),
      // per socket: the kube-apiserver's network namespace keeps its kernel defaults (no pod sysctl)
      socketBuffers: TUNNEL_SOCKET_CAPS,
      offload: cfg.bondOffload,
      coalesce: cfg.bondCoalesce,
      role: 'seed',
      identity: `path-controller/${cfg.namespace}/${cfg.podName}`,
      address: this.addrs.v6,
      addresses: [this.addrs.v6, ...(this.addrs.v4 ? [this.addrs.v4] : [])],
      vpnNetwork: cfg.vpnNetwork.toString(),
      mapping: cfg.mapping,
      keepaliveIntervalMs: cfg.keepaliveIntervalMs,
      keepaliveTimeoutMs: cfg.keepaliveTimeoutMs,
      mtu: cfg.mtu,
      mode: cfg.bondingMode,
      primary: 'vpn-seed-server-0',
      failbackDelayMs: cfg.bondFailbackDelayMs,
      logger: this.log,
      onSwitch: (e) => {
        this.m.bondSwitches.inc();
        this.m.bondActive.reset();
        if (e.to) this.m.bondActive.set({ server: e.to }, 1);
      },
      onLinkChange: (id, up) => {
        this.m.linkUp.set({ server: id }, up ? 1 : 0);
        this.m.bondActive.reset();
        const active = this.endpoint?.bond.active;
        if (active) this.m.bondActive.set({ server: active }, 1);
      },
      onAnnounce: () => this.checkAttached(),
      onDialError: (id, code) => {
        if (code === 'RVPN_ERR_BOND_ADDRESS_IN_USE') void this.readdress(id);
      },
      onSendDrop: (id, reason, n) => this.m.sendDrops.inc({ server: id, reason }, n),
    });
    this.endpoint.start();
  }

  /**
   * A vpn-shoot pod that died left every server at once (its sessions closed) and the servers announce
   * that; its path goes down then, long before three probes could miss.
   */
  private checkAttached(): void {
    const bond = this.endpoint?.bond;
    if (!bond) return;
    for (let j = 0; j < this.cfg.haVpnClients; j++) {
      if (bond.attachedAnywhere(formatMac(macFromAddress(this.shootAddrs[j]!.v6))) !== false) continue;
      this.applyChange(this.selector.markDown(j, `shoot pod ${j} left every seed server`));
    }
  }

  private applyChange(change: ReturnType<PathSelector['markDown']>): void {
    for (let j = 0; j < this.cfg.haVpnClients; j++) this.m.pathUsable.set({ path: String(j) }, this.selector.state(j).usable ? 1 : 0);
    if (!change) return;
    this.m.pathSwitches.inc();
    this.m.activePath.set(change.to ?? -1);
    this.log.warn({ from: change.from, to: change.to, reason: change.reason }, change.to === undefined ? 'no usable path into the shoot; holding new requests' : 'switched the path into the shoot');
    if (change.to === undefined) this.gate.set(false);
    else {
      void this.setRoutes(change.to).then(() => {
        this.gate.set(this.selector.current !== undefined);
        // a CONNECT whose SYN went into the lost pod waits for no answer: dial it again on the new route
        const n = this.proxy?.retryPendingDials() ?? 0;
        if (n > 0) this.log.info({ dials: n }, 'dials without an answer made again on the new path');
      });
    }
  }

  /** Another replica holds our slot: draw a new one, re-address the bond and reconnect. */
  private async readdress(by: string): Promise<void> {
    if (this.readdressing || this.stopping) return;
    this.readdressing = true;
    try {
      const old = this.addrs;
      const nets = { v6: this.cfg.vpnNetwork, v4: this.cfg.ipFamilies.includes(4) ? this.cfg.bondNetworkV4 : undefined };
      this.slot = randomEndpointSlot();
      this.addrs = endpointBondAddresses(nets, this.slot);
      this.log.warn({ refusedBy: by, old, now: this.addrs }, 'bond address in use by another endpoint; drew another');
      await this.applyAddresses(old);
      await this.installRoutes();
      await this.endpoint?.readdress(this.addrs.v6, [this.addrs.v6, ...(this.addrs.v4 ? [this.addrs.v4] : [])]);
    } catch (err) {
      this.log.error({ err: (err as Error).message, code: errorCode(err) }, 'readdressing the bond failed');
    } finally {
      this.readdressing = false;
    }
  }

  /**
   * Sets the bond's MAC and addresses. The new addresses are added before the old ones go, so the
   * IPv6 connected route of the bond network never disappears (the kernel would flush every route via
   * it). IPv4 cannot keep it so: the new address is a secondary of the old one's subnet, and without
   * promote_secondaries the kernel deletes it with the primary; it is added again, and readdress()
   * reinstalls the routes after this.
   */
  private async applyAddresses(old: BondAddresses | undefined): Promise<void> {
    const dev = this.device!.name;
    await this.net.setLinkAddress(dev, formatMac(macFromAddress(this.addrs.v6)));
    await this.net.addAddress(dev, `${this.addrs.v6}/${this.cfg.vpnNetwork.prefix}`);
    if (this.addrs.v4) await this.net.addAddress(dev, `${this.addrs.v4}/${this.cfg.bondNetworkV4.prefix}`);
    if (old) {
      await this.net.deleteAddress(dev, `${old.v6}/${this.cfg.vpnNetwork.prefix}`).catch(() => undefined);
      if (old.v4) {
        await this.net.deleteAddress(dev, `${old.v4}/${this.cfg.bondNetworkV4.prefix}`).catch(() => undefined);
        if (this.addrs.v4) await this.net.addAddress(dev, `${this.addrs.v4}/${this.cfg.bondNetworkV4.prefix}`);
      }
    }
  }

  /** The per-path probe tables and the main routes (again after a re-address, to be sure). */
  private async installRoutes(): Promise<void> {
    for (let j = 0; j < this.cfg.haVpnClients; j++) {
      for (const c of this.tunnelNets) await this.net.replaceRoute({ dst: c.toString(), ...this.nextHop(c, j), table: this.cfg.routeTableBase + j });
    }
    await this.setRoutes(this.selector.current ?? 0);
  }

  /** Routes every shoot network (as it appears on the bond) via shoot pod j (serialized). */
  private setRoutes(j: number): Promise<void> {
    this.routeChange = this.routeChange.then(async () => {
      for (const c of this.tunnelNets) await this.net.replaceRoute({ dst: c.toString(), ...this.nextHop(c, j) });
    }).catch((err) => this.log.error({ err: (err as Error).message, code: errorCode(err) }, 'route update failed'));
    return this.routeChange;
  }

  private nextHop(c: Cidr, j: number) {
    const a = this.shootAddrs[j]!;
    const via = c.family === 4 && a.v4 ? a.v4 : a.v6;
    return { via, dev: this.cfg.bondDevice };
  }

  private async probeAll(): Promise<void> {
    const cfg = this.cfg;
    const results = await Promise.all(Array.from({ length: cfg.haVpnClients }, async (_, j) => {
      const localPort = cfg.probePortBase + 100 * j + (this.probePortNext[j]! % 100);
      this.probePortNext[j]!++;
      const r = await probeThrough({ host: this.probeHost, port: cfg.probeTarget.port, localPort, timeoutMs: cfg.probeTimeoutMs });
      this.m.probeSuccess.set({ path: String(j) }, r.ok ? 1 : 0);
      if (r.ok) this.m.probeRtt.set({ path: String(j) }, r.rttMs / 1000);
      return r;
    }));
    // one decision per round: a failure of every path at once is the bond's, not a shoot pod's
    this.applyChange(this.selector.recordRound(results, Date.now()));
  }

  private readiness() {
    const cur = this.selector.current;
    const links = this.endpoint ? this.cfg.seedServers.map((_, i) => `vpn-seed-server-${i}`).filter((id) => this.endpoint!.bond.linkUp(id)) : [];
    return {
      ok: cur !== undefined && links.length > 0 && !this.stopping,
      checks: {
        bond: { ok: links.length > 0, detail: `links up: ${links.join(', ') || 'none'}` },
        path: { ok: cur !== undefined, detail: cur === undefined ? 'no shoot pod passes probes' : `via shoot pod ${cur} (${this.shootAddrs[cur]!.v4 ?? this.shootAddrs[cur]!.v6})` },
      },
    };
  }

  /**
   * Out of file descriptors, accept(2) fails inside libuv and never reaches the proxy's 'error'
   * handler: a probe notices it, sets the gauge, counts the seconds and logs once per interval.
   */
  private watchDescriptors(): DescriptorWatch {
    const events = createIntervalLog({ logger: this.log, level: 'error' });
    return watchDescriptors({
      onExhausted: (code) => {
        this.m.descriptorsExhausted.set(1);
        this.m.descriptorExhaustedSecondsTotal.inc();
        events.log(`descriptors:${code}`, { code }, 'out of file descriptors: new CONNECTs from the kube-apiserver are not accepted until some close');
      },
      onRecovered: () => {
        this.m.descriptorsExhausted.set(0);
        this.log.warn({}, 'file descriptors available again');
      },
    });
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.tlsWatch?.stop();
    this.descriptors?.stop();
    await this.status?.stop().catch(() => undefined);
    await this.proxy?.stop().catch(() => undefined);
    await this.endpoint?.stop();
    await this.routeChange;
    await this.net.undoAll();
    this.device?.close();
    this.log.info({}, 'path-controller stopped; bond device, routes, rules and firewall removed');
  }
}

/**
 * The address the probes dial: PROBE_TARGET names a real shoot address (as the kube-apiserver would);
 * under a mapping it is probed where it appears on the bond, its mapped address (the configuration
 * refuses a target outside the shoot networks of a mapped family).
 */
export function probeDestination(cfg: Pick<PathControllerConfig, 'mapping' | 'probeTarget'>): string {
  return proxyDestinationMapper(cfg.mapping)?.(cfg.probeTarget.host) ?? cfg.probeTarget.host;
}

/** This pod's firewall for the bond: probe marking, only replies in, nothing forwarded. */
export function pathFirewall(bond: string, paths: number, portBase: number): string {
  const marks = Array.from({ length: paths }, (_, j) => `  tcp sport ${portBase + 100 * j}-${portBase + 100 * j + 99} meta mark set 0x${(MARK_BASE + j).toString(16)}`);
  return [
    'chain output {',
    '  type route hook output priority mangle; policy accept;',
    ...marks,
    '}',
    'chain input {',
    '  type filter hook input priority filter; policy accept;',
    `  iifname "${bond}" ct state established,related accept`,
    `  iifname "${bond}" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept`,
    `  iifname "${bond}" counter drop comment "the shoot may only answer"`,
    '}',
    'chain forward {',
    '  type filter hook forward priority filter; policy accept;',
    `  iifname "${bond}" counter drop`,
    `  oifname "${bond}" counter drop`,
    '}',
  ].join('\n');
}

function metrics(registry: Registry, endpoint: BondTapSource) {
  const p = 'rvpn_path_controller_';
  const r = [registry];
  return {
    bondTap: bondTapGauges(registry, p, endpoint),
    activePath: new Gauge({ name: `${p}active_path`, help: 'Index of the shoot pod the routes point at (-1: none usable)', registers: r }),
    pathSwitches: new Counter({ name: `${p}path_switches_total`, help: 'Changes of the active shoot path', registers: r }),
    probeSuccess: new Gauge({ name: `${p}probe_success`, help: '1 when the last probe through the path passed', labelNames: ['path'], registers: r }),
    pathUsable: new Gauge({ name: `${p}path_usable`, help: '1 while the path may carry the routes: its probes pass and, after a failure, have passed for PROBE_HEALTHY_PERIOD', labelNames: ['path'], registers: r }),
    probeRtt: new Gauge({ name: `${p}probe_rtt_seconds`, help: 'Round-trip time of the last passing probe, per path', labelNames: ['path'], registers: r }),
    bondSwitches: new Counter({ name: `${p}bond_switches_total`, help: 'Active-link switches of the bond', registers: r }),
    sendDrops: new Counter({ name: `${p}bond_send_dropped_frames_total`, help: 'Frames the per-link send queues dropped, by server and reason (queue_full: over the byte cap; codel: a standing queue)', labelNames: ['server', 'reason'], registers: r }),
    linkUp: new Gauge({ name: `${p}bond_link_up`, help: '1 while the link to a server is up', labelNames: ['server'], registers: r }),
    bondActive: new Gauge({ name: `${p}bond_active_link`, help: '1 for the server the bond currently sends through', labelNames: ['server'], registers: r }),
    proxyRequests: new Counter({ name: `${p}proxy_requests_total`, help: 'CONNECT requests by outcome', labelNames: ['outcome'], registers: r }),
    acceptErrors: new Counter({ name: `${p}proxy_accept_errors_total`, help: 'Failed accepts on the CONNECT proxy listener, by errno (EMFILE, ENFILE, other)', labelNames: ['errno'], registers: r }),
    descriptorsExhausted: new Gauge({ name: `${p}descriptors_exhausted`, help: '1 while the process has no file descriptor left (new CONNECTs wait in the backlog or are closed by libuv)', registers: r }),
    descriptorExhaustedSecondsTotal: new Counter({ name: `${p}descriptor_exhausted_seconds_total`, help: 'Seconds (probes) the process spent without a free file descriptor', registers: r }),
  };
}

