/**
 * PathGate: whether a working path to the shoot exists right now, and a way to wait for one.
 * The tunnel side flips it; the CONNECT proxy waits on it to HOLD requests while the tunnel
 * reconnects instead of failing them at once (Gardener issues #4382, #6588).
 */
export class PathGate {
  private up = false;
  private waiters = new Set<() => void>();

  get isUp(): boolean {
    return this.up;
  }

  set(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    if (up) {
      const ws = [...this.waiters];
      this.waiters.clear();
      for (const w of ws) w();
    }
  }

  /**
   * Resolves true as soon as the path is up (at once when it already is), false after
   * `timeoutMs` or when `signal` aborts. Never rejects.
   */
  waitUp(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.up) return Promise.resolve(true);
    if (signal?.aborted || timeoutMs <= 0) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(onUp);
        signal?.removeEventListener('abort', onAbort);
        resolve(ok);
      };
      const onUp = () => done(true);
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.waiters.add(onUp);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** How many requests are waiting right now. */
  get waiting(): number {
    return this.waiters.size;
  }
}
