/**
 * The HTTP side of every app: /healthz (liveness), /readyz (readiness with the checks that decide it)
 * and /metrics (Prometheus text). 200 when ok, 503 otherwise.
 *
 * A small HTTP/1.1 responder on node:net, not a framework and not node:http. Three GET routes need no
 * router, and what each process adds in memory is the target (issue 11, `pnpm bench:memory`): fastify
 * cost about 2 MiB of heap plus the young-generation growth of loading it; node:http costs Node 24 (the
 * images' runtime) 3.5 MiB of anonymous memory more than node:net and node:tls, which every app loads
 * anyway (Node 20: 0.25 MiB).
 *
 * What a client sees is what fastify 5 answered with its defaults: HEAD beside every GET, JSON bodies with
 * `application/json; charset=utf-8`, a JSON 404 (`Route GET:/x not found`) for any other method or path
 * (exact, case-sensitive, query ignored), a JSON 500 with the message when a check throws, keep-alive for
 * 72 s, no request timeout; and what node:http did below it: pipelined requests answered in order, HTTP/1.0
 * and `Connection: close` honoured, 400 for a malformed request, 431 for a head over 16 KiB, 408 when a
 * head takes longer than 60 s. Requests with a body (none of these routes takes one) are answered and the
 * connection is closed, so a body is never parsed as the next request.
 */
import { createServer, type Socket } from 'node:net';
import type { Registry } from './metrics.js';

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
/** node:http's defaults (max header size, headersTimeout) and fastify's keep-alive. */
const MAX_HEAD_BYTES = 16 * 1024;
const HEADERS_TIMEOUT_MS = 60_000;
const KEEP_ALIVE_MS = 72_000;
const REASON: Record<number, string> = { 200: 'OK', 400: 'Bad Request', 404: 'Not Found', 408: 'Request Timeout', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 503: 'Service Unavailable' };
const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/;

interface Request {
  method: string;
  target: string;
  keepAlive: boolean;
}

/** The request line and headers of one request head (without its blank line), or undefined if malformed. */
function parseHead(head: string): Request | undefined {
  const lines = head.split('\r\n');
  const m = REQUEST_LINE.exec(lines[0]!);
  if (!m) return undefined;
  let connection = '';
  let hasBody = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === 'connection') connection += `,${value}`;
    else if (name === 'transfer-encoding' || (name === 'content-length' && value !== '0')) hasBody = true;
  }
  const tokens = connection.split(',').map((t) => t.trim());
  const keepAlive = !hasBody && !tokens.includes('close') && (m[3] === '1' || tokens.includes('keep-alive'));
  return { method: m[1]!, target: m[2]!, keepAlive };
}

function response(status: number, headers: string, body: string, keepAlive: boolean): string {
  const connection = keepAlive ? `Connection: keep-alive\r\nKeep-Alive: timeout=${KEEP_ALIVE_MS / 1000}` : 'Connection: close';
  return `HTTP/1.1 ${status} ${REASON[status] ?? ''}\r\n${headers}Date: ${new Date().toUTCString()}\r\n${connection}\r\n\r\n${body}`;
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
  async function answer(req: Request): Promise<{ status: number; type: string; body: string }> {
    const q = req.target.indexOf('?');
    const route = req.method === 'GET' || req.method === 'HEAD' ? routes.get(q === -1 ? req.target : req.target.slice(0, q)) : undefined;
    if (!route) return { status: 404, type: JSON_TYPE, body: JSON.stringify({ message: `Route ${req.method}:${req.target} not found`, error: 'Not Found', statusCode: 404 }) };
    try {
      return await route();
    } catch (err) {
      return { status: 500, type: JSON_TYPE, body: JSON.stringify({ statusCode: 500, error: 'Internal Server Error', message: (err as Error)?.message ?? String(err) }) };
    }
  }

  /** Connections not in the middle of answering a request: closed at once by stop(). */
  const idle = new Set<Socket>();
  let closing = false;
  const serve = (socket: Socket) => {
    let buf = '';
    let busy = false;
    let failed = false;
    let headTimer: NodeJS.Timeout | undefined;
    idle.add(socket);
    socket.setEncoding('latin1');
    socket.setNoDelay(true);
    socket.setTimeout(KEEP_ALIVE_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      clearTimeout(headTimer);
      idle.delete(socket);
    });
    const fail = (status: number) => {
      clearTimeout(headTimer);
      socket.end(response(status, 'Content-Length: 0\r\n', '', false), 'latin1');
      buf = '';
      failed = true; // nothing more is read from this connection
    };
    const next = () => {
      if (busy || failed || socket.destroyed) return;
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) {
        if (buf.length > MAX_HEAD_BYTES) return fail(431);
        if (buf.length > 0 && !headTimer) headTimer = setTimeout(() => fail(408), HEADERS_TIMEOUT_MS);
        return;
      }
      clearTimeout(headTimer);
      headTimer = undefined;
      if (end > MAX_HEAD_BYTES) return fail(431);
      const req = parseHead(buf.slice(0, end));
      buf = buf.slice(end + 4);
      if (!req) return fail(400);
      busy = true;
      idle.delete(socket);
      void answer(req).then((r) => {
        if (socket.destroyed) return;
        const keepAlive = req.keepAlive && !closing;
        const body = req.method === 'HEAD' ? '' : r.body;
        socket.write(response(r.status, `content-type: ${r.type}\r\ncontent-length: ${Buffer.byteLength(r.body)}\r\n`, body, keepAlive), 'utf8');
        if (!keepAlive) {
          socket.end();
          return;
        }
        busy = false;
        idle.add(socket);
        socket.resume();
        next();
      });
    };
    socket.on('data', (chunk: string) => {
      if (failed) return;
      buf += chunk;
      if (busy && buf.length > MAX_HEAD_BYTES) socket.pause(); // a pipelining client far ahead of the answers
      next();
    });
  };

  const server = createServer(serve);
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
        closing = true;
        // requests being answered finish (and their connections close); idle connections close now
        server.close(() => resolve());
        for (const s of idle) s.destroy();
      });
    },
  };
}
