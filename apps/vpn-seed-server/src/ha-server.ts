/**
 * vpn-seed-server in HA mode (IS_HA=true, one of two StatefulSet replicas): a layer-2 switch between
 * every endpoint connected to it — the kube-apiserver-side endpoints (path-controller, certificate CN
 * vpn-seed-client) and the shoot clients (vpn-shoot-client-<j>). Frames are switched in userspace
 * (libs/bonding L2Switch), so this mode needs no TUN/TAP device and no NET_ADMIN.
 *
 * - Every client names its bond address in its HELLO; it is compared, and its MAC derived, in its
 *   canonical spelling only (another spelling of the same address is the same endpoint, never a new
 *   port). A shoot client j may only use the fixed address of index j; an apiserver endpoint one from
 *   the endpoint range, refused with RVPN_ERR_BOND_ADDRESS_IN_USE when another live endpoint holds it
 *   (it draws again). The same address reconnecting replaces its old port. At most HA_MAX_PORTS ports
 *   exist; one more is refused with RVPN_ERR_SWITCH_FULL.
 * - Each port is pinned to its one source MAC: frames with another source are dropped (a shoot cannot
 *   impersonate an apiserver endpoint or the other shoot pod). A shoot client's port also carries a
 *   guard (libs/bonding guard.ts): IP sources only its bond addresses and the shoot networks, ARP/ND
 *   only for its own addresses and MAC, no redirects or router advertisements. Every port may flood
 *   at most HA_BROADCAST_RATE frames per second.
 * - The MACs attached here are announced (MAC_ANNOUNCE extension frame) to every port on a change
 *   (coalesced: at most one round per 100 ms) and every ANNOUNCE_INTERVAL, so bonds pick a link per
 *   destination. A port whose write buffer is over its cap (not reading) is skipped; the next round
 *   reaches it. The table never holds more MACs than one announcement carries.
 * - Ready when at least one shoot client is attached.
 */
import { errorCode, haIndexOf, readTlsFiles, type Cidr, type SeedServerConfig } from '@rvpn/config';
import {
  BondAddressInUseError,
  BondAddressInvalidError,
  canonicalAddress,
  createPortGuard,
  encodeMacAnnouncement,
  formatMac,
  isEndpointAddress,
  L2Switch,
  macFromAddress,
  sendFrames,
  shootBondAddresses,
  shootIndexOf,
  SwitchFullError,
} from '@rvpn/bonding';
import { Counter, createIntervalLog, createStatusServer, Gauge, watchCertificates, type DescriptorWatch, type FileWatch, type IntervalLog, type Logger, type Registry } from '@rvpn/observability';
import {
  authorizeByIdentity,
  FEATURE_GSO,
  FrameType,
  knownCode,
  peerText,
  SessionSender,
  TunnelConfigMismatchError,
  TunnelListener,
  TUNNEL_SOCKET_CAPS,
  unpackBatch,
  VNET_HDR_BYTES,
  type LocalHello,
  type PeerHello,
  type TunnelSession,
} from '@rvpn/tunnel';
import { seedServerLimits, shootIdentityUri, watchSeedDescriptors } from './seed-server.js';
import { exportSeedServerLimits } from './metrics.js';

/**
 * The sources a shoot client's port may forward replies from: the shoot networks as they appear on
 * the bond, i.e. the mapped shoot ranges of a mapped family (issue 12) and the real ones otherwise.
 * The switch translates nothing; it only has to know which addresses a shoot pod may answer from.
 */
export function haForwardedSources(cfg: Pick<SeedServerConfig, 'mapping' | 'shootServiceNetworks' | 'shootPodNetworks' | 'shootNodeNetworks'>): Cidr[] {
  return cfg.mapping.isActive() ? cfg.mapping.tunnelCidrs('shoot') : [...cfg.shootServiceNetworks, ...cfg.shootPodNetworks, ...cfg.shootNodeNetworks];
}

/** Change-triggered announcements are coalesced to at most one round per this many ms. */
const ANNOUNCE_COALESCE_MS = 100;

