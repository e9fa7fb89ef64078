#!/usr/bin/env node
/**
 * `node dist/connect-probe.js --proxy https://vpn-seed-server.<ns>.svc.cluster.local:9443 --target 10.96.0.1:443
 *   --ca ca.crt --cert tls.crt --key tls.key [--timeout 15000]`
 *
 * The chart's `helm test`: does what the kube-apiserver's egress selector does — CONNECT <target>
 * through the seed server's proxy over mutual TLS with the apiserver's proxy client certificate — and
 * exits 0 when the proxy answers 200 (it answers 200 only once its TCP connection to the target inside
 * the shoot is open, i.e. through the tunnel), else 1 with the reason (TLS refused, 503 no tunnel,
 * 502/504 dial into the shoot failed, 403 target outside the shoot networks, timeout).
 *
 * The CONNECT exchange is @rvpn/proxy's client. It dials plain TCP, so the probe hands it a loopback
 * listener that carries each connection on over the mutual-TLS session to the proxy.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { errorCode } from '@rvpn/config';
import { dialViaConnect } from '@rvpn/proxy';

export interface ConnectProbeOptions {
  /** https://host:port of the egress proxy. */
  proxy: string;
  /** host:port inside the shoot. */
  target: string;
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
  timeoutMs?: number;
}

export type ConnectProbeResult = { ok: true; ms: number } | { ok: false; ms: number; code: string; reason: string };

export async function connectProbe(o: ConnectProbeOptions): Promise<ConnectProbeResult> {
  const t0 = Date.now();
  const url = new URL(o.proxy);
  if (url.protocol !== 'https:') throw new Error(`--proxy must be an https:// URL, not ${o.proxy}`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 443);
  let tlsError: Error | undefined;
  const sockets = new Set<net.Socket>();
  // loopback → mutual TLS → proxy: one TLS session per accepted connection
  const bridge = net.createServer((local) => {
    sockets.add(local);
    const up = tls.connect({ host, port, ca: o.ca, cert: o.cert, key: o.key, ...(net.isIP(host) ? {} : { servername: host }) });
    sockets.add(up);
    up.once('secureConnect', () => {
      local.pipe(up);
      up.pipe(local);
    });
    up.on('error', (err) => {
      tlsError ??= err;
      local.destroy();
    });
    local.on('error', () => up.destroy());
    local.on('close', () => up.destroy());
  });
  await new Promise<void>((resolve, reject) => bridge.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
  try {
    const { socket } = await dialViaConnect({ proxyHost: '127.0.0.1', proxyPort: (bridge.address() as net.AddressInfo).port, target: o.target, timeoutMs: o.timeoutMs ?? 15_000 });
    socket.destroy();
    return { ok: true, ms: Date.now() - t0 };
  } catch (err) {
    // the TLS failure (if any) is the cause; the CONNECT client only saw its loopback leg close
    if (tlsError) return { ok: false, ms: Date.now() - t0, code: (tlsError as NodeJS.ErrnoException).code ?? 'TLS', reason: `TLS to ${o.proxy} failed: ${tlsError.message}` };
    return { ok: false, ms: Date.now() - t0, code: errorCode(err) ?? 'ERROR', reason: (err as Error).message };
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => bridge.close(() => resolve()));
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      proxy: { type: 'string' }, target: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
      timeout: { type: 'string', default: '15000' },
    },
  });
  if (!values.proxy || !values.target || !values.ca || !values.cert || !values.key) {
    console.error('usage: connect-probe --proxy https://HOST:PORT --target HOST:PORT --ca FILE --cert FILE --key FILE [--timeout MS]');
    return 2;
  }
  const r = await connectProbe({
    proxy: values.proxy, target: values.target, timeoutMs: Number(values.timeout),
    ca: readFileSync(values.ca), cert: readFileSync(values.cert), key: readFileSync(values.key),
  });
  const what = `CONNECT ${values.target} through ${values.proxy}`;
  if (r.ok) console.log(`connect-probe: ${what}: 200, the connection into the shoot is open (${r.ms} ms)`);
  else console.error(`connect-probe: ${what} FAILED after ${r.ms} ms [${r.code}]: ${r.reason}`);
  return r.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => process.exit(code), (err) => {
    console.error(`connect-probe: ${(err as Error).message}`);
    process.exit(1);
  });
}
