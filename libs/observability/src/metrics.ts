/**
 * prom-client's metric classes and its default process metrics, without prom-client's index.
 *
 * Importing 'prom-client' loads every module its index names: the Pushgateway (node:http, node:https,
 * node:zlib), the cluster aggregator (node:cluster) and, through the default metric `process_cpu_*`,
 * @opentelemetry/api (51 files, for exemplars we never enable). On Node 24 that import costs each
 * process 3.1 MiB of anonymous memory over the node:tls every app loads anyway, 2.5 MiB of it for
 * @opentelemetry/api alone (`pnpm bench:memory`; the target is 20 MiB per app). Here the
 * classes come from prom-client's own lib/ files (the same modules, so a metric made here and one made
 * through 'prom-client' are alike and share nothing but the code), and `collectDefaultMetrics` registers
 * prom-client's default metrics one by one, with `process_cpu_user_seconds_total`,
 * `process_cpu_system_seconds_total` and `process_cpu_seconds_total` computed here as prom-client computes
 * them without exemplars. Same names, help, types and labels (metrics.spec.ts compares the two).
 *
 * Runtime code imports metric classes from here; tests may use 'prom-client' itself.
 */
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

const requireLib = createRequire(import.meta.url);
const lib = <T>(path: string): T => requireLib(`prom-client/lib/${path}`) as T;

export const Registry = lib<typeof Prom.Registry>('registry');
export type Registry = Prom.Registry;
export const Counter = lib<typeof Prom.Counter>('counter');
export type Counter<T extends string = string> = Prom.Counter<T>;
export const Gauge = lib<typeof Prom.Gauge>('gauge');
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export const Histogram = lib<typeof Prom.Histogram>('histogram');
export type Histogram<T extends string = string> = Prom.Histogram<T>;

type DefaultMetric = (registry: Registry, config: { prefix?: string; eventLoopMonitoringPrecision?: number }) => void;

/** prom-client's default metrics but process_cpu_* (made by processCpu below), in its order. */
const PROM_DEFAULT_METRICS = [
  'processStartTime', 'osMemoryHeap', 'processOpenFileDescriptors', 'processMaxFileDescriptors', 'eventLoopLag',
  ...(typeof process.getActiveResourcesInfo === 'function' ? ['processResources'] : []),
  'processHandles', 'processRequests', 'heapSizeAndUsed', 'heapSpacesSizeAndUsed', 'version', 'gc',
] as const;

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
  for (const name of PROM_DEFAULT_METRICS) lib<DefaultMetric>(`metrics/${name}`)(config.register, { prefix, eventLoopMonitoringPrecision: 10 });
}