interface Port {
  id: string;
  session: TunnelSession;
  /** The session's sender: a flow-fair queue in front of it, so a bulk flow does not delay the others. */
  sender: SessionSender;
  role: 'shoot' | 'seed';
  address: string;
  identity: string;
  /** The table version this port last received (announcements go only to ports behind). */
  sentVersion: number;
}

export class HaSeedServer {
  private readonly cfg: SeedServerConfig;
  private readonly log: Logger;
  private readonly registry: Registry;
  readonly index: number;
  readonly switch: L2Switch;
  /** Super-frames the switch cut for ports without "gso" (offload.ts), since start. */
  readonly offload = { split: 0 };
  private readonly ports = new Map<string, Port>();
  private listener: TunnelListener | undefined;
  private status: ReturnType<typeof createStatusServer> | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  private tlsWatch: FileWatch | undefined;
  private announceTimerOnce: NodeJS.Timeout | undefined;
  private lastAnnounce = 0;
  private readonly events: IntervalLog;
  private nextPort = 0;
  private stopping = false;
  private readonly refused: Counter;
  private readonly sessions: Counter;
  private readonly announceSkipped: Counter;
  private readonly sendDrops: Counter;
  private readonly acceptErrors: Counter;
  private readonly fdMetrics: { descriptorsExhausted: Gauge; descriptorExhaustedSecondsTotal: Counter };
  private descriptors: DescriptorWatch | undefined;
  /** Bound ports after start (tests listen on port 0). */
  readonly bound: { tunnel?: number; status?: number } = {};

  constructor(cfg: SeedServerConfig, deps: { logger: Logger; registry: Registry }) {
    this.cfg = cfg;
    this.log = deps.logger;
    this.registry = deps.registry;
    this.index = haIndexOf(cfg.podName) ?? 0;
    this.switch = new L2Switch({
      send: (portId, frames, hdr) => {
        const sender = this.ports.get(portId)?.sender;
        if (sender) sendFrames(sender, frames, hdr, this.offload);
      },
      onMacsChanged: () => this.scheduleAnnounce(),
      maxMacsPerPort: 1,
      maxPorts: cfg.haMaxPorts,
      broadcastRate: cfg.haBroadcastRate,
    });
    this.events = createIntervalLog({ logger: deps.logger, level: 'warn' });
    exportSeedServerLimits(deps.registry, seedServerLimits(cfg));
    const p = 'rvpn_seed_server_ha_';
    const r = [deps.registry];
    this.sendDrops = new Counter({ name: `${p}send_dropped_frames_total`, help: 'Frames the per-port send queues dropped, by reason (queue_full: over the byte cap; codel: a standing queue)', labelNames: ['reason'], registers: r });
    this.refused = new Counter({ name: `${p}refused_total`, help: 'Endpoint connections refused, by code', labelNames: ['code'], registers: r });
    this.sessions = new Counter({ name: `${p}sessions_total`, help: 'Endpoint sessions attached, by role', labelNames: ['role'], registers: r });
    this.fdMetrics = {
      descriptorsExhausted: new Gauge({ name: 'rvpn_seed_server_descriptors_exhausted', help: '1 while the process has no file descriptor left', registers: r }),
      descriptorExhaustedSecondsTotal: new Counter({ name: 'rvpn_seed_server_descriptor_exhausted_seconds_total', help: 'Seconds (probes) the process spent without a free file descriptor', registers: r }),
    };
    this.acceptErrors = new Counter({ name: `${p}accept_errors_total`, help: 'Errors of the listening socket (EMFILE); it keeps serving', labelNames: ['errno'], registers: r });
    this.announceSkipped = new Counter({ name: `${p}announcements_skipped_total`, help: 'MAC announcements not sent to a port that was not reading (write buffer over its cap)', registers: r });
    const sw = this.switch;
    const ports = this.ports;
    new Gauge({ name: `${p}ports`, help: 'Attached endpoints, by role', labelNames: ['role'], registers: r, collect() {
      this.reset();
      for (const role of ['shoot', 'seed']) this.set({ role }, [...ports.values()].filter((x) => x.role === role).length);
    } });
    new Gauge({ name: `${p}macs`, help: 'MACs in the switch table', registers: r, collect() { this.set(sw.attachedMacs().length); } });
    new Gauge({ name: `${p}frames_total`, help: 'Frames switched since start, by how (a counter exposed as gauge of the switch stats)', labelNames: ['how'], registers: r, collect() {
      this.set({ how: 'unicast' }, sw.stats.unicast);
      this.set({ how: 'flooded' }, sw.stats.flooded);
    } });
    const offload = this.offload;
    new Gauge({ name: `${p}split_superframes`, help: 'Super-frames the switch cut into frames for a port without "gso" (an older endpoint, or one with offload off), since start', registers: r, collect() { this.set(offload.split); } });
    new Gauge({ name: `${p}dropped_frames`, help: 'Frames the switch dropped since start, by reason', labelNames: ['reason'], registers: r, collect() {
      for (const [reason, n] of Object.entries(sw.stats.dropped)) this.set({ reason }, n);
    } });
  }

