/**
 * sni-proxy: the seed's single shared entry point (Istio ingress gateway's role).
 *   :443  TLS passthrough routed by the ClientHello's SNI.
 *   :8443 HTTP/1.x CONNECT routed by `X-Gardener-Destination`.
 *   :8132 the same with the legacy `Reversed-VPN` header.
 * The CONNECT request target is ignored; the header value names the upstream, must match the
 * allow-list and must be in the route table. Route reloads never touch existing connections.
 *
 * Anyone on the internet reaches it, so every connection is bounded before it is routed: one deadline
 * (HEADER_TIMEOUT) for the PROXY header plus the request head or ClientHello, caps across all listeners
 * (in total, per source, per route, pending in total and per source; @rvpn/proxy's ConnectionLimits),
 * a refused TLS client gets its alert and is destroyed after a short linger (never left half-open), an
 * upstream dial has its own timeout, and a piped connection an idle timeout. Upstream names are
 * resolved when routes load, not per connection (upstreams.ts). Refusals are counted in
 * metrics and logged once per interval. Listener errors are counted and survived; running out of file
 * descriptors (which Node never reports for an accept) is noticed by a probe, counted and logged.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { CidrSet, errorCode, type SniProxyConfig } from '@rvpn/config';
import { createIntervalLog, createStatusServer, watchDescriptors, type DescriptorWatch, type IntervalLog, type Logger, type Registry } from '@rvpn/observability';
import {
  ConnectionLimits, readClientHello, readProxyHeader, readRequestHead, sourceKey, statusForHeadError, writeStatus, type Admission, type ProxyHeader,
} from '@rvpn/proxy';
import { relaySockets, type SocketRelay } from '@rvpn/tunnel/relay';
import { capSocketBuffers } from '@rvpn/tunnel/sockopt';
import { createSniProxyMetrics } from './metrics.js';
import { RouteFileSource, type RouteTable, type Upstream } from './routes.js';
import { UpstreamResolver, fixedLookup, type LookupAll, type ResolvedAddress } from './upstreams.js';

/** How long the start waits for the first table's lookups before it listens anyway (they go on). */
const START_RESOLVE_WAIT_MS = 5000;

type ListenerKind = { name: string; kind: 'sni' } | { name: string; kind: 'connect'; header: string };

/** TLS alert record: fatal (2), unrecognized_name (112). */
const ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);
/** How long a refused client has to read its alert or status before the socket is destroyed. */
export const REFUSAL_LINGER_MS = 1000;
/** Peer-supplied text is cut to this length in logs. */
const LOG_VALUE_CHARS = 200;

const clip = (s: string) => (s.length > LOG_VALUE_CHARS ? `${s.slice(0, LOG_VALUE_CHARS)}…` : s);

/** Who a connection is: the TCP peer, what a PROXY header claims, and the key its caps count. */
interface Peer {
  /** The TCP peer, `address:port`. */
  remote: string;
  /** The PROXY header's source, `address:port`, when one was sent (believed or not). */
  claimed?: string;
  /** The key per-source caps count (sourceKey of the peer, or of the claim from a trusted peer). */
  source?: string;
}

export class SniProxy {
  private readonly cfg: SniProxyConfig;
  private readonly log: Logger;
  private readonly registry: Registry;
  private readonly metrics: ReturnType<typeof createSniProxyMetrics>;
  private readonly limits: ConnectionLimits;
  private readonly trusted: CidrSet;
  private readonly refusals: IntervalLog;
  private readonly acceptErrors: IntervalLog;
  private table: RouteTable | undefined;
  private source: RouteFileSource | undefined;
  private readonly servers: net.Server[] = [];
  /** Client connections and upstream connections, for stop(). */
  private readonly sockets = new Set<net.Socket>();
  private status: ReturnType<typeof createStatusServer> | undefined;
  private descriptors: DescriptorWatch | undefined;
  private readonly abort = new AbortController();
  private readonly onHup = () => void this.reload();
  private readonly resolver: UpstreamResolver;
  private readonly resolveErrors: IntervalLog;
  private capWarned = false;
  private relayWarned = false;
  /** Running native relays (RELAY_MODE=native), for stop() and the byte counter. */
  private readonly relays = new Set<SocketRelay>();
  /** Bytes of the native relays that ended, by direction. */
  private readonly relayedBytes = { upstream: 0, downstream: 0 };
  /**
   * A client connection's release of its admission, called when its socket closes. A native relay takes
   * it out at handover (that close is not the connection's end) and calls it when the relay ends.
   */
  private readonly releases = new WeakMap<net.Socket, () => void>();
  /** Bound ports after start (useful when configured with port 0). */
  readonly ports: Record<string, number> = {};

