#!/usr/bin/env node
/** vpn-shoot: load config, wire, handle signals. Logic lives in shoot-client.ts and the libs. */
import { loadShootConfig } from '@rvpn/config';
import { lazyComponent, runMain } from '@rvpn/observability';
import { withHeapTrim } from '@rvpn/tunnel';
import { ShootClient } from './shoot-client.js';

runMain({
  name: 'vpn-shoot',
  load: () => loadShootConfig(process.env),
  // the HA client (bonding) is imported only in HA, or for --init: a non-HA process never holds its code
  // the data path's buffers leave glibc's heap grown after a burst: trimmed once the process is quiet
  create: (cfg, deps) => withHeapTrim(cfg.isHa ? lazyComponent(async () => new (await import('./ha-client.js')).HaShootClient(cfg, deps)) : new ShootClient(cfg, deps), deps.logger),
  logBase: (cfg) => ({ namespace: cfg.namespace || undefined, pod: cfg.podName || undefined }),
  logLevel: (cfg) => cfg.logLevel,
  initSysctls: async () => (await import('./ha-client.js')).SHOOT_HA_SYSCTLS,
});