  private hello(): LocalHello {
    return {
      role: 'seed',
      identity: `vpn-seed-server-${this.index}/${this.cfg.namespace}`,
      keepaliveIntervalMs: this.cfg.keepaliveIntervalMs,
      keepaliveTimeoutMs: this.cfg.keepaliveTimeoutMs,
      vpnNetwork: this.cfg.vpnNetwork.toString(),
      mtu: this.cfg.mtu,
      bond: { serverIndex: this.index },
      mapping: this.cfg.mapping.fingerprint(),
      ...(this.cfg.tunnelOffload ? { features: [FEATURE_GSO] } : {}),
    };
  }

  /** Binds the HELLO's role and bond address to the certificate it was authorized with. */
  private validate(peer: PeerHello, identity: string): void {
    const cfg = this.cfg;
    if (peer.vpnNetwork !== cfg.vpnNetwork.toString()) throw new TunnelConfigMismatchError(`VPN_NETWORK differs: client ${peerText(peer.vpnNetwork, 64)}, server ${cfg.vpnNetwork}`);
    // the shoot clients translate and the path-controllers map what they dial: all must agree with the switch's guard (issue 12)
    cfg.mapping.assertSameAs(peer.mapping, identity);
    const raw = peer.bond?.address;
    if (!raw) throw new BondAddressInvalidError(`${identity} sent no bond address: is it running in HA mode?`);
    const address = canonicalAddress(raw);
    if (!address) throw new BondAddressInvalidError(`${identity} sent ${peerText(raw, 64)}, not an address`);
    if (cfg.clientAllowedCommonNames.includes(identity)) {
      const j = /-(\d+)$/.exec(identity)?.[1];
      if (peer.role !== 'shoot' || j === undefined || shootIndexOf(cfg.vpnNetwork, address) !== Number(j)) {
        throw new BondAddressInvalidError(`${identity} may only use the shoot address of index ${j ?? '?'}, not ${address} (role ${peerText(peer.role, 16)})`);
      }
    } else {
      if (peer.role !== 'seed' || !isEndpointAddress(cfg.vpnNetwork, address)) {
        throw new BondAddressInvalidError(`${identity} must use an endpoint address of ${cfg.vpnNetwork}, not ${address} (role ${peerText(peer.role, 16)})`);
      }
      for (const p of this.ports.values()) {
        if (p.address === address && p.identity !== peer.identity) throw new BondAddressInUseError(`${address} is held by ${peerText(p.identity, 64)}`);
      }
    }
    // a reconnect of an attached address replaces its port; anything else needs a free one
    if (this.switch.full && ![...this.ports.values()].some((p) => p.address === address)) {
      throw new SwitchFullError(`${this.ports.size} endpoints are attached (HA_MAX_PORTS)`);
    }
  }

