/**
 * Attacks on the tunnel listener (1194): frames of every type with bad lengths (before TLS, after
 * the mTLS handshake instead of HELLO, and after a complete HELLO), a peer that floods large PINGs
 * and never reads, HA HELLOs naming one bond address spelled many ways, and MAC floods on the HA
 * switch (announcements, frames from random source MACs, broadcast storms).
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type tls from 'node:tls';
import { parseIp } from '@rvpn/config';
import { encodeMacAnnouncement, formatMac, macFromAddress } from '@rvpn/bonding';
import { FrameParser, FrameType, MAX_FRAME_PAYLOAD, decodeError, encodeHello, packBatch, type HelloBody } from '@rvpn/tunnel';
import { paced, percentile, round, sleep, sourcePicker, type AttackResult, type HostPort } from './common.js';
import { dialRaw, dialTls, endpointHello, frame, handshake, pingFrame, rawFrame, shootHello, type HandSession, type TlsFiles } from './tunnel-client.js';

export type FrameStage = 'pre-tls' | 'pre-hello' | 'post-hello';

export interface BadFrame {
  name: string;
  bytes: Buffer;
  /** What a correct peer does: an ERROR frame and a close at once (`error`), a close (`close`), or wait for more bytes (`wait`). */
  expect: 'error' | 'close' | 'wait' | 'ignore';
}

const TYPES: Array<[string, number]> = [
  ['HELLO', FrameType.HELLO], ['DATA', FrameType.DATA], ['DATA_BATCH', FrameType.DATA_BATCH], ['PING', FrameType.PING],
  ['PONG', FrameType.PONG], ['CLOSE', FrameType.CLOSE], ['ERROR', FrameType.ERROR], ['MAC_ANNOUNCE', FrameType.MAC_ANNOUNCE],
  ['unknown-0x08', 0x08], ['unknown-0x7f', 0x7f], ['extension-0xfe', 0xfe],
];

/** Every frame type with bad lengths, plus oversized or lying contents, for one stage of the session. */
export function badFrames(stage: FrameStage): BadFrame[] {
  const out: BadFrame[] = [];
  const post = stage === 'post-hello';
  for (const [name, t] of TYPES) {
    out.push({ name: `${name}/over-limit`, bytes: rawFrame(t, MAX_FRAME_PAYLOAD + 1, randomBytes(64)), expect: 'error' });
    out.push({ name: `${name}/u24-max`, bytes: rawFrame(t, 0xffffff, randomBytes(64)), expect: 'error' });
    out.push({ name: `${name}/length-beyond-sent`, bytes: rawFrame(t, 4096, randomBytes(100)), expect: 'wait' });
    // an ERROR frame (or CLOSE after the handshake) is the peer ending the session: closed, not answered
    const ends = t === FrameType.ERROR || (post && t === FrameType.CLOSE);
    out.push({ name: `${name}/zero`, bytes: rawFrame(t, 0), expect: ends ? 'close' : post && [FrameType.PING, FrameType.PONG, FrameType.DATA_BATCH, FrameType.DATA, 0xfe, FrameType.MAC_ANNOUNCE].includes(t) ? 'ignore' : 'error' });
    out.push({ name: `${name}/short`, bytes: rawFrame(t, 3, randomBytes(3)), expect: ends ? 'close' : post && [FrameType.PONG, 0xfe, FrameType.PING, FrameType.MAC_ANNOUNCE].includes(t) ? 'ignore' : 'error' });
  }
  const batchLie = Buffer.alloc(12);
  batchLie.writeUInt16BE(1500, 0);
  const announceLie = Buffer.alloc(8);
  announceLie.writeUInt16BE(4096, 0);
  const hugeCode = Buffer.from(JSON.stringify({ code: `RVPN_ERR_${randomBytes(1000).toString('hex')}`, message: 'x'.repeat(100_000) }));
  const closeText = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(500_000, 0x41)]);
  const hugeIdentity: HelloBody = { ...shootHello('x'.repeat(MAX_FRAME_PAYLOAD - 400)) };
  const badJson = Buffer.concat([Buffer.from('RVPN'), Buffer.from([1, 1]), Buffer.from('{"role":')]);
  out.push(
    { name: 'DATA/over-packet-size', bytes: frame(FrameType.DATA, randomBytes(70_000)), expect: 'error' },
    { name: 'DATA_BATCH/inner-length-lie', bytes: frame(FrameType.DATA_BATCH, batchLie), expect: 'error' },
    { name: 'MAC_ANNOUNCE/count-lie', bytes: frame(FrameType.MAC_ANNOUNCE, announceLie), expect: post ? 'ignore' : 'error' },
    { name: 'ERROR/huge-random-code', bytes: frame(FrameType.ERROR, hugeCode), expect: 'close' },
    { name: 'CLOSE/500KB-text', bytes: frame(FrameType.CLOSE, closeText), expect: post ? 'close' : 'error' },
    { name: 'HELLO/identity-1MiB', bytes: encodeHello(hugeIdentity), expect: post ? 'error' : 'close' },
    { name: 'HELLO/bad-json', bytes: frame(FrameType.HELLO, badJson), expect: 'error' },
    { name: 'HELLO/major-255', bytes: encodeHello(shootHello('hostile'), 255, 0), expect: 'error' },
  );
  return out;
}

