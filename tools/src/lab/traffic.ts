/**
 * Application traffic for failure experiments: a long-lived stream (like `kubectl logs -f`) and
 * rate-limited transfers through a CONNECT proxy, observed at the receiver: when bytes arrived, and
 * whether the connection broke. Used by the HA e2e suite and the failover benchmark.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { inNs } from './sh.js';

export interface Observed {
  /** Arrival times (ms, performance.now()) of the chunks the receiver got. */
  arrivals: number[];
  bytes: number;
  /** Exit of curl: undefined while running; a non-zero code before stop() is a broken connection. */
  exit: number | null | undefined;
  stoppedByUs: boolean;
}

export interface Flow {
  observed: Observed;
  /** Ends the flow (a stream never ends on its own); resolves with the observation. */
  stop(): Promise<Observed>;
  /** Resolves when curl exits by itself. */
  done: Promise<Observed>;
}

/** Runs `curl <args>` in a namespace, recording when bytes arrive. */
export function flow(ns: string, curlArgs: string[]): Flow {
  const argv = inNs(ns, ['curl', '-sS', '-N', ...curlArgs]);
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const observed: Observed = { arrivals: [], bytes: 0, exit: undefined, stoppedByUs: false };
  child.stdout!.on('data', (c: Buffer) => {
    observed.arrivals.push(performance.now());
    observed.bytes += c.length;
  });
  child.stderr!.resume();
  const done = new Promise<Observed>((resolve) => child.on('exit', (code) => {
    observed.exit = code;
    resolve(observed);
  }));
  return {
    observed,
    done,
    stop: async () => {
      if (observed.exit === undefined) {
        observed.stoppedByUs = true;
        child.kill('SIGTERM');
      }
      return done;
    },
  };
}

/** Longest period without arriving bytes inside [from, to] (ms), counting the edges. */
export function longestGap(arrivals: number[], from: number, to: number): number {
  let last = from;
  let gap = 0;
  for (const t of arrivals) {
    if (t < from) continue;
    if (t > to) break;
    gap = Math.max(gap, t - last);
    last = t;
  }
  return Math.max(gap, to - last);
}

/** A flow broke when curl ended on its own with an error. */
export const broke = (o: Observed) => o.exit !== undefined && o.exit !== null && o.exit !== 0 && !o.stoppedByUs;
