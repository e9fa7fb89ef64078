/**
 * The route table: SNI host → upstream, CONNECT header value → upstream, plus the allow-list the
 * header value must also match. Loaded from a JSON file; a reload builds a new immutable table and
 * swaps it in one assignment, so connections already piped are never touched (Gardener #4381) and a
 * bad file leaves the old table in place.
 */
import { readFile } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { RoutesInvalidError } from '@rvpn/proxy';

export { RoutesInvalidError };

export interface Upstream {
  host: string;
  port: number;
}

export interface RouteTable {
  readonly sni: ReadonlyMap<string, Upstream>;
  readonly connect: ReadonlyMap<string, Upstream>;
  readonly allow: readonly RegExp[];
}

function parseUpstream(v: unknown, where: string, problems: string[]): Upstream | undefined {
  if (typeof v !== 'string') {
    problems.push(`${where}: upstream must be a "host:port" string`);
    return undefined;
  }
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(v) ?? /^([^:[\]]+):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    problems.push(`${where}: ${JSON.stringify(v)} is not host:port`);
    return undefined;
  }
  return { host: m[1]!, port: Number(m[2]) };
}

/** Parses and validates a route file's text; throws RoutesInvalidError listing every problem. */
export function parseRoutes(text: string, defaultAllow: readonly string[]): RouteTable {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new RoutesInvalidError(`route file is not JSON: ${(err as Error).message}`);
  }
  const problems: string[] = [];
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RoutesInvalidError('route file must be a JSON object');
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!['sni', 'connect', 'allow'].includes(k)) problems.push(`unknown key ${JSON.stringify(k)} (allowed: sni, connect, allow)`);
  const section = (name: 'sni' | 'connect') => {
    const m = new Map<string, Upstream>();
    const v = d[name] ?? {};
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problems.push(`${name} must be an object of key → "host:port"`);
      return m;
    }
    for (const [k, up] of Object.entries(v)) {
      const u = parseUpstream(up, `${name}[${JSON.stringify(k)}]`, problems);
      if (u) m.set(name === 'sni' ? k.toLowerCase() : k, u);
    }
    return m;
  };
  const sni = section('sni');
  const connect = section('connect');
  let allowSrc: readonly string[] = defaultAllow;
  if (d.allow !== undefined) {
    if (!Array.isArray(d.allow) || !d.allow.every((x) => typeof x === 'string')) problems.push('allow must be an array of regular expressions');
    else allowSrc = d.allow as string[];
  }
  const allow: RegExp[] = [];
  for (const a of allowSrc) {
    try {
      allow.push(new RegExp(a));
    } catch (err) {
      problems.push(`allow: ${JSON.stringify(a)} is not a regular expression: ${(err as Error).message}`);
    }
  }
  for (const key of connect.keys()) {
    if (allow.length > 0 && !allow.some((r) => r.test(key))) problems.push(`connect[${JSON.stringify(key)}] does not match the allow-list, so it could never be used`);
  }
  if (problems.length > 0) throw new RoutesInvalidError(`route file has ${problems.length} problem(s):\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  return Object.freeze({ sni, connect, allow });
}

export interface RouteFileSourceOptions {
  /** One or more route files, merged in order (see mergeRouteDocs); files after the first may be absent. */
  files: readonly string[];
  defaultAllow: readonly string[];
  onChange: (table: RouteTable) => void;
  onError: (err: Error) => void;
  /** A key defined in two files (the first file's upstream is used). */
  onConflict?: (what: string) => void;
  debounceMs?: number;
}

type RouteDoc = { sni?: Record<string, unknown>; connect?: Record<string, unknown>; allow?: unknown };

/**
 * Merges route documents in order: sni and connect entries are united with the first file winning on
 * a key that two files define (reported), allow-lists are concatenated. Shape problems of a single
 * document are left to parseRoutes on the merged result, except a document that is not an object.
 */
export function mergeRouteDocs(docs: ReadonlyArray<{ file: string; text: string | undefined }>): { text: string; conflicts: string[] } {
  const merged: { sni: Record<string, unknown>; connect: Record<string, unknown>; allow?: unknown[] } & Record<string, unknown> = { sni: {}, connect: {} };
  const conflicts: string[] = [];
  for (const { file, text } of docs) {
    if (text === undefined || text.trim() === '') continue;
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new RoutesInvalidError(`route file ${file} is not JSON: ${(err as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RoutesInvalidError(`route file ${file} must be a JSON object`);
    const d = doc as RouteDoc & Record<string, unknown>;
    for (const [k, v] of Object.entries(d)) {
      if (k === 'sni' || k === 'connect') {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) {
          merged[k] = v as Record<string, unknown>; // parseRoutes reports the shape
          continue;
        }
        const into = merged[k];
        for (const [key, up] of Object.entries(v)) {
          if (key in into) {
            if (into[key] !== up) conflicts.push(`${k}[${JSON.stringify(key)}] in ${file} (${JSON.stringify(up)}) ignored: an earlier file routes it to ${JSON.stringify(into[key])}`);
            continue;
          }
          into[key] = up;
        }
      } else if (k === 'allow') {
        merged.allow = [...(merged.allow ?? []), ...(Array.isArray(v) ? v : [v])];
      } else merged[k] = v; // unknown keys: parseRoutes names them
    }
  }
  return { text: JSON.stringify(merged), conflicts };
}

