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
  file: string;
  defaultAllow: readonly string[];
  onChange: (table: RouteTable) => void;
  onError: (err: Error) => void;
  debounceMs?: number;
}

/**
 * Watches a route file. The directory is watched, not the file: Kubernetes ConfigMap volumes
 * update by swapping a `..data` symlink, which a watch on the file itself would miss. Any event
 * triggers a debounced re-read; unchanged content is ignored.
 */
export class RouteFileSource {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastText: string | undefined;
  constructor(private readonly opts: RouteFileSourceOptions) {}

  /** Loads once (throws on a bad file) and starts watching. */
  async start(): Promise<RouteTable> {
    const text = await readFile(this.opts.file, 'utf8');
    const table = parseRoutes(text, this.opts.defaultAllow);
    this.lastText = text;
    this.watcher = watch(dirname(this.opts.file), { persistent: false }, (_ev, name) => {
      if (name && !name.startsWith('..') && name !== basename(this.opts.file)) return;
      this.schedule();
    });
    this.watcher.on('error', (err) => this.opts.onError(err));
    return table;
  }

  private schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload(), this.opts.debounceMs ?? 100);
  }

  /** Re-reads the file; returns whether a new table was installed. */
  async reload(): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(this.opts.file, 'utf8');
    } catch (err) {
      this.opts.onError(err as Error);
      return false;
    }
    if (text === this.lastText) return false;
    try {
      const table = parseRoutes(text, this.opts.defaultAllow);
      this.lastText = text;
      this.opts.onChange(table);
      return true;
    } catch (err) {
      this.opts.onError(err as Error);
      return false;
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
  }
}
