#!/usr/bin/env node
/**
 * One tunnel handshake attempt, for refusal and version tests: dial (through the CONNECT entry
 * point with a header, or directly), TLS 1.3 with the given certificate, send a HELLO of the given
 * protocol version and report what the server answered as one JSON line:
 *   {"outcome":"accepted","version":"1.1"}  exit 0
 *   {"outcome":"refused","code":"RVPN_ERR_…","message":"…"}  exit 3
 * Caution: an accepted probe is a real session and replaces the shoot's current one.
 */
import tls from 'node:tls';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { errorCode } from '@rvpn/config';
import { dialViaConnect } from '@rvpn/proxy';
import { decodeError, encodeHello, decodeHello, FrameParser, FrameType, PROTOCOL_MAJOR, PROTOCOL_MINOR } from '@rvpn/tunnel';

const { values } = parseArgs({
  options: {
    proxy: { type: 'string' },
    header: { type: 'string' },
    direct: { type: 'string' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    servername: { type: 'string', default: 'vpn-seed-server' },
    major: { type: 'string', default: String(PROTOCOL_MAJOR) },
    minor: { type: 'string', default: String(PROTOCOL_MINOR) },
    timeout: { type: 'string', default: '5000' },
  },
});

function hostPort(s: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(s);
  if (!m) throw new Error(`${s}: expected host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

function report(outcome: 'accepted' | 'refused', extra: Record<string, string>): never {
  console.log(JSON.stringify({ outcome, ...extra }));
  process.exit(outcome === 'accepted' ? 0 : 3);
}

async function main() {
  if (!values.ca || !values.cert || !values.key || (!values.proxy && !values.direct)) {
    console.error('usage: tunnel-probe (--proxy HOST:PORT --header "Name: value" | --direct HOST:PORT) --ca F --cert F --key F [--major N --minor N]');
    process.exit(2);
  }
  const timeoutMs = Number(values.timeout);
  setTimeout(() => report('refused', { code: 'TIMEOUT', message: `no answer within ${timeoutMs} ms` }), timeoutMs).unref();
  let raw: net.Socket;
  try {
    if (values.proxy) {
      const p = hostPort(values.proxy);
      const headers: Record<string, string> = {};
      if (values.header) {
        const i = values.header.indexOf(':');
        headers[values.header.slice(0, i).trim()] = values.header.slice(i + 1).trim();
      }
      raw = (await dialViaConnect({ proxyHost: p.host, proxyPort: p.port, target: `${values.servername}:1194`, headers, timeoutMs })).socket;
    } else {
      const d = hostPort(values.direct!);
      raw = net.connect(d);
      await new Promise((res, rej) => raw.once('connect', res).once('error', rej));
    }
  } catch (err) {
    report('refused', { code: errorCode(err) ?? 'DIAL', message: (err as Error).message });
  }
  const sock = tls.connect({ socket: raw, ca: readFileSync(values.ca), cert: readFileSync(values.cert), key: readFileSync(values.key), servername: values.servername, minVersion: 'TLSv1.3' });
  sock.once('error', (err) => report('refused', { code: 'RVPN_ERR_TUNNEL_TLS', message: err.message }));
  await new Promise((res) => sock.once('secureConnect', res));
  const parser = new FrameParser((type, payload) => {
    if (type === FrameType.ERROR) {
      const e = decodeError(payload);
      report('refused', { code: e.code, message: e.message });
    }
    if (type === FrameType.HELLO) {
      const h = decodeHello(payload);
      sock.destroy();
      report('accepted', { version: typeof h === 'string' ? h : `${h.major}.${h.minor}` });
    }
  }, (reason) => report('refused', { code: 'RVPN_ERR_PROTO_MALFORMED', message: reason }));
  sock.on('data', (c: Buffer) => parser.push(c));
  sock.on('close', () => report('refused', { code: 'CLOSED', message: 'the server closed the connection without an answer' }));
  sock.write(encodeHello({ role: 'shoot', identity: 'tunnel-probe', keepaliveIntervalMs: 250, keepaliveTimeoutMs: 1000, vpnNetwork: 'fd8f:6d53:b97a:1::/96', mtu: 1500 }, Number(values.major), Number(values.minor)));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
