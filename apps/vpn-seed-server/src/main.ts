#!/usr/bin/env node
/** vpn-seed-server: load config, wire, handle signals. Logic lives in seed-server.ts and the libs. */
import { loadSeedServerConfig } from '@rvpn/config';
import { lazyComponent, runMain } from '@rvpn/observability';
import { withHeapTrim } from '@rvpn/tunnel';
import { SEED_SERVER_SYSCTLS, SeedServer } from './seed-server.js';

runMain({
  name: 'vpn-seed-server',
  load: () => loadSeedServerConfig(process.env),
  // the HA server (switch, bonding) is imported only in HA: a non-HA process never holds its code
  // the data path's buffers leave glibc's heap grown after a burst: trimmed once the process is quiet
  create: (cfg, deps) => withHeapTrim(cfg.isHa ? lazyComponent(async () => new (await import('./ha-server.js')).HaSeedServer(cfg, deps)) : new SeedServer(cfg, deps), deps.logger),
  logBase: (cfg) => ({ namespace: cfg.namespace, pod: cfg.podName || undefined }),
  logLevel: (cfg) => cfg.logLevel,
  initSysctls: SEED_SERVER_SYSCTLS,
});
