/**
 * The kube-apiserver's `cluster` egress: an HTTP CONNECT proxy behind mutual TLS, as the egress
 * selector (`HTTPConnect` over TCP with a client certificate) uses it. For every CONNECT it
 *   1. checks the client certificate's common name (default `kube-apiserver-http-proxy-client`),
 *   2. accepts only IP-literal targets inside the shoot's networks (403 otherwise, so the proxy
 *      can never be used to reach the seed),
 *   3. HOLDS the request while no path to the shoot exists, bounded in time (below the apiserver's
 *      10 s webhook timeout) and in count, then answers 503 with a reason,
 *   4. dials the target with an ordinary kernel socket (the kernel routes it into the tunnel) — where
 *      the seed and shoot networks overlap, the target's mapped address (`mapDestination`, issue 12:
 *      the apiserver names the real shoot address; checks, logs and refusals keep naming it) — and
 *      pipes bytes both ways. pipe() applies backpressure: a side that reads slowly pauses the other
 *      one, so a connection holds at most its streams' high-water marks in this process (the rest
 *      waits in kernel socket buffers and TCP windows), never an unbounded queue.
 * Refusals are logged once per interval and outcome (a client repeating a bad request cannot flood
 * the log); errors of the listening socket (EMFILE) are counted and logged and it keeps listening.
 */
import net from 'node:net';
import tls from 'node:tls';
import { type CidrSet, errorCode, parseIp } from '@rvpn/config';
import { createIntervalLog } from '@rvpn/observability';
import { readRequestHead, writeStatus } from '@rvpn/proxy';
import { EgressListenError, EgressTlsConfigError } from './errors.js';
import type { PathGate } from './path-gate.js';

export type EgressOutcome =
  | 'connected'
  | 'bad_request'
  | 'method_not_allowed'
  | 'header_timeout'
  | 'header_too_large'
  | 'unauthorized'
  | 'forbidden'
  | 'overloaded'
  | 'no_path'
  | 'dial_failed'
  | 'dial_timeout';

export interface EgressTls {
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
}

export interface EgressLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface EgressProxyOptions {
  host: string;
  port: number;
  /** Called for every new TLS context; return fresh material to pick up rotated files. */
  tls: () => EgressTls;
  allowedCommonNames: readonly string[];
  /** Destinations that may be dialed: the shoot's service, pod and node networks (real addresses, as the apiserver names them). */
  allowedDestinations: CidrSet;
  /**
   * The address to dial for an allowed target (overlapping networks: the shoot address as it appears
   * in the tunnel, e.g. 100.96.1.10 -> 244.0.1.10); undefined refuses it like a target outside the
   * shoot's networks. Default: the target itself.
   */
  mapDestination?: (host: string) => string | undefined;
  gate: PathGate;
  /** How long a CONNECT waits for the path to come back. Must stay below 10 s. */
  holdTimeoutMs: number;
  /** Cap on requests held at once; beyond it, 503 at once. */
  maxPending: number;
  dialTimeoutMs: number;
  /**
   * Each connection attempt gets this long before it is abandoned and retried within dialTimeoutMs
   * (default: one attempt). After a path switch a retried SYN takes the new route at once instead of
   * waiting for the kernel's 1 s / 3 s SYN retransmissions on the dead path. A refusal is final.
   */
  dialAttemptTimeoutMs?: number;
  maxHeaderBytes?: number;
  headerTimeoutMs?: number;
  /** Idle timeout of a piped connection (default: none; kubectl logs -f may idle for long). */
  idleTimeoutMs?: number;
  logger?: EgressLogger;
  /** Observability hook: one call per CONNECT with its outcome and how long it was held. */
  onOutcome?: (outcome: EgressOutcome, info: { heldMs: number; destination?: string }) => void;
  /** An error of the listening socket (EMFILE, ENFILE, other); the proxy keeps listening. */
  onAcceptError?: (label: 'EMFILE' | 'ENFILE' | 'other', err: Error) => void;
  /** How often a repeated refusal is logged (default 10 s). */
  refusalLogIntervalMs?: number;
  /** Replaceable dialer (tests); default: a plain TCP connect. */
  dial?: (host: string, port: number, signal: AbortSignal) => Promise<net.Socket>;
}

