/**
 * Interval-limited logging for events an attacker can repeat at will (refused connections, failed
 * handshakes, accept errors): a flood must not become a log flood, yet the first event must be seen
 * at once and the volume must not be lost.
 *
 * Per key (a short, bounded string chosen by the caller, e.g. `refused:per_source` — never a value
 * taken from the peer): the first event after a quiet interval is logged at once; further events in
 * the same interval are only counted; when the interval ends, ONE summary line carries the last
 * event's fields plus `suppressed` (how many were not logged) and `intervalMs`. Under a steady flood
 * that is one line per key per interval. Keys beyond `maxKeys` share one overflow key, so a caller
 * that mistakenly keys by peer data still holds bounded state.
 *
 * Counting for metrics stays with the caller (a Prometheus counter per refusal): this only decides
 * what reaches the log.
 *
 *   const refusals = createIntervalLog({ logger, intervalMs: 10_000 });
 *   refusals.log('refused:per_source', { reason: 'per_source', remote }, 'connection refused');
 *   // …on shutdown
 *   refusals.stop(); // emits pending summaries, clears the timer
 */

type LogFn = (obj: object, msg: string) => void;

/** The part of a pino logger this needs (a test can pass a recorder). */
export interface LevelLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

export interface IntervalLogOptions {
  logger: LevelLogger;
  /** Level of every line (first events and summaries). Default `warn`. */
  level?: 'debug' | 'info' | 'warn' | 'error';
  /** Length of an interval. Default 10 s. */
  intervalMs?: number;
  /** Distinct keys tracked at once; further keys share the key `(overflow)`. Default 64. */
  maxKeys?: number;
}

export interface IntervalLog {
  /** Logs now when `key` had no event in the current interval; otherwise counts it for the summary. */
  log(key: string, fields: Record<string, unknown>, msg: string): void;
  /** Emits the pending summaries now and starts fresh intervals. */
  flush(): void;
  /** flush() and release the timer; later calls to log() still work (and start it again). */
  stop(): void;
}

export const OVERFLOW_KEY = '(overflow)';

interface Slot {
  suppressed: number;
  fields: Record<string, unknown>;
  msg: string;
}

export function createIntervalLog(opts: IntervalLogOptions): IntervalLog {
  const intervalMs = opts.intervalMs ?? 10_000;
  const maxKeys = opts.maxKeys ?? 64;
  const write: LogFn = (obj, msg) => opts.logger[opts.level ?? 'warn'](obj, msg);
  /** Keys with an event in the current interval. */
  const slots = new Map<string, Slot>();
  let timer: NodeJS.Timeout | undefined;

  const tick = () => {
    for (const [key, s] of slots) {
      if (s.suppressed === 0) {
        // a quiet interval: the next event of this key is logged at once again
        slots.delete(key);
        continue;
      }
      write({ ...s.fields, suppressed: s.suppressed, intervalMs }, s.msg);
      s.suppressed = 0; // the key stays open: a steady flood gives one line per interval
    }
    if (slots.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  return {
    log(key, fields, msg) {
      if (!slots.has(key) && slots.size >= maxKeys) {
        key = OVERFLOW_KEY;
        fields = { ...fields, overflow: true };
      }
      const s = slots.get(key);
      if (s) {
        s.suppressed++;
        s.fields = fields;
        s.msg = msg;
        return;
      }
      slots.set(key, { suppressed: 0, fields, msg });
      write(fields, msg);
      if (!timer) {
        timer = setInterval(tick, intervalMs);
        timer.unref();
      }
    },
    flush: tick,
    stop() {
      tick();
      slots.clear();
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
