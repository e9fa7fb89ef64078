/**
 * A small Kubernetes REST client (node:http/https, no SDK): get, list with label selectors, watch,
 * server-side apply with a field manager, status patches and deletes. It speaks to the real API
 * server in a pod (service-account token and CA) and to the HTTP fake in the tests.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { KubeApiError, type K8sObject } from '@rvpn/k8s-render';

export { KubeApiError };

const PLURALS: Record<string, string> = {
  Deployment: 'deployments', StatefulSet: 'statefulsets', Service: 'services', ConfigMap: 'configmaps', Secret: 'secrets',
  NetworkPolicy: 'networkpolicies', PodDisruptionBudget: 'poddisruptionbudgets', ServiceMonitor: 'servicemonitors',
  PrometheusRule: 'prometheusrules', ShootVpn: 'shootvpns', ServiceAccount: 'serviceaccounts',
};

/** The REST path of a collection (namespace undefined: all namespaces) or of one object. */
export function resourcePath(apiVersion: string, kind: string, namespace?: string, name?: string): string {
  const plural = PLURALS[kind];
  if (!plural) throw new KubeApiError(`no REST mapping for kind ${kind}`);
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return `${base}${namespace ? `/namespaces/${namespace}` : ''}/${plural}${name ? `/${name}` : ''}`;
}

export interface KubeClientOptions {
  server: string;
  token?: string;
  ca?: Buffer;
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'ERROR';
  object: K8sObject & { metadata: { resourceVersion?: string; code?: number } } & { code?: number };
}

export class KubeClient {
  constructor(private readonly opts: KubeClientOptions) {}

  /** In a pod: the service account's token and CA. */
  static inCluster(): KubeClient {
    const dir = '/var/run/secrets/kubernetes.io/serviceaccount';
    const host = process.env.KUBERNETES_SERVICE_HOST;
    const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
    if (!host) throw new KubeApiError('not in a cluster (KUBERNETES_SERVICE_HOST unset); set KUBE_API_SERVER');
    return new KubeClient({ server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, token: readFileSync(`${dir}/token`, 'utf8').trim(), ca: readFileSync(`${dir}/ca.crt`) });
  }

  private request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; json: unknown }> {
    const url = new URL(path, this.opts.server);
    const lib = url.protocol === 'https:' ? https : http;
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = lib.request(url, {
        method,
        headers: { accept: 'application/json', ...(data ? { 'content-type': contentType, 'content-length': data.length } : {}), ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}) },
        ...(this.opts.ca ? { ca: this.opts.ca } : {}),
        timeout: 30_000,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = { message: text };
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      });
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', (err) => reject(new KubeApiError(`${method} ${path}: ${err.message}`, { cause: err })));
      if (data) req.end(data);
      else req.end();
    });
  }

  private fail(method: string, path: string, r: { status: number; json: unknown }): never {
    const msg = (r.json as { message?: string } | undefined)?.message ?? '';
    throw new KubeApiError(`${method} ${path}: ${r.status} ${msg}`, { details: { status: r.status } });
  }

  async get<T = K8sObject>(path: string): Promise<T | undefined> {
    const r = await this.request('GET', path);
    if (r.status === 404) return undefined;
    if (r.status !== 200) this.fail('GET', path, r);
    return r.json as T;
  }

  async list<T = K8sObject>(path: string, labelSelector?: string): Promise<{ items: T[]; resourceVersion: string }> {
    const p = labelSelector ? `${path}?labelSelector=${encodeURIComponent(labelSelector)}` : path;
    const r = await this.request('GET', p);
    if (r.status === 404) return { items: [], resourceVersion: '' };
    if (r.status !== 200) this.fail('GET', p, r);
    const j = r.json as { items: T[]; metadata?: { resourceVersion?: string } };
    return { items: j.items ?? [], resourceVersion: j.metadata?.resourceVersion ?? '' };
  }

  /** Server-side apply: the object as this field manager wants it (force: the operator owns its fields). */
  async apply(obj: K8sObject, fieldManager: string): Promise<K8sObject> {
    const path = `${resourcePath(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name)}?fieldManager=${encodeURIComponent(fieldManager)}&force=true`;
    const r = await this.request('PATCH', path, obj, 'application/apply-patch+yaml');
    if (r.status !== 200 && r.status !== 201) this.fail('PATCH', path, r);
    return r.json as K8sObject;
  }

  async patchStatus(obj: { apiVersion: string; kind: string; metadata: { namespace?: string; name: string } }, status: unknown): Promise<void> {
    const path = `${resourcePath(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name)}/status`;
    const r = await this.request('PATCH', path, { status }, 'application/merge-patch+json');
    if (r.status !== 200) this.fail('PATCH', path, r);
  }

  async delete(path: string): Promise<void> {
    const r = await this.request('DELETE', path);
    if (r.status !== 200 && r.status !== 202 && r.status !== 404) this.fail('DELETE', path, r);
  }

  /**
   * Watches a collection from `resourceVersion`; resolves when the stream ends (the caller re-lists on
   * a 410 Gone ERROR event or any end, level-based). Events arrive one JSON object per line.
   */
  watch(path: string, resourceVersion: string, onEvent: (e: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const url = new URL(`${path}?watch=1&allowWatchBookmarks=false&resourceVersion=${encodeURIComponent(resourceVersion)}`, this.opts.server);
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      const req = lib.request(url, { headers: { accept: 'application/json', ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}) }, ...(this.opts.ca ? { ca: this.opts.ca } : {}), signal }, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (line) {
              try {
                onEvent(JSON.parse(line) as WatchEvent);
              } catch {
                /* a broken line ends nothing: the next re-list repairs the view */
              }
            }
          }
        });
        res.on('end', () => resolve());
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
  }
}
