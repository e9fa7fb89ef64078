/**
 * Accepts tunnel connections: TLS 1.3 with a required client certificate from the configured CA,
 * then an identity check (authorize), then the HELLO handshake. Each refusal is counted and logged
 * (once per interval and code, never per event); nothing a client sends can stop the listener from
 * serving the next one.
 *
 * Anyone who can name a shoot's route reaches this listener through sni-proxy, so the work done for
 * clients that have not authenticated yet is bounded: at most `maxPendingHandshakes` connections
 * are in their handshake at once, and each gets `tlsHandshakeTimeoutMs` to finish TLS. At the cap a
 * new connection evicts the oldest one still in its TLS handshake (a flood must keep up with a real
 * client's handshake of a few milliseconds to shut it out); when every pending one has already
 * authenticated, the new one is refused. Both count as RVPN_ERR_TUNNEL_OVERLOADED.
 * Errors of the listening socket itself (EMFILE, ENFILE) are counted and logged; it keeps listening.
 */
import net from 'node:net';
import tls from 'node:tls';
import { errorCode } from '@rvpn/config';
import { createIntervalLog, type IntervalLog } from '@rvpn/observability';
import { establishSession, type LocalHello, type PeerHello, type TunnelSession } from './session.js';
import { encodeError, knownCode, peerText } from './protocol.js';
import { capTunnelSocket, type SocketBufferCaps } from './sockopt.js';
import { TunnelAcceptError, TunnelListenError, TunnelOverloadedError, TunnelTlsError, TunnelUnauthorizedError } from './errors.js';

export interface TlsMaterial {
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
}

export type AuthorizeResult = { ok: true; identity: string } | { ok: false; code: string; reason: string };

export interface TunnelLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export const DEFAULT_MAX_PENDING_HANDSHAKES = 32;
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 5000;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** How often a repeated refusal or accept error is logged (a summary with the count in between). */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** The errno of a listening socket's error as a bounded label. */
export function acceptErrorLabel(err: unknown): 'EMFILE' | 'ENFILE' | 'other' {
  const c = errorCode(err);
  return c === 'EMFILE' || c === 'ENFILE' ? c : 'other';
}

export interface TunnelListenerOptions {
  host: string;
  port: number;
  tls: TlsMaterial | (() => TlsMaterial);
  authorize: (cert: tls.PeerCertificate) => AuthorizeResult;
  hello: (peer?: PeerHello) => LocalHello;
  /** Extra checks of the peer's HELLO, knowing the identity its certificate was authorized as. */
  validatePeerHello?: (peer: PeerHello, ctx: { identity: string }) => void;
  onSession: (session: TunnelSession, info: { identity: string; remote: string }) => void;
  /** Every refused connection, with a code fit for a metric label (a known code or `other`). */
  onRefused?: (code: string, detail: string) => void;
  /** An error of the listening socket (EMFILE, ENFILE, other); the listener keeps serving. */
  onAcceptError?: (label: 'EMFILE' | 'ENFILE' | 'other', err: Error) => void;
  /** Time for the HELLO exchange after TLS. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Time for the TLS handshake of a client that has not authenticated yet. Default 5 s. */
  tlsHandshakeTimeoutMs?: number;
  /** Connections in their handshake (TLS or HELLO) at once. Default 32. */
  maxPendingHandshakes?: number;
  /** Kernel buffer caps of every accepted socket (sockopt.ts TUNNEL_SOCKET_CAPS). Default: the kernel's. */
  socketBuffers?: SocketBufferCaps;
  logger?: TunnelLogger;
}

/**
 * The usual identity check: the certificate's CN is in the allow-list and, when `requiredUri` is
 * given, a URI SAN equals it (binding the client to one shoot).
 */
export function authorizeByIdentity(opts: { allowedCommonNames: readonly string[]; requiredUri?: string }) {
  return (cert: tls.PeerCertificate): AuthorizeResult => {
    const cnRaw = cert.subject?.CN as string | string[] | undefined;
    const cn = Array.isArray(cnRaw) ? cnRaw[0] : cnRaw;
    if (!cn || !opts.allowedCommonNames.includes(cn)) {
      return { ok: false, code: TunnelUnauthorizedError.code, reason: `client certificate CN ${JSON.stringify(cn ?? '')} is not one of ${opts.allowedCommonNames.join(', ')}` };
    }
    if (opts.requiredUri) {
      const uris = (cert.subjectaltname ?? '').split(', ').filter((n) => n.startsWith('URI:')).map((n) => n.slice(4));
      if (!uris.includes(opts.requiredUri)) {
        return { ok: false, code: TunnelUnauthorizedError.code, reason: `client certificate ${cn} belongs to ${uris.join(', ') || 'no shoot'}, not ${opts.requiredUri}` };
      }
    }
    return { ok: true, identity: cn };
  };
}

