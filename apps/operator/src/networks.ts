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
 *   MappingNoFit, the message listing every `CODE: problem`. Every data path applies the mapping
 *   (reversed and classic, HA or not), so the direction does not matter here.
 */
import { networkMappingOf, type VpnSpec } from '@rvpn/k8s-render';
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

export function networksOutcome(spec: VpnSpec): NetworksOutcome {
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
  return { condition: { type: 'NetworksValid', status: 'True', reason: 'Mapped', message: described }, networkMapping: json, invalid: false };
}
