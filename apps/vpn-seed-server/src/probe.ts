import net from 'node:net';

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

/**
 * Probes a path by opening a TCP connection: an accepted connection or a refusal (RST) both prove
 * that packets went out and an answer came back; only silence (timeout) or an unreachable route
 * means the path is broken. Needs no listener on the far side and no raw sockets.
 */
export function probeTcpPath(opts: { host: string; port: number; timeoutMs: number }): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = net.connect({ host: opts.host, port: opts.port });
    const done = (r: ProbeResult) => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, detail: `no answer from ${opts.host} within ${opts.timeoutMs} ms` }), opts.timeoutMs);
    s.once('connect', () => done({ ok: true, detail: `${opts.host} accepted` }));
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') done({ ok: true, detail: `${opts.host} answered (refused)` });
      else done({ ok: false, detail: `${opts.host}: ${err.code ?? err.message}` });
    });
  });
}