  /**
   * The guard of shoot client j's port: its own bond addresses, replies from the shoot networks as
   * they appear on the bond (the mapped ranges when mapped, issue 12: vpn-shoot's conntrack answers
   * from the mapped address the path-controller dialed; a real shoot address is then a forgery).
   */
  private shootGuard(j: number, mac: Buffer) {
    const cfg = this.cfg;
    const v4 = cfg.ipFamilies.includes(4) ? cfg.bondNetworkV4 : undefined;
    const own = shootBondAddresses({ v6: cfg.vpnNetwork, v4 }, j);
    return createPortGuard({
      mac,
      addresses: [own.v6, ...(own.v4 ? [own.v4] : [])],
      forwardedSources: haForwardedSources(cfg),
      // the bond networks: where the packets an ICMP error from the shoot quotes came from
      peers: [cfg.vpnNetwork, ...(v4 ? [v4] : [])],
    });
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    try {
      this.listener = new TunnelListener({
        host: cfg.tunnelListen.host,
        port: cfg.tunnelListen.port,
        tls: () => readTlsFiles(cfg.tls),
        authorize: authorizeByIdentity({ allowedCommonNames: [...cfg.clientAllowedCommonNames, ...cfg.seedClientCommonNames], requiredUri: shootIdentityUri(cfg.namespace) }),
        hello: () => this.hello(),
        validatePeerHello: (peer, { identity }) => this.validate(peer, identity),
        onSession: (s, info) => this.attach(s, info.identity),
        onRefused: (code) => this.refused.inc({ code: knownCode(code) }),
        onAcceptError: (errno) => this.acceptErrors.inc({ errno }),
        maxPendingHandshakes: cfg.tunnelMaxPendingHandshakes,
        // per socket: the HA seed server has no privilege to set its pod's TCP sysctls
        socketBuffers: TUNNEL_SOCKET_CAPS,
        tlsHandshakeTimeoutMs: cfg.tunnelTlsHandshakeTimeoutMs,
        handshakeTimeoutMs: cfg.tunnelHandshakeTimeoutMs,
        logger: this.log,
      });
      this.bound.tunnel = (await this.listener.start()).port;
      this.tlsWatch = watchCertificates(Object.values(cfg.tls), () => this.listener?.reloadTls(), this.log);
      this.announceTimer = setInterval(() => {
        this.announce();
        this.logDrops();
      }, cfg.announceIntervalMs);
      this.announceTimer.unref();
      this.status = createStatusServer({
        host: cfg.statusListen.host,
        port: cfg.statusListen.port,
        registry: this.registry,
        logger: this.log,
        live: () => ({ ok: !this.stopping }),
        ready: () => this.readiness(),
      });
      this.bound.status = (await this.status.start()).port;
      this.descriptors = watchSeedDescriptors(this.fdMetrics, this.log);
      this.log.info({ index: this.index, port: this.bound.tunnel }, 'vpn-seed-server (HA switch) started');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private attach(session: TunnelSession, identity: string): void {
    if (this.stopping) {
      session.close('server stopping');
      return;
    }
    const peer = session.peerHello;
    const address = canonicalAddress(peer.bond!.address!)!;
    const name = peerText(peer.identity, 96);
    for (const old of [...this.ports.values()]) {
      if (old.address === address) {
        this.log.info({ address, old: peerText(old.identity, 96), now: name }, 'endpoint reconnected; replacing its old port');
        this.detach(old.id);
        old.session.close('replaced by a new session of the same endpoint');
      }
    }
    const id = `${name}#${this.nextPort++}`;
    const sender = new SessionSender(session, { queue: { ethernet: true, gso: session.gso }, onDrop: (reason, n) => this.sendDrops.inc({ reason }, n) });
    const port: Port = { id, session, sender, role: peer.role, address, identity: peer.identity, sentVersion: -1 };
    const mac = macFromAddress(address);
    const j = peer.role === 'shoot' ? shootIndexOf(this.cfg.vpnNetwork, address) : undefined;
    try {
      this.switch.addPort(port.id, { allowedMacs: [formatMac(mac)], ...(j !== undefined ? { guard: this.shootGuard(j, mac) } : {}) });
    } catch (err) {
      // two handshakes raced for the last port
      this.refused.inc({ code: knownCode(errorCode(err)) });
      this.events.log('refused:switch_full', { code: errorCode(err), port: port.id }, 'endpoint refused: the switch is full');
      sender.close();
      session.close((err as Error).message);
      return;
    }
    this.ports.set(port.id, port);
    this.sessions.inc({ role: port.role });
    session.onPackets((packed, gso) => {
      try {
        this.switch.receive(port.id, unpackBatch(packed, gso), gso ? VNET_HDR_BYTES : 0);
      } catch (err) {
        this.events.log('malformed', { port: port.id, err: (err as Error).message }, 'malformed batch from endpoint');
      }
    });
    this.sendAnnouncement(port, this.announcement());
    this.log.info({ port: port.id, cert: identity, role: port.role, address, mac: formatMac(mac) }, 'endpoint attached');
    void session.closed.then((end) => {
      if (!this.ports.has(port.id)) return;
      this.detach(port.id);
      this.log.warn({ port: port.id, reason: end.reason, code: end.code }, 'endpoint detached');
    });
  }

  private detach(portId: string) {
    this.ports.get(portId)?.sender.close();
    this.ports.delete(portId);
    this.switch.removePort(portId);
  }

  /** A change: one announcement round soon, at most one per ANNOUNCE_COALESCE_MS (a join storm is not N rounds of N MACs). */
  private scheduleAnnounce() {
    this.tableVersion++;
    if (this.announceTimerOnce || this.stopping) return;
    const wait = Math.max(0, this.lastAnnounce + ANNOUNCE_COALESCE_MS - Date.now());
    this.announceTimerOnce = setTimeout(() => {
      this.announceTimerOnce = undefined;
      this.announce();
    }, wait);
    this.announceTimerOnce.unref();
  }

  /** The current announcement payload, or undefined if it cannot be encoded (never thrown from a timer). */
  private announcement(): Buffer | undefined {
    try {
      return encodeMacAnnouncement(this.switch.attachedMacs());
    } catch (err) {
      this.events.log('announce', { err: (err as Error).message, macs: this.switch.attachedMacs().length }, 'cannot encode the MAC announcement');
      return undefined;
    }
  }

  private sendAnnouncement(p: Port, payload: Buffer | undefined) {
    if (!payload) return;
    try {
      // false: the port is not reading (write buffer over its cap); the next round reaches it
      if (p.session.sendExtension(FrameType.MAC_ANNOUNCE, payload)) p.sentVersion = this.tableVersion;
      else this.announceSkipped.inc();
    } catch (err) {
      this.events.log('announce-send', { port: p.id, err: (err as Error).message, code: errorCode(err) }, 'announce failed');
    }
  }

  /** Frames the switch refused since the last look, logged once per interval (the gauge has them all). */
  private logDrops() {
    const d = this.switch.stats.dropped as unknown as Record<string, number>;
    const delta: Record<string, number> = {};
    for (const [k, v] of Object.entries(d)) if (v > (this.dropsSeen[k] ?? 0)) delta[k] = v - (this.dropsSeen[k] ?? 0);
    this.dropsSeen = { ...d };
    if (Object.keys(delta).length > 0) this.events.log('switch-drops', { dropped: delta }, 'frames dropped by the switch');
  }
  private dropsSeen: Record<string, number> = {};

  /**
   * Sends the attached MACs to every port that has not got this version of the table yet. A change
   * costs one round of N ports × N MACs (at most one per 100 ms); a quiet switch sends nothing, and
   * the periodic round only catches up ports that were skipped while they did not read.
   */
  private announce() {
    const behind = [...this.ports.values()].filter((p) => p.sentVersion !== this.tableVersion);
    if (behind.length === 0) return;
    this.lastAnnounce = Date.now();
    const payload = this.announcement();
    for (const p of behind) this.sendAnnouncement(p, payload);
  }
  private tableVersion = 0;

  private readiness() {
    const shoots = [...this.ports.values()].filter((p) => p.role === 'shoot').length;
    const seeds = this.ports.size - shoots;
    return { ok: shoots > 0 && !this.stopping, checks: { shootClients: { ok: shoots > 0, detail: `${shoots} shoot client(s), ${seeds} apiserver endpoint(s) attached` } } };
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.announceTimer) clearInterval(this.announceTimer);
    if (this.announceTimerOnce) clearTimeout(this.announceTimerOnce);
    this.events.stop();
    this.descriptors?.stop();
    this.tlsWatch?.stop();
    await this.status?.stop().catch(() => undefined);
    await this.listener?.stop().catch(() => undefined);
    this.log.info({}, 'vpn-seed-server (HA switch) stopped');
  }
}
