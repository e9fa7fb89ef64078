#!/usr/bin/env node
/** operator: load config, wire, handle signals. Logic lives in operator.ts and reconcile.ts. */
import { loadOperatorConfig } from '@rvpn/config';
import { runMain } from '@rvpn/observability';
import { Operator } from './operator.js';

runMain({
  name: 'operator',
  load: () => loadOperatorConfig(process.env),
  create: (cfg, deps) => new Operator(cfg, deps),
  logLevel: (cfg) => cfg.logLevel,
});
