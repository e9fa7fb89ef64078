/**
 * @rvpn/observability: logs, metrics and the status endpoints every app shares, plus runMain,
 * the one way an app starts (fail-fast config) and stops (cleanup on SIGTERM/SIGINT).
 *
 *   runMain({ name: 'vpn-shoot', load: () => loadShootConfig(process.env),
 *             create: (cfg, { logger, registry }) => new ShootClient(cfg, { logger, registry }) });
 */
export { createStatusServer } from './status-server.js';
export type { CheckResult, StatusServer, StatusServerOptions } from './status-server.js';
export { lazyComponent, runMain } from './run-main.js';
export type { Component, RunMainOptions } from './run-main.js';
export { applySysctls, sameSysctlValue, INIT_ARG, type SysctlTable } from './init-mode.js';
export type { Logger } from 'pino';
export { watchFiles, watchCertificates } from './watch-files.js';
export { createIntervalLog, OVERFLOW_KEY } from './interval-log.js';
export { watchDescriptors } from './descriptor-watch.js';
export type { DescriptorWatch, DescriptorWatchOptions } from './descriptor-watch.js';
export type { IntervalLog, IntervalLogOptions, LevelLogger } from './interval-log.js';
export type { FileWatch } from './watch-files.js';
export { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from './metrics.js';
export { dataPathGauges, type SendQueueSource, type OffloadSource } from './send-queue-metrics.js';
export { bondTapGauges, type BondTapSource } from './bond-metrics.js';
