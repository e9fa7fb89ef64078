/**
 * Which shoot pod the kube-apiserver's traffic goes through, decided from probes THROUGH each pod
 * (a ping to a pod's bond address would still answer when the pod stopped forwarding).
 *
 * - A path is declared down after `misses` consecutive failed probes (e.g. 3 × 200 ms).
 * - A path that was down is used again only after its probes passed for `healthyPeriodMs`
 *   (hysteresis: a flapping path causes no route flapping). A path never seen down is usable after
 *   its first passing probe.
 * - The current path is kept while it is up (no fail-back churn); when it goes down the lowest-index
 *   usable path takes over, or none (then the caller holds new requests).
 * - Probes of all paths run in rounds. When EVERY path fails in the same rounds the fault is not in a
 *   shoot pod but below them (the bond: a seed server died and the bond has not switched yet).
 *   Moving the routes then would only reset the flows NATed by the current pod, so nothing changes
 *   for `allFailGraceMs`; only a longer common outage marks the paths down.
 * Pure: the caller feeds results and the time.
 */
export interface PathState {
  index: number;
  usable: boolean;
  consecutiveMisses: number;
  everDown: boolean;
  /** Start of the current run of passing probes (ms), if any. */
  passingSince: number | undefined;
  lastRttMs: number | undefined;
}

export interface PathChange {
  from: number | undefined;
  to: number | undefined;
  reason: string;
}

export class PathSelector {
  private readonly paths: PathState[];
  private _current: number | undefined;
  switches = 0;

  private allFailSince: number | undefined;

  constructor(
    count: number,
    private readonly opts: { misses: number; healthyPeriodMs: number; allFailGraceMs?: number },
  ) {
    this.paths = Array.from({ length: count }, (_, index) => ({ index, usable: false, consecutiveMisses: 0, everDown: false, passingSince: undefined, lastRttMs: undefined }));
  }

  get current(): number | undefined {
    return this._current;
  }

  state(index: number): Readonly<PathState> {
    return this.paths[index]!;
  }

  /**
   * A path is known to be gone without waiting for probes (its vpn-shoot left every server: the pod
   * died); it is then treated like a path that failed its probes.
   */
  markDown(index: number, reason: string): PathChange | undefined {
    const p = this.paths[index]!;
    p.passingSince = undefined;
    p.consecutiveMisses = Math.max(p.consecutiveMisses, this.opts.misses);
    if (!p.usable) return undefined;
    p.usable = false;
    p.everDown = true;
    return this.reselect(reason);
  }

  /** Records one round of probes (one result per path); returns the change of the current path, if any. */
  recordRound(results: ReadonlyArray<{ ok: boolean; rttMs?: number }>, now: number): PathChange | undefined {
    if (results.length === this.paths.length && results.every((r) => !r.ok) && this.paths.some((p) => p.usable)) {
      this.allFailSince ??= now;
      if (now - this.allFailSince < (this.opts.allFailGraceMs ?? 2000)) return undefined;
    } else this.allFailSince = undefined;
    let change: PathChange | undefined;
    results.forEach((r, i) => {
      change = this.record(i, r.ok, now, r.rttMs) ?? change;
    });
    return change;
  }

  /** Records a probe result; returns the change of the current path, if any. */
  record(index: number, ok: boolean, now: number, rttMs?: number): PathChange | undefined {
    const p = this.paths[index]!;
    let why = '';
    if (ok) {
      p.consecutiveMisses = 0;
      p.lastRttMs = rttMs;
      p.passingSince ??= now;
      if (!p.usable && (!p.everDown || now - p.passingSince >= this.opts.healthyPeriodMs)) {
        p.usable = true;
        why = `path ${index} is usable (${p.everDown ? `healthy for ${now - p.passingSince} ms` : 'first passing probe'})`;
      }
    } else {
      p.passingSince = undefined;
      p.consecutiveMisses++;
      if (p.usable && p.consecutiveMisses >= this.opts.misses) {
        p.usable = false;
        p.everDown = true;
        why = `path ${index} failed ${p.consecutiveMisses} probes in a row`;
      } else if (!p.usable && p.consecutiveMisses >= this.opts.misses) {
        p.everDown = true;
      }
    }
    return why ? this.reselect(why) : undefined;
  }

  private reselect(reason: string): PathChange | undefined {
    const cur = this._current !== undefined ? this.paths[this._current]! : undefined;
    if (cur?.usable) return undefined;
    const next = this.paths.find((p) => p.usable)?.index;
    if (next === this._current) return undefined;
    const change = { from: this._current, to: next, reason };
    this._current = next;
    this.switches++;
    return change;
  }
}
