/**
 * Notices when the process runs out of file descriptors. A listening socket's failed accept (EMFILE,
 * ENFILE) never reaches JavaScript in Node 20 or 24: libuv closes the pending connection with a reserve
 * descriptor, or, once that reserve is gone too, retries the accept on every loop turn. The process
 * survives but silently stops accepting, so this probes instead: every interval it opens and closes
 * /dev/null, and reports when that starts and stops failing with EMFILE or ENFILE.
 *
 *   const w = watchDescriptors({ onExhausted: (code) => log.error({ code }, 'out of file descriptors'),
 *                                onRecovered: () => log.info({}, 'file descriptors available again') });
 *   // …
 *   w.stop();
 */
import { closeSync, openSync } from 'node:fs';

export interface DescriptorWatchOptions {
  /** Probe period. Default 1 s. */
  intervalMs?: number;
  /** Called on every probe that fails for lack of descriptors (code EMFILE or ENFILE). */
  onExhausted: (code: string) => void;
  /** Called once when a probe succeeds again after failing. */
  onRecovered?: () => void;
  /** The probe (tests replace it); throws an errno error when no descriptor is available. */
  probe?: () => void;
}

export interface DescriptorWatch {
  readonly exhausted: boolean;
  stop(): void;
}

const openDevNull = () => closeSync(openSync('/dev/null', 'r'));

export function watchDescriptors(opts: DescriptorWatchOptions): DescriptorWatch {
  const probe = opts.probe ?? openDevNull;
  let exhausted = false;
  const timer = setInterval(() => {
    try {
      probe();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EMFILE' || code === 'ENFILE') {
        exhausted = true;
        opts.onExhausted(code);
      }
      return;
    }
    if (exhausted) {
      exhausted = false;
      opts.onRecovered?.();
    }
  }, opts.intervalMs ?? 1000);
  timer.unref();
  return {
    get exhausted() {
      return exhausted;
    },
    stop: () => clearInterval(timer),
  };
}
