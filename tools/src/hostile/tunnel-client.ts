/**
 * A minimal tunnel peer for the attacks and the keepalive monitor: TCP (from a chosen source, directly
 * or through a CONNECT with a routing header), TLS 1.3 with a lab certificate, then our frames written
 * by hand (libs/tunnel protocol.ts) so they can be wrong on purpose. It answers the server's PINGs and
 * measures its own PINGs' round trips exactly (one sample per PONG).
 */
import tls from 'node:tls';
import type net from 'node:net';
import { readFileSync } from 'node:fs';
import { FrameParser, FrameType, PROTOCOL_MAJOR, PROTOCOL_MINOR, decodeError, encodeHello, type HelloBody } from '@rvpn/tunnel';
import { connectTcp, type HostPort } from './common.js';
import { proxyConnectTo } from './proxy-connect.js';

export interface TlsFiles {
  ca?: string;
  cert: string;
  key: string;
}

export interface DialOptions {
  target: HostPort;
  /** Reach the target through sni-proxy: the full header line, e.g. `Reversed-VPN: outbound|1194||…`. */
  viaHeader?: string;
  localAddress?: string;
  servername: string;
  tls?: TlsFiles;
  timeoutMs?: number;
}

export class DialError extends Error {
  constructor(readonly stage: 'tcp' | 'connect' | 'tls', message: string, readonly detail?: string) {
    super(message);
  }
}

/** Writes a CONNECT with the routing header and waits for the status line; returns the status code (0: none). */
export function proxyConnect(s: net.Socket, header: string, timeoutMs: number): Promise<number> {
  return proxyConnectTo(s, 'vpn-seed-server:1194', timeoutMs, [header]);
}

/** TCP (+ CONNECT) to the tunnel listener, without TLS. */
export async function dialRaw(opts: Omit<DialOptions, 'tls' | 'servername'>): Promise<net.Socket> {
  let raw: net.Socket;
  try {
    raw = await connectTcp(opts.target, { localAddress: opts.localAddress, timeoutMs: opts.timeoutMs ?? 5000 });
  } catch (err) {
    throw new DialError('tcp', (err as Error).message, (err as NodeJS.ErrnoException).code);
  }
  raw.on('error', () => undefined);
  if (opts.viaHeader) {
    const code = await proxyConnect(raw, opts.viaHeader, opts.timeoutMs ?? 5000);
    if (code !== 200) {
      raw.destroy();
      throw new DialError('connect', `CONNECT answered ${code || 'nothing'}`, String(code));
    }
  }
  return raw;
}

/** TCP (+ CONNECT) and the TLS 1.3 handshake with a client certificate. */
export async function dialTls(opts: DialOptions & { tls: TlsFiles }): Promise<tls.TLSSocket> {
  const raw = await dialRaw(opts);
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      socket: raw,
      servername: opts.servername,
      minVersion: 'TLSv1.3',
      cert: readFileSync(opts.tls.cert),
      key: readFileSync(opts.tls.key),
      ...(opts.tls.ca ? { ca: readFileSync(opts.tls.ca) } : { rejectUnauthorized: false }),
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new DialError('tls', 'TLS handshake timed out'));
    }, opts.timeoutMs ?? 5000);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      s.destroy();
      reject(new DialError('tls', err.message, (err as NodeJS.ErrnoException).code));
    });
  });
}

/** A frame with any type and any declared length (u24), whatever the payload really holds. */
export function rawFrame(type: number, declaredLength: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.from([type & 0xff, (declaredLength >>> 16) & 0xff, (declaredLength >>> 8) & 0xff, declaredLength & 0xff]);
  return Buffer.concat([h, payload]);
}

export const frame = (type: number, payload: Buffer = Buffer.alloc(0)) => rawFrame(type, payload.length, payload);

export function pingFrame(seq: number, payloadBytes = 12): Buffer {
  const p = Buffer.alloc(Math.max(12, payloadBytes));
  p.writeUInt32BE(seq >>> 0, 0);
  p.writeBigUInt64BE(process.hrtime.bigint(), 4);
  return frame(FrameType.PING, p);
}

/** HELLO bodies the lab's servers accept. */
export function shootHello(identity: string, vpnNetwork = 'fd8f:6d53:b97a:1::/96'): HelloBody {
  return { role: 'shoot', identity, keepaliveIntervalMs: 250, keepaliveTimeoutMs: 1000, vpnNetwork, mtu: 1500 };
}