  /** deps.lookup replaces the system resolver for upstream names (tests). */
  constructor(cfg: SniProxyConfig, deps: { logger: Logger; registry: Registry; lookup?: LookupAll }) {
    this.cfg = cfg;
    this.log = deps.logger;
    this.registry = deps.registry;
    this.metrics = createSniProxyMetrics(deps.registry, () => this.relayBytes());
    this.limits = new ConnectionLimits({
      maxConnections: cfg.maxConnections,
      maxPerSource: cfg.maxConnectionsPerSource,
      maxPerRoute: cfg.maxConnectionsPerRoute,
      maxPending: cfg.maxPendingConnections,
      maxPendingPerSource: cfg.maxPendingConnectionsPerSource,
    });
    this.trusted = new CidrSet(cfg.proxyProtocolTrustedNetworks);
    this.refusals = createIntervalLog({ logger: this.log, level: 'info', intervalMs: cfg.refusalLogIntervalMs });
    this.acceptErrors = createIntervalLog({ logger: this.log, level: 'error', intervalMs: cfg.refusalLogIntervalMs });
    this.resolveErrors = createIntervalLog({ logger: this.log, level: 'warn', intervalMs: cfg.refusalLogIntervalMs });
    this.resolver = new UpstreamResolver({
      ...(deps.lookup ? { lookup: deps.lookup } : {}),
      onLookup: (host, r, cause) => {
        this.metrics.upstreamLookupsTotal.inc({ result: r.ok ? 'ok' : 'error', cause });
        this.metrics.upstreamsUnresolved.set(this.resolver.unresolved.length);
        if (!r.ok) this.resolveErrors.log(`resolve:${host}`, { upstream: host, err: r.err.message, code: (r.err as NodeJS.ErrnoException).code }, 'upstream name cannot be resolved; its connections get 502 until a retry resolves it');
      },
    });
    const limit = this.metrics.connectionLimit;
    limit.set({ limit: 'total' }, cfg.maxConnections);
    limit.set({ limit: 'per_source' }, cfg.maxConnectionsPerSource);
    limit.set({ limit: 'per_route' }, cfg.maxConnectionsPerRoute);
    limit.set({ limit: 'pending' }, cfg.maxPendingConnections);
    limit.set({ limit: 'pending_per_source' }, cfg.maxPendingConnectionsPerSource);
    this.metrics.headerTimeoutSeconds.set(cfg.headerTimeoutMs / 1000);
  }

  get routes(): RouteTable | undefined {
    return this.table;
  }

  /** Open client connections across all listeners (what MAX_CONNECTIONS caps). */
  get connections(): number {
    return this.limits.connections;
  }

  private install(table: RouteTable): Promise<void> {
    this.table = table;
    this.metrics.routes.set({ kind: 'sni' }, table.sni.size);
    this.metrics.routes.set({ kind: 'connect' }, table.connect.size);
    return this.resolveUpstreams(table);
  }

  /** Looks up every upstream name of the table once (load and reload), instead of once per connection. */
  private async resolveUpstreams(table: RouteTable): Promise<void> {
    const hosts = [...table.sni.values(), ...table.connect.values()].map((u) => u.host);
    const failed = await this.resolver.load(hosts);
    this.metrics.upstreamsUnresolved.set(this.resolver.unresolved.length);
    if (failed.length > 0) {
      this.log.error({ unresolved: failed.length, upstreams: failed.slice(0, 5).map((f) => f.host), err: failed[0]!.err.message },
        'upstream names cannot be resolved; their connections get 502 (reason upstream_unresolved) until a retry resolves them');
    }
  }