export class TunnelListener {
  private readonly opts: TunnelListenerOptions;
  private server: net.Server | undefined;
  private context: tls.SecureContext | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<TunnelSession>();
  private readonly abort = new AbortController();
  /** Connections in their handshake, oldest first; `tls` while not authenticated yet. */
  private readonly pending = new Map<net.Socket, { phase: 'tls' | 'hello'; drop: () => void }>();
  private readonly intervalLog: IntervalLog | undefined;
  readonly stats = { refused: 0, evicted: 0, acceptErrors: 0, capFailures: 0 };

  constructor(opts: TunnelListenerOptions) {
    this.opts = opts;
    const l = opts.logger;
    this.intervalLog = l ? createIntervalLog({ logger: { debug: (o, m) => l.debug(o, m), info: (o, m) => l.info(o, m), warn: (o, m) => l.warn(o, m), error: (o, m) => l.warn(o, m) }, level: 'info', intervalMs: REFUSAL_LOG_INTERVAL_MS }) : undefined;
  }

  private material(): TlsMaterial {
    return typeof this.opts.tls === 'function' ? this.opts.tls() : this.opts.tls;
  }

  /** Handshakes in progress right now. */
  get pendingHandshakes(): number {
    return this.pending.size;
  }

  /** A socket's buffer caps could not be set: counted, logged once; the tunnel runs with the kernel's. */
  private capFailed(err: Error) {
    if (this.stats.capFailures++ === 0) this.opts.logger?.warn({ err: err.message, code: (err as { code?: string }).code }, 'cannot cap tunnel socket buffers; running with kernel defaults');
  }

  private refuse(code: string, detail: string, remote: string) {
    const label = knownCode(code);
    this.stats.refused++;
    this.intervalLog?.log(`refused:${label}`, { code: label, remote, detail: peerText(detail) }, 'tunnel connection refused');
    this.opts.onRefused?.(label, detail);
  }

