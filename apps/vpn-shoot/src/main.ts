#!/usr/bin/env node
/** vpn-shoot: load config, wire, handle signals. Logic lives in shoot-client.ts and the libs. */
import { loadShootConfig } from '@rvpn/config';
import { runMain } from '@rvpn/observability';
import { ShootClient } from './shoot-client.js';
import { HaShootClient, SHOOT_HA_SYSCTLS } from './ha-client.js';

runMain({
  name: 'vpn-shoot',
  load: () => loadShootConfig(process.env),
  create: (cfg, deps) => (cfg.isHa ? new HaShootClient(cfg, deps) : new ShootClient(cfg, deps)),
  logBase: (cfg) => ({ namespace: cfg.namespace || undefined, pod: cfg.podName || undefined }),
  logLevel: (cfg) => cfg.logLevel,
  initSysctls: SHOOT_HA_SYSCTLS,
});
