// Types of the prom-client lib/ files that metrics.ts imports one by one (prom-client types its index
// only): each class file exports the class its index exports, each default-metric file one function.
declare module 'prom-client/lib/registry.js' { export { Registry as default } from 'prom-client'; }
declare module 'prom-client/lib/counter.js' { export { Counter as default } from 'prom-client'; }
declare module 'prom-client/lib/gauge.js' { export { Gauge as default } from 'prom-client'; }
declare module 'prom-client/lib/histogram.js' { export { Histogram as default } from 'prom-client'; }
/** One default metric: registers its metrics in `registry`. */
declare module 'prom-client/lib/metrics/*.js' {
  const register: (registry: import('prom-client').Registry, config: { prefix?: string; eventLoopMonitoringPrecision?: number }) => void;
  export default register;
}