export interface EgressProxy {
  start(): Promise<{ port: number }>;
  stop(): Promise<void>;
  /** Rebuilds the TLS context from `tls()` (after a certificate rotation). */
  reloadTls(): void;
  /**
   * Starts every connection attempt that has no answer yet over again at once (the routes just moved
   * to another path: a SYN sent into the old one would wait for its attempt timeout). Returns how many
   * were restarted. Only the built-in dialer does this (an injected `dial` is left alone).
   */
  retryPendingDials(): number;
  readonly activeConnections: number;
  readonly pending: number;
  /** The listening server while started (tests, diagnostics). */
  readonly server: net.Server | undefined;
}

const noopLogger: EgressLogger = { info() {}, warn() {}, debug() {} };

export function createEgressProxy(opts: EgressProxyOptions): EgressProxy {
  const log = opts.logger ?? noopLogger;
  const refusals = createIntervalLog({
    logger: { debug: (o, m) => log.debug(o, m), info: (o, m) => log.info(o, m), warn: (o, m) => log.warn(o, m), error: (o, m) => log.warn(o, m) },
    level: 'info',
    intervalMs: opts.refusalLogIntervalMs ?? 10_000,
  });
  const sockets = new Set<net.Socket>();
  const abort = new AbortController();
  let pending = 0;
  let server: tls.Server | undefined;

  const makeContext = (): tls.SecureContextOptions => {
    try {
      const m = opts.tls();
      return { ca: m.ca, cert: m.cert, key: m.key };
    } catch (err) {
      throw new EgressTlsConfigError(`cannot load the proxy's TLS material: ${(err as Error).message}`, { cause: err });
    }
  };

  const dialer: Dialer = opts.dial ? { dial: opts.dial, retryPending: () => 0 } : createDialer({ timeoutMs: opts.dialTimeoutMs, ...(opts.dialAttemptTimeoutMs !== undefined ? { attemptMs: opts.dialAttemptTimeoutMs } : {}) });
  const dial = dialer.dial;

  const handle = async (sock: tls.TLSSocket) => {
    const t0 = Date.now();
    let destination: string | undefined;
    const finish = (outcome: EgressOutcome, status?: number, reason?: string, body?: string) => {
      opts.onOutcome?.(outcome, { heldMs: Date.now() - t0, ...(destination ? { destination } : {}) });
      if (status !== undefined) {
        refusals.log(`refused:${outcome}`, { outcome, status, destination, remote: sock.remoteAddress, detail: body ?? reason }, 'CONNECT refused');
        writeStatus(sock, status, reason ?? '', body ?? '');
      }
    };
    let head;
    try {
      head = await readRequestHead(sock, {
        maxBytes: opts.maxHeaderBytes ?? 8192,
        timeoutMs: opts.headerTimeoutMs ?? 5000,
        signal: abort.signal,
      });
    } catch (err) {
      const code = errorCode(err) ?? '';
      if (code.endsWith('_TIMEOUT')) finish('header_timeout', 408, 'Request Timeout', 'no complete request head in time');
      else if (code.endsWith('_TOO_LARGE')) finish('header_too_large', 431, 'Request Header Fields Too Large', 'request head too large');
      else if (!sock.destroyed) finish('bad_request', 400, 'Bad Request', 'malformed request');
      else finish('bad_request');
      sock.destroy();
      return;
    }

    const cn = commonNameOf(sock);
    if (!cn || !opts.allowedCommonNames.includes(cn)) {
      finish('unauthorized', 403, 'Forbidden', `client certificate CN ${JSON.stringify(cn ?? '')} is not allowed to use this proxy`);
      return;
    }
    if (head.method !== 'CONNECT') {
      finish('method_not_allowed', 405, 'Method Not Allowed', `only CONNECT is supported, got ${head.method}`);
      return;
    }
    const target = parseAuthority(head.target);
    if (!target) {
      finish('bad_request', 400, 'Bad Request', `CONNECT target must be <ip>:<port> or [<ipv6>]:<port>, got ${JSON.stringify(head.target)}`);
      return;
    }
    destination = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
    const dialHost = opts.allowedDestinations.contains(target.host) ? (opts.mapDestination ? opts.mapDestination(target.host) : target.host) : undefined;
    if (dialHost === undefined) {
      finish('forbidden', 403, 'Forbidden', `destination ${destination} is outside the shoot's networks`);
      return;
    }
    // logged beside the destination the apiserver named, when they differ
    const dialed = dialHost !== target.host ? dialHost : undefined;

    if (!opts.gate.isUp) {
      if (pending >= opts.maxPending) {
        finish('overloaded', 503, 'Service Unavailable', `tunnel is not connected and ${pending} requests are already waiting`);
        return;
      }
      pending++;
      const closed = new AbortController();
      const onClose = () => closed.abort();
      sock.once('close', onClose);
      const ok = await opts.gate.waitUp(opts.holdTimeoutMs, AbortSignal.any([abort.signal, closed.signal]));
      sock.off('close', onClose);
      pending--;
      if (sock.destroyed) return;
      if (!ok) {
        finish('no_path', 503, 'Service Unavailable', `tunnel to the shoot not connected (waited ${Date.now() - t0} ms)`);
        return;
      }
    }

    let upstream: net.Socket;
    try {
      upstream = await dial(dialHost, target.port, abort.signal);
    } catch (err) {
      const timedOut = (err as { code?: string }).code === 'ETIMEDOUT';
      finish(timedOut ? 'dial_timeout' : 'dial_failed', timedOut ? 504 : 502, timedOut ? 'Gateway Timeout' : 'Bad Gateway',
        `cannot connect to ${destination}${dialed ? ` (mapped to ${dialed})` : ''}: ${(err as Error).message}`);
      return;
    }
    if (sock.destroyed) {
      upstream.destroy();
      return;
    }
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    finish('connected');
    log.debug({ destination, ...(dialed ? { dialed } : {}), heldMs: Date.now() - t0 }, 'CONNECT established');
    sock.write('HTTP/1.1 200 Connection established\r\n\r\n');
    if (head.rest.length > 0) upstream.write(head.rest);
    if (opts.idleTimeoutMs) {
      sock.setTimeout(opts.idleTimeoutMs, () => { sock.destroy(); upstream.destroy(); });
    }
    sock.pipe(upstream);
    upstream.pipe(sock);
    const teardown = () => { sock.destroy(); upstream.destroy(); };
    sock.once('error', teardown);
    upstream.once('error', teardown);
    sock.once('close', () => upstream.end());
    upstream.once('close', () => sock.end());
  };

  return {
    async start() {
      server = tls.createServer({
        ...makeContext(),
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        // A client that stalls or sends junk mid-handshake is dropped after the head timeout.
        handshakeTimeout: opts.headerTimeoutMs ?? 5000,
      });
      server.on('secureConnection', (sock: tls.TLSSocket) => {
        sockets.add(sock);
        sock.once('close', () => sockets.delete(sock));
        sock.on('error', (err) => log.debug({ err: err.message }, 'proxy client socket error'));
        sock.setNoDelay(true);
        sock.setKeepAlive(true, 55_000);
        void handle(sock).catch((err) => {
          log.warn({ err: (err as Error).message }, 'CONNECT handling failed');
          sock.destroy();
        });
      });
      server.on('connection', (raw: net.Socket) => raw.on('error', () => undefined));
      server.on('tlsClientError', (err, sock) => {
        refusals.log('refused:tls', { err: err.message, remote: sock.remoteAddress }, 'proxy TLS handshake refused');
        sock.destroy();
        opts.onOutcome?.('unauthorized', { heldMs: 0 });
      });
      const srv = server;
      await new Promise<void>((resolve, reject) => {
        const onErr = (err: Error) => reject(new EgressListenError(`cannot listen on ${opts.host}:${opts.port}: ${err.message}`, { cause: err }));
        srv.once('error', onErr);
        srv.listen(opts.port, opts.host, () => {
          srv.off('error', onErr);
          // EMFILE on accept must not end the process: libuv keeps listening; count, log, go on
          srv.on('error', (err) => {
            const c = errorCode(err);
            const label = c === 'EMFILE' || c === 'ENFILE' ? c : 'other';
            refusals.log(`accept:${label}`, { errno: label, err: err.message }, 'CONNECT proxy cannot accept connections');
            opts.onAcceptError?.(label, err);
          });
          resolve();
        });
      });
      return { port: (srv.address() as net.AddressInfo).port };
    },
    async stop() {
      abort.abort();
      refusals.stop();
      const srv = server;
      server = undefined;
      for (const s of sockets) s.destroy();
      if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
    reloadTls() {
      server?.setSecureContext(makeContext());
    },
    retryPendingDials() {
      return dialer.retryPending();
    },
    get activeConnections() {
      return sockets.size;
    },
    get pending() {
      return pending;
    },
    get server() {
      return server;
    },
  };
}

function commonNameOf(sock: tls.TLSSocket): string | undefined {
  const cert = sock.getPeerCertificate();
  const cn = cert?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

/** `1.2.3.4:443` or `[fd00::1]:443` → host and port; names are refused (there is no DNS to trust). */
export function parseAuthority(target: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(target) ?? /^([^:[\]]+):(\d{1,5})$/.exec(target);
  if (!m) return undefined;
  const host = m[1]!;
  const port = Number(m[2]);
  if (port < 1 || port > 65535 || !parseIp(host)) return undefined;
  return { host, port };
}

function connectOnce(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 55_000 });
    const timer = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    const onAbort = () => { clearTimeout(timer); s.destroy(); reject(new Error('proxy stopping')); };
    signal.addEventListener('abort', onAbort, { once: true });
    s.once('connect', () => { clearTimeout(timer); signal.removeEventListener('abort', onAbort); resolve(s); });
    s.once('error', (err) => { clearTimeout(timer); signal.removeEventListener('abort', onAbort); reject(err); });
  });
}

