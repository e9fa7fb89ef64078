import { describe, expect, it } from 'vitest';
import { Cidr, computeNetworkMapping, type PathControllerConfig } from '@rvpn/config';
import { probeDestination } from './path-controller.js';

const cidrs = (...l: string[]) => l.map((c) => Cidr.parse(c));
const mapping = (seedPods: string) => computeNetworkMapping({
  mode: 'auto',
  networks: { seedPods: cidrs(seedPods), shootServices: cidrs('100.64.0.0/13'), shootPods: cidrs('100.96.0.0/11', 'fd10:96::/40'), shootNodes: cidrs('10.250.0.0/16') },
});
const cfg = (seedPods: string, host: string) => ({ mapping: mapping(seedPods), probeTarget: { host, port: 443 } }) as Pick<PathControllerConfig, 'mapping' | 'probeTarget'>;

describe('path-controller under a network mapping (issue 12)', () => {
  it('probes the real PROBE_TARGET at its mapped address, as the proxy dials it', () => {
    expect(probeDestination(cfg('100.96.0.0/11', '100.64.0.1'))).toBe('243.0.0.1');
    expect(probeDestination(cfg('100.96.0.0/11', 'fd10:96::10'))).toBe('fd10:96::10'); // IPv6 overlaps nothing here: not mapped
  });

  it('probes the target as named when nothing is mapped', () => {
    expect(probeDestination(cfg('10.1.0.0/24', '100.64.0.1'))).toBe('100.64.0.1');
  });
});
