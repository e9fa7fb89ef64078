/**
 * Which VPN a shoot gets, from the operator's feature gate and the shoot's annotations (Gardener's
 * semantics): ReversedVPN from the gate unless `alpha.featuregates.shoot.gardener.cloud/reversed-vpn`
 * says "true"/"false"; HA when the control plane tolerates node or zone failures unless
 * `alpha.control-plane.shoot.gardener.cloud/high-availability-vpn` says "true"/"false".
 * HA here is reversed only; a classic shoot asking for HA is a spec error.
 */
import { defineError } from '@rvpn/config';
import type { RenderSettings, VpnSpec } from './types.js';

/** A Kubernetes API call of the operator failed (defined here, with the other Kubernetes-facing codes). */
export const KubeApiError = defineError('RVPN_ERR_KUBE_API', 'A Kubernetes API call failed (status and message in the log); the operator retries with backoff.');

export const SpecInvalidError = defineError('RVPN_ERR_SPEC_INVALID', "The shoot's VPN spec cannot be rendered (the message says which field); the operator marks it terminal until the spec changes.");

export const REVERSED_VPN_ANNOTATION = 'alpha.featuregates.shoot.gardener.cloud/reversed-vpn';
export const HA_VPN_ANNOTATION = 'alpha.control-plane.shoot.gardener.cloud/high-availability-vpn';

export interface VpnMode {
  reversed: boolean;
  ha: boolean;
  /** Why, for the CRD status and logs. */
  reason: string;
}

function boolAnnotation(spec: VpnSpec, key: string): boolean | undefined {
  const v = spec.annotations[key];
  if (v === undefined) return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new SpecInvalidError(`annotation ${key} must be "true" or "false", not ${JSON.stringify(v)}`);
}

export function resolveVpnMode(spec: VpnSpec, settings: Pick<RenderSettings, 'featureGates'>): VpnMode {
  const revAnn = boolAnnotation(spec, REVERSED_VPN_ANNOTATION);
  const haAnn = boolAnnotation(spec, HA_VPN_ANNOTATION);
  const reversed = revAnn ?? settings.featureGates.ReversedVPN;
  const tolerant = spec.highAvailability.failureTolerance !== 'none';
  const ha = haAnn ?? tolerant;
  if (ha && !reversed) {
    throw new SpecInvalidError(`HA VPN (${haAnn !== undefined ? `annotation ${HA_VPN_ANNOTATION}` : `failure tolerance ${spec.highAvailability.failureTolerance}`}) needs the reversed VPN, which is off (${revAnn !== undefined ? `annotation ${REVERSED_VPN_ANNOTATION}` : 'feature gate ReversedVPN'})`);
  }
  const reason = [
    `reversed ${reversed} (${revAnn !== undefined ? 'annotation' : 'feature gate'})`,
    `HA ${ha} (${haAnn !== undefined ? 'annotation' : `failure tolerance ${spec.highAvailability.failureTolerance}`})`,
  ].join(', ');
  return { reversed, ha, reason };
}