export interface Dialer {
  dial(host: string, port: number, signal: AbortSignal): Promise<net.Socket>;
  /** Restarts the attempts without an answer yet (see EgressProxy.retryPendingDials). */
  retryPending(): number;
}

/**
 * Plain TCP connects in attempts of `attemptMs` within `timeoutMs`: an attempt without an answer is
 * abandoned and made again (a refusal is final). `retryPending()` cuts the current attempts short so
 * they are made again at once. `connect` is replaceable for tests.
 */
export function createDialer(o: { timeoutMs: number; attemptMs?: number; connect?: (host: string, port: number, timeoutMs: number, signal: AbortSignal) => Promise<net.Socket> }): Dialer {
  const connect = o.connect ?? connectOnce;
  const attemptMs = o.attemptMs ?? o.timeoutMs;
  const attempts = new Set<AbortController>();
  return {
    async dial(host, port, signal) {
      const deadline = Date.now() + o.timeoutMs;
      for (;;) {
        const left = deadline - Date.now();
        const attempt = new AbortController();
        const onOuter = () => attempt.abort();
        signal.addEventListener('abort', onOuter, { once: true });
        attempts.add(attempt);
        try {
          return await connect(host, port, Math.min(attemptMs, Math.max(1, left)), attempt.signal);
        } catch (err) {
          const retried = attempt.signal.aborted && !signal.aborted;
          const code = (err as NodeJS.ErrnoException).code;
          const again = retried || (code === 'ETIMEDOUT' && !signal.aborted);
          if (!again || deadline - Date.now() <= 0) {
            if (code === 'ETIMEDOUT' || retried) throw Object.assign(new Error(`no answer within ${o.timeoutMs} ms`), { code: 'ETIMEDOUT' });
            throw err;
          }
        } finally {
          attempts.delete(attempt);
          signal.removeEventListener('abort', onOuter);
        }
      }
    },
    retryPending() {
      const n = attempts.size;
      for (const a of [...attempts]) a.abort();
      return n;
    },
  };
}
