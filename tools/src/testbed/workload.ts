#!/usr/bin/env node
/**
 * The test bed's workload image (localhost/rvtb/workload): what the end-to-end tests run IN THE SHOOT
 * so that the shoot's kube-apiserver (in the seed) must reach it through the VPN.
 *   log                         a numbered line every 200 ms (kubectl logs, logs -f)
 *   http <port>                 GET /healthz; GET /bytes/<n>: n bytes of the deterministic pattern
 *                               (kubectl port-forward, compared by checksum)
 *   webhook <port> <tls dir>    a validating admission webhook over HTTPS: denies objects labelled
 *                               rvtb.dev/deny=true, allows the rest; GET /healthz
 * Only Node built-ins and the pattern module (the image holds no node_modules).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { deterministicStream } from '../fixtures/pattern.js';

function log(): void {
  let n = 0;
  const tick = () => process.stdout.write(`rvtb-log line ${++n} ${new Date().toISOString()}\n`);
  tick();
  setInterval(tick, 200);
}

function serveHttp(port: number): void {
  http.createServer((req, res) => {
    const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
    if (req.url === '/healthz') res.end('ok\n');
    else if (m) {
      const n = Number(m[1]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
      deterministicStream(n).pipe(res);
    } else {
      res.statusCode = 404;
      res.end('not found\n');
    }
  }).listen(port, () => process.stdout.write(`rvtb-http listening on ${port}\n`));
}

interface AdmissionReview {
  apiVersion: string;
  kind: string;
  request?: { uid: string; object?: { metadata?: { name?: string; labels?: Record<string, string> } } };
}

function webhook(port: number, tlsDir: string): void {
  let reviews = 0;
  https.createServer({ cert: readFileSync(`${tlsDir}/tls.crt`), key: readFileSync(`${tlsDir}/tls.key`) }, (req, res) => {
    if (req.method === 'GET') {
      res.end(`ok ${reviews}\n`);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let review: AdmissionReview;
      try {
        review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AdmissionReview;
      } catch {
        res.statusCode = 400;
        res.end();
        return;
      }
      reviews++;
      const obj = review.request?.object;
      const deny = obj?.metadata?.labels?.['rvtb.dev/deny'] === 'true';
      process.stdout.write(`rvtb-webhook review ${reviews}: ${obj?.metadata?.name ?? '?'} ${deny ? 'denied' : 'allowed'}\n`);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        apiVersion: review.apiVersion, kind: review.kind,
        response: { uid: review.request?.uid, allowed: !deny, ...(deny ? { status: { code: 403, message: 'denied by the rvtb webhook in the shoot (reached through the VPN)' } } : {}) },
      }));
    });
  }).listen(port, () => process.stdout.write(`rvtb-webhook listening on ${port}\n`));
}

const [mode, a, b] = process.argv.slice(2);
process.on('SIGTERM', () => process.exit(0));
if (mode === 'log') log();
else if (mode === 'http') serveHttp(Number(a ?? 8080));
else if (mode === 'webhook' && a && b) webhook(Number(a), b);
else {
  process.stderr.write('usage: workload log | http <port> | webhook <port> <tls dir>\n');
  process.exit(2);
}
