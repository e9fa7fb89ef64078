/**
 * The HTTP side of every app: /healthz (liveness), /readyz (readiness with the checks that decide it)
 * and /metrics (Prometheus text). 200 when ok, 503 otherwise.
 *
 * On node:http, not a framework: three GET routes do not need a router, and fastify was the largest
 * share of an idle app's heap (about 2 MiB of heap and, while it loads, enough garbage to grow V8's
 * young generation; bench-out/idle-memory.json). What a client sees is what fastify 5 answered with its
 * defaults: HEAD beside every GET, JSON bodies with `application/json; charset=utf-8`, a JSON 404
 * (`Route GET:/x not found`) for any other method or path (exact, case-sensitive, query ignored), a JSON
 * 500 with the message when a check throws, keep-alive for 72 s, no request timeout.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
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

type Route = () => Promise<{ status: number; type: string; body: string }>;

const JSON_TYPE = 'application/json; charset=utf-8';

function send(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function createStatusServer(opts: StatusServerOptions): StatusServer {
  const check = (fn: () => CheckResult | Promise<CheckResult>): Route => async () => {
    const r = await fn();
    return { status: r.ok ? 200 : 503, type: JSON_TYPE, body: JSON.stringify(r) };
  };
  const routes = new Map<string, Route>([
    ['/healthz', check(opts.live)],
    ['/readyz', check(opts.ready)],
    ['/metrics', async () => ({ status: 200, type: opts.registry.contentType, body: await opts.registry.metrics() })],
  ]);
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const route = req.method === 'GET' || req.method === 'HEAD' ? routes.get(q === -1 ? url : url.slice(0, q)) : undefined;
    if (!route) {
      send(req, res, 404, JSON_TYPE, JSON.stringify({ message: `Route ${req.method}:${url} not found`, error: 'Not Found', statusCode: 404 }));
      return;
    }
    route().then(
      (r) => send(req, res, r.status, r.type, r.body),
      (err: unknown) => send(req, res, 500, JSON_TYPE, JSON.stringify({ statusCode: 500, error: 'Internal Server Error', message: (err as Error)?.message ?? String(err) })),
    );
  });
  // fastify's defaults, which the probes and scrapers of these endpoints have always seen
  server.keepAliveTimeout = 72_000;
  server.requestTimeout = 0;
  return {
    start() {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port, opts.host, () => {
          server.off('error', reject);
          // after listen a net.Server's 'error' is a failed accept; with no listener it would end the process
          server.on('error', (err) => opts.onError?.(err));
          const addr = server.address();
          const port = typeof addr === 'object' && addr ? addr.port : opts.port;
          opts.logger?.debug({ port }, 'status server listening');
          resolve({ port });
        });
      });
    },
    stop() {
      return new Promise((resolve) => {
        if (!server.listening) return resolve();
        // in-flight requests finish; idle keep-alive connections are closed, as fastify's close did
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}