export interface TunnelTarget {
  target: HostPort;
  viaHeader?: string;
  sources?: string[];
  servername: string;
  tls?: TlsFiles;
}

interface CaseOutcome {
  expect: BadFrame['expect'];
  n: number;
  errorCodes: Record<string, number>;
  closed: number;
  closeAfterMsMax: number | undefined;
  stillOpen: number;
  failedToStart: number;
}

/**
 * Sends each bad frame on its own connection, `rate` connections per second for `durationMs`
 * (cycling through the catalogue), at the given stage: raw to the TLS port (`pre-tls`), after mTLS
 * with a lab certificate instead of HELLO (`pre-hello`), or after a complete HELLO exchange
 * (`post-hello`, `hello(i)` gives the HELLO body of connection i). Per case: the ERROR code the server
 * answered with, whether and when it closed, what was still open after `holdMs`.
 */
export async function badFrameAttack(opts: TunnelTarget & { stage: FrameStage; rate: number; durationMs: number; holdMs: number; hello?: (i: number) => HelloBody; only?: string[]; signal?: AbortSignal }): Promise<AttackResult> {
  const cases = badFrames(opts.stage).filter((c) => !opts.only || opts.only.some((o) => c.name.startsWith(o)));
  const pick = sourcePicker(opts.sources);
  const outcomes = new Map<string, CaseOutcome>(cases.map((c) => [c.name, { expect: c.expect, n: 0, errorCodes: {}, closed: 0, closeAfterMsMax: undefined, stillOpen: 0, failedToStart: 0 }]));
  const open = new Set<net.Socket>();
  const sessions = new Set<HandSession>();
  const one = async (i: number) => {
    const c = cases[i % cases.length]!;
    const o = outcomes.get(c.name)!;
    o.n++;
    const onError = (payload: Buffer) => {
      const code = decodeError(payload).code.slice(0, 64);
      o.errorCodes[code] = (o.errorCodes[code] ?? 0) + 1;
    };
    let sock: net.Socket;
    try {
      if (opts.stage === 'pre-tls') {
        sock = await dialRaw({ target: opts.target, viaHeader: opts.viaHeader, localAddress: pick() });
        // read (and drop) what comes back: a paused socket would never see the server's close
        sock.on('data', () => undefined);
        sock.resume();
      } else {
        const t = await dialTls({ target: opts.target, viaHeader: opts.viaHeader, localAddress: pick(), servername: opts.servername, tls: opts.tls! });
        if (opts.stage === 'post-hello') {
          // the session stays alive by itself (it answers PINGs and sends its own): only the bad frame can end it
          const h = await handshake(t, opts.hello ? opts.hello(i) : shootHello(`hostile/frames/${i}`), { events: { onFrame: (type, p) => type === FrameType.ERROR && onError(p) } });
          if (!h.ok) {
            o.failedToStart++;
            o.errorCodes[`handshake:${h.code}`] = (o.errorCodes[`handshake:${h.code}`] ?? 0) + 1;
            return;
          }
          h.session.startPings(100);
          sessions.add(h.session);
        } else {
          const parser = new FrameParser((type, payload) => type === FrameType.ERROR && onError(payload), () => undefined);
          t.on('data', (b: Buffer) => parser.push(b));
        }
        sock = t;
      }
    } catch {
      o.failedToStart++;
      return;
    }
    const t0 = performance.now();
    open.add(sock);
    sock.on('error', () => undefined);
    sock.once('close', () => {
      if (!open.delete(sock)) return;
      o.closed++;
      const ms = Math.round(performance.now() - t0);
      o.closeAfterMsMax = Math.max(o.closeAfterMsMax ?? 0, ms);
    });
    sock.write(c.bytes);
  };
  const pending: Promise<void>[] = [];
  const started = await paced(opts.rate, opts.durationMs, (i) => pending.push(one(i)), opts.signal);
  await Promise.all(pending);
  const end = performance.now() + opts.holdMs;
  while (open.size > 0 && performance.now() < end) await sleep(50);
  // what is still open at the end is counted per case by difference
  for (const o of outcomes.values()) o.stillOpen = o.n - o.closed - o.failedToStart;
  const left = [...open];
  open.clear();
  for (const s of sessions) s.close();
  for (const s of left) s.destroy();
  return {
    attack: 'bad-frames', target: `${opts.target.host}:${opts.target.port}${opts.viaHeader ? ' via CONNECT' : ''}`, rate: opts.rate, rateUnit: 'connections/s', durationMs: opts.durationMs,
    stage: opts.stage, holdMs: opts.holdMs, started, cases: Object.fromEntries(outcomes),
  };
}

