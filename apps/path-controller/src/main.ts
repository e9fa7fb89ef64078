#!/usr/bin/env node
/** path-controller: load config, wire, handle signals. Logic lives in path-controller.ts. */
import { loadPathControllerConfig } from '@rvpn/config';
import { runMain } from '@rvpn/observability';
import { PATH_CONTROLLER_SYSCTLS, PathController } from './path-controller.js';

runMain({
  name: 'path-controller',
  load: () => loadPathControllerConfig(process.env),
  create: (cfg, deps) => new PathController(cfg, deps),
  logBase: (cfg) => ({ namespace: cfg.namespace, pod: cfg.podName }),
  logLevel: (cfg) => cfg.logLevel,
  initSysctls: PATH_CONTROLLER_SYSCTLS,
});
