/**
 * An HTTP fake of the Kubernetes API, enough for the operator's tests (REST level, in memory):
 * - GET of an object (404 when missing), LIST with equality label selectors, returning a list
 *   resourceVersion; WATCH (`?watch=1`) streaming ADDED/MODIFIED/DELETED events after a resourceVersion,
 *   or an ERROR event with code 410 (Gone) when that version is older than the retained history;
 * - server-side apply (PATCH application/apply-patch+yaml, `fieldManager` required): creates, or
 *   replaces every top-level field but metadata and status and merges labels/annotations; bumps
 *   resourceVersion, and generation when the spec changed; records the manager in managedFields;
 * - PUT with a stale metadata.resourceVersion → 409 Conflict; status merge-patches on /status;
 *   DELETE; every request counted.
 * NOT implemented (unverified against this fake): per-field ownership and apply conflicts between
 * managers, strategic merge of lists, defaulting, admission, ownerReference garbage collection.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

interface Stored {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name: string; namespace?: string; resourceVersion: string; generation: number; labels?: Record<string, string>; annotations?: Record<string, string>; uid: string; creationTimestamp: string; managedFields?: unknown[] };
  [k: string]: unknown;
}

interface Event { rv: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; collection: string; ns: string | undefined; object: Stored }

const KIND_OF: Record<string, string> = {
  deployments: 'Deployment', statefulsets: 'StatefulSet', services: 'Service', configmaps: 'ConfigMap', secrets: 'Secret', networkpolicies: 'NetworkPolicy',
  poddisruptionbudgets: 'PodDisruptionBudget', servicemonitors: 'ServiceMonitor', prometheusrules: 'PrometheusRule', shootvpns: 'ShootVpn', serviceaccounts: 'ServiceAccount',
};

export class FakeKubeApi {
  private server: http.Server | undefined;
  private readonly store = new Map<string, Stored>();
  private readonly events: Event[] = [];
  private rv = 1;
  private uid = 0;
  private readonly watchers = new Set<{ collection: string; ns: string | undefined; res: http.ServerResponse }>();
  /** Oldest resourceVersion a watch may start from (older: 410 Gone). */
  historyStart = 0;
  readonly requests: Array<{ method: string; path: string }> = [];

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }

  /** Every stored object of a kind (tests look at the store directly). */
  objects(kind?: string): Stored[] {
    return [...this.store.values()].filter((o) => !kind || o.kind === kind);
  }

  /** Forgets the event history (so a watch from an old version gets 410 Gone). */
  compact(): void {
    this.historyStart = this.rv;
    this.events.length = 0;
  }

  private parse(path: string) {
    // /api/v1[/namespaces/ns]/plural[/name[/status]] or /apis/g/v[/namespaces/ns]/plural[/name[/status]]
    const m = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(\/status)?$/.exec(path);
    if (!m) return undefined;
    const apiVersion = m[1] ?? m[2]!;
    return { apiVersion, ns: m[3], plural: m[4]!, name: m[5], status: !!m[6], collection: `${apiVersion}/${m[4]}` };
  }

  private key(collection: string, ns: string | undefined, name: string) {
    return `${collection}/${ns ?? ''}/${name}`;
  }

  private emit(type: Event['type'], collection: string, ns: string | undefined, object: Stored) {
    const e = { rv: Number(object.metadata.resourceVersion), type, collection, ns, object: structuredClone(object) };
    this.events.push(e);
    for (const w of this.watchers) if (w.collection === collection && (!w.ns || w.ns === ns)) w.res.write(`${JSON.stringify({ type, object: e.object })}\n`);
  }

  private async body(req: http.IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const t = Buffer.concat(chunks).toString('utf8');
    return t ? JSON.parse(t) : undefined;
  }

  private send(res: http.ServerResponse, status: number, obj: unknown) {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(obj));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push({ method: req.method ?? '', path: url.pathname });
    const p = this.parse(url.pathname);
    if (!p || !KIND_OF[p.plural]) return this.send(res, 404, { kind: 'Status', code: 404, message: `no route ${url.pathname}` });
    const kind = KIND_OF[p.plural]!;
    try {
      if (req.method === 'GET' && !p.name && url.searchParams.get('watch')) return this.watch(p, Number(url.searchParams.get('resourceVersion') ?? '0'), res);
      if (req.method === 'GET' && !p.name) {
        const sel = (url.searchParams.get('labelSelector') ?? '').split(',').filter(Boolean).map((s) => s.split('='));
        const items = [...this.store.entries()]
          .filter(([k]) => k.startsWith(`${p.collection}/${p.ns ?? ''}`) || (!p.ns && k.startsWith(`${p.collection}/`)))
          .map(([, o]) => o)
          .filter((o) => sel.every(([k, v]) => o.metadata.labels?.[k!] === v));
        return this.send(res, 200, { kind: `${kind}List`, apiVersion: p.apiVersion, metadata: { resourceVersion: String(this.rv) }, items });
      }
      const key = this.key(p.collection, p.ns, p.name!);
      const cur = this.store.get(key);
      if (req.method === 'GET') return cur ? this.send(res, 200, cur) : this.send(res, 404, { kind: 'Status', code: 404, message: `${kind} ${p.name} not found` });
      if (req.method === 'DELETE') {
        if (!cur) return this.send(res, 404, { kind: 'Status', code: 404, message: 'not found' });
        this.store.delete(key);
        cur.metadata.resourceVersion = String(++this.rv);
        this.emit('DELETED', p.collection, p.ns, cur);
        return this.send(res, 200, { kind: 'Status', status: 'Success' });
      }
      const body = (await this.body(req)) as Record<string, unknown>;
      if (req.method === 'PATCH' && p.status) {
        if (!cur) return this.send(res, 404, { kind: 'Status', code: 404, message: 'not found' });
        cur.status = { ...(cur.status as object | undefined), ...(body.status as object) };
        cur.metadata.resourceVersion = String(++this.rv);
        this.emit('MODIFIED', p.collection, p.ns, cur);
        return this.send(res, 200, cur);
      }
      if (req.method === 'PATCH') {
        if (req.headers['content-type'] !== 'application/apply-patch+yaml') return this.send(res, 415, { kind: 'Status', code: 415, message: 'only server-side apply is supported' });
        const manager = url.searchParams.get('fieldManager');
        if (!manager) return this.send(res, 422, { kind: 'Status', code: 422, message: 'fieldManager is required for apply' });
        const meta = (body.metadata ?? {}) as Record<string, unknown>;
        if (meta.name !== p.name) return this.send(res, 400, { kind: 'Status', code: 400, message: 'name in body and path differ' });
        const next: Stored = cur
          ? { ...structuredClone(cur), ...Object.fromEntries(Object.entries(body).filter(([k]) => k !== 'metadata' && k !== 'status')) }
          : { ...structuredClone(body), metadata: { name: p.name!, resourceVersion: '0', generation: 1, uid: `uid-${++this.uid}`, creationTimestamp: new Date().toISOString() } } as Stored;
        if (cur) for (const k of Object.keys(cur)) if (k !== 'metadata' && k !== 'status' && !(k in body)) delete next[k];
        next.metadata = { ...next.metadata, ...(p.ns ? { namespace: p.ns } : {}), labels: { ...(cur?.metadata.labels ?? {}), ...(meta.labels as Record<string, string> | undefined) }, annotations: { ...(cur?.metadata.annotations ?? {}), ...(meta.annotations as Record<string, string> | undefined) }, ...(meta.ownerReferences ? { ownerReferences: meta.ownerReferences } : {}) };
        const changed = !cur || JSON.stringify({ ...cur, metadata: undefined, status: undefined }) !== JSON.stringify({ ...next, metadata: undefined, status: undefined }) || JSON.stringify(cur.metadata.labels) !== JSON.stringify(next.metadata.labels);
        if (!changed) return this.send(res, 200, cur);
        if (cur && JSON.stringify(cur.spec) !== JSON.stringify(next.spec)) next.metadata.generation = cur.metadata.generation + 1;
        next.metadata.managedFields = [{ manager, operation: 'Apply', apiVersion: p.apiVersion }];
        next.metadata.resourceVersion = String(++this.rv);
        this.store.set(key, next);
        this.emit(cur ? 'MODIFIED' : 'ADDED', p.collection, p.ns, next);
        return this.send(res, cur ? 200 : 201, next);
      }
      if (req.method === 'PUT') {
        if (!cur) return this.send(res, 404, { kind: 'Status', code: 404, message: 'not found' });
        const meta = (body.metadata ?? {}) as { resourceVersion?: string };
        if (meta.resourceVersion !== cur.metadata.resourceVersion) return this.send(res, 409, { kind: 'Status', code: 409, reason: 'Conflict', message: `the object has been modified (have ${cur.metadata.resourceVersion}, got ${meta.resourceVersion})` });
        const next = { ...(body as Stored), metadata: { ...cur.metadata, ...(body.metadata as object), resourceVersion: String(++this.rv) } } as Stored;
        this.store.set(key, next);
        this.emit('MODIFIED', p.collection, p.ns, next);
        return this.send(res, 200, next);
      }
      return this.send(res, 405, { kind: 'Status', code: 405, message: `${req.method} not supported` });
    } catch (err) {
      return this.send(res, 500, { kind: 'Status', code: 500, message: (err as Error).message });
    }
  }

  private watch(p: { collection: string; ns: string | undefined }, from: number, res: http.ServerResponse) {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (from < this.historyStart) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: `too old resource version: ${from} (${this.historyStart})` } })}\n`);
      return;
    }
    for (const e of this.events) if (e.rv > from && e.collection === p.collection && (!p.ns || e.ns === p.ns)) res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
    const w = { collection: p.collection, ns: p.ns, res };
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }
}
