/**
 * What sni-proxy's specs share: loopback upstreams, a proxy started on free ports from a route table and
 * env, raw exchanges. Everything started is undone by `cleanup()` (each spec calls it in afterEach).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { loadSniProxyConfig } from '@rvpn/config';
import { SniProxy } from './sni-proxy.js';

export const VALUE = 'outbound|1194||vpn-seed-server.shoot--p--a.svc.cluster.local';
export const VALUE_B = 'outbound|1194||vpn-seed-server.shoot--p--b.svc.cluster.local';

const cleanups: Array<() => unknown> = [];
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}
export async function cleanup(): Promise<void> {
  while (cleanups.length) await cleanups.pop()!();
}

export async function server(handler: (s: net.Socket) => void, host = '127.0.0.1'): Promise<number> {
  const srv = net.createServer(handler);
  const conns = new Set<net.Socket>();
  srv.on('connection', (c) => { conns.add(c); c.on('close', () => conns.delete(c)); });
  await new Promise<void>((r) => srv.listen(0, host, r));
  cleanups.push(() => new Promise<void>((r) => { srv.close(() => r()); for (const c of conns) c.destroy(); }));
  return (srv.address() as net.AddressInfo).port;
}
export const tagServer = (tag: string) => server((s) => { s.write(`${tag}\n`); s.pipe(s); });

/** JSON log lines a proxy wrote (when started with `captureLogs`). */
export type LogLine = Record<string, unknown> & { msg: string };

export async function startProxy(routes: object, env: Record<string, string> = {}, opts: { captureLogs?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'rvpn-sni-'));
  cleanups.push(() => { rmSync(dir, { recursive: true, force: true }); });
  const file = join(dir, 'routes.json');
  writeFileSync(file, JSON.stringify(routes));
  const cfg = loadSniProxyConfig({ ROUTES_FILE: file, LISTEN_TLS: '127.0.0.1:0', LISTEN_CONNECT: '127.0.0.1:0', LISTEN_CONNECT_LEGACY: '127.0.0.1:0', STATUS_LISTEN: '127.0.0.1:0', ...env });
  const registry = new Registry();
  const logs: LogLine[] = [];
  const logger: Logger = opts.captureLogs
    ? pino({ level: 'debug' }, new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(l)); cb(); } }))
    : pino({ level: 'silent' });
  const proxy = new SniProxy(cfg, { logger, registry });
  await proxy.start();
  cleanups.push(() => proxy.stop());
  return { proxy, file, dir, registry, logs };
}

/** Sends raw bytes, returns everything received until close (or the first line after the head, when asked). */
export function exchange(port: number, payload: Buffer | string, opts: { untilLine?: boolean; prefix?: Buffer; host?: string; localAddress?: string } = {}): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: opts.host ?? '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    let got = '';
    s.on('error', () => resolve(got));
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (opts.untilLine && /\r\n\r\n[^\n]*\n/.test(got)) { s.destroy(); resolve(got); }
    });
    s.on('close', () => resolve(got));
    s.on('connect', () => s.write(opts.prefix ? Buffer.concat([opts.prefix, Buffer.from(payload)]) : payload));
  });
}
export const connectReq = (header: string, value: string, target = 'ignored.example:1') => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${header}: ${value}\r\n\r\n`;

/** One metric sample from Prometheus text (0 when absent). */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