  async start(): Promise<void> {
    try {
      this.source = new RouteFileSource({
        files: this.cfg.routesFiles,
        defaultAllow: this.cfg.allowPatterns,
        onChange: (t) => {
          void this.install(t);
          this.metrics.routeReloadsTotal.inc({ result: 'ok' });
          this.log.info({ sni: t.sni.size, connect: t.connect.size }, 'routes reloaded; existing connections untouched');
        },
        onConflict: (what) => this.log.warn({ conflict: what }, 'two route files define the same key; the first file wins'),
        onError: (err) => {
          this.metrics.routeReloadsTotal.inc({ result: 'error' });
          this.log.error({ err: err.message, code: errorCode(err) }, 'route reload failed; keeping the previous routes');
        },
      });
      const resolved = this.install(await this.source.start());
      await Promise.race([resolved, new Promise((r) => setTimeout(r, START_RESOLVE_WAIT_MS).unref())]);
      process.on('SIGHUP', this.onHup);
      if (this.cfg.proxyProtocol === 'required' && this.trusted.isEmpty) {
        this.log.info({}, 'PROXY_PROTOCOL=required trusts the PROXY header of every peer; set PROXY_PROTOCOL_TRUSTED_NETWORKS to the load balancer\'s networks to believe only those');
      }
      const listeners: Array<[ListenerKind, { host: string; port: number }]> = [
        [{ name: 'tls', kind: 'sni' }, this.cfg.listen443],
        [{ name: 'connect', kind: 'connect', header: 'x-gardener-destination' }, this.cfg.listen8443],
        [{ name: 'connect-legacy', kind: 'connect', header: 'reversed-vpn' }, this.cfg.listen8132],
      ];
      for (const [kind, addr] of listeners) this.ports[kind.name] = await this.listen(kind, addr);
      this.status = createStatusServer({
        host: this.cfg.statusListen.host,
        port: this.cfg.statusListen.port,
        registry: this.registry,
        live: () => ({ ok: true }),
        ready: () => ({ ok: !!this.table && this.servers.length === 3, checks: { routes: { ok: !!this.table }, listeners: { ok: this.servers.length === 3 } } }),
        onError: (err) => this.acceptError('status', err),
      });
      this.ports.status = (await this.status.start()).port;
      // out of descriptors, accepts fail inside libuv and never reach the listeners' 'error' handlers
      this.descriptors = watchDescriptors({
        onExhausted: (code) => {
          this.metrics.descriptorsExhausted.set(1);
          this.metrics.descriptorExhaustedSecondsTotal.inc();
          this.acceptErrors.log(`descriptors:${code}`, { code, connections: this.limits.connections }, 'out of file descriptors: new connections are not accepted until some close');
        },
        onRecovered: () => {
          this.metrics.descriptorsExhausted.set(0);
          this.log.warn({ connections: this.limits.connections }, 'file descriptors available again');
        },
      });
      this.log.info({ ports: this.ports }, 'sni-proxy started');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Re-reads the route file now (SIGHUP). */
  reload(): Promise<boolean> {
    return this.source?.reload() ?? Promise.resolve(false);
  }

  private listen(kind: ListenerKind, addr: { host: string; port: number }): Promise<number> {
    // Half-open connections are kept: a client that ends its side still gets the rest of the answer.
    // The caps are enforced across listeners in accept(), not with net.Server#maxConnections (per server).
    const server = net.createServer({ allowHalfOpen: true }, (sock) => this.accept(kind, sock));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(addr.port, addr.host, () => {
        server.off('error', reject);
        // After listen, errors are failed accepts (EMFILE, ENFILE, ENOBUFS): the listener stays open and
        // accepts again once descriptors are free (libuv drops the pending connection meanwhile).
        server.on('error', (err) => this.acceptError(kind.name, err));
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  private acceptError(listener: string, err: Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const label = code && /^E[A-Z]+$/.test(code) ? code : 'other';
    this.metrics.acceptErrorsTotal.inc({ listener, code: label });
    this.acceptErrors.log(`${listener}:${label}`, { listener, code: label, err: err.message }, 'accept failed; still listening');
  }

  private refuse(kind: ListenerKind, reason: string, peer: Peer, detail: string, extra: Record<string, unknown> = {}) {
    this.metrics.refusedTotal.inc({ listener: kind.name, reason });
    this.refusals.log(`${kind.name}:${reason}`, { listener: kind.name, reason, ...peer, detail: clip(detail), ...extra }, 'connection refused');
  }

  private updateGauges() {
    this.metrics.activeConnections.set(this.limits.connections);
    this.metrics.pendingConnections.set(this.limits.pending);
    this.metrics.sources.set(this.limits.trackedSources);
  }

  /** Whether a PROXY header from this peer names the source the caps count. */
  private trustsHeaderFrom(address: string | undefined): boolean {
    if (this.cfg.proxyProtocol === 'off') return false;
    if (this.trusted.isEmpty) return this.cfg.proxyProtocol === 'required';
    if (!address) return false;
    // a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d
    const unmapped = /^::ffff:/i.test(address) && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
    return this.trusted.contains(unmapped);
  }

  private accept(kind: ListenerKind, sock: net.Socket) {
    this.metrics.connectionsTotal.inc({ listener: kind.name });
    sock.on('error', () => undefined);
    const peer: Peer = { remote: `${sock.remoteAddress}:${sock.remotePort}` };
    const trustedPeer = this.trustsHeaderFrom(sock.remoteAddress);
    // a trusted load balancer's own address is no source: the header will name it
    if (!trustedPeer) peer.source = sourceKey(sock.remoteAddress);
    const admission = this.limits.admit(peer.source);
    if (typeof admission === 'string') {
      this.refuse(kind, admission, peer, 'at accept');
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    this.releases.set(sock, () => {
      admission.release();
      this.updateGauges();
    });
    sock.once('close', () => {
      this.sockets.delete(sock);
      this.releases.get(sock)?.();
      this.releases.delete(sock);
    });
    this.updateGauges();
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 55_000);
    void this.handle(kind, sock, peer, admission, trustedPeer).catch((err) => {
      this.log.warn({ err: (err as Error).message }, 'connection handling failed');
      sock.destroy();
    });
  }

  /** Ends the socket (after `last` bytes) and destroys it after a short linger, whatever the peer does. */
  private release(sock: net.Socket, last: Buffer) {
    sock.end(last);
    setTimeout(() => sock.destroy(), REFUSAL_LINGER_MS).unref();
  }

  private async handle(kind: ListenerKind, sock: net.Socket, peer: Peer, admission: Admission, trustedPeer: boolean) {
    // one deadline for everything before the route is known: a slow PROXY header does not buy time for the head
    const deadline = Date.now() + this.cfg.headerTimeoutMs;
    const left = () => Math.max(1, deadline - Date.now());
    let initial: Buffer = Buffer.alloc(0);
    if (this.cfg.proxyProtocol !== 'off') {
      let header: ProxyHeader | undefined;
      try {
        const r = await readProxyHeader(sock, { mode: this.cfg.proxyProtocol, timeoutMs: left(), signal: this.abort.signal });
        header = r.header;
        initial = r.rest;
      } catch (err) {
        this.refuse(kind, 'proxy_protocol', peer, (err as Error).message);
        sock.destroy();
        return;
      }
      if (header?.source) peer.claimed = `${header.source.address}:${header.source.port}`;
      if (trustedPeer) {
        // the claim counts only from a trusted peer; without a claim the peer itself is the source
        peer.source = sourceKey(header?.source?.address ?? sock.remoteAddress);
        const refusal = admission.setSource(peer.source);
        if (refusal) {
          this.refuse(kind, refusal, peer, 'after the PROXY header');
          sock.destroy();
          return;
        }
        this.updateGauges();
      }
    }
    if (kind.kind === 'sni') return this.handleTls(kind, sock, peer, admission, initial, left());
    return this.handleConnect(kind, sock, peer, admission, initial, left());
  }

  private async handleTls(kind: ListenerKind, sock: net.Socket, peer: Peer, admission: Admission, initial: Buffer, timeoutMs: number) {
    let hello;
    try {
      hello = await readClientHello(sock, { maxBytes: Math.max(this.cfg.maxHeaderBytes, 16 * 1024 + 5), timeoutMs, signal: this.abort.signal, initial });
    } catch (err) {
      const code = errorCode(err);
      this.refuse(kind, code === 'RVPN_ERR_PROXY_HEAD_TIMEOUT' ? 'timeout' : code === 'RVPN_ERR_PROXY_HEAD_TOO_LARGE' ? 'too_large' : 'not_tls', peer, (err as Error).message);
      sock.destroy();
      return;
    }
    const up = hello.serverName ? this.table!.sni.get(hello.serverName) : undefined;
    if (!up) {
      this.refuse(kind, hello.serverName ? 'unknown_sni' : 'no_sni', peer, `no route for SNI ${JSON.stringify(hello.serverName ?? '')}`);
      this.release(sock, ALERT_UNRECOGNIZED_NAME);
      return;
    }
    const refusal = admission.route(`sni:${up.host}:${up.port}`);
    if (refusal) {
      this.refuse(kind, refusal, peer, `SNI ${hello.serverName}`);
      sock.destroy();
      return;
    }
    this.updateGauges();
    await this.pipe(kind, sock, peer, up, hello.buffered, undefined);
  }

  private async handleConnect(kind: Extract<ListenerKind, { kind: 'connect' }>, sock: net.Socket, peer: Peer, admission: Admission, initial: Buffer, timeoutMs: number) {
    let head;
    try {
      head = await readRequestHead(sock, { maxBytes: this.cfg.maxHeaderBytes, timeoutMs, signal: this.abort.signal, initial });
    } catch (err) {
      const { status, reason } = statusForHeadError(errorCode(err));
      this.refuse(kind, status === 408 ? 'timeout' : status === 431 ? 'head_too_large' : 'bad_request', peer, (err as Error).message);
      writeStatus(sock, status, reason, (err as Error).message);
      return;
    }
    if (head.method !== 'CONNECT') {
      this.refuse(kind, 'method', peer, head.method);
      writeStatus(sock, 405, 'Method Not Allowed', 'only CONNECT is supported');
      return;
    }
    const values = head.headers.get(kind.header);
    if (!values || values.length !== 1 || !values[0]) {
      this.refuse(kind, 'missing_header', peer, `${kind.header} missing or repeated`);
      writeStatus(sock, 400, 'Bad Request', `exactly one ${kind.header} header is required`);
      return;
    }
    const value = values[0];
    if (!this.table!.allow.some((r) => r.test(value))) {
      this.refuse(kind, 'forbidden', peer, value);
      writeStatus(sock, 403, 'Forbidden', `destination ${JSON.stringify(clip(value))} is not allowed`);
      return;
    }
    const up = this.table!.connect.get(value);
    if (!up) {
      this.refuse(kind, 'no_route', peer, value);
      writeStatus(sock, 404, 'Not Found', `no route for ${JSON.stringify(clip(value))}`);
      return;
    }
    const refusal = admission.route(`connect:${value}`);
    if (refusal) {
      this.refuse(kind, refusal, peer, value);
      writeStatus(sock, 503, 'Service Unavailable', 'too many connections to this destination; retry later');
      return;
    }
    this.updateGauges();
    await this.pipe(kind, sock, peer, up, head.rest, 'HTTP/1.1 200 Connection established\r\n\r\n');
  }

  /**
   * Refuses after a failed upstream. The client learns a generic reason and a correlation id; the
   * upstream's address and error stay in the log line that carries the same id.
   */
  private upstreamFailed(kind: ListenerKind, down: net.Socket, peer: Peer, to: Upstream, reason: 'upstream_timeout' | 'upstream_unreachable' | 'upstream_unresolved', err: string, okLine: string | undefined) {
    const id = randomBytes(6).toString('hex');
    const upstream = `${to.host}:${to.port}`;
    this.refuse(kind, reason, peer, err, { id, upstream });
    this.log.debug({ listener: kind.name, reason, ...peer, id, upstream, err }, 'upstream failed');
    if (!okLine) down.destroy();
    else if (reason === 'upstream_timeout') writeStatus(down, 504, 'Gateway Timeout', `the upstream did not answer in time (id ${id})`);
    else writeStatus(down, 502, 'Bad Gateway', `the upstream is unreachable (id ${id})`);
  }

  private async pipe(kind: ListenerKind, down: net.Socket, peer: Peer, to: Upstream, first: Buffer, okLine: string | undefined): Promise<void> {
    let addresses: ResolvedAddress[] | undefined | 'timeout';
    let timer: NodeJS.Timeout | undefined;
    try {
      // cached since the routes loaded: no lookup here (undefined for an IP literal). A lookup a
      // connection must wait for (a name just added or failing) counts against the dial timeout, as
      // net.connect's own lookup did.
      addresses = await Promise.race([
        this.resolver.resolve(to.host),
        new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), this.cfg.upstreamDialTimeoutMs); }),
      ]);
    } catch (err) {
      this.upstreamFailed(kind, down, peer, to, 'upstream_unresolved', (err as Error).message, okLine);
      return;
    } finally {
      clearTimeout(timer);
    }
    if (down.destroyed) return;
    if (addresses === 'timeout') {
      this.upstreamFailed(kind, down, peer, to, 'upstream_timeout', `the name was not resolved within ${this.cfg.upstreamDialTimeoutMs} ms`, okLine);
      return;
    }
    return this.dial(kind, down, peer, to, addresses, first, okLine);
  }

  /** Caps both sockets' kernel buffers (sockopt.ts in libs/tunnel says why); a failure is logged once, the pipe runs on. */
  private capBuffers(down: net.Socket, up: net.Socket): void {
    const caps = { receiveBytes: this.cfg.relayReceiveBufferBytes, notSentLowatBytes: this.cfg.relayNotSentLowatBytes };
    if (caps.receiveBytes === 0 && caps.notSentLowatBytes === 0) return;
    try {
      capSocketBuffers(down, caps);
      capSocketBuffers(up, caps);
    } catch (err) {
      if (this.capWarned) return;
      this.capWarned = true;
      this.log.warn({ err: (err as Error).message, code: (err as { code?: string }).code }, 'cannot cap relay socket buffers (RELAY_RECEIVE_BUFFER, RELAY_NOTSENT_LOWAT); piping with kernel defaults');
    }
  }

  private dial(kind: ListenerKind, down: net.Socket, peer: Peer, to: Upstream, addresses: ResolvedAddress[] | undefined, first: Buffer, okLine: string | undefined): Promise<void> {
    return new Promise((resolve) => {
      // one address (a Service's ClusterIP): dial it as a literal; several: Node's happy eyeballs over them
      const target = addresses?.length === 1 ? { host: addresses[0]!.address } : { host: to.host, ...(addresses ? { lookup: fixedLookup(addresses) } : {}) };
      const up = net.connect({ ...target, port: to.port, allowHalfOpen: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 55_000 });
      // nothing is read into JS before the pipe or the native relay takes over
      up.pause();
      this.sockets.add(up);
      up.once('close', () => this.sockets.delete(up));
      // a client gone while dialing takes the dial with it
      const onDownClose = () => {
        clearTimeout(timer);
        up.destroy();
        resolve();
      };
      down.once('close', onDownClose);
      const timer = setTimeout(() => {
        down.off('close', onDownClose);
        up.destroy();
        this.resolver.dialFailed(to.host);
        this.upstreamFailed(kind, down, peer, to, 'upstream_timeout', `no answer within ${this.cfg.upstreamDialTimeoutMs} ms`, okLine);
        resolve();
      }, this.cfg.upstreamDialTimeoutMs);
      up.once('error', (err) => {
        clearTimeout(timer);
        down.off('close', onDownClose);
        if (up.connecting || !down.readableFlowing) {
          this.resolver.dialFailed(to.host);
          this.upstreamFailed(kind, down, peer, to, 'upstream_unreachable', err.message, okLine);
        }
        else down.destroy();
        resolve();
      });
      up.once('connect', () => {
        clearTimeout(timer);
        down.off('close', onDownClose);
        this.metrics.routedTotal.inc({ listener: kind.name });
        this.capBuffers(down, up);
        // bytes read past the head or ClientHello go upstream first, in either mode
        this.metrics.bytesTotal.inc({ direction: 'upstream' }, first.length);
        if (this.cfg.relayMode === 'native' && this.relayNative(down, up, okLine, first)) {
          resolve();
          return;
        }
        if (okLine) down.write(okLine);
        if (first.length > 0) up.write(first);
        const idle = this.cfg.idleTimeoutMs;
        down.setTimeout(idle, () => { down.destroy(); up.destroy(); });
        up.on('data', (d: Buffer) => this.metrics.bytesTotal.inc({ direction: 'downstream' }, d.length));
        down.on('data', (d: Buffer) => this.metrics.bytesTotal.inc({ direction: 'upstream' }, d.length));
        down.pipe(up);
        up.pipe(down);
        down.once('close', () => up.destroy());
        up.once('close', () => down.destroy());
        up.on('error', () => down.destroy());
        down.resume();
        resolve();
      });
    });
  }

  /**
   * Hands a routed connection to a native relay (@rvpn/tunnel/relay): the 200 and the first bytes go out
   * first, then bytes are copied without JS per chunk until both sides end, one fails, or IDLE_TIMEOUT.
   * False when the relay cannot take the sockets (they are untouched; the caller pipes them).
   */
  private relayNative(down: net.Socket, up: net.Socket, okLine: string | undefined, first: Buffer): boolean {
    const release = this.releases.get(down);
    // the relay holds the connection now: down's 'close' at handover must not release the admission
    this.releases.delete(down);
    try {
      const relay = relaySockets(down, up, {
        toA: okLine ? Buffer.from(okLine, 'latin1') : undefined,
        toB: first,
        idleMs: this.cfg.idleTimeoutMs,
        onEnd: (end) => {
          this.relays.delete(relay);
          this.relayedBytes.upstream += end.bytesAtoB;
          this.relayedBytes.downstream += end.bytesBtoA;
          this.metrics.relayEndsTotal.inc({ reason: end.reason });
          release?.();
        },
      });
      this.relays.add(relay);
      return true;
    } catch (err) {
      if (release) this.releases.set(down, release);
      this.metrics.relayFallbacksTotal.inc();
      if (!this.relayWarned) {
        this.relayWarned = true;
        this.log.warn({ err: (err as Error).message, code: errorCode(err) }, 'the native relay cannot take a connection (RELAY_MODE=native); piping it through Node streams (logged once, counted in rvpn_sni_proxy_relay_fallbacks_total)');
      }
      return false;
    }
  }

  /** Bytes the native relays copied: those that ended plus the running ones. */
  private relayBytes(): { upstream: number; downstream: number } {
    let { upstream, downstream } = this.relayedBytes;
    for (const r of this.relays) {
      const s = r.stats();
      upstream += s.bytesAtoB ?? 0;
      downstream += s.bytesBtoA ?? 0;
    }
    return { upstream, downstream };
  }

  async stop(): Promise<void> {
    this.abort.abort();
    process.off('SIGHUP', this.onHup);
    this.source?.stop();
    this.resolver.stop();
    this.resolveErrors.stop();
    this.descriptors?.stop();
    this.refusals.stop();
    this.acceptErrors.stop();
    await this.status?.stop().catch(() => undefined);
    for (const r of [...this.relays]) r.stop();
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.servers.length = 0;
  }
}
