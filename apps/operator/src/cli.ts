/**
 * The operator image's command line: `operator [run]` (the controller) or one of the one-shots the
 * chart's hook Job/CronJob run, `operator shoot-setup` and `operator shoot-teardown` (env: NAMESPACE,
 * SHOOT_SPEC_FILE, KUBE_APISERVER_DEPLOYMENT, SHOOT_KUBECONFIG_FILE and the usual KUBECONFIG or
 * in-cluster credentials). Exit codes: 0 done, 1 failed (the log says why, with its error code),
 * 2 bad configuration or usage.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { errorCode, loadOperatorConfig, type OperatorConfig } from '@rvpn/config';
import { pino, type Logger } from 'pino';
import { loadKubeConfig } from './kube.js';
import { shootSetup, shootTeardown, type OneShotDeps } from './shoot-setup.js';

export type OneShot = 'shoot-setup' | 'shoot-teardown';
export const ONE_SHOTS: readonly OneShot[] = ['shoot-setup', 'shoot-teardown'];

/** 'run' for no argument, `run` or a flag (runMain's `--init`); a one-shot; or undefined (usage error). */
export function parseCommand(argv: string[]): 'run' | OneShot | undefined {
  const arg = argv[0];
  if (arg === undefined || arg === 'run' || arg.startsWith('-')) return 'run';
  return (ONE_SHOTS as readonly string[]).includes(arg) ? (arg as OneShot) : undefined;
}

export const USAGE = 'usage: operator [run | shoot-setup | shoot-teardown]';

/** Runs a one-shot and returns its exit code; `stderr` gets configuration problems. */
export async function runOneShot(command: OneShot, env: Record<string, string | undefined>, io: { stderr: (s: string) => void; logger?: Logger; deps?: Partial<OneShotDeps> }): Promise<number> {
  let cfg: OperatorConfig;
  try {
    cfg = loadOperatorConfig(env, { command });
  } catch (err) {
    io.stderr(`operator ${command}: cannot start: ${errorCode(err) ?? 'RVPN_ERR_CONFIG_INVALID'}\n${(err as Error).message}\n`);
    return 2;
  }
  const logger = io.logger ?? pino({ name: 'operator', level: cfg.logLevel, base: { component: 'operator', command, namespace: cfg.namespace } });
  try {
    const deps: OneShotDeps = { logger, seed: loadKubeConfig(), ...(cfg.shootKubeconfigFile ? { shoot: fromFile(cfg.shootKubeconfigFile) } : {}), ...io.deps };
    await (command === 'shoot-setup' ? shootSetup(cfg, deps) : shootTeardown(cfg, deps));
    return 0;
  } catch (err) {
    logger.error({ err: (err as Error).message, code: errorCode(err) }, `${command} failed`);
    return 1;
  }
}

function fromFile(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}
