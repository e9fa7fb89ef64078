#!/usr/bin/env node
/**
 * operator: load config, wire, handle signals. The first argument picks the command:
 *   (none) | run      the seed-wide controller (Operator, operator.ts)
 *   shoot-setup       one shoot without the CRD: certificates and apiserver wiring, then exit 0/1
 *   shoot-teardown    undo shoot-setup, then exit 0/1
 * Logic lives in operator.ts, reconcile.ts and shoot-setup.ts.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { errorCode, loadOperatorConfig, type OperatorConfig } from '@rvpn/config';
import { runMain } from '@rvpn/observability';
import { pino } from 'pino';
import { loadKubeConfig } from './kube.js';
import { Operator } from './operator.js';
import { shootSetup, shootTeardown } from './shoot-setup.js';

const arg = process.argv[2];
const COMMANDS = ['run', 'shoot-setup', 'shoot-teardown'] as const;

if (arg === undefined || arg === 'run' || arg.startsWith('-')) {
  runMain({
    name: 'operator',
    load: () => loadOperatorConfig(process.env),
    create: (cfg, deps) => new Operator(cfg, deps),
    logLevel: (cfg) => cfg.logLevel,
  });
} else if ((COMMANDS as readonly string[]).includes(arg)) {
  const command = arg as Exclude<OperatorConfig['command'], 'run'>;
  let cfg: OperatorConfig;
  try {
    cfg = loadOperatorConfig(process.env, { command });
  } catch (err) {
    process.stderr.write(`operator ${command}: cannot start: ${errorCode(err) ?? 'RVPN_ERR_CONFIG_INVALID'}\n${(err as Error).message}\n`);
    process.exit(2);
  }
  const logger = pino({ name: 'operator', level: cfg.logLevel, base: { component: 'operator', command, namespace: cfg.namespace } });
  const deps = { logger, seed: loadKubeConfig(), ...(cfg.shootKubeconfigFile ? { shoot: fromFile(cfg.shootKubeconfigFile) } : {}) };
  (command === 'shoot-setup' ? shootSetup(cfg, deps) : shootTeardown(cfg, deps)).then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err: (err as Error).message, code: errorCode(err) }, `${command} failed`);
      process.exit(1);
    },
  );
} else {
  process.stderr.write(`operator: unknown command ${JSON.stringify(arg)}; usage: operator [run | shoot-setup | shoot-teardown]\n`);
  process.exit(2);
}

function fromFile(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}
