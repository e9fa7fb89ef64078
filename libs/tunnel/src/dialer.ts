/**
 * Dials the tunnel and keeps it up: TCP directly, or through an HTTP CONNECT proxy with a routing
 * header (sni-proxy), then TLS 1.3 with a client certificate, then the HELLO handshake. Any failure
 * — proxy refusal, TLS error, refused version, a dead peer — is logged with its code and retried
 * with capped exponential backoff and jitter. It never exits on an error (Gardener issue #9694).
 */
import net from 'node:net';
import tls from 'node:tls';
import { errorCode, RvpnError } from '@rvpn/config';
import { dialViaConnect } from '@rvpn/proxy';
import { backoffDelay } from './backoff.js';
import { establishSession, type LocalHello, type PeerHello, type TunnelSession } from './session.js';
import { TunnelTlsError, TunnelUnauthorizedError } from './errors.js';
import { capTunnelSocket, type SocketBufferCaps } from './sockopt.js';
import type { AuthorizeResult, TlsMaterial, TunnelLogger } from './listener.js';

export type DialerState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'stopped';

export interface TunnelDialerOptions {
  target: { host: string; port: number };
  /** Reach the target through an HTTP CONNECT proxy. */
  via?: { proxyHost: string; proxyPort: number; target: string; headers?: Record<string, string> };
  tls: (TlsMaterial & { servername?: string }) | (() => TlsMaterial & { servername?: string });
  hello: () => LocalHello;
  validatePeerHello?: (peer: PeerHello) => void;
  /** Checks the server's certificate identity beyond the CA (classic direction). */
  authorizePeer?: (cert: tls.PeerCertificate) => AuthorizeResult;
  onSession: (session: TunnelSession) => void;
  onStateChange?: (state: DialerState) => void;
  onDialError?: (code: string, err: Error) => void;
  backoff?: { minMs: number; maxMs: number };
  dialTimeoutMs?: number;
  protocolMinor?: number;
  /** Kernel buffer caps of the dialed socket (sockopt.ts TUNNEL_SOCKET_CAPS). Default: the kernel's. */
  socketBuffers?: SocketBufferCaps;
  logger?: TunnelLogger;
}

export class TunnelDialer {
  private readonly opts: TunnelDialerOptions;
  private readonly abort = new AbortController();
  private current: TunnelSession | undefined;
  private loop: Promise<void> | undefined;
  private _state: DialerState = 'idle';
  lastError: RvpnError | undefined;
  /** Sessions established so far. */
  sessions = 0;
  /** Dialed sockets whose buffer caps could not be set (logged once). */
  capFailures = 0;

  constructor(opts: TunnelDialerOptions) {
    this.opts = opts;
  }

  get state(): DialerState {
    return this._state;
  }

  private setState(s: DialerState) {
    if (this._state === s) return;
    this._state = s;
    this.opts.onStateChange?.(s);
  }

  start(): void {
    if (!this.loop) this.loop = this.run();
  }

  private async run() {
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      this.setState('connecting');
      try {
        const session = await this.dialOnce(signal);
        this.current = session;
        this.sessions++;
        this.lastError = undefined;
        this.setState('connected');
        this.opts.onSession(session);
        const t0 = Date.now();
        const end = await session.closed;
        this.current = undefined;
        this.opts.logger?.warn({ reason: end.reason, code: end.code, livedMs: Date.now() - t0 }, 'tunnel session ended');
        attempt = Date.now() - t0 > 10_000 ? 0 : attempt + 1;
      } catch (err) {
        if (signal.aborted) break;
        const e = err instanceof RvpnError ? err : new RvpnError(errorCode(err) ?? 'RVPN_ERR_TUNNEL_CLOSED', (err as Error).message, { cause: err });
        this.lastError = e;
        this.opts.onDialError?.(e.code, e);
        this.opts.logger?.warn({ code: e.code, err: e.message, attempt }, 'tunnel dial failed');
        attempt++;
      }
      if (signal.aborted) break;
      this.setState('backoff');
      await sleep(backoffDelay(attempt, this.opts.backoff ?? { minMs: 100, maxMs: 5000 }), signal);
    }
    this.setState('stopped');
  }

  private async dialOnce(signal: AbortSignal): Promise<TunnelSession> {
    const timeoutMs = this.opts.dialTimeoutMs ?? 10_000;
    const m = typeof this.opts.tls === 'function' ? this.opts.tls() : this.opts.tls;
    let raw: net.Socket;
    if (this.opts.via) {
      raw = (await dialViaConnect({ ...this.opts.via, timeoutMs, signal })).socket;
    } else {
      raw = await tcpConnect(this.opts.target.host, this.opts.target.port, timeoutMs, signal);
    }
    raw.setNoDelay(true);
    capTunnelSocket(raw, this.opts.socketBuffers, (err) => {
      if (this.capFailures++ === 0) this.opts.logger?.warn({ err: err.message, code: (err as { code?: string }).code }, 'cannot cap tunnel socket buffers; running with kernel defaults');
    });
    const sock = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({
        socket: raw,
        ca: m.ca,
        cert: m.cert,
        key: m.key,
        minVersion: 'TLSv1.3',
        ...(m.servername ? { servername: m.servername } : {}),
      });
      const timer = setTimeout(() => { s.destroy(); reject(new TunnelTlsError(`TLS handshake with ${this.describe()} timed out`)); }, timeoutMs);
      s.once('secureConnect', () => { clearTimeout(timer); resolve(s); });
      s.once('error', (err) => { clearTimeout(timer); raw.destroy(); reject(new TunnelTlsError(`TLS with ${this.describe()} failed: ${err.message}`, { cause: err })); });
    });
    sock.on('error', () => undefined);
    if (this.opts.authorizePeer) {
      const r = this.opts.authorizePeer(sock.getPeerCertificate());
      if (!r.ok) {
        sock.destroy();
        throw new TunnelUnauthorizedError(r.reason);
      }
    }
    return establishSession(sock, {
      side: 'dialer',
      hello: this.opts.hello(),
      ...(this.opts.validatePeerHello ? { validatePeerHello: this.opts.validatePeerHello } : {}),
      ...(this.opts.protocolMinor !== undefined ? { protocolMinor: this.opts.protocolMinor } : {}),
      handshakeTimeoutMs: timeoutMs,
      signal,
    });
  }

  private describe() {
    return this.opts.via ? `${this.opts.via.target} via ${this.opts.via.proxyHost}:${this.opts.via.proxyPort}` : `${this.opts.target.host}:${this.opts.target.port}`;
  }

  get session(): TunnelSession | undefined {
    return this.current;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.current?.close('dialer stopping');
    await this.loop;
    this.setState('stopped');
  }
}

function tcpConnect(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true });
    const done = (err?: Error) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (err) { s.destroy(); reject(err); } else resolve(s);
    };
    const onAbort = () => done(new Error('aborted'));
    const timer = setTimeout(() => done(Object.assign(new RvpnError('RVPN_ERR_TUNNEL_CLOSED', `connect to ${host}:${port} timed out`))), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    s.once('connect', () => done());
    s.once('error', (err) => done(new RvpnError('RVPN_ERR_TUNNEL_CLOSED', `connect to ${host}:${port} failed: ${err.message}`, { cause: err })));
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); resolve(); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
