/**
 * sni-proxy: the seed's single shared entry point (Istio ingress gateway's role).
 *   :443  TLS passthrough routed by the ClientHello's SNI.
 *   :8443 HTTP/1.x CONNECT routed by `X-Gardener-Destination`.
 *   :8132 the same with the legacy `Reversed-VPN` header.
 * The CONNECT request target is ignored; the header value names the upstream, must match the
 * allow-list and must be in the route table. Route reloads never touch existing connections.
 */
import net from 'node:net';
import { errorCode, type SniProxyConfig } from '@rvpn/config';
import { createStatusServer, type Logger } from '@rvpn/observability';
import { readClientHello, readProxyHeader, readRequestHead, statusForHeadError, writeStatus } from '@rvpn/proxy';
import type { Registry } from 'prom-client';
import { createSniProxyMetrics } from './metrics.js';
import { RouteFileSource, type RouteTable, type Upstream } from './routes.js';

type ListenerKind = { name: string; kind: 'sni' } | { name: string; kind: 'connect'; header: string };

/** TLS alert record: fatal (2), unrecognized_name (112). */
const ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

export class SniProxy {
  private readonly cfg: SniProxyConfig;
  private readonly log: Logger;
  private readonly registry: Registry;
  private readonly metrics: ReturnType<typeof createSniProxyMetrics>;
  private table: RouteTable | undefined;
  private source: RouteFileSource | undefined;
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private status: ReturnType<typeof createStatusServer> | undefined;
  private readonly abort = new AbortController();
  private readonly onHup = () => void this.reload();
  /** Bound ports after start (useful when configured with port 0). */
  readonly ports: Record<string, number> = {};

  constructor(cfg: SniProxyConfig, deps: { logger: Logger; registry: Registry }) {
    this.cfg = cfg;
    this.log = deps.logger;
    this.registry = deps.registry;
    this.metrics = createSniProxyMetrics(deps.registry);
  }

  get routes(): RouteTable | undefined {
    return this.table;
  }

  private install(table: RouteTable) {
    this.table = table;
    this.metrics.routes.set({ kind: 'sni' }, table.sni.size);
    this.metrics.routes.set({ kind: 'connect' }, table.connect.size);
  }

  async start(): Promise<void> {
    try {
      this.source = new RouteFileSource({
        files: this.cfg.routesFiles,
        defaultAllow: this.cfg.allowPatterns,
        onChange: (t) => {
          this.install(t);
          this.metrics.routeReloadsTotal.inc({ result: 'ok' });
          this.log.info({ sni: t.sni.size, connect: t.connect.size }, 'routes reloaded; existing connections untouched');
        },
        onConflict: (what) => this.log.warn({ conflict: what }, 'two route files define the same key; the first file wins'),
        onError: (err) => {
          this.metrics.routeReloadsTotal.inc({ result: 'error' });
          this.log.error({ err: err.message, code: errorCode(err) }, 'route reload failed; keeping the previous routes');
        },
      });
      this.install(await this.source.start());
      process.on('SIGHUP', this.onHup);
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
      });
      this.ports.status = (await this.status.start()).port;
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
    const server = net.createServer({ allowHalfOpen: true }, (sock) => this.accept(kind, sock));
    server.maxConnections = this.cfg.maxConnections;
    server.on('drop', () => this.metrics.refusedTotal.inc({ listener: kind.name, reason: 'max_connections' }));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(addr.port, addr.host, () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  private refuse(kind: ListenerKind, reason: string, remote: string, detail: string) {
    this.metrics.refusedTotal.inc({ listener: kind.name, reason });
    this.log.info({ listener: kind.name, reason, remote, detail }, 'connection refused');
  }

  private accept(kind: ListenerKind, sock: net.Socket) {
    this.sockets.add(sock);
    this.metrics.connectionsTotal.inc({ listener: kind.name });
    this.metrics.activeConnections.set(this.sockets.size);
    sock.once('close', () => {
      this.sockets.delete(sock);
      this.metrics.activeConnections.set(this.sockets.size);
    });
    sock.on('error', () => undefined);
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 55_000);
    void this.handle(kind, sock).catch((err) => {
      this.log.warn({ err: (err as Error).message }, 'connection handling failed');
      sock.destroy();
    });
  }

