/**
 * Connection caps of a proxy that anyone can reach: connections open in total, per source, per route,
 * and those whose route is not known yet ("pending": PROXY header, request head or ClientHello still
 * being read) in total and per source. One ConnectionLimits spans all listeners of a process.
 *
 * Sources are counted by `sourceKey`: an IPv4 address (an IPv4-mapped IPv6 address is that IPv4
 * address), or the /64 of an IPv6 address (one host usually holds a whole /64). The maps hold only keys
 * with open connections, so the state is bounded by the connections admitted.
 *
 *   const limits = new ConnectionLimits({ maxConnections: 10000, maxPerSource: 2000, maxPerRoute: 5000, maxPending: 1000, maxPendingPerSource: 100 });
 *   const a = limits.admit(sourceKey(socket.remoteAddress));
 *   if (typeof a === 'string') return refuse(a);          // 'max_connections' | 'per_source' | …
 *   socket.once('close', () => a.release());
 *   // …route known:
 *   const r = a.route(`connect:${value}`);              // leaves pending; 'per_route' when full
 */
import { formatIp, parseIp } from '@rvpn/config';

export type LimitRefusal = 'max_connections' | 'per_source' | 'pending' | 'pending_per_source' | 'per_route';

export interface ConnectionLimitsOptions {
  maxConnections: number;
  maxPerSource: number;
  maxPerRoute: number;
  maxPending: number;
  maxPendingPerSource: number;
}

const LOW_64 = (1n << 64n) - 1n;

/** The key a connection from `address` is counted under: IPv4 (mapped ones unmapped) or an IPv6 /64. */
export function sourceKey(address: string | undefined): string {
  const ip = address ? parseIp(address) : undefined;
  if (!ip) return 'unknown';
  if (ip.family === 4) return formatIp(ip);
  if (ip.value >> 32n === 0xffffn) return formatIp({ family: 4, value: ip.value & 0xffffffffn });
  return `${formatIp({ family: 6, value: ip.value & ~LOW_64 })}/64`;
}

interface SourceCount {
  open: number;
  pending: number;
}

/** One admitted connection's share of the counts; release() is idempotent. */
export interface Admission {
  readonly source: string | undefined;
  readonly routeKey: string | undefined;
  /** Sets the source of a connection admitted without one (after a trusted PROXY header). */
  setSource(source: string): LimitRefusal | undefined;
  /** The route is known: leaves pending and counts under the route. */
  route(key: string): LimitRefusal | undefined;
  release(): void;
}

export class ConnectionLimits {
  private open = 0;
  private pendingCount = 0;
  private readonly sources = new Map<string, SourceCount>();
  private readonly routes = new Map<string, number>();
  constructor(readonly opts: ConnectionLimitsOptions) {}

  get connections(): number {
    return this.open;
  }
  get pending(): number {
    return this.pendingCount;
  }
  /** Sources with at least one open connection. */
  get trackedSources(): number {
    return this.sources.size;
  }
  /** Routes with at least one piped connection. */
  get trackedRoutes(): number {
    return this.routes.size;
  }
  /** Open connections of one source key (for tests and debugging). */
  connectionsOf(source: string): number {
    return this.sources.get(source)?.open ?? 0;
  }

  /** Admits a new connection (pending until its route is known), or says which cap refused it. */
  admit(source?: string): Admission | LimitRefusal {
    if (this.open >= this.opts.maxConnections) return 'max_connections';
    if (this.pendingCount >= this.opts.maxPending) return 'pending';
    if (source !== undefined) {
      const r = this.checkSource(source);
      if (r) return r;
    }
    this.open++;
    this.pendingCount++;
    let src: SourceCount | undefined;
    let srcKey: string | undefined;
    let routeKey: string | undefined;
    let pending = true;
    let released = false;
    const attach = (key: string) => {
      srcKey = key;
      src = this.sources.get(key) ?? { open: 0, pending: 0 };
      this.sources.set(key, src);
      src.open++;
      if (pending) src.pending++;
    };
    if (source !== undefined) attach(source);
    const leavePending = () => {
      if (!pending) return;
      pending = false;
      this.pendingCount--;
      if (src) src.pending--;
    };
    return {
      get source() {
        return srcKey;
      },
      get routeKey() {
        return routeKey;
      },
      setSource: (key) => {
        if (released || srcKey !== undefined) return undefined;
        const r = this.checkSource(key);
        if (r) return r;
        attach(key);
        return undefined;
      },
      route: (key) => {
        if (released || routeKey !== undefined) return undefined;
        const n = this.routes.get(key) ?? 0;
        if (n >= this.opts.maxPerRoute) return 'per_route';
        this.routes.set(key, n + 1);
        routeKey = key;
        leavePending();
        return undefined;
      },
      release: () => {
        if (released) return;
        released = true;
        leavePending();
        this.open--;
        if (src && srcKey !== undefined) {
          src.open--;
          if (src.open === 0) this.sources.delete(srcKey);
        }
        if (routeKey !== undefined) {
          const n = this.routes.get(routeKey)! - 1;
          if (n === 0) this.routes.delete(routeKey);
          else this.routes.set(routeKey, n);
        }
      },
    };
  }

  private checkSource(key: string): LimitRefusal | undefined {
    const s = this.sources.get(key);
    if (!s) return undefined;
    if (s.open >= this.opts.maxPerSource) return 'per_source';
    if (s.pending >= this.opts.maxPendingPerSource) return 'pending_per_source';
    return undefined;
  }
}
