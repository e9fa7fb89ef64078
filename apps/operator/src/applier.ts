/**
 * Server-side apply without needless writes. Each object is applied with the operator's field manager
 * and carries a hash of what was applied (annotation `vpn.reversed-vpn.dev/applied-hash`). Before
 * applying, the live object is read; nothing is sent when its hash equals the desired one, the
 * operator still has its Apply entry in managedFields, and the live object still holds every value
 * the operator sets (`covers`: defaults the server added and fields or list entries of other managers
 * do not count). So an idle operator writes nothing, and a value another manager changed (say
 * `kubectl scale` on spec.replicas) makes the next reconcile apply again, with force, and take it back.
 *
 * Secrets are sent with `data` (stringData converted), so a key that leaves the desired object is
 * removed by the API server (with stringData, apply cannot own the keys and removed ones would linger).
 */
import { createHash } from 'node:crypto';
import type { K8sObject } from '@rvpn/k8s-render';
import type { Kube, LiveObject } from './kube.js';

export const HASH_ANNOTATION = 'vpn.reversed-vpn.dev/applied-hash';

/** JSON with sorted keys: the same object always hashes the same. */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** A Secret's stringData moved into data (base64); other objects unchanged. Returns a copy. */
export function withSecretData(obj: K8sObject): K8sObject {
  const o = structuredClone(obj);
  if (o.kind === 'Secret' && o.apiVersion === 'v1' && o.stringData) {
    const data = { ...((o.data as Record<string, string> | undefined) ?? {}) };
    for (const [k, v] of Object.entries(o.stringData as Record<string, string>)) data[k] = Buffer.from(v).toString('base64');
    delete o.stringData;
    o.data = data;
  }
  return o;
}

export type ApplyResult = 'created' | 'updated' | 'unchanged';

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/**
 * Whether `live` still holds what `want` sets: maps key by key (extra live keys are defaults or other
 * managers'), list entries with a `name` (or `uid`) matched by it, other list entries by position or,
 * for scalars, by membership (extra live entries are someone else's).
 */
export function covers(live: unknown, want: unknown): boolean {
  // the server drops empty lists and maps (omitempty): an absent one holds an empty one
  if (Array.isArray(want) && want.length === 0) return live === undefined || live === null || (Array.isArray(live) && live.length === 0);
  if (isMap(want) && Object.keys(want).length === 0) return live === undefined || live === null || isMap(live);
  if (Array.isArray(want)) {
    if (!Array.isArray(live)) return false;
    return want.every((w, i) => {
      if (isMap(w) && (typeof w.name === 'string' || typeof w.uid === 'string')) {
        const k = typeof w.name === 'string' ? 'name' : 'uid';
        return live.some((l) => isMap(l) && l[k] === w[k] && covers(l, w));
      }
      return isMap(w) || Array.isArray(w) ? covers(live[i], w) : live.includes(w);
    });
  }
  if (isMap(want)) return isMap(live) && Object.entries(want).every(([k, w]) => w === undefined || covers(live[k], w));
  return live === want;
}

export class Applier {
  constructor(private readonly kube: Kube, readonly fieldManager: string, private readonly onResult?: (r: ApplyResult, o: K8sObject) => void) {}

  private ownEntry(live: LiveObject) {
    return live.metadata.managedFields?.find((m) => m.manager === this.fieldManager && m.operation === 'Apply' && !m.subresource);
  }

  /** The object as it will be sent (data instead of stringData, the hash annotation set). */
  desired(obj: K8sObject): K8sObject {
    const o = withSecretData(obj);
    const annotations = { ...(o.metadata.annotations ?? {}) };
    delete annotations[HASH_ANNOTATION];
    o.metadata = { ...o.metadata, annotations };
    const hash = sha256(stableJson(o));
    o.metadata.annotations = { ...annotations, [HASH_ANNOTATION]: hash };
    return o;
  }

  async apply(obj: K8sObject): Promise<ApplyResult> {
    const desired = this.desired(obj);
    const live = await this.kube.get(desired);
    if (live && live.metadata.annotations?.[HASH_ANNOTATION] === desired.metadata.annotations![HASH_ANNOTATION] && this.ownEntry(live) && covers(live, desired)) {
      this.onResult?.('unchanged', desired);
      return 'unchanged';
    }
    await this.kube.apply(desired, this.fieldManager);
    const r: ApplyResult = live ? 'updated' : 'created';
    this.onResult?.(r, desired);
    return r;
  }

  /**
   * Deletes the objects of `kinds` matching `labelSelector` (in `namespace`) that `keep` does not name
   * (`Kind/name`). Returns what it deleted.
   */
  async prune(opts: { namespace: string; labelSelector: string; kinds: Array<[string, string]>; keep: Set<string> }): Promise<string[]> {
    const deleted: string[] = [];
    for (const [apiVersion, kind] of opts.kinds) {
      for (const o of await this.kube.list(apiVersion, kind, { namespace: opts.namespace, labelSelector: opts.labelSelector })) {
        const id = `${kind}/${o.metadata.name}`;
        if (opts.keep.has(id)) continue;
        if (await this.kube.delete(o)) deleted.push(id);
      }
    }
    return deleted;
  }
}
