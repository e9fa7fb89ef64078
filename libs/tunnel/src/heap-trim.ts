/**
 * Gives the memory a burst of traffic left in glibc's heap back to the kernel once the burst is over.
 *
 * Every packet batch, TLS record and stream chunk of the data path is a malloc'd ArrayBuffer. Freed, it
 * stays in glibc's heap: between long-lived allocations the free space cannot shrink the heap's top,
 * and glibc raises its mmap threshold after freeing a large block, so later large ones come from the
 * heap too. Measured in the lab (2026-12-02): vpn-seed-server 13.8 MiB RssAnon before 10 s of iperf3
 * both ways, 44-47 MiB after it and still 44 MiB a minute later, 36.7 MiB of it in [heap]; one
 * malloc_trim(0) took it to 13.2 (vpn-shoot: 44.8 → 12.7). A seed runs one seed server per shoot, so
 * that was 30 MiB per shoot that had ever seen a burst.
 *
 * Every `intervalMs` the trimmer looks at the process's CPU time and RSS. When the interval was quiet
 * (CPU below `quietCpuFraction` of it) and RSS has grown by `minGrowthBytes` since the last trim (or
 * the start), it calls malloc_trim(0) through the addon. A busy process is never trimmed (its free
 * memory is about to be reused), and an idle one that did not grow costs one timer tick per interval.
 */
import { loadNativeAddon } from './addon.js';
import type { Component } from '@rvpn/observability';

export interface HeapTrimOptions {
  /** How often to look (ms). Default 10,000. */
  intervalMs?: number;
  /** An interval counts as quiet below this share of one CPU. Default 0.05. */
  quietCpuFraction?: number;
  /** RSS growth since the last trim that makes a quiet process trim (bytes). Default 4 MiB. */
  minGrowthBytes?: number;
  /** Told after each trim. */
  onTrim?: (t: HeapTrimEvent) => void;
}

export interface HeapTrimEvent {
  rssBefore: number;
  rssAfter: number;
  /** malloc_trim returned memory (false also where there is no glibc). */
  released: boolean;
  ms: number;
}

/** What the trimmer reads and calls; the defaults are this process and the addon (tests pass fakes). */
export interface HeapTrimDeps {
  /** CPU time used by the process so far (µs). */
  cpuMicros(): number;
  rss(): number;
  trim(): boolean;
  now(): number;
}

export function nativeMallocTrim(): boolean {
  return (loadNativeAddon() as { mallocTrim(): boolean }).mallocTrim();
}

const processDeps: HeapTrimDeps = {
  cpuMicros: () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  },
  rss: () => process.memoryUsage.rss(),
  trim: nativeMallocTrim,
  now: () => performance.now(),
};

export class HeapTrimmer {
  private readonly intervalMs: number;
  private readonly quiet: number;
  private readonly minGrowth: number;
  private readonly onTrim: ((t: HeapTrimEvent) => void) | undefined;
  private readonly deps: HeapTrimDeps;
  private timer: NodeJS.Timeout | undefined;
  private lastCpu: number;
  private lastAt: number;
  private baseline: number;
  /** Trims done, and the RSS they gave back (bytes, never negative). */
  trims = 0;
  freedBytes = 0;

  constructor(opts: HeapTrimOptions = {}, deps: HeapTrimDeps = processDeps) {
    this.intervalMs = opts.intervalMs ?? 10_000;
    this.quiet = opts.quietCpuFraction ?? 0.05;
    this.minGrowth = opts.minGrowthBytes ?? 4 * 1024 * 1024;
    this.onTrim = opts.onTrim;
    this.deps = deps;
    this.lastCpu = deps.cpuMicros();
    this.lastAt = deps.now();
    try {
      this.baseline = deps.rss();
    } catch {
      // unreadable now (EMFILE): the first RSS read later sets the mark
      this.baseline = Infinity;
    }
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      try {
        this.check();
      } catch {
        // never the process's end: a tick that cannot look is skipped
      }
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look (the timer's tick): trims when the interval since the last look was quiet and RSS grew. */
  check(): HeapTrimEvent | undefined {
    const cpu = this.deps.cpuMicros();
    const at = this.deps.now();
    const busy = (cpu - this.lastCpu) / 1000 > this.quiet * Math.max(1, at - this.lastAt);
    this.lastCpu = cpu;
    this.lastAt = at;
    let rss: number;
    try {
      rss = this.deps.rss();
    } catch {
      // reading RSS opens /proc/self/stat: out of descriptors (EMFILE) this tick looks no further
      return undefined;
    }
    // a process that shrank on its own sets a lower mark to grow from
    if (rss < this.baseline) this.baseline = rss;
    if (busy || rss - this.baseline < this.minGrowth) return undefined;
    const released = this.deps.trim();
    let rssAfter = rss;
    try {
      rssAfter = this.deps.rss();
    } catch {
      /* counted as nothing freed; the mark moves to the RSS before */
    }
    const ev: HeapTrimEvent = { rssBefore: rss, rssAfter, released, ms: this.deps.now() - at };
    this.trims++;
    this.freedBytes += Math.max(0, rss - rssAfter);
    this.baseline = rssAfter;
    // the trim's own CPU does not make the next interval busy
    this.lastCpu = this.deps.cpuMicros();
    this.lastAt = this.deps.now();
    this.onTrim?.(ev);
    return ev;
  }
}

/**
 * `component` with a HeapTrimmer that runs while it does (the data-path apps' main.ts). Each trim is
 * logged at debug level with the RSS before and after.
 */
export function withHeapTrim(component: Component, logger: { debug(obj: object, msg?: string): void }, opts: HeapTrimOptions = {}): Component {
  const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;
  const trimmer = new HeapTrimmer({ onTrim: (t) => logger.debug({ rssBeforeMiB: mib(t.rssBefore), rssAfterMiB: mib(t.rssAfter), released: t.released, ms: Math.round(t.ms * 10) / 10 }, 'heap trimmed after a busy spell'), ...opts });
  return {
    async start() {
      await component.start();
      trimmer.start();
    },
    async stop() {
      trimmer.stop();
      await component.stop();
    },
  };
}
