#!/usr/bin/env node
/** sni-proxy: load config, wire, handle signals. Logic lives in sni-proxy.ts and routes.ts. */
import { loadSniProxyConfig } from '@rvpn/config';
import { runMain } from '@rvpn/observability';
import { SniProxy } from './sni-proxy.js';

runMain({
  name: 'sni-proxy',
  load: () => loadSniProxyConfig(process.env),
  create: (cfg, deps) => new SniProxy(cfg, deps),
  logLevel: (cfg) => cfg.logLevel,
});
