/** The NetworksValid condition and status.networkMapping (issue 12), from libs/config's mapping of the rendered env. */
import { describe, expect, it } from 'vitest';
import type { VpnSpec } from '@rvpn/k8s-render';
import { networksOutcome, reasonOf } from './networks.js';
import { spec } from './testing/harness.js';

const withNetworks = (n: Partial<VpnSpec['networks']>): VpnSpec => ({ ...spec, networks: { ...spec.networks, ...n } });
/** The seed uses Gardener's defaults for its pods, as the shoot does. */
const overlapping = withNetworks({ seedPods: '100.96.0.0/11' });

describe('networksOutcome', () => {
  it('no overlap: NetworksValid True, NotMapped; the identity mapping in status', () => {
    const o = networksOutcome(spec);
    expect(o).toMatchObject({ invalid: false, condition: { type: 'NetworksValid', status: 'True', reason: 'NotMapped' } });
    expect(o.networkMapping).toEqual({ mode: 'auto', families: [expect.objectContaining({ family: 4, active: false, reason: 'none' })] });
  });

  it('an overlap (or mode always): Mapped, with where each network lands', () => {
    const o = networksOutcome(overlapping);
    expect(o.condition).toEqual({
      type: 'NetworksValid', status: 'True', reason: 'Mapped',
      message: 'IPv4 mapped (overlap): seedPods 100.96.0.0/11 -> 241.0.0.0/11, shootNodes 10.250.0.0/16 -> 242.0.0.0/16, shootServices 100.64.0.0/13 -> 243.0.0.0/13, shootPods 100.96.0.0/11 -> 244.0.0.0/11',
    });
    expect(o.networkMapping?.families[0]).toMatchObject({ active: true, reason: 'overlap' });
    // a seed node network that overlaps counts too
    expect(networksOutcome(withNetworks({ seedNodes: ['10.250.0.0/16'] })).condition.reason).toBe('Mapped');
    expect(networksOutcome(withNetworks({ mapping: { mode: 'always' } })).networkMapping?.families[0]?.reason).toBe('always');
  });

  it('a mapping that cannot be built: False with the coded error as reason and every code in the message; invalid', () => {
    const never = networksOutcome(withNetworks({ seedPods: '100.96.0.0/11', mapping: { mode: 'never' } }));
    expect(never).toMatchObject({ invalid: true, networkMapping: undefined, condition: { status: 'False', reason: 'MappingOverlapNotAllowed' } });
    expect(never.condition.message).toMatch(/^RVPN_ERR_MAPPING_OVERLAP_NOT_ALLOWED: IPv4: shootPods 100\.96\.0\.0\/11 overlaps seedPods/);
    const noFit = networksOutcome(withNetworks({ pods: ['64.0.0.0/6'], mapping: { mode: 'always' } }));
    expect(noFit.condition).toMatchObject({ status: 'False', reason: 'MappingNoFit', message: expect.stringContaining('RVPN_ERR_MAPPING_NO_FIT') });
    const reserved = networksOutcome(withNetworks({ nodes: ['242.0.0.0/16'] }));
    expect(reserved.condition).toMatchObject({ status: 'False', reason: 'MappingReservedRange' });
    const badPrefix = networksOutcome(withNetworks({ mapping: { ipv6: { shootPods: '244.0.0.0/8' } } }));
    expect(badPrefix.condition).toMatchObject({ status: 'False', reason: 'MappingPrefixConflict' });
  });

  it('a variable the apps cannot parse (the CRD pattern is loose): ConfigInvalid', () => {
    expect(networksOutcome(withNetworks({ seedNodes: ['10.250.0.1/16'] })).condition).toMatchObject({ status: 'False', reason: 'ConfigInvalid', message: expect.stringContaining('SEED_NODE_NETWORKS') });
  });

  it('maps in every direction: classic and reversed HA alike', () => {
    expect(networksOutcome(overlapping)).toMatchObject({ invalid: false, condition: { status: 'True', reason: 'Mapped' } });
    expect(networksOutcome(spec).invalid).toBe(false);
  });

  it('reasonOf turns a code into a CamelCase reason', () => {
    expect(reasonOf('RVPN_ERR_MAPPING_NO_FIT')).toBe('MappingNoFit');
  });
});
