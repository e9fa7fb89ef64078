/**
 * Upstream names, resolved when routes load instead of once per connection. The operator writes routes
 * by Service name (vpn-seed-server.<namespace>.svc.cluster.local:1194); handing that name to
 * net.connect cost a getaddrinfo per CONNECT (a DNS query through the libuv threadpool, four threads
 * by default, with the pod's search path on top), so a burst of reconnecting shoots queued on DNS.
 *
 * Now every name of a new table is looked up once (load and every reload), and a connection dials
 * the cached addresses through net.connect's `lookup` hook (Node keeps its happy-eyeballs across
 * them). An address is used for UPSTREAM_RESOLVE_TTL_MS; after that the next connection still dials
 * it and a refresh runs beside it (a failed refresh keeps the old addresses and is tried again after
 * UPSTREAM_RESOLVE_RETRY_MS). A failed dial marks the name, so the next connection waits for a fresh
 * lookup (a seed server's Service that was recreated has a new ClusterIP). A name that cannot be
 * resolved is retried in the background with backoff (up to the TTL); a connection to it waits for
 * one lookup at most once per retry interval, otherwise it is refused at once (502) with the reason
 * `upstream_unresolved`. IP literals are never looked up.
 */
import dns from 'node:dns';
import net from 'node:net';

export const UPSTREAM_RESOLVE_TTL_MS = 30_000;
export const UPSTREAM_RESOLVE_RETRY_MS = 1_000;

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** All addresses of a name. The default asks the system resolver (dns.lookup, as net.connect does). */
export type LookupAll = (host: string) => Promise<ResolvedAddress[]>;

export const systemLookup: LookupAll = (host) =>
  new Promise((resolve, reject) => {
    // through the module object, so that what is counted or replaced there (tests) is what runs
    dns.lookup(host, { all: true }, (err, addresses) => {
      if (err) reject(err);
      else if (addresses.length === 0) reject(Object.assign(new Error(`${host} has no address`), { code: 'ENOTFOUND' }));
      else resolve(addresses.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 })));
    });
  });

export interface UpstreamResolverOptions {
  lookup?: LookupAll;
  ttlMs?: number;
  retryMs?: number;
  now?: () => number;
  /** Every lookup's outcome and why it ran (metrics, logs). */
  onLookup?: (host: string, result: { ok: true; addresses: ResolvedAddress[] } | { ok: false; err: Error }, cause: LookupCause) => void;
}

/**
 * Why a lookup ran: `routes` a table loaded or reloaded; `refresh` the addresses were older than the TTL
 * (once per TTL and name, beside the connection that found them so); `retry` the background retry of a
 * name without an address; `connection` a connection waited for it (a failed dial, a name without an
 * address after the retry interval, a name the table does not hold). Only `connection` grows with
 * connections, and even it is bounded to one per retry interval and name.
 */
export type LookupCause = 'routes' | 'refresh' | 'retry' | 'connection';

interface Entry {
  addresses?: ResolvedAddress[];
  /** When the addresses are due for a refresh. */
  expiresAt: number;
  /** When the addresses were last looked up. */
  resolvedAt?: number;
  /** A dial to the addresses failed: the next connection waits for a fresh lookup. */
  suspect: boolean;
  lastError?: Error;
  failedAt?: number;
  inflight?: Promise<ResolvedAddress[]>;
}

export class UpstreamResolver {
  private entries = new Map<string, Entry>();
  private readonly lookupFn: LookupAll;
  private readonly ttlMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private stopped = false;

  constructor(private readonly opts: UpstreamResolverOptions = {}) {
    this.lookupFn = opts.lookup ?? systemLookup;
    this.ttlMs = opts.ttlMs ?? UPSTREAM_RESOLVE_TTL_MS;
    this.retryMs = opts.retryMs ?? UPSTREAM_RESOLVE_RETRY_MS;
    this.now = opts.now ?? Date.now;
    this.retryDelay = this.retryMs;
  }

  /** Names that have no address (never resolved, or the lookup failed). */
  get unresolved(): string[] {
    return [...this.entries].filter(([, e]) => !e.addresses).map(([h]) => h);
  }

