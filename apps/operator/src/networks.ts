/**
 * Overlapping seed and shoot networks (issue 12) in a ShootVpn's status: the mapping the tunnel apps
 * will compute from the env the operator renders for them (libs/k8s-render networkMappingOf, which
 * runs libs/config's own parsing and planNetworkMapping on that env; no second implementation here).
 *
 * - NetworksValid True, reason Mapped: a family is translated; status.networkMapping says where each
 *   network lands, an Event NetworksMapped says it once per change.
 * - NetworksValid True, reason NotMapped: nothing overlaps (auto) or the mapping is off (never).
 * - NetworksValid False (terminal until the spec changes; nothing is applied, no route published, as
 *   the apps would refuse to start): reason from the coded error, e.g. RVPN_ERR_MAPPING_NO_FIT →
 *   MappingNoFit, the message listing every `CODE: problem`; or MappingNotApplied when the mapping
 *   would translate in the classic direction, whose data path does not apply it yet (reversed, HA or
 *   not, does).
 */
import { networkMappingOf, type VpnMode, type VpnSpec } from '@rvpn/k8s-render';
import type { ConditionInput } from './status.js';

export type NetworkMappingJson = ReturnType<NonNullable<ReturnType<typeof networkMappingOf>['mapping']>['toJSON']>;

export interface NetworksOutcome {
  condition: ConditionInput & { type: 'NetworksValid' };
  /** status.networkMapping; undefined when the mapping cannot be built. */
  networkMapping: NetworkMappingJson | undefined;
  /** The apps would refuse to start: do not apply. */
  invalid: boolean;
}

/** RVPN_ERR_MAPPING_NO_FIT → MappingNoFit (a condition reason is CamelCase). */
export const reasonOf = (code: string): string => code.replace(/^RVPN_ERR_/, '').toLowerCase().split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');

export function networksOutcome(spec: VpnSpec, mode: VpnMode): NetworksOutcome {
  const { mapping, errors } = networkMappingOf(spec);
  if (!mapping) {
    const message = errors.map((e) => `${e.code}: ${e.message}`).join('; ');
    return { condition: { type: 'NetworksValid', status: 'False', reason: reasonOf(errors[0]!.code), message }, networkMapping: undefined, invalid: true };
  }
  const json = mapping.toJSON();
  const active = json.families.filter((f) => f.active);
  if (active.length === 0) {
    const why = mapping.mode === 'never' ? 'the mapping is off (mapping.mode never) and nothing overlaps' : 'no seed network overlaps a shoot network (mapping.mode auto)';
    return { condition: { type: 'NetworksValid', status: 'True', reason: 'NotMapped', message: why }, networkMapping: json, invalid: false };
  }
  const described = active.map((f) => `IPv${f.family} mapped (${f.reason}): ${f.networks.join(', ')}`).join('; ');
  if (!mode.reversed) {
    return {
      condition: { type: 'NetworksValid', status: 'False', reason: 'MappingNotApplied', message: `${described}; but the classic direction does not apply the mapping yet (issue 12), and its apps refuse to start: use networks that do not overlap the seed's, or mapping.mode auto` },
      networkMapping: json,
      invalid: true,
    };
  }
  return { condition: { type: 'NetworksValid', status: 'True', reason: 'Mapped', message: described }, networkMapping: json, invalid: false };
}
