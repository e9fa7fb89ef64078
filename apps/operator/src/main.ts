#!/usr/bin/env node
/**
 * operator: load config, wire, handle signals. The first argument picks the command (cli.ts):
 *   (none) | run      the seed-wide controller (Operator, operator.ts)
 *   shoot-setup       one shoot without the CRD: certificates and apiserver wiring, then exit 0/1
 *   shoot-teardown    undo shoot-setup, then exit 0/1
 */
import { loadOperatorConfig } from '@rvpn/config';
import { runMain } from '@rvpn/observability';
import { parseCommand, runOneShot, USAGE } from './cli.js';
import { Operator } from './operator.js';

const command = parseCommand(process.argv.slice(2));
if (command === 'run') {
  runMain({
    name: 'operator',
    load: () => loadOperatorConfig(process.env),
    create: (cfg, deps) => new Operator(cfg, deps),
    logLevel: (cfg) => cfg.logLevel,
  });
} else if (command) {
  void runOneShot(command, process.env, { stderr: (s) => process.stderr.write(s) }).then((code) => process.exit(code));
} else {
  process.stderr.write(`operator: unknown command ${JSON.stringify(process.argv[2])}; ${USAGE}\n`);
  process.exit(2);
}