/**
 * Completes the handshake, then writes PINGs of `pingBytes` at `rate` per second and never reads:
 * every PONG the server echoes piles up on its side unless it caps its write buffer. Reports how
 * much was sent and whether (and when) the server cut the connection.
 */
export async function neverRead(opts: TunnelTarget & { hello: HelloBody; pingBytes: number; rate: number; durationMs: number }): Promise<AttackResult> {
  const t = await dialTls({ target: opts.target, viaHeader: opts.viaHeader, localAddress: sourcePicker(opts.sources)(), servername: opts.servername, tls: opts.tls! });
  const h = await handshake(t, opts.hello);
  if (!h.ok) return { attack: 'never-read', target: `${opts.target.host}:${opts.target.port}`, rate: opts.rate, rateUnit: 'PINGs/s', durationMs: opts.durationMs, refused: h.code };
  const s: tls.TLSSocket = h.session.sock;
  s.removeAllListeners('data');
  s.pause();
  let cutAfterMs: number | undefined;
  let cutBy: string | undefined;
  const t0 = performance.now();
  s.on('error', (err) => {
    cutBy ??= (err as NodeJS.ErrnoException).code ?? err.message;
  });
  s.once('close', () => {
    cutAfterMs ??= Math.round(performance.now() - t0);
  });
  let sent = 0;
  let bytes = 0;
  let seq = 0;
  const payload = Math.min(opts.pingBytes, MAX_FRAME_PAYLOAD);
  await paced(opts.rate, opts.durationMs, () => {
    // the attacker bounds its own memory: it stops queueing when the server stops taking bytes
    if (s.destroyed || s.writableLength > 64 * 1024 * 1024) return;
    s.write(pingFrame(seq++, payload));
    sent++;
    bytes += payload + 4;
  });
  await sleep(500);
  const writeBacklog = s.writableLength;
  s.destroy();
  return {
    attack: 'never-read', target: `${opts.target.host}:${opts.target.port}`, rate: opts.rate, rateUnit: 'PINGs/s', durationMs: opts.durationMs,
    pingBytes: payload, sent, bytesSent: bytes, attackerBacklogBytes: writeBacklog, cutByServer: cutAfterMs !== undefined && cutAfterMs < opts.durationMs + 400, cutAfterMs, cutBy,
  };
}

