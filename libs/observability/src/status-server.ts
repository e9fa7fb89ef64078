/**
 * The HTTP side of every app (fastify): /healthz (liveness), /readyz (readiness with the checks
 * that decide it) and /metrics (Prometheus text). 200 when ok, 503 otherwise.
 */
import Fastify from 'fastify';
import type { Registry } from 'prom-client';

export interface CheckResult {
  ok: boolean;
  checks?: Record<string, { ok: boolean; detail?: string }>;
}

export interface StatusServerOptions {
  host: string;
  port: number;
  registry: Registry;
  live: () => CheckResult | Promise<CheckResult>;
  ready: () => CheckResult | Promise<CheckResult>;
  logger?: { debug(obj: object, msg?: string): void };
  /**
   * Errors of the listening socket after it listens (failed accepts: EMFILE when out of file
   * descriptors). Without this they are ignored; either way the server keeps listening and the
   * process keeps running.
   */
  onError?: (err: Error) => void;
}

export interface StatusServer {
  start(): Promise<{ port: number }>;
  stop(): Promise<void>;
}

export function createStatusServer(opts: StatusServerOptions): StatusServer {
  const app = Fastify({ logger: false });
  const check = (fn: () => CheckResult | Promise<CheckResult>) => async (_req: unknown, reply: { code(n: number): { send(b: unknown): unknown } }) => {
    const r = await fn();
    return reply.code(r.ok ? 200 : 503).send(r);
  };
  app.get('/healthz', check(opts.live));
  app.get('/readyz', check(opts.ready));
  app.get('/metrics', async (_req, reply) => {
    const body = await opts.registry.metrics();
    return reply.header('content-type', opts.registry.contentType).send(body);
  });
  return {
    async start() {
      await app.listen({ host: opts.host, port: opts.port });
      // after listen a net.Server's 'error' is a failed accept; with no listener it would end the process
      app.server.on('error', (err) => opts.onError?.(err));
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : opts.port;
      opts.logger?.debug({ port }, 'status server listening');
      return { port };
    },
    async stop() {
      await app.close();
    },
  };
}
