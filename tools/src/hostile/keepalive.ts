/**
 * A light tunnel client that measures what the attacks must not disturb: it keeps one session up
 * (reconnecting when it drops, which counts as a reconnect), sends its own PING every `intervalMs`
 * and reports every round trip. It carries no packets: it stands for another shoot's tunnel (or
 * another HA endpoint) sharing sni-proxy / the seed server with the attacked one.
 */
import type { HelloBody } from '@rvpn/tunnel';
import { sleep } from './common.js';
import { dialTls, handshake, type HandSession } from './tunnel-client.js';
import type { TunnelTarget } from './tunnel-attacks.js';

export interface KeepaliveSample {
  /** Wall clock (ms since the epoch) when the PONG arrived. */
  t: number;
  rtt: number;
}

export interface KeepaliveEvent {
  t: number;
  event: 'up' | 'down' | 'dial-failed';
  detail?: string;
}

export class KeepaliveMonitor {
  private session: HandSession | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  ups = 0;

  constructor(private readonly opts: TunnelTarget & { hello: () => HelloBody; intervalMs: number; onSample: (s: KeepaliveSample) => void; onEvent: (e: KeepaliveEvent) => void }) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Sessions after the first one. */
  get reconnects(): number {
    return Math.max(0, this.ups - 1);
  }

  private async run() {
    while (!this.stopped) {
      try {
        const t = await dialTls({ target: this.opts.target, viaHeader: this.opts.viaHeader, localAddress: this.opts.sources?.[0], servername: this.opts.servername, tls: this.opts.tls! });
        const h = await handshake(t, this.opts.hello(), { events: { onRtt: (rtt) => this.opts.onSample({ t: Date.now(), rtt }) } });
        if (!h.ok) throw new Error(`refused: ${h.code} ${h.message}`);
        this.session = h.session;
        this.ups++;
        this.opts.onEvent({ t: Date.now(), event: 'up' });
        h.session.startPings(this.opts.intervalMs);
        const end = await h.session.closed;
        this.session = undefined;
        if (!this.stopped) this.opts.onEvent({ t: Date.now(), event: 'down', detail: `${end.reason}${end.code ? ` (${end.code})` : ''}` });
      } catch (err) {
        if (!this.stopped) this.opts.onEvent({ t: Date.now(), event: 'dial-failed', detail: (err as Error).message });
      }
      if (!this.stopped) await sleep(200);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.session?.close();
    await this.loop;
  }
}
