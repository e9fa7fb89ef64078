/**
 * Capped exponential backoff with full jitter: attempt n waits a random time in
 * [0, min(maxMs, minMs * 2^n)], but never less than minMs / 2, so a crowd of clients
 * reconnecting after a seed restart spreads out instead of arriving at once.
 */
export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  random?: () => number;
}

export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const random = opts.random ?? Math.random;
  const ceiling = Math.min(opts.maxMs, opts.minMs * 2 ** Math.min(attempt, 30));
  const floor = Math.min(opts.minMs / 2, ceiling);
  return Math.round(floor + random() * (ceiling - floor));
}
