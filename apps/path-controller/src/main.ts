#!/usr/bin/env node
/** path-controller: load config, wire, handle signals. Logic lives in path-controller.ts. */
import { loadPathControllerConfig } from '@rvpn/config';
import { runMain } from '@rvpn/observability';
import { withHeapTrim } from '@rvpn/tunnel';
import { PATH_CONTROLLER_SYSCTLS, PathController } from './path-controller.js';

runMain({
  name: 'path-controller',
  load: () => loadPathControllerConfig(process.env),
  // the data path's buffers leave glibc's heap grown after a burst: trimmed once the process is quiet
  create: (cfg, deps) => withHeapTrim(new PathController(cfg, deps), deps.logger),
  logBase: (cfg) => ({ namespace: cfg.namespace, pod: cfg.podName }),
  logLevel: (cfg) => cfg.logLevel,
  initSysctls: PATH_CONTROLLER_SYSCTLS,
});
