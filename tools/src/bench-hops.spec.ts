import { describe, expect, it } from 'vitest';
import { hopSteps, icmpBySeq, parseTcpdump, payloadTimes, summarizeHops, HOPS, type Captures } from './bench-hops.js';

const icmp = (t: number, kind: 'request' | 'reply', seq: number) => `${t.toFixed(6)} IP 10.1.0.20 > 100.96.1.10: ICMP echo ${kind}, id 7, seq ${seq}, length 64`;
const tcp = (t: number, len: number) => `${t.toFixed(6)} IP 10.1.0.20.40000 > 10.1.0.10.1194: Flags [P.], seq 1:${len + 1}, ack 1, win 502, length ${len}`;

/** One ping at `t0` whose 13 steps take `steps` µs, as the seven captures would show it. */
function capture(pings: { seq: number; t0: number; steps: number[] }[]): Captures {
  const c: Record<string, string[]> = { seedTun: [], shootTun: [], pod: [], seedOut: [], seedIn: [], lbSeedFromSrv: [], lbSeedToSrv: [], lbWanOut: [], lbWanIn: [], shootIn: [], shootOut: [] };
  for (const p of pings) {
    const at: number[] = [p.t0];
    for (const s of p.steps) at.push(at.at(-1)! + s / 1e6);
    c.seedTun!.push(icmp(at[0]!, 'request', p.seq));
    c.seedOut!.push(tcp(at[1]!, 122), tcp(at[1]! + 0.00001, 0)); // an ACK without payload does not count
    c.lbSeedFromSrv!.push(tcp(at[2]!, 122));
    c.lbWanOut!.push(tcp(at[3]!, 122));
    c.shootIn!.push(tcp(at[4]!, 122));
    c.shootTun!.push(icmp(at[5]!, 'request', p.seq));
    c.pod!.push(icmp(at[6]!, 'request', p.seq), icmp(at[7]!, 'reply', p.seq));
    c.shootTun!.push(icmp(at[8]!, 'reply', p.seq));
    c.shootOut!.push(tcp(at[9]!, 122));
    c.lbWanIn!.push(tcp(at[10]!, 122));
    c.lbSeedToSrv!.push(tcp(at[11]!, 122));
    c.seedIn!.push(tcp(at[12]!, 122));
    c.seedTun!.push(icmp(at[13]!, 'reply', p.seq));
  }
  const rows = (k: string) => parseTcpdump(c[k]!.join('\n') + '\n');
  return {
    seedTun: rows('seedTun'), shootTun: rows('shootTun'), pod: rows('pod'),
    seedOut: payloadTimes(rows('seedOut')), seedIn: payloadTimes(rows('seedIn')), lbSeedFromSrv: payloadTimes(rows('lbSeedFromSrv')), lbSeedToSrv: payloadTimes(rows('lbSeedToSrv')),
    lbWanOut: payloadTimes(rows('lbWanOut')), lbWanIn: payloadTimes(rows('lbWanIn')), shootIn: payloadTimes(rows('shootIn')), shootOut: payloadTimes(rows('shootOut')),
  };
}

const STEPS = [230, 16, 60, 32, 170, 30, 13, 9, 73, 10, 47, 5, 90];

describe('bench-hops: one ping, hop by hop', () => {
  it('parses tcpdump -tt lines and matches echo requests and replies by sequence', () => {
    const rows = parseTcpdump(`${icmp(10.5, 'request', 3)}\nreading from file x.pcap\n${icmp(10.6, 'reply', 3)}\n`);
    expect(rows).toHaveLength(2);
    expect(icmpBySeq(rows, 'request').get(3)).toBe(10.5);
    expect(icmpBySeq(rows, 'reply').get(3)).toBe(10.6);
    expect(payloadTimes(parseTcpdump(`${tcp(2, 0)}\n${tcp(1, 38)}\n`))).toEqual([1]);
  });

  it('takes each ping apart into its 13 steps and sums them per holder', () => {
    const steps = hopSteps(capture([{ seq: 1, t0: 100, steps: STEPS }, { seq: 2, t0: 100.05, steps: STEPS.map((s) => s + 10) }]));
    expect(steps).toHaveLength(2);
    steps[0]!.forEach((s, i) => expect(s).toBeCloseTo(STEPS[i]!, 0));
    const f = summarizeHops(steps);
    expect(f.samples).toBe(2);
    expect(f.hops.map((h) => h.hop)).toEqual(HOPS.map((h) => h.hop));
    expect(f.hops[0]!.median_us).toBeCloseTo(235, 0);
    expect(f.by_holder_median_us.seed_process).toBeCloseTo(230 + 90 + 10, 0);
    expect(f.by_holder_median_us.shoot_process).toBeCloseTo(170 + 73 + 10, 0);
    expect(f.by_holder_median_us.sni_proxy).toBeCloseTo(60 + 47 + 10, 0);
    expect(f.total_median_us).toBeCloseTo(STEPS.reduce((a, b) => a + b, 0) + 65, 0);
  });

  it('leaves out a ping whose chain has a gap or a step of another packet', () => {
    const c = capture([{ seq: 1, t0: 100, steps: STEPS }, { seq: 2, t0: 100.05, steps: STEPS }, { seq: 3, t0: 100.1, steps: STEPS }]);
    // no reply on the shoot's TUN for ping 2 (a gap), and ping 3's reply came 30 ms late (not its packet)
    c.shootTun = c.shootTun.filter((r) => !(r.line.includes('reply') && r.line.includes('seq 2,')));
    c.seedTun = c.seedTun.map((r) => (r.line.includes('reply') && r.line.includes('seq 3,') ? { ...r, t: r.t + 0.03 } : r));
    expect(hopSteps(c)).toHaveLength(1);
    expect(summarizeHops([]).samples).toBe(0);
  });
});
