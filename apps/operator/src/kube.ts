/**
 * The operator's view of a Kubernetes API server, on @kubernetes/client-node: KubeConfig (kubeconfig
 * file or in-cluster ServiceAccount), KubernetesObjectApi for any kind (server-side apply, read, list,
 * delete), CustomObjectsApi for the ShootVpn's status and finalizer patches, AppsV1Api for the
 * kube-apiserver wiring (JSON patch). Errors become KubeApiError with the HTTP status in `details`.
 *
 * In-cluster credentials: client-node's in-cluster config reads the projected token file through its
 * FileAuth, which re-reads the file when it is older than 60 s (client-go does the same); the kubelet
 * rewrites it at 80 % of the token's life, so a rotated token is used long before the old one expires.
 */
import {
  ApiException, AppsV1Api, CustomObjectsApi, KubeConfig, KubernetesObjectApi, PatchStrategy, setHeaderOptions,
  type KubernetesObject,
} from '@kubernetes/client-node';
// not in the package's index, but its documented way to (de)serialize kinds as they are
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { CRD_GROUP, CRD_KIND, CRD_PLURAL, CRD_VERSION, KubeApiError, type K8sObject } from '@rvpn/k8s-render';

export { KubeApiError };

/**
 * client-node 1.2 to 1.4 send and read the kinds it has models for through those models, which drops
 * every field whose TypeScript name differs from its JSON name — a NetworkPolicy's ingress `from`
 * (`_from` in the model) vanishes, and the policy then admits everyone (kubernetes-client/javascript
 * #2825; found by this operator's tests against a real API server). The kinds the operator applies and
 * reads are registered to pass through as plain JSON, exactly as rendered and as stored.
 */
const RAW_KINDS: Array<[string, string]> = [
  ['v1', 'Secret'], ['v1', 'ConfigMap'], ['v1', 'Service'], ['v1', 'ServiceAccount'], ['apps/v1', 'Deployment'], ['apps/v1', 'StatefulSet'],
  ['networking.k8s.io/v1', 'NetworkPolicy'], ['policy/v1', 'PodDisruptionBudget'], ['monitoring.coreos.com/v1', 'ServiceMonitor'],
  ['monitoring.coreos.com/v1', 'PrometheusRule'], [`${CRD_GROUP}/${CRD_VERSION}`, CRD_KIND],
];
const passThrough = { serialize: (data: unknown) => data, deserialize: (data: unknown) => data };
let registered = false;
function registerRawKinds() {
  if (registered) return;
  registered = true;
  for (const [apiVersion, kind] of RAW_KINDS) {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') as [string, string] : ['', apiVersion];
    for (const k of [kind, `${kind}List`]) {
      try {
        ObjectSerializer.registerModel({ group, version, kind: k }, passThrough);
      } catch {
        /* registered by another copy of this module */
      }
    }
  }
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

/** What the API server returns: a K8sObject with the server's metadata. */
export interface LiveObject extends K8sObject {
  metadata: K8sObject['metadata'] & {
    resourceVersion?: string;
    uid?: string;
    generation?: number;
    deletionTimestamp?: string | Date;
    finalizers?: string[];
    ownerReferences?: unknown[];
    managedFields?: Array<{ manager?: string; operation?: string; subresource?: string; fieldsV1?: unknown; time?: unknown }>;
  };
}

/** The HTTP status of a failed call (ApiException, a watch error, or a wrapped KubeApiError). */
export function statusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const e = err as { statusCode?: number; details?: { status?: number }; code?: unknown } | undefined;
  return e?.statusCode ?? e?.details?.status ?? (typeof e?.code === 'number' ? e.code : undefined);
}

/** Wraps any API failure into KubeApiError (`details.status`, the server's message, the call). */
export function kubeError(what: string, err: unknown): Error {
  if (KubeApiError.is(err)) return err;
  const status = statusOf(err);
  let body = err instanceof ApiException ? (err.body as { message?: string; reason?: string } | string | undefined) : undefined;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body) as { message?: string; reason?: string };
    } catch {
      /* plain text */
    }
  }
  const message = typeof body === 'object' && body?.message ? body.message : typeof body === 'string' && body ? body.slice(0, 300) : (err as Error)?.message;
  return new KubeApiError(`${what}: ${status ?? 'no response'}${message ? ` ${message}` : ''}`, { cause: err, details: { status, reason: typeof body === 'object' ? body?.reason : undefined } });
}

