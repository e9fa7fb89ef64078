/**
 * A TCP probe in the native addon (../native/src/probe.cc): connect from a chosen local port and tell
 * how it ended, with no net.Socket. path-controller probes each path several times a second for the
 * life of the pod; through net.connect every probe left a Socket, its stream states, listeners, a
 * Timeout and (for a refusal) an Error with a formatted stack behind, about 16 KiB, and the idle
 * process's old space grew by 2 MiB a minute between full collections (`pnpm bench:memory`).
 *
 *   const r = await tcpProbe({ host: '100.64.0.1', port: 443, localPort: 40100, timeoutMs: 400 });
 *   // r.outcome: 'connected' | 'refused' | 'timeout' | 'error' (r.code: EHOSTUNREACH, EADDRINUSE, ...)
 *
 * Bound as net.connect({ localPort }) binds (SO_REUSEADDR, wildcard address); a connected or timed-out
 * socket is closed with an RST, so no TIME_WAIT holds the local port when it comes round again.
 */
import { isIP } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { loadNativeAddon } from './addon.js';

interface ProbeAddon {
  tcpProbe(address: string, port: number, localPort: number, timeoutMs: number, cb: (result: number) => void): void;
  tcpProbesActive(): number;
}

export interface TcpProbeOptions {
  /** An IPv4 or IPv6 address (no name: nothing is resolved). */
  host: string;
  port: number;
  /** The local port to connect from; 0 or absent: any. */
  localPort?: number;
  timeoutMs: number;
}

export interface TcpProbeResult {
  /** connected: accepted; refused: an RST came back; timeout: no answer in timeoutMs; error: anything else. */
  outcome: 'connected' | 'refused' | 'timeout' | 'error';
  /** The errno name for 'error' (EHOSTUNREACH, ENETUNREACH, EADDRINUSE, ...), and for the others. */
  code?: string;
  rttMs: number;
}

/** One TCP probe; rejects only for bad options or when no socket can be made (EMFILE). */
export function tcpProbe(opts: TcpProbeOptions): Promise<TcpProbeResult> {
  if (!isIP(opts.host)) return Promise.reject(new TypeError(`tcpProbe: ${opts.host} is not an IP address`));
  const addon = loadNativeAddon() as ProbeAddon;
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    try {
      addon.tcpProbe(opts.host, opts.port, opts.localPort ?? 0, Math.max(1, Math.round(opts.timeoutMs)), (result) => {
        const rttMs = performance.now() - t0;
        if (result === 0) resolve({ outcome: 'connected', rttMs });
        else {
          const code = getSystemErrorName(-result);
          resolve({ outcome: code === 'ECONNREFUSED' ? 'refused' : code === 'ETIMEDOUT' ? 'timeout' : 'error', code, rttMs });
        }
      });
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      reject(Object.assign(err as Error, errno ? { code: getSystemErrorName(-errno) } : {}));
    }
  });
}

/** Probes of this process still waiting for an answer (for tests: nothing may be left behind). */
export function tcpProbesActive(): number {
  return (loadNativeAddon() as ProbeAddon).tcpProbesActive();
}
