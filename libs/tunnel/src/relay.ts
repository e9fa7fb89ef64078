/**
 * A byte relay between two connected TCP sockets that runs in the native addon (../native/src/relay.cc),
 * not through Node streams: no JS, no Buffer and no stream bookkeeping per chunk. For a proxy that routes
 * a connection once and then only copies (sni-proxy), that per-chunk JS is most of its CPU and every
 * tunnel's keepalive waits behind it on the one loop.
 *
 * relaySockets() takes both sockets over: whatever they have buffered for reading is passed on, the
 * descriptors are duplicated into the relay, and the net.Sockets are destroyed (libuv lets go of
 * their descriptors; the connections live on in the relay). From then on the relay alone reads,
 * writes, half-closes and closes them, and reports once through onEnd.
 */
import type { Socket } from 'node:net';
import { loadNativeAddon, socketFd } from './addon.js';
import { RelayError } from './errors.js';

export type RelayEndReason = 'closed' | 'error' | 'idle' | 'stopped';

export interface RelayEnd {
  /** closed: both directions ended (EOF); error: a reset or failed write; idle: no byte either way for idleMs; stopped: stop(). */
  reason: RelayEndReason;
  /** The errno of an `error` end, else 0. */
  errno: number;
  /** Bytes read from `a` (and written to `b`), and the other way. */
  bytesAtoB: number;
  bytesBtoA: number;
}

export interface RelayOptions {
  /** Written to `a` before anything relayed from `b` (e.g. a CONNECT's 200). */
  toA?: Buffer;
  /** Written to `b` before anything relayed from `a` (e.g. the ClientHello or bytes past a request head). */
  toB?: Buffer;
  /** The relay ends after this long without a byte either way; 0: never. */
  idleMs: number;
  /** Called once when the relay ended and both connections are closed. */
  onEnd(end: RelayEnd): void;
}

export interface SocketRelay {
  /** Ends the relay now, closing both connections (onEnd gets reason `stopped`); a no-op after the end. */
  stop(): void;
  /** Bytes so far while running. */
  stats(): { running: boolean; bytesAtoB?: number; bytesBtoA?: number; pendingToA?: number; pendingToB?: number };
}

interface NativeRelayCtor {
  new (fdA: number, fdB: number, toA: Buffer, toB: Buffer, idleMs: number, onEnd: (reason: string, errno: number, aToB: number, bToA: number) => void): SocketRelay;
}
interface RelayAddon {
  SocketRelay: NativeRelayCtor;
  relayTotals(): RelayTotals;
}

/** Process-wide figures of the native relays, for metrics. */
export interface RelayTotals {
  /** Bytes read from the `a` sides (and from the `b` sides) of all relays since the process started. */
  bytesA: number;
  bytesB: number;
  /** Relays started, and running now. */
  started: number;
  active: number;
}

function fdOf(sock: Socket, which: string): number {
  const fd = socketFd(sock);
  if (fd === undefined) throw new RelayError(`relay: socket ${which} has no descriptor (not connected, or already closed)`);
  return fd;
}

/** Takes what the socket has buffered for reading (the stream's queue, never the kernel's). */
function takeBuffered(sock: Socket): Buffer[] {
  const out: Buffer[] = [];
  for (let c: unknown = sock.read(); c !== null; c = sock.read()) out.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return out;
}

/**
 * Hands `a` and `b` to a native relay. Both must be connected TCP sockets with nothing queued for
 * writing (write first bytes through toA/toB instead), paused, without 'data' listeners. On success
 * both net.Sockets are destroyed (their 'close' events fire; the connections do not close) and the
 * relay runs until onEnd. Throws RelayError (RVPN_ERR_RELAY_HANDOVER) when it cannot take them; the sockets
 * are then untouched, so the caller can fall back to a stream pipe.
 */
export function relaySockets(a: Socket, b: Socket, opts: RelayOptions): SocketRelay {
  if (!Number.isFinite(opts.idleMs) || opts.idleMs < 0) throw new RelayError(`relay: idleMs must be >= 0, not ${opts.idleMs}`);
  const fdA = fdOf(a, 'a');
  const fdB = fdOf(b, 'b');
  if (a.writableLength > 0 || b.writableLength > 0) throw new RelayError('relay: a socket still has bytes queued for writing');
  const addon = loadNativeAddon() as RelayAddon;
  // bytes a stream already read past what its reader took go on first, in order
  const fromA = takeBuffered(a);
  const fromB = takeBuffered(b);
  const toA = Buffer.concat([...(opts.toA ? [opts.toA] : []), ...fromB]);
  const toB = Buffer.concat([...(opts.toB ? [opts.toB] : []), ...fromA]);
  // bytes taken from a stream's queue count as read from that side
  const takenA = fromA.reduce((n, b) => n + b.length, 0);
  const takenB = fromB.reduce((n, b) => n + b.length, 0);
  let native: SocketRelay;
  try {
    native = new addon.SocketRelay(fdA, fdB, toA, toB, Math.round(opts.idleMs), (reason, errno, aToB, bToA) =>
      opts.onEnd({ reason: reason as RelayEndReason, errno, bytesAtoB: aToB + takenA, bytesBtoA: bToA + takenB }));
  } catch (err) {
    // nothing was taken but the stream's queue: put it back
    if (fromA.length) a.unshift(Buffer.concat(fromA));
    if (fromB.length) b.unshift(Buffer.concat(fromB));
    throw new RelayError(`relay: ${(err as Error).message}`, { cause: err, details: { errno: (err as { errno?: number }).errno } });
  }
  // the relay holds its own descriptors: closing these does not close the connections
  a.destroy();
  b.destroy();
  return {
    stop: () => native.stop(),
    stats: () => {
      const s = native.stats();
      return s.running ? { ...s, bytesAtoB: s.bytesAtoB! + takenA, bytesBtoA: s.bytesBtoA! + takenB } : s;
    },
  };
}

/** Totals of all native relays of this process (bytes each way, started, running). */
export function relayTotals(): RelayTotals {
  return (loadNativeAddon() as RelayAddon).relayTotals();
}
