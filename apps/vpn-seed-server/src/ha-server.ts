/**
 * vpn-seed-server in HA mode (IS_HA=true, one of two StatefulSet replicas): a layer-2 switch between
 * every endpoint connected to it — the kube-apiserver-side endpoints (path-controller, certificate CN
 * vpn-seed-client) and the shoot clients (vpn-shoot-client-<j>). Frames are switched in userspace
 * (libs/bonding L2Switch), so this mode needs no TUN/TAP device and no NET_ADMIN.
 *
 * - Every client names its bond address in its HELLO; its MAC derives from it. A shoot client j may
 *   only use the fixed address of index j; an apiserver endpoint one from the endpoint range, refused
 *   with RVPN_ERR_BOND_ADDRESS_IN_USE when another live endpoint holds it (it draws again). The same
 *   endpoint (same HELLO identity) reconnecting replaces its old port.
 * - Each port is pinned to its one source MAC: frames with another source are dropped (a shoot cannot
 *   impersonate an apiserver endpoint or the other shoot pod).
 * - The MACs attached here are announced (MAC_ANNOUNCE extension frame) to every port at once on a
 *   change and every ANNOUNCE_INTERVAL, so bonds pick a link per destination.
 * - Ready when at least one shoot client is attached.
 */
import { errorCode, haIndexOf, readTlsFiles, type SeedServerConfig } from '@rvpn/config';
import {
  BondAddressInUseError,
  BondAddressInvalidError,
  encodeMacAnnouncement,
  formatMac,
  isEndpointAddress,
  L2Switch,
  macFromAddress,
  shootIndexOf,
} from '@rvpn/bonding';
import { createStatusServer, watchCertificates, type FileWatch, type Logger } from '@rvpn/observability';
import {
  authorizeByIdentity,
  FrameType,
  packBatch,
  TunnelConfigMismatchError,
  TunnelListener,
  unpackBatch,
  type LocalHello,
  type PeerHello,
  type TunnelSession,
} from '@rvpn/tunnel';
import { Counter, Gauge, type Registry } from 'prom-client';
import { shootIdentityUri } from './seed-server.js';

interface Port {
  id: string;
  session: TunnelSession;
  role: 'shoot' | 'seed';
  address: string;
  identity: string;
}

export class HaSeedServer {
  private readonly cfg: SeedServerConfig;
  private readonly log: Logger;
  private readonly registry: Registry;
  readonly index: number;
  readonly switch: L2Switch;
  private readonly ports = new Map<string, Port>();
  private listener: TunnelListener | undefined;
  private status: ReturnType<typeof createStatusServer> | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  private tlsWatch: FileWatch | undefined;
  private announcePending = false;
  private nextPort = 0;
  private stopping = false;
  private readonly refused: Counter;
  private readonly sessions: Counter;
  /** Bound ports after start (tests listen on port 0). */
  readonly bound: { tunnel?: number; status?: number } = {};