  async start(): Promise<{ port: number }> {
    this.context = this.makeContext();
    // A plain TCP server wrapping each socket in TLS ourselves: every failure of a handshake is
    // then ours to see, and the TCP connection behind it is always released.
    const server = net.createServer((raw) => this.accept(raw));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: Error) => reject(new TunnelListenError(`cannot listen on ${this.opts.host}:${this.opts.port}: ${err.message}`, { cause: err }));
      server.once('error', onErr);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', onErr);
        // From now on an error of the listening socket (EMFILE when out of descriptors) must not
        // end the process: libuv keeps the socket listening, so count, log and carry on.
        server.on('error', (err) => this.acceptError(err));
        resolve();
      });
    });
    return { port: (server.address() as net.AddressInfo).port };
  }

  private makeContext(): tls.SecureContext {
    const m = this.material();
    return tls.createSecureContext({ ca: m.ca, cert: m.cert, key: m.key, minVersion: 'TLSv1.3' });
  }

  private acceptError(err: Error) {
    const label = acceptErrorLabel(err);
    this.stats.acceptErrors++;
    this.intervalLog?.log(`accept:${label}`, { code: TunnelAcceptError.code, errno: label, err: err.message }, 'tunnel listener cannot accept connections');
    this.opts.onAcceptError?.(label, err);
  }

  /**
   * Admits a new connection into the handshake: at the cap, the oldest connection still in TLS is
   * dropped for it; when all pending ones have authenticated, the new one is refused.
   */
  private admit(raw: net.Socket, remote: string): boolean {
    const max = this.opts.maxPendingHandshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES;
    if (this.pending.size < max) return true;
    for (const [, p] of this.pending) {
      if (p.phase !== 'tls') continue;
      this.stats.evicted++;
      p.drop();
      this.refuse(TunnelOverloadedError.code, `${max} handshakes in progress: dropped the oldest unauthenticated one`, remote);
      return true;
    }
    this.refuse(TunnelOverloadedError.code, `${max} handshakes in progress`, remote);
    raw.destroy();
    return false;
  }

  private accept(raw: net.Socket) {
    const remote = `${raw.remoteAddress}:${raw.remotePort}`;
    raw.on('error', () => undefined);
    if (!this.admit(raw, remote)) return;
    this.sockets.add(raw);
    raw.once('close', () => {
      this.sockets.delete(raw);
      this.pending.delete(raw);
    });
    raw.setNoDelay(true);
    capTunnelSocket(raw, this.opts.socketBuffers, (err) => this.capFailed(err));
    const sock = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: this.context!,
      requestCert: true,
      rejectUnauthorized: true,
    });
    const drop = () => {
      clearTimeout(timer);
      this.pending.delete(raw);
      sock.destroy();
      raw.destroy();
    };
    this.pending.set(raw, { phase: 'tls', drop });
    const timer = setTimeout(() => {
      this.refuse(TunnelTlsError.code, 'TLS handshake timed out', remote);
      drop();
    }, this.opts.tlsHandshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS);
    timer.unref();
    let secure = false;
    sock.on('error', (err) => {
      clearTimeout(timer);
      this.pending.delete(raw);
      if (!secure) this.refuse(TunnelTlsError.code, err.message, remote);
      else this.opts.logger?.debug({ remote, err: err.message }, 'tunnel socket error');
      sock.destroy();
      raw.destroy();
    });
    sock.once('secure', () => {
      clearTimeout(timer);
      secure = true;
      // authenticated by the CA now (checked just below): no longer evictable by newcomers
      const p = this.pending.get(raw);
      if (p) p.phase = 'hello';
      // A TLSSocket we wrapped ourselves is not verified by a tls.Server: ask OpenSSL for the result
      // of the chain check against our CA (null = verified).
      const verifyError = (sock as unknown as { _handle?: { verifyError?: () => Error | null } })._handle?.verifyError?.();
      const cert = sock.getPeerCertificate();
      if (verifyError !== null || !cert || !cert.subject) {
        const why = `client certificate not accepted: ${verifyError ? verifyError.message : 'no certificate'}`;
        this.pending.delete(raw);
        this.refuse(TunnelTlsError.code, why, remote);
        // Tell the client why (in TLS 1.3 it only learns of the refusal after its handshake).
        sock.end(encodeError(TunnelTlsError.code, why));
        setTimeout(() => raw.destroy(), 200).unref();
        return;
      }
      void this.handle(sock, raw, remote);
    });
  }

  private async handle(sock: tls.TLSSocket, raw: net.Socket, remote: string) {
    const auth = this.opts.authorize(sock.getPeerCertificate());
    if (!auth.ok) {
      this.pending.delete(raw);
      this.refuse(auth.code, auth.reason, remote);
      sock.end(encodeError(auth.code, auth.reason));
      setTimeout(() => sock.destroy(), 200).unref();
      return;
    }
    try {
      const session = await establishSession(sock, {
        side: 'listener',
        hello: this.opts.hello(),
        ...(this.opts.validatePeerHello ? { validatePeerHello: (peer: PeerHello) => this.opts.validatePeerHello!(peer, { identity: auth.identity }) } : {}),
        handshakeTimeoutMs: this.opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
        signal: this.abort.signal,
      });
      this.pending.delete(raw);
      this.sessions.add(session);
      void session.closed.then(() => this.sessions.delete(session));
      this.opts.logger?.info({ remote, identity: auth.identity, peer: peerText(session.peerHello.identity), minor: session.negotiatedMinor }, 'tunnel session established');
      this.opts.onSession(session, { identity: auth.identity, remote });
    } catch (err) {
      this.pending.delete(raw);
      this.refuse(errorCode(err) ?? 'RVPN_ERR_PROTO_HANDSHAKE', (err as Error).message, remote);
    }
  }

  /** Swaps in fresh TLS material for new connections (certificate rotation). */
  reloadTls(): void {
    this.context = this.makeContext();
  }

  address(): net.AddressInfo | undefined {
    return this.server?.address() as net.AddressInfo | undefined;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.intervalLog?.stop();
    this.pending.clear();
    for (const s of this.sessions) s.close('listener stopping');
    for (const s of this.sockets) s.destroy();
    const srv = this.server;
    this.server = undefined;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }
}