/** Spellings of one IPv6 address: case, leading zeros per group, where `::` goes, an IPv4 tail. */
export function addressSpellings(address: string, max: number): string[] {
  const ip = parseIp(address);
  if (!ip || ip.family !== 6) throw new RangeError(`${address} is not an IPv6 address`);
  const groups = Array.from({ length: 8 }, (_, i) => Number((ip.value >> BigInt(16 * (7 - i))) & 0xffffn));
  const forms = (g: number): string[] => {
    const h = g.toString(16);
    const padded = [h, ...[2, 3, 4].filter((w) => w > h.length).map((w) => h.padStart(w, '0'))];
    return [...new Set(padded.flatMap((p) => (/[a-f]/.test(p) ? [p, p.toUpperCase()] : [p])))];
  };
  const out = new Set<string>();
  const variants = groups.map(forms);
  // vary one group at a time, then pairs, with and without compression of the zero run
  const zeroRun = (() => {
    let best: [number, number] = [-1, 0];
    for (let i = 0; i < 8; ) {
      if (groups[i] !== 0) { i++; continue; }
      let j = i;
      while (j < 8 && groups[j] === 0) j++;
      if (j - i > best[1]) best = [i, j - i];
      i = j;
    }
    return best;
  })();
  const render = (parts: string[], compress: boolean) => {
    if (!compress || zeroRun[1] < 2) return parts.join(':');
    return `${parts.slice(0, zeroRun[0]).join(':')}::${parts.slice(zeroRun[0] + zeroRun[1]).join(':')}`;
  };
  const base = groups.map((g) => g.toString(16));
  const add = (parts: string[]) => {
    for (const c of [true, false]) if (out.size < max) out.add(render(parts, c));
    const tail = `${(groups[6]! >> 8)}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
    if (out.size < max) out.add(render([...parts.slice(0, 6), tail], false));
  };
  add(base);
  for (let i = 0; i < 8 && out.size < max; i++) for (const f of variants[i]!) add(base.map((b, k) => (k === i ? f : b)));
  for (let i = 0; i < 8 && out.size < max; i++) {
    for (let j = i + 1; j < 8 && out.size < max; j++) {
      for (const fi of variants[i]!) for (const fj of variants[j]!) add(base.map((b, k) => (k === i ? fi : k === j ? fj : b)));
    }
  }
  return [...out].filter((s) => parseIp(s)?.value === ip.value).slice(0, max);
}

/**
 * HA: `count` sessions at `rate` per second, each naming the same bond address spelled differently
 * (and its own identity), kept alive until `holdMs` after the last one. A server comparing addresses
 * as strings gives each a new switch port and MAC.
 */
export async function helloSpellings(opts: TunnelTarget & { address: string; count: number; rate: number; holdMs: number; vpnNetwork?: string }): Promise<AttackResult> {
  const spellings = addressSpellings(opts.address, opts.count);
  const pick = sourcePicker(opts.sources);
  const sessions: HandSession[] = [];
  const refused: Record<string, number> = {};
  let accepted = 0;
  let peak = 0;
  let live = 0;
  const one = async (i: number) => {
    const spelled = spellings[i]!;
    try {
      const t = await dialTls({ target: opts.target, viaHeader: opts.viaHeader, localAddress: pick(), servername: opts.servername, tls: opts.tls! });
      const h = await handshake(t, endpointHello(`hostile/spelling/${i}`, spelled, opts.vpnNetwork));
      if (!h.ok) {
        refused[h.code] = (refused[h.code] ?? 0) + 1;
        return;
      }
      accepted++;
      live++;
      peak = Math.max(peak, live);
      h.session.startPings(150);
      sessions.push(h.session);
      void h.session.closed.then(() => live--);
    } catch (err) {
      refused[`dial:${(err as Error).message.slice(0, 40)}`] = (refused[`dial:${(err as Error).message.slice(0, 40)}`] ?? 0) + 1;
    }
  };
  const pending: Promise<void>[] = [];
  const durationMs = Math.ceil((spellings.length / opts.rate) * 1000);
  await paced(opts.rate, durationMs, (i) => {
    if (i < spellings.length) pending.push(one(i));
  });
  await Promise.all(pending);
  await sleep(opts.holdMs);
  const aliveAtEnd = live;
  for (const s of sessions) s.close();
  return {
    attack: 'hello-spellings', target: `${opts.target.host}:${opts.target.port}`, rate: opts.rate, rateUnit: 'sessions/s', durationMs,
    address: opts.address, spellings: spellings.length, examples: spellings.slice(0, 6), accepted, refused, peakConcurrent: peak, aliveAtEnd,
  };
}

export type MacFloodMode = 'announce' | 'random-sources' | 'broadcast';

/** An Ethernet frame (no FCS) carrying an ARP request, from `src` to `dst`. */
function arpFrame(dst: Buffer, src: Buffer): Buffer {
  const f = Buffer.alloc(60);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14);
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20);
  src.copy(f, 22);
  Buffer.from([192, 168, 123, 249]).copy(f, 28);
  Buffer.from([192, 168, 123, 250]).copy(f, 38);
  return f;
}

function randomUnicastMac(): Buffer {
  const m = randomBytes(6);
  m[0] = (m[0]! & 0xfc) | 0x02;
  return m;
}

/**
 * HA: one endpoint session (its own bond address), then at `rate` per second: MAC_ANNOUNCE frames
 * listing 4096 random MACs (`announce`), Ethernet frames from random source MACs (`random-sources`,
 * in DATA_BATCH frames of 64), or broadcast ARP requests from its own MAC (`broadcast`: a storm the
 * switch floods to every port unless it rate-limits the port).
 */
export async function macFlood(opts: TunnelTarget & { address: string; mode: MacFloodMode; rate: number; durationMs: number; vpnNetwork?: string }): Promise<AttackResult> {
  const t = await dialTls({ target: opts.target, viaHeader: opts.viaHeader, localAddress: sourcePicker(opts.sources)(), servername: opts.servername, tls: opts.tls! });
  const h = await handshake(t, endpointHello(`hostile/mac-flood/${opts.mode}`, opts.address, opts.vpnNetwork));
  const base = { attack: 'mac-flood', target: `${opts.target.host}:${opts.target.port}`, rate: opts.rate, rateUnit: opts.mode === 'announce' ? 'announcements/s' : 'frames/s', durationMs: opts.durationMs, mode: opts.mode };
  if (!h.ok) return { ...base, refused: h.code };
  const s = h.session;
  s.startPings(100);
  const own = macFromAddress(opts.address);
  const bcast = Buffer.alloc(6, 0xff);
  let sent = 0;
  let batch: Buffer[] = [];
  const flush = () => {
    if (batch.length) s.write(frame(FrameType.DATA_BATCH, packBatch(batch)));
    batch = [];
  };
  await paced(opts.rate, opts.durationMs, () => {
    if (s.sock.writableLength > 16 * 1024 * 1024) return;
    sent++;
    if (opts.mode === 'announce') {
      s.write(frame(FrameType.MAC_ANNOUNCE, encodeMacAnnouncement(Array.from({ length: 4096 }, () => formatMac(randomUnicastMac())))));
      return;
    }
    batch.push(opts.mode === 'broadcast' ? arpFrame(bcast, own) : arpFrame(randomBytes(1)[0]! & 1 ? bcast : randomUnicastMac(), randomUnicastMac()));
    if (batch.length >= 64) flush();
  });
  flush();
  await sleep(300);
  const ended = await Promise.race([s.closed, sleep(10).then(() => undefined)]);
  s.close();
  return { ...base, ownMac: formatMac(own), sent, cutByServer: ended !== undefined, cutReason: ended?.reason, cutCode: ended?.code };
}

/** Round-trip figures of a list of samples (ms). */
export function rttFigures(samples: readonly number[]) {
  return { n: samples.length, p50: round(percentile(samples, 50), 2), p99: round(percentile(samples, 99), 2), max: round(percentile(samples, 100), 2) };
}