  constructor(cfg: SeedServerConfig, deps: { logger: Logger; registry: Registry }) {
    this.cfg = cfg;
    this.log = deps.logger;
    this.registry = deps.registry;
    this.index = haIndexOf(cfg.podName) ?? 0;
    this.switch = new L2Switch({
      send: (portId, frames) => this.ports.get(portId)?.session.sendBatch(packBatch(frames)),
      onMacsChanged: () => this.scheduleAnnounce(),
      maxMacsPerPort: 1,
    });
    const p = 'rvpn_seed_server_ha_';
    const r = [deps.registry];
    this.refused = new Counter({ name: `${p}refused_total`, help: 'Endpoint connections refused, by code', labelNames: ['code'], registers: r });
    this.sessions = new Counter({ name: `${p}sessions_total`, help: 'Endpoint sessions attached, by role', labelNames: ['role'], registers: r });
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
    };
  }

  /** Binds the HELLO's role and bond address to the certificate it was authorized with. */
  private validate(peer: PeerHello, identity: string): void {
    const cfg = this.cfg;
    if (peer.vpnNetwork !== cfg.vpnNetwork.toString()) throw new TunnelConfigMismatchError(`VPN_NETWORK differs: client ${peer.vpnNetwork}, server ${cfg.vpnNetwork}`);
    const address = peer.bond?.address;
    if (!address) throw new BondAddressInvalidError(`${identity} sent no bond address: is it running in HA mode?`);
    if (cfg.clientAllowedCommonNames.includes(identity)) {
      const j = /-(\d+)$/.exec(identity)?.[1];
      if (peer.role !== 'shoot' || j === undefined || shootIndexOf(cfg.vpnNetwork, address) !== Number(j)) {
        throw new BondAddressInvalidError(`${identity} may only use the shoot address of index ${j ?? '?'}, not ${address} (role ${peer.role})`);
      }
    } else {
      if (peer.role !== 'seed' || !isEndpointAddress(cfg.vpnNetwork, address)) {
        throw new BondAddressInvalidError(`${identity} must use an endpoint address of ${cfg.vpnNetwork}, not ${address} (role ${peer.role})`);
      }
      for (const p of this.ports.values()) {
        if (p.address === address && p.identity !== peer.identity) throw new BondAddressInUseError(`${address} is held by ${p.identity}`);
      }
    }
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
        onRefused: (code) => this.refused.inc({ code }),
        logger: this.log,
      });
      this.bound.tunnel = (await this.listener.start()).port;
      this.tlsWatch = watchCertificates(Object.values(cfg.tls), () => this.listener?.reloadTls(), this.log);
      this.announceTimer = setInterval(() => this.announce(), cfg.announceIntervalMs);
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
    const address = peer.bond!.address!;
    for (const old of [...this.ports.values()]) {
      if (old.address === address) {
        this.log.info({ address, old: old.identity, now: peer.identity }, 'endpoint reconnected; replacing its old port');
        this.detach(old.id);
        old.session.close('replaced by a new session of the same endpoint');
      }
    }
    const port: Port = { id: `${peer.identity}#${this.nextPort++}`, session, role: peer.role, address, identity: peer.identity };
    this.ports.set(port.id, port);
    this.switch.addPort(port.id, { allowedMacs: [formatMac(macFromAddress(address))] });
    this.sessions.inc({ role: port.role });
    session.onPackets((packed) => {
      try {
        this.switch.receive(port.id, unpackBatch(packed));
      } catch (err) {
        this.log.warn({ port: port.id, err: (err as Error).message }, 'malformed batch from endpoint');
      }
    });
    session.sendExtension(FrameType.MAC_ANNOUNCE, encodeMacAnnouncement(this.switch.attachedMacs()));
    this.log.info({ port: port.id, cert: identity, role: port.role, address, mac: formatMac(macFromAddress(address)) }, 'endpoint attached');
    void session.closed.then((end) => {
      if (!this.ports.has(port.id)) return;
      this.detach(port.id);
      this.log.warn({ port: port.id, reason: end.reason, code: end.code }, 'endpoint detached');
    });
  }

  private detach(portId: string) {
    this.ports.delete(portId);
    this.switch.removePort(portId);
  }

  private scheduleAnnounce() {
    if (this.announcePending) return;
    this.announcePending = true;
    setImmediate(() => {
      this.announcePending = false;
      this.announce();
    });
  }

  /** Sends the attached MACs to every port. */
  private announce() {
    const payload = encodeMacAnnouncement(this.switch.attachedMacs());
    for (const p of this.ports.values()) {
      try {
        p.session.sendExtension(FrameType.MAC_ANNOUNCE, payload);
      } catch (err) {
        this.log.debug({ port: p.id, err: (err as Error).message, code: errorCode(err) }, 'announce failed');
      }
    }
  }

  private readiness() {
    const shoots = [...this.ports.values()].filter((p) => p.role === 'shoot').length;
    const seeds = this.ports.size - shoots;
    return { ok: shoots > 0 && !this.stopping, checks: { shootClients: { ok: shoots > 0, detail: `${shoots} shoot client(s), ${seeds} apiserver endpoint(s) attached` } } };
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.announceTimer) clearInterval(this.announceTimer);
    this.tlsWatch?.stop();
    await this.status?.stop().catch(() => undefined);
    await this.listener?.stop().catch(() => undefined);
    this.log.info({}, 'vpn-seed-server (HA switch) stopped');
  }
}