/** An HA kube-apiserver-side endpoint (role seed) with a bond address of the endpoint range. */
export function endpointHello(identity: string, address: string, vpnNetwork = 'fd8f:6d53:b97a:1::/96'): HelloBody {
  return { role: 'seed', identity, keepaliveIntervalMs: 100, keepaliveTimeoutMs: 500, vpnNetwork, mtu: 1500, bond: { address } };
}

export interface SessionEvents {
  /** Our PING came back: round trip in ms. */
  onRtt?: (ms: number) => void;
  onFrame?: (type: number, payload: Buffer) => void;
}

/**
 * An established session (HELLO exchanged) on a TLS socket, driven by hand: it answers PINGs,
 * sends its own every `pingIntervalMs` and reports each round trip. `closed` says why it ended.
 */
export class HandSession {
  readonly closed: Promise<{ reason: string; code?: string; afterMs: number }>;
  private pingTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  private readonly t0 = performance.now();
  private resolveClosed!: (v: { reason: string; code?: string; afterMs: number }) => void;
  private ended = false;
  errorCode: string | undefined;

  constructor(readonly sock: tls.TLSSocket, private readonly events: SessionEvents = {}, parserAlreadyAttached?: FrameParser) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    if (!parserAlreadyAttached) {
      const parser = new FrameParser((t, p) => this.onFrame(t, p), (reason) => this.end(`unparseable frames from the server: ${reason}`));
      sock.on('data', (c: Buffer) => parser.push(c));
    }
    sock.on('error', () => undefined);
    sock.once('close', () => this.end('connection closed', this.errorCode));
  }

  onFrame(type: number, payload: Buffer): void {
    if (type === FrameType.PING) {
      if (!this.sock.destroyed) this.sock.write(frame(FrameType.PONG, payload));
    } else if (type === FrameType.PONG && payload.length >= 12) {
      this.events.onRtt?.(Number(process.hrtime.bigint() - payload.readBigUInt64BE(4)) / 1e6);
    } else if (type === FrameType.ERROR) {
      this.errorCode = decodeError(payload).code;
    }
    this.events.onFrame?.(type, payload);
  }

  startPings(intervalMs: number): void {
    this.pingTimer = setInterval(() => {
      if (!this.sock.destroyed) this.sock.write(pingFrame(this.seq++));
    }, intervalMs);
  }

  write(b: Buffer): boolean {
    return !this.sock.destroyed && this.sock.write(b);
  }

  private end(reason: string, code?: string) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.pingTimer);
    this.resolveClosed({ reason, ...(code ? { code } : {}), afterMs: performance.now() - this.t0 });
  }

  close(): void {
    clearInterval(this.pingTimer);
    this.sock.destroy();
  }
}

/**
 * Sends HELLO and waits for the server's HELLO (accepted) or ERROR (refused, with its code).
 * On acceptance the returned session owns the socket.
 */
export async function handshake(sock: tls.TLSSocket, body: HelloBody, opts: { events?: SessionEvents; timeoutMs?: number; major?: number; minor?: number } = {}): Promise<{ ok: true; session: HandSession } | { ok: false; code: string; message: string }> {
  return new Promise((resolve) => {
    let session: HandSession | undefined;
    let settled = false;
    const settle = (v: { ok: true; session: HandSession } | { ok: false; code: string; message: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!v.ok) sock.destroy();
      resolve(v);
    };
    const parser = new FrameParser((type, payload) => {
      if (session) {
        session.onFrame(type, payload);
        return;
      }
      if (type === FrameType.HELLO) {
        session = new HandSession(sock, opts.events ?? {}, parser);
        settle({ ok: true, session });
      } else if (type === FrameType.ERROR) {
        const e = decodeError(payload);
        settle({ ok: false, code: e.code, message: e.message });
      }
    }, (reason) => settle({ ok: false, code: 'UNPARSEABLE', message: reason }));
    sock.on('data', (c: Buffer) => parser.push(c));
    sock.once('close', () => settle({ ok: false, code: 'CLOSED', message: 'closed before the server HELLO' }));
    sock.on('error', () => undefined);
    const timer = setTimeout(() => settle({ ok: false, code: 'TIMEOUT', message: 'no HELLO from the server' }), opts.timeoutMs ?? 5000);
    sock.write(encodeHello(body, opts.major ?? PROTOCOL_MAJOR, opts.minor ?? PROTOCOL_MINOR));
  });
}
