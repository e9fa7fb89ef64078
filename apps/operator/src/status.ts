/**
 * ShootVpn status, written only when it changes (apimachinery's meta.SetStatusCondition semantics):
 * a condition's lastTransitionTime moves only when its status moves; reason, message and
 * observedGeneration are updated in place. `nextStatus` merges the computed conditions into the
 * current status; `statusPatch` is the merge patch from the current to the next status, or undefined
 * when they are equal — then nothing is written.
 */
import { stableJson } from './applier.js';

export type ConditionType = 'Ready' | 'TunnelConnected' | 'CertificatesValid' | 'ApiserverWired' | 'ShootApplied' | 'NetworksValid';
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface ShootVpnStatus {
  observedGeneration?: number;
  reversed?: boolean;
  ha?: boolean;
  conditions?: Condition[];
  [key: string]: unknown;
}

export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

/** Kubernetes serializes times to the second. */
export const rfc3339 = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;

export function setCondition(conditions: Condition[], next: ConditionInput, generation: number | undefined, now: Date): Condition[] {
  const old = conditions.find((c) => c.type === next.type);
  const c: Condition = {
    ...next,
    lastTransitionTime: old && old.status === next.status ? old.lastTransitionTime : rfc3339(now),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  return old ? conditions.map((x) => (x.type === next.type ? c : x)) : [...conditions, c];
}

/**
 * The next status: `fields` replace top-level fields (undefined removes one), `conditions` are set one
 * by one; `drop` removes condition types that no longer apply.
 */
export function nextStatus(current: ShootVpnStatus | undefined, update: { generation?: number; fields?: Record<string, unknown>; conditions: ConditionInput[]; drop?: ConditionType[] }, now: Date): ShootVpnStatus {
  let conditions = (current?.conditions ?? []).filter((c) => !update.drop?.includes(c.type));
  for (const c of update.conditions) conditions = setCondition(conditions, c, update.generation, now);
  const order: ConditionType[] = ['Ready', 'TunnelConnected', 'CertificatesValid', 'ApiserverWired', 'ShootApplied', 'NetworksValid'];
  conditions.sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type));
  const out: ShootVpnStatus = { ...(current ?? {}), ...(update.generation !== undefined ? { observedGeneration: update.generation } : {}) };
  for (const [k, v] of Object.entries(update.fields ?? {})) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  out.conditions = conditions;
  return out;
}

/** The JSON merge patch turning `current` into `next` (removed fields as null), or undefined when equal. */
export function statusPatch(current: ShootVpnStatus | undefined, next: ShootVpnStatus): Record<string, unknown> | undefined {
  if (stableJson(current ?? {}) === stableJson(next)) return undefined;
  const patch: Record<string, unknown> = { ...next };
  for (const k of Object.keys(current ?? {})) if (!(k in next)) patch[k] = null;
  return patch;
}
