/**
 * prom-client's metric classes and its default process metrics, without prom-client's index.
 *
 * Importing 'prom-client' loads every module its index names: the Pushgateway (node:http, node:https,
 * node:zlib), the cluster aggregator (node:cluster) and, through the default metric `process_cpu_*`,
 * @opentelemetry/api (51 files, for exemplars we never enable). On Node 24 that import costs each
 * process 3.1 MiB of anonymous memory over the node:tls every app loads anyway, 2.5 MiB of it for
 * @opentelemetry/api alone (`pnpm bench:memory`; the issue's target is 20 MiB per app). Here the
 * classes come from prom-client's own lib/ files, imported one by one and statically, so that the apps'
 * bundles (esbuild.apps.mjs) take them in: the same modules, so a metric made here and one made
 * through 'prom-client' are alike and share nothing but the code. `collectDefaultMetrics` registers
 * prom-client's default metrics one by one, with `process_cpu_user_seconds_total`,
 * `process_cpu_system_seconds_total` and `process_cpu_seconds_total` computed here as prom-client computes
 * them without exemplars. Same names, help, types and labels (metrics.spec.ts compares the two).
 *
 * Runtime code imports metric classes from here; tests may use 'prom-client' itself.
 */
// the lib files' types must reach every program that compiles this file from source (the other projects'
// spec tsconfigs include only their own src): an import cannot carry ambient module declarations
// eslint-disable-next-line @typescript-eslint/triple-slash-reference
/// <reference path="./prom-client-lib.d.ts" />
import type * as Prom from 'prom-client';
// prom-client's lib files, statically (the apps' bundles take them in; types: prom-client-lib.d.ts)
import RegistryClass from 'prom-client/lib/registry.js';
import CounterClass from 'prom-client/lib/counter.js';
import GaugeClass from 'prom-client/lib/gauge.js';
import HistogramClass from 'prom-client/lib/histogram.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import eventLoopLag from 'prom-client/lib/metrics/eventLoopLag.js';
import processResources from 'prom-client/lib/metrics/processResources.js';
import processHandles from 'prom-client/lib/metrics/processHandles.js';
import processRequests from 'prom-client/lib/metrics/processRequests.js';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed.js';
import version from 'prom-client/lib/metrics/version.js';
import gc from 'prom-client/lib/metrics/gc.js';

export const Registry: typeof Prom.Registry = RegistryClass;
export type Registry = Prom.Registry;
export const Counter: typeof Prom.Counter = CounterClass;
export type Counter<T extends string = string> = Prom.Counter<T>;
export const Gauge: typeof Prom.Gauge = GaugeClass;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export const Histogram: typeof Prom.Histogram = HistogramClass;
export type Histogram<T extends string = string> = Prom.Histogram<T>;

/** prom-client's default metrics but process_cpu_* (made by processCpu below), in its order. */
const PROM_DEFAULT_METRICS = [
  processStartTime, osMemoryHeap, processOpenFileDescriptors, processMaxFileDescriptors, eventLoopLag,
  ...(typeof process.getActiveResourcesInfo === 'function' ? [processResources] : []),
  processHandles, processRequests, heapSizeAndUsed, heapSpacesSizeAndUsed, version, gc,
];

/** process_cpu_*: user, system and both, counted from process.cpuUsage() at each scrape. */
function processCpu(registry: Registry, prefix: string): void {
  let last = process.cpuUsage();
  const registers = [registry];
  // created in prom-client's order (user, system, total); the first one's collect sets all three
  new Counter({
    name: `${prefix}process_cpu_user_seconds_total`,
    help: 'Total user CPU time spent in seconds.',
    registers,
    collect() {
      const now = process.cpuUsage();
      const user = now.user - last.user;
      const sys = now.system - last.system;
      last = now;
      this.inc(user / 1e6);
      system.inc(sys / 1e6);
      total.inc((user + sys) / 1e6);
    },
  });
  const system = new Counter({ name: `${prefix}process_cpu_system_seconds_total`, help: 'Total system CPU time spent in seconds.', registers });
  const total = new Counter({ name: `${prefix}process_cpu_seconds_total`, help: 'Total user and system CPU time spent in seconds.', registers });
}

/** prom-client's collectDefaultMetrics({ register, prefix }) without loading @opentelemetry/api. */
export function collectDefaultMetrics(config: { register: Registry; prefix?: string }): void {
  const prefix = config.prefix ?? '';
  processCpu(config.register, prefix);
  for (const metric of PROM_DEFAULT_METRICS) metric(config.register, { prefix, eventLoopMonitoringPrecision: 10 });
}