/**
 * Watches the route files. Their directories are watched, not the files: Kubernetes ConfigMap volumes
 * update by swapping a `..data` symlink, which a watch on the file itself would miss. Any event
 * triggers a debounced re-read of all files; unchanged content is ignored.
 */
export class RouteFileSource {
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastText: string | undefined;
  constructor(private readonly opts: RouteFileSourceOptions) {}

  private async read(): Promise<{ text: string; conflicts: string[] }> {
    const docs = await Promise.all(this.opts.files.map(async (file, i) => {
      try {
        return { file, text: await readFile(file, 'utf8') };
      } catch (err) {
        if (i > 0 && (err as NodeJS.ErrnoException).code === 'ENOENT') return { file, text: undefined };
        throw err;
      }
    }));
    return mergeRouteDocs(docs);
  }

  /** Loads once (throws on a bad file) and starts watching. */
  async start(): Promise<RouteTable> {
    const { text, conflicts } = await this.read();
    const table = parseRoutes(text, this.opts.defaultAllow);
    conflicts.forEach((c) => this.opts.onConflict?.(c));
    this.lastText = text;
    for (const dir of new Set(this.opts.files.map((f) => dirname(f)))) {
      const names = new Set(this.opts.files.filter((f) => dirname(f) === dir).map((f) => basename(f)));
      let w: FSWatcher;
      try {
        w = watch(dir, { persistent: false }, (_ev, name) => {
          if (name && !name.startsWith('..') && !names.has(name)) return;
          this.schedule();
        });
      } catch (err) {
        // an optional file's directory may not exist yet; SIGHUP still reloads
        this.opts.onError(err as Error);
        continue;
      }
      w.on('error', (err) => this.opts.onError(err));
      this.watchers.push(w);
    }
    return table;
  }

  private schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload(), this.opts.debounceMs ?? 100);
  }

  /** Re-reads the files; returns whether a new table was installed. */
  async reload(): Promise<boolean> {
    let merged: { text: string; conflicts: string[] };
    try {
      merged = await this.read();
    } catch (err) {
      this.opts.onError(err as Error);
      return false;
    }
    if (merged.text === this.lastText) return false;
    try {
      const table = parseRoutes(merged.text, this.opts.defaultAllow);
      this.lastText = merged.text;
      merged.conflicts.forEach((c) => this.opts.onConflict?.(c));
      this.opts.onChange(table);
      return true;
    } catch (err) {
      this.opts.onError(err as Error);
      return false;
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    for (const w of this.watchers.splice(0)) w.close();
  }
}
