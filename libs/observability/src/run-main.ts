/**
 * The one way every app starts and stops: load and validate configuration (fail fast with every
 * problem listed, exit 2), create the logger and the metrics registry, start the component, and on
 * SIGTERM/SIGINT stop it so that it removes what it created (devices, routes, firewall tables) before
 * the process exits. A second signal, or a stop that takes longer than `stopTimeoutMs`, exits at once.
 */
import { pino, type Logger } from 'pino';
import { collectDefaultMetrics, Registry } from './metrics.js';
import { applySysctls, INIT_ARG, type SysctlTable } from './init-mode.js';

export interface Component {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface RunMainOptions<C> {
  name: string;
  load: () => C;
  create: (cfg: C, deps: { logger: Logger; registry: Registry }) => Component;
  logLevel?: (cfg: C) => string;
  /** Fields put on every log line (shoot identity, pod name). */
  logBase?: (cfg: C) => Record<string, unknown>;
  stopTimeoutMs?: number;
  /**
   * The sysctls this app needs in its pod's network namespace. With the single argument `--init`
   * (the privileged init container of the manifests) the process writes them and exits instead of
   * starting; no configuration is read in that mode. A function is called only in that mode (the
   * table may live in a module the app otherwise loads only in HA).
   */
  initSysctls?: SysctlTable | (() => Promise<SysctlTable>);
}

/**
 * A component whose module is imported when it starts, not when the app starts: an app's HA side
 * (bonding, the switch) is code a non-HA process never runs, and every module loaded stays in its heap.
 * `load` runs once; stop() before start() does nothing.
 */
export function lazyComponent(load: () => Promise<Component>): Component {
  let loaded: Promise<Component> | undefined;
  return {
    async start() {
      loaded ??= load();
      await (await loaded).start();
    },
    async stop() {
      if (loaded) await (await loaded).stop();
    },
  };
}

export function runMain<C>(opts: RunMainOptions<C>): void {
  if (process.argv.slice(2).includes(INIT_ARG)) {
    const table = opts.initSysctls ?? {};
    Promise.resolve(typeof table === 'function' ? table() : table)
      .then((t) => {
        for (const line of applySysctls(t)) process.stdout.write(`${opts.name} --init: ${line}\n`);
        process.stdout.write(`${opts.name} --init: done\n`);
        process.exit(0);
      })
      .catch((err: unknown) => {
        process.stderr.write(`${opts.name} --init: ${(err as Error).message}\n`);
        process.exit(1);
      });
    return;
  }
  let cfg: C;
  try {
    cfg = opts.load();
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'RVPN_ERR_CONFIG_INVALID';
    process.stderr.write(`${opts.name}: cannot start: ${code}\n${(err as Error).message}\n`);
    process.exit(2);
  }
  const base = Object.fromEntries(Object.entries({ component: opts.name, ...(opts.logBase?.(cfg) ?? {}) }).filter(([, v]) => v !== undefined));
  const logger = pino({ name: opts.name, level: opts.logLevel?.(cfg) ?? 'info', base });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const component = opts.create(cfg, { logger, registry });

  let stopping = false;
  const shutdown = (why: string, exitCode: number) => {
    if (stopping) {
      logger.warn({ why }, 'second signal: exiting without cleanup');
      process.exit(1);
    }
    stopping = true;
    logger.info({ why }, 'stopping');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: opts.stopTimeoutMs ?? 10_000 }, 'stop timed out; exiting');
      process.exit(1);
    }, opts.stopTimeoutMs ?? 10_000);
    timer.unref();
    component.stop().then(
      () => process.exit(exitCode),
      (err) => {
        logger.error({ err: (err as Error).message, code: (err as { code?: string }).code }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM', 0));
  process.on('SIGINT', () => shutdown('SIGINT', 0));
  process.on('uncaughtException', (err) => {
    logger.fatal({ err: err.message, stack: err.stack, code: (err as { code?: string }).code }, 'uncaught exception');
    shutdown('uncaughtException', 1);
  });
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err: (err as Error)?.message, code: (err as { code?: string })?.code }, 'unhandled rejection');
    shutdown('unhandledRejection', 1);
  });

  component.start().then(
    () => logger.info({}, 'started'),
    (err) => {
      logger.fatal({ err: (err as Error).message, code: (err as { code?: string }).code, details: (err as { details?: unknown }).details }, 'start failed');
      // start() cleans up after itself on failure; exit without a second stop.
      process.exit(1);
    },
  );
}
