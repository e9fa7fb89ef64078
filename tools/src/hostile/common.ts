/**
 * Pieces every attack shares: paced loops (a stated rate for a stated duration), TCP connects from a
 * chosen source address, the record of what the server did with each connection, and percentiles.
 */
import net from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(s: string): HostPort {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s);
  if (!m) throw new Error(`${JSON.stringify(s)}: expected host:port (IPv6 as [addr]:port)`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** `5s`, `500ms`, `2m` or plain milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  if (!m) throw new Error(`${JSON.stringify(s)}: expected a duration like 500ms, 5s or 2m`);
  const n = Number(m[1]);
  return Math.round(m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** p in [0, 100]; undefined for no samples. Nearest-rank. */
export function percentile(samples: readonly number[], p: number): number | undefined {
  if (samples.length === 0) return undefined;
  const s = [...samples].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}

export const round = (n: number | undefined, digits = 2) => (n === undefined ? undefined : Math.round(n * 10 ** digits) / 10 ** digits);

/**
 * Calls `fn(i)` `rate` times per second for `durationMs` (ticks of 10 ms, so high rates stay smooth);
 * does not wait for the calls. Returns how many calls were made.
 */
export async function paced(rate: number, durationMs: number, fn: (i: number) => void, signal?: AbortSignal): Promise<number> {
  const t0 = performance.now();
  const total = Math.ceil((durationMs / 1000) * rate);
  let i = 0;
  while (!signal?.aborted && i < total) {
    const elapsed = performance.now() - t0;
    // the last tick may come a little late: the stated number of calls is made all the same
    const due = elapsed >= durationMs ? total : Math.min(Math.floor((elapsed / 1000) * rate) + 1, total);
    while (i < due) fn(i++);
    if (i < total) await sleep(10);
  }
  return i;
}

/** Source addresses are used round-robin (per-source caps need several real sources). */
export function sourcePicker(addresses: readonly string[] | undefined): () => string | undefined {
  let i = 0;
  return () => (addresses && addresses.length > 0 ? addresses[i++ % addresses.length] : undefined);
}

/**
 * A TCP connection from a chosen source. `allowHalfOpen`: the attacker does not answer the server's
 * FIN with its own (a hostile client never closes first), so a server that only half-closes keeps
 * the connection (see ConnLedger).
 */
export function connectTcp(to: HostPort, opts: { localAddress?: string | undefined; timeoutMs?: number; allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: to.host, port: to.port, noDelay: true, allowHalfOpen: opts.allowHalfOpen ?? false, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const timer = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error(`connect to ${to.host}:${to.port} timed out`), { code: 'ETIMEDOUT' }));
    }, opts.timeoutMs ?? 5000);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      s.destroy();
      reject(err);
    });
  });
}

/**
 * What happened to the connections of an attack: opened, failed to open (and why), closed by the
 * server (and after how long), still open when the attack ended (the attacker never closes first).
 *
 * Sockets are half-open capable: after the server's FIN the ledger writes a byte every 250 ms for
 * 2 s. A server that released the connection (closed its socket) answers with a reset, and the
 * connection counts as closed at the FIN; one that only half-closed (sent FIN, kept the socket and
 * its slot) takes the bytes, and the connection counts as still open: held by the server.
 */
export class ConnLedger {
  attempted = 0;
  opened = 0;
  connectErrors: Record<string, number> = {};
  closedByServer = 0;
  resetByServer = 0;
  /** Time from open to the server's close, ms. */
  readonly closeAfterMs: number[] = [];
  /** First bytes the server answered with, by kind (e.g. http-503, tls-alert-112, tls-handshake). */
  answers: Record<string, number> = {};
  private readonly open = new Set<net.Socket>();

  note(kind: string): void {
    this.answers[kind] = (this.answers[kind] ?? 0) + 1;
  }

  failed(err: unknown): void {
    const code = (err as NodeJS.ErrnoException).code ?? 'ERROR';
    this.connectErrors[code] = (this.connectErrors[code] ?? 0) + 1;
  }

  /**
   * One attacker connection, counted: connects from `localAddress` without ever closing first
   * (allowHalfOpen) and tracks it; a failed connect is recorded and gives undefined.
   */
  async connect(target: HostPort, localAddress: string | undefined): Promise<net.Socket | undefined> {
    this.attempted++;
    try {
      const s = await connectTcp(target, { localAddress, allowHalfOpen: true });
      this.track(s);
      return s;
    } catch (err) {
      this.failed(err);
      return undefined;
    }
  }

  /** Tracks a socket: the server's close is recorded; the attacker does not close it. */
  track(s: net.Socket, t0 = performance.now()): void {
    this.opened++;
    this.open.add(s);
    let reset = false;
    let finAt: number | undefined;
    s.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') reset = true;
    });
    s.once('end', () => {
      finAt = performance.now();
      let probes = 0;
      const probe = setInterval(() => {
        if (s.destroyed || ++probes > 8) {
          clearInterval(probe);
          return;
        }
        s.write(Buffer.from([0]));
      }, 250);
      probe.unref();
    });
    s.once('close', () => {
      if (!this.open.delete(s)) return; // closed by us
      this.closedByServer++;
      if (reset) this.resetByServer++;
      this.closeAfterMs.push((finAt ?? performance.now()) - t0);
    });
  }

  /** Closes a socket from our side without counting it as closed by the server. */
  untrack(s: net.Socket): void {
    this.open.delete(s);
    s.destroy();
  }

  get stillOpen(): number {
    return this.open.size;
  }

  /** Waits until the server closed every tracked socket or `ms` passed. */
  async settle(ms: number): Promise<void> {
    const end = performance.now() + ms;
    while (this.open.size > 0 && performance.now() < end) await sleep(50);
  }

  /** Closes what the server left open (the attacker's own end). */
  release(): void {
    for (const s of this.open) s.destroy();
    this.open.clear();
  }

  summary() {
    return {
      attempted: this.attempted,
      opened: this.opened,
      connectErrors: this.connectErrors,
      closedByServer: this.closedByServer,
      resetByServer: this.resetByServer,
      stillOpen: this.stillOpen,
      closeAfterMs: { p50: round(percentile(this.closeAfterMs, 50), 0), p99: round(percentile(this.closeAfterMs, 99), 0), max: round(percentile(this.closeAfterMs, 100), 0) },
      /** Closed by the server within a second of opening: refused at once (a cap), not timed out. */
      closedWithin1s: this.closeAfterMs.filter((ms) => ms < 1000).length,
      answers: this.answers,
    };
  }
}

/** Classifies the first bytes a server sent back. */
export function classifyAnswer(b: Buffer): string {
  if (b.length === 0) return 'empty';
  const http = /^HTTP\/1\.[01] (\d{3})/.exec(b.subarray(0, 16).toString('latin1'));
  if (http) return `http-${http[1]}`;
  if (b[0] === 0x15 && b.length >= 7) return `tls-alert-${b[6]}`;
  if (b[0] === 0x16 && b.length >= 6) return b[5] === 2 ? 'tls-server-hello' : `tls-handshake-${b[5]}`;
  return 'bytes';
}

/** The common shape of every attack's result (one JSON line from the CLI). */
export interface AttackResult {
  attack: string;
  target: string;
  /** The stated rate, in the attack's unit (connections/s, packets/s, …). */
  rate: number;
  rateUnit: string;
  durationMs: number;
  [k: string]: unknown;
}