  private async handle(kind: ListenerKind, sock: net.Socket) {
    let remote = `${sock.remoteAddress}:${sock.remotePort}`;
    const deadline = { timeoutMs: this.cfg.headerTimeoutMs, signal: this.abort.signal };
    let initial: Buffer = Buffer.alloc(0);
    if (this.cfg.proxyProtocol !== 'off') {
      try {
        const r = await readProxyHeader(sock, { mode: this.cfg.proxyProtocol, ...deadline });
        if (r.header?.source) remote = `${r.header.source.address}:${r.header.source.port}`;
        initial = r.rest;
      } catch (err) {
        this.refuse(kind, 'proxy_protocol', remote, (err as Error).message);
        sock.destroy();
        return;
      }
    }
    if (kind.kind === 'sni') {
      let hello;
      try {
        hello = await readClientHello(sock, { maxBytes: Math.max(this.cfg.maxHeaderBytes, 16 * 1024 + 5), ...deadline, initial });
      } catch (err) {
        this.refuse(kind, errorCode(err) === 'RVPN_ERR_PROXY_HEAD_TIMEOUT' ? 'timeout' : 'not_tls', remote, (err as Error).message);
        sock.destroy();
        return;
      }
      const up = hello.serverName ? this.table!.sni.get(hello.serverName) : undefined;
      if (!up) {
        this.refuse(kind, 'unknown_sni', remote, `no route for SNI ${JSON.stringify(hello.serverName ?? '')}`);
        sock.end(ALERT_UNRECOGNIZED_NAME);
        return;
      }
      await this.pipe(kind, sock, up, hello.buffered, undefined);
      return;
    }

    let head;
    try {
      head = await readRequestHead(sock, { maxBytes: this.cfg.maxHeaderBytes, ...deadline, initial });
    } catch (err) {
      const { status, reason } = statusForHeadError(errorCode(err));
      this.refuse(kind, status === 408 ? 'timeout' : status === 431 ? 'head_too_large' : 'bad_request', remote, (err as Error).message);
      writeStatus(sock, status, reason, (err as Error).message);
      return;
    }
    if (head.method !== 'CONNECT') {
      this.refuse(kind, 'method', remote, head.method);
      writeStatus(sock, 405, 'Method Not Allowed', 'only CONNECT is supported');
      return;
    }
    const values = head.headers.get(kind.header);
    if (!values || values.length !== 1 || !values[0]) {
      this.refuse(kind, 'missing_header', remote, `${kind.header} missing or repeated`);
      writeStatus(sock, 400, 'Bad Request', `exactly one ${kind.header} header is required`);
      return;
    }
    const value = values[0];
    if (!this.table!.allow.some((r) => r.test(value))) {
      this.refuse(kind, 'forbidden', remote, value);
      writeStatus(sock, 403, 'Forbidden', `destination ${JSON.stringify(value)} is not allowed`);
      return;
    }
    const up = this.table!.connect.get(value);
    if (!up) {
      this.refuse(kind, 'no_route', remote, value);
      writeStatus(sock, 404, 'Not Found', `no route for ${JSON.stringify(value)}`);
      return;
    }
    await this.pipe(kind, sock, up, head.rest, 'HTTP/1.1 200 Connection established\r\n\r\n');
  }

  private pipe(kind: ListenerKind, down: net.Socket, to: Upstream, first: Buffer, okLine: string | undefined): Promise<void> {
    return new Promise((resolve) => {
      const up = net.connect({ host: to.host, port: to.port, allowHalfOpen: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 55_000 });
      this.sockets.add(up);
      up.once('close', () => this.sockets.delete(up));
      const timer = setTimeout(() => {
        up.destroy();
        this.refuse(kind, 'upstream_timeout', String(down.remoteAddress), `${to.host}:${to.port}`);
        if (okLine) writeStatus(down, 504, 'Gateway Timeout', `upstream ${to.host}:${to.port} did not answer`);
        else down.destroy();
        resolve();
      }, 10_000);
      up.once('error', (err) => {
        clearTimeout(timer);
        if (up.connecting || !down.readableFlowing) {
          this.refuse(kind, 'upstream_unreachable', String(down.remoteAddress), err.message);
          if (okLine) writeStatus(down, 502, 'Bad Gateway', `upstream ${to.host}:${to.port}: ${err.message}`);
          else down.destroy();
        } else down.destroy();
        resolve();
      });
      up.once('connect', () => {
        clearTimeout(timer);
        this.metrics.routedTotal.inc({ listener: kind.name });
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

  async stop(): Promise<void> {
    this.abort.abort();
    process.off('SIGHUP', this.onHup);
    this.source?.stop();
    await this.status?.stop().catch(() => undefined);
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.servers.length = 0;
  }
}