const describe = (o: ObjectRef) => `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;

/**
 * Loads credentials the way kubectl does: $KUBECONFIG, else ~/.kube/config, else the in-cluster
 * ServiceAccount. client-node falls back to http://localhost:8080 when it finds none; the operator's
 * config check refuses that case before we get here.
 */
export function loadKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

/** A KubeConfig from a kubeconfig document (the shoot's, from a Secret). */
export function kubeConfigFromString(text: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(text);
  if (!kc.getCurrentCluster()) throw new KubeApiError('the kubeconfig has no current cluster');
  return kc;
}

export class Kube {
  readonly objects: KubernetesObjectApi;
  readonly custom: CustomObjectsApi;
  readonly apps: AppsV1Api;

  constructor(readonly kc: KubeConfig) {
    registerRawKinds();
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.apps = kc.makeApiClient(AppsV1Api);
  }

  /** The server this client talks to (for logs). */
  get server(): string {
    return this.kc.getCurrentCluster()?.server ?? '';
  }

  /** The object, or undefined when it does not exist. */
  async get<T extends LiveObject = LiveObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      const header = { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.metadata.name, ...(ref.metadata.namespace ? { namespace: ref.metadata.namespace } : {}) } };
      return (await this.objects.read(header as never)) as unknown as T;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw kubeError(`get ${describe(ref)}`, err);
    }
  }

  /** Server-side apply: the object as this field manager wants it; `force` takes fields from other managers. */
  async apply<T extends LiveObject = LiveObject>(obj: K8sObject, fieldManager: string, opts: { force?: boolean } = {}): Promise<T> {
    try {
      return (await this.objects.patch(obj as KubernetesObject, undefined, undefined, fieldManager, opts.force ?? true, PatchStrategy.ServerSideApply)) as unknown as T;
    } catch (err) {
      throw kubeError(`apply ${describe(obj)}`, err);
    }
  }

  /** Every object of a kind (in a namespace, or in all), with apiVersion and kind filled in. */
  async list<T extends LiveObject = LiveObject>(apiVersion: string, kind: string, opts: { namespace?: string; labelSelector?: string } = {}): Promise<T[]> {
    try {
      const r = await this.objects.list(apiVersion, kind, opts.namespace, undefined, undefined, undefined, undefined, opts.labelSelector);
      return r.items.map((i) => ({ ...(i as object), apiVersion, kind }) as unknown as T);
    } catch (err) {
      if (statusOf(err) === 404) return []; // the kind is not served (e.g. no prometheus-operator CRDs)
      throw kubeError(`list ${kind}${opts.namespace ? ` in ${opts.namespace}` : ''}`, err);
    }
  }

  /** Deletes an object; false when it was already gone. */
  async delete(ref: ObjectRef): Promise<boolean> {
    try {
      await this.objects.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.metadata.name, namespace: ref.metadata.namespace } } as KubernetesObject);
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw kubeError(`delete ${describe(ref)}`, err);
    }
  }

  /** A JSON merge patch of a ShootVpn's status subresource. */
  async patchShootVpnStatus(ref: { namespace: string; name: string }, status: Record<string, unknown>): Promise<void> {
    try {
      await this.custom.patchNamespacedCustomObjectStatus({ group: CRD_GROUP, version: CRD_VERSION, plural: CRD_PLURAL, namespace: ref.namespace, name: ref.name, body: { status } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    } catch (err) {
      throw kubeError(`patch status of ShootVpn ${ref.namespace}/${ref.name}`, err);
    }
  }

  /** A JSON patch (RFC 6902) of a ShootVpn (its finalizers), guarded by `test` operations. */
  async jsonPatchShootVpn(ref: { namespace: string; name: string }, ops: unknown[]): Promise<void> {
    try {
      await this.custom.patchNamespacedCustomObject({ group: CRD_GROUP, version: CRD_VERSION, plural: CRD_PLURAL, namespace: ref.namespace, name: ref.name, body: ops }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
    } catch (err) {
      throw kubeError(`patch ShootVpn ${ref.namespace}/${ref.name}`, err);
    }
  }

  /** A JSON patch (RFC 6902) of a Deployment (the kube-apiserver wiring), guarded by `test` operations. */
  async jsonPatchDeployment(ref: { namespace: string; name: string }, ops: unknown[], fieldManager: string): Promise<void> {
    try {
      await this.apps.patchNamespacedDeployment({ namespace: ref.namespace, name: ref.name, body: ops, fieldManager }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
    } catch (err) {
      throw kubeError(`patch Deployment ${ref.namespace}/${ref.name}`, err);
    }
  }
}