  /**
   * Resolves every name of a route table (load and reload: every name is looked up again). Names no
   * longer routed are forgotten. Resolves when every lookup has finished; returns the names that failed.
   */
  async load(hosts: Iterable<string>): Promise<Array<{ host: string; err: Error }>> {
    const names = new Set([...hosts].filter((h) => net.isIP(h) === 0));
    const next = new Map<string, Entry>();
    for (const h of names) next.set(h, this.entries.get(h) ?? { expiresAt: 0, suspect: false });
    this.entries = next;
    const failed: Array<{ host: string; err: Error }> = [];
    await Promise.all([...names].map(async (h) => {
      try {
        await this.refresh(h, next.get(h)!, 'routes');
      } catch (err) {
        failed.push({ host: h, err: err as Error });
      }
    }));
    this.retryDelay = this.retryMs;
    this.scheduleRetry();
    return failed;
  }

  /**
   * The addresses to dial for a name (undefined for an IP literal: net.connect needs no lookup).
   * Throws the lookup's error when the name has no address.
   */
  async resolve(host: string): Promise<ResolvedAddress[] | undefined> {
    if (net.isIP(host) !== 0) return undefined;
    let e = this.entries.get(host);
    if (!e) {
      // a name the table does not hold (a table swapped in meanwhile): resolve it, but keep no entry
      e = { expiresAt: 0, suspect: false };
      return this.refresh(host, e, 'connection');
    }
    if (e.addresses && !e.suspect) {
      if (this.now() >= e.expiresAt && !e.inflight) this.refresh(host, e, 'refresh').catch(() => undefined);
      return e.addresses;
    }
    if (e.inflight) return e.inflight.catch((err) => this.stale(e, err));
    // at most one lookup per retry interval for a name that fails, whatever the rate of connections
    if (e.failedAt !== undefined && this.now() - e.failedAt < this.retryMs) return this.stale(e, e.lastError);
    return this.refresh(host, e, 'connection').catch((err) => this.stale(e, err));
  }

  /**
   * A dial to this name failed: the next connection waits for a fresh lookup, unless the addresses
   * were looked up less than a retry interval ago (an upstream that is down does not cost a lookup
   * per connection).
   */
  dialFailed(host: string): void {
    const e = this.entries.get(host);
    if (e?.addresses && (e.resolvedAt === undefined || this.now() - e.resolvedAt >= this.retryMs)) e.suspect = true;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  /** After a failed lookup, addresses that worked before are better than none. */
  private stale(e: Entry, err: unknown): ResolvedAddress[] {
    if (e.addresses) return e.addresses;
    throw err;
  }

  private refresh(host: string, e: Entry, cause: LookupCause): Promise<ResolvedAddress[]> {
    if (e.inflight) return e.inflight;
    const p = this.lookupFn(host).then(
      (addresses) => {
        Object.assign(e, { addresses, resolvedAt: this.now(), expiresAt: this.now() + this.ttlMs, suspect: false, lastError: undefined, failedAt: undefined, inflight: undefined });
        this.opts.onLookup?.(host, { ok: true, addresses }, cause);
        return addresses;
      },
      (err: Error) => {
        Object.assign(e, { lastError: err, failedAt: this.now(), inflight: undefined });
        // keep what worked, and try again after the retry interval rather than on every connection
        if (e.addresses) e.expiresAt = this.now() + this.retryMs;
        this.opts.onLookup?.(host, { ok: false, err }, cause);
        throw err;
      },
    );
    e.inflight = p;
    return p;
  }

  /** Retries the names without an address, with backoff up to the TTL, until all resolve. */
  private scheduleRetry(): void {
    clearTimeout(this.retryTimer);
    if (this.stopped || this.unresolved.length === 0) return;
    this.retryTimer = setTimeout(() => {
      const hosts = this.unresolved;
      void Promise.allSettled(hosts.map((h) => {
        const e = this.entries.get(h);
        return e ? this.refresh(h, e, 'retry') : Promise.resolve();
      })).then(() => {
        this.retryDelay = Math.min(this.ttlMs, this.retryDelay * 2);
        this.scheduleRetry();
      });
    }, this.retryDelay);
    this.retryTimer.unref();
  }
}

/** net.connect's `lookup` hook that answers from resolved addresses (no DNS query). */
export function fixedLookup(addresses: ResolvedAddress[]): net.LookupFunction {
  return ((_host: string, options: dns.LookupOptions, cb: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void) => {
    const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
    const list = wanted.length ? wanted : addresses;
    if (options.all) cb(null, list.map((a) => ({ address: a.address, family: a.family })));
    else cb(null, list[0]!.address, list[0]!.family);
  }) as net.LookupFunction;
}
