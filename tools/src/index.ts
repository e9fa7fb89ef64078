export { Topology, sweep, ADDR, ROLES, newPrefix, nodeFirewall, seedRouterFirewall, LAB_STATE_DIR, type Role } from './lab/topology.js';
export { Stack, REPO_ROOT, SHOOT_NAMESPACE, API_SNI, URLS, connectHeaderValue, type AppName, type StackOptions } from './lab/stack.js';
export { run, ipBatch, spawnLogged, sleep, waitFor, missingTools, inNs, CommandError, type RunResult, type Spawned } from './lab/sh.js';
export { runChecks, CHECKS, type CheckResult } from './checks.js';
export { deterministicSha256, deterministicStream } from './fixtures/pattern.js';
export { HaStack, HA_APPS, type HaApp } from './lab/ha-stack.js';
export { HA_ADDR, HA_ROLES } from './lab/topology.js';
export { flow, longestGap, broke, type Flow, type Observed } from './lab/traffic.js';
export { metric } from './lab/metrics.js';
