/**
 * Accepts tunnel connections: TLS 1.3 with a required client certificate from the configured CA,
 * then an identity check (authorize), then the HELLO handshake. Each refusal is logged with a code
 * and counted; nothing a client sends can stop the listener from serving the next one.
 */
import net from 'node:net';
import tls from 'node:tls';
import { errorCode } from '@rvpn/config';
import { establishSession, type LocalHello, type PeerHello, type TunnelSession } from './session.js';
import { encodeError } from './protocol.js';
import { TunnelListenError, TunnelTlsError, TunnelUnauthorizedError } from './errors.js';

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

export interface TunnelListenerOptions {
  host: string;
  port: number;
  tls: TlsMaterial | (() => TlsMaterial);
  authorize: (cert: tls.PeerCertificate) => AuthorizeResult;
  hello: (peer?: PeerHello) => LocalHello;
  /** Extra checks of the peer's HELLO, knowing the identity its certificate was authorized as. */
  validatePeerHello?: (peer: PeerHello, ctx: { identity: string }) => void;
  onSession: (session: TunnelSession, info: { identity: string; remote: string }) => void;
  onRefused?: (code: string, detail: string) => void;
  handshakeTimeoutMs?: number;
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

  constructor(opts: TunnelListenerOptions) {
    this.opts = opts;
  }

  private material(): TlsMaterial {
    return typeof this.opts.tls === 'function' ? this.opts.tls() : this.opts.tls;
  }

  private refuse(code: string, detail: string, remote: string) {
    this.opts.logger?.info({ code, remote, detail }, 'tunnel connection refused');
    this.opts.onRefused?.(code, detail);
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
        resolve();
      });
    });
    return { port: (server.address() as net.AddressInfo).port };
  }

  private makeContext(): tls.SecureContext {
    const m = this.material();
    return tls.createSecureContext({ ca: m.ca, cert: m.cert, key: m.key, minVersion: 'TLSv1.3' });
  }

  private accept(raw: net.Socket) {
    const remote = `${raw.remoteAddress}:${raw.remotePort}`;
    this.sockets.add(raw);
    raw.once('close', () => this.sockets.delete(raw));
    raw.setNoDelay(true);
    raw.on('error', () => undefined);
    const sock = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: this.context!,
      requestCert: true,
      rejectUnauthorized: true,
    });
    const timer = setTimeout(() => {
      this.refuse(TunnelTlsError.code, 'TLS handshake timed out', remote);
      sock.destroy();
      raw.destroy();
    }, this.opts.handshakeTimeoutMs ?? 10_000);
    timer.unref();
    let secure = false;
    sock.on('error', (err) => {
      clearTimeout(timer);
      if (!secure) this.refuse(TunnelTlsError.code, err.message, remote);
      else this.opts.logger?.debug({ remote, err: err.message }, 'tunnel socket error');
      sock.destroy();
      raw.destroy();
    });
    sock.once('secure', () => {
      clearTimeout(timer);
      secure = true;
      // A TLSSocket we wrapped ourselves is not verified by a tls.Server: ask OpenSSL for the result
      // of the chain check against our CA (null = verified).
      const verifyError = (sock as unknown as { _handle?: { verifyError?: () => Error | null } })._handle?.verifyError?.();
      const cert = sock.getPeerCertificate();
      if (verifyError !== null || !cert || !cert.subject) {
        const why = `client certificate not accepted: ${verifyError ? verifyError.message : 'no certificate'}`;
        this.refuse(TunnelTlsError.code, why, remote);
        // Tell the client why (in TLS 1.3 it only learns of the refusal after its handshake).
        sock.end(encodeError(TunnelTlsError.code, why));
        setTimeout(() => raw.destroy(), 200).unref();
        return;
      }
      void this.handle(sock, remote);
    });
  }

  private async handle(sock: tls.TLSSocket, remote: string) {
    const auth = this.opts.authorize(sock.getPeerCertificate());
    if (!auth.ok) {
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
        handshakeTimeoutMs: this.opts.handshakeTimeoutMs ?? 10_000,
        signal: this.abort.signal,
      });
      this.sessions.add(session);
      void session.closed.then(() => this.sessions.delete(session));
      this.opts.logger?.info({ remote, identity: auth.identity, peer: session.peerHello.identity, minor: session.negotiatedMinor }, 'tunnel session established');
      this.opts.onSession(session, { identity: auth.identity, remote });
    } catch (err) {
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
    for (const s of this.sessions) s.close('listener stopping');
    for (const s of this.sockets) s.destroy();
    const srv = this.server;
    this.server = undefined;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }
}
