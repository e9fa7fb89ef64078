/**
 * A TCP probe THROUGH one shoot pod: connect from a local port in that path's range (the firewall
 * marks those ports and policy routing sends them via that pod). An accept or a refusal (RST) both
 * prove the pod forwards; a timeout or an ICMP error is a miss. The probe runs in the native addon
 * (@rvpn/tunnel tcpProbe): no net.Socket and no Error per probe, which kept an idle path-controller's
 * heap growing between collections; it closes with an RST, so no TIME_WAIT blocks the port when it
 * comes round again.
 */
import { tcpProbe } from '@rvpn/tunnel';

export interface ProbeResult {
  ok: boolean;
  rttMs: number;
  detail: string;
}

export async function probeThrough(opts: { host: string; port: number; localPort: number; timeoutMs: number }): Promise<ProbeResult> {
  const t0 = performance.now();
  try {
    const r = await tcpProbe(opts);
    switch (r.outcome) {
      case 'connected': return { ok: true, rttMs: r.rttMs, detail: 'accepted' };
      case 'refused': return { ok: true, rttMs: r.rttMs, detail: 'refused (the shoot answered)' };
      case 'timeout': return { ok: false, rttMs: r.rttMs, detail: `no answer within ${opts.timeoutMs} ms` };
      default: return { ok: false, rttMs: r.rttMs, detail: r.code ?? 'error' };
    }
  } catch (err) {
    // no socket could be made (EMFILE, ENFILE): a miss, as net.connect's 'error' was
    return { ok: false, rttMs: performance.now() - t0, detail: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
}
