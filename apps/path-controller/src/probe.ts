/**
 * A TCP probe THROUGH one shoot pod: connect from a local port in that path's range (the firewall
 * marks those ports and policy routing sends them via that pod). An accept or a refusal (RST) both
 * prove the pod forwards; a timeout or an ICMP error is a miss. The socket is reset, not closed, so
 * no TIME_WAIT blocks the port when it comes round again.
 */
import net from 'node:net';

export interface ProbeResult {
  ok: boolean;
  rttMs: number;
  detail: string;
}

export function probeThrough(opts: { host: string; port: number; localPort: number; timeoutMs: number }): Promise<ProbeResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const s = net.connect({ host: opts.host, port: opts.port, localPort: opts.localPort });
    const finish = (ok: boolean, detail: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!s.destroyed) {
        try {
          s.resetAndDestroy();
        } catch {
          s.destroy();
        }
      }
      resolve({ ok, rttMs: performance.now() - t0, detail });
    };
    const timer = setTimeout(() => finish(false, `no answer within ${opts.timeoutMs} ms`), opts.timeoutMs);
    s.once('connect', () => finish(true, 'accepted'));
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') finish(true, 'refused (the shoot answered)');
      else finish(false, err.code ?? err.message);
    });
  });
}
