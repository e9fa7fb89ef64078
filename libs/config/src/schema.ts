/**
 * A small declarative schema for configuration from environment variables. Each field names its
 * variable (Gardener vpn2's name where one exists), its type, default and documentation; the
 * defaults live here and nowhere else. `loadConfig` parses every field, runs cross-field checks,
 * and either returns a deeply frozen typed object or throws ONE RVPN_ERR_CONFIG_INVALID error that
 * lists every problem with the variable, the value and how to fix it.
 */
import { accessSync, constants } from 'node:fs';
import { Cidr, parseIp } from './net.js';
import { defineError } from './errors.js';

export const ConfigInvalidError = defineError('RVPN_ERR_CONFIG_INVALID', 'The configuration has problems; the message lists every variable, its value and how to fix it.');

export interface Problem {
  env: string;
  value: string | undefined;
  problem: string;
}

export interface Field<T> {
  env: string;
  type: string;
  doc: string;
  default?: string;
  required?: boolean;
  parse(raw: string): T | { problem: string };
}

export type Schema = Record<string, Field<unknown>>;
export type ConfigOf<S extends Schema> = {
  readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never;
};

const bad = (problem: string) => ({ problem });
const isProblem = (v: unknown): v is { problem: string } => typeof v === 'object' && v !== null && 'problem' in v && Object.keys(v).length === 1;

type Spec = { env: string; doc: string; default?: string; required?: boolean };

function make<T>(type: string, spec: Spec, parse: (raw: string) => T | { problem: string }): Field<T> {
  return { ...spec, type, parse };
}

/** An optional field: undefined when the variable is unset or empty. */
export function optional<T>(f: Field<T>): Field<T | undefined> {
  return { ...f, type: `${f.type} (optional)`, parse: (raw) => (raw === '' ? undefined : f.parse(raw)) };
}

export const t = {
  string: (spec: Spec) => make('string', spec, (raw) => raw),
  int: (spec: Spec & { min?: number; max?: number }) =>
    make('integer', spec, (raw) => {
      if (!/^-?\d+$/.test(raw.trim())) return bad('must be a whole number');
      const n = Number(raw);
      if (spec.min !== undefined && n < spec.min) return bad(`must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) return bad(`must be at most ${spec.max}`);
      return n;
    }),
  bool: (spec: Spec) =>
    make('boolean', spec, (raw) => {
      const v = raw.trim().toLowerCase();
      if (v === 'true' || v === '1' || v === 'yes') return true;
      if (v === 'false' || v === '0' || v === 'no' || v === '') return false;
      return bad('must be true or false');
    }),
  port: (spec: Spec) =>
    make('port', spec, (raw) => (/^\d{1,5}$/.test(raw) && +raw >= 1 && +raw <= 65535 ? Number(raw) : bad('must be a port number 1-65535'))),
  /** Milliseconds: `250`, `250ms`, `2s`, `1m`, `1h`. */
  duration: (spec: Spec & { min?: number; max?: number }) =>
    make('duration', spec, (raw) => {
      const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
      if (!m) return bad('must be a duration like 500ms, 2s, 1m (a bare number means milliseconds)');
      const ms = Math.round(Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const)[(m[2] ?? 'ms') as 'ms']);
      if (spec.min !== undefined && ms < spec.min) return bad(`must be at least ${spec.min} ms`);
      if (spec.max !== undefined && ms > spec.max) return bad(`must be at most ${spec.max} ms`);
      return ms;
    }),
  cidr: (spec: Spec) => make('CIDR', spec, (raw) => {
    const c = Cidr.tryParse(raw);
    return typeof c === 'string' ? bad(c) : c;
  }),
  cidrList: (spec: Spec) =>
    make('CIDR list', spec, (raw): Cidr[] | { problem: string } => {
      const out: Cidr[] = [];
      for (const part of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
        const c = Cidr.tryParse(part);
        if (typeof c === 'string') return bad(c);
        out.push(c);
      }
      return out;
    }),
  enumOf: <const V extends string>(values: readonly V[], spec: Spec) =>
    make<V>(`one of ${values.join('|')}`, spec, (raw) => (values.includes(raw as V) ? (raw as V) : bad(`unknown value; allowed: ${values.join(', ')}`))),
  file: (spec: Spec) =>
    make('file path', spec, (raw) => {
      try {
        accessSync(raw, constants.R_OK);
        return raw;
      } catch {
        return bad('file does not exist or is not readable');
      }
    }),
  /**
   * Comma-separated file paths: the first must be readable now; the others may appear later (a
   * Kubernetes volume marked optional, say) and count as empty until they do.
   */
  fileList: (spec: Spec) =>
    make('file path list', spec, (raw): string[] | { problem: string } => {
      const files = raw.split(',').map((x) => x.trim()).filter(Boolean);
      if (files.length === 0) return bad('needs at least one file path');
      try {
        accessSync(files[0]!, constants.R_OK);
      } catch {
        return bad(`${files[0]} (the first file) does not exist or is not readable`);
      }
      return files;
    }),
  /** `host:port` or `[v6]:port`; the host may be a name or an address. */
  hostPort: (spec: Spec & { defaultPort?: number }) =>
    make('host:port', spec, (raw) => {
      const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(raw) ?? /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(raw);
      if (!m) return bad('must be host:port (IPv6 as [addr]:port)');
      const port = m[2] !== undefined ? Number(m[2]) : spec.defaultPort;
      if (port === undefined) return bad('needs a port (host:port)');
      if (port > 65535) return bad('port must be 0-65535 (0: any free port)');
      if (raw.startsWith('[') && !parseIp(m[1]!)) return bad('bad IPv6 address');
      return { host: m[1]!, port };
    }),
  hostPortList: (spec: Spec & { defaultPort?: number }) =>
    make('host:port list', spec, (raw): HostPort[] | { problem: string } => {
      const out: HostPort[] = [];
      for (const part of raw.split(',').map((x) => x.trim()).filter(Boolean)) {
        const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(part) ?? /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(part);
        const port = m?.[2] !== undefined ? Number(m[2]) : spec.defaultPort;
        if (!m || port === undefined || port < 1 || port > 65535) return bad(`${JSON.stringify(part)} is not host:port`);
        out.push({ host: m[1]!, port });
      }
      return out;
    }),
  stringList: (spec: Spec) => make('comma list', spec, (raw) => raw.split(',').map((s) => s.trim()).filter(Boolean)),
  regexList: (spec: Spec) =>
    make('regex list', spec, (raw): string[] | { problem: string } => {
      // Patterns are separated by newlines or by ';;' (a comma may be part of a pattern).
      const parts = raw.split(/\n|;;/).map((s) => s.trim()).filter(Boolean);
      for (const p of parts) {
        try {
          new RegExp(p);
        } catch (err) {
          return bad(`invalid regular expression ${JSON.stringify(p)}: ${(err as Error).message}`);
        }
      }
      return parts;
    }),
};

export type HostPort = { host: string; port: number };

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof Cidr)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  } else if (o instanceof Cidr) Object.freeze(o);
  return o;
}

/**
 * Parses `env` against `schema`; `check` adds cross-field problems. Throws ConfigInvalidError
 * listing every problem, or returns the frozen config.
 */
export function loadConfig<S extends Schema, X extends object = object>(
  schema: S,
  env: Record<string, string | undefined>,
  opts: { app: string; derive?: (cfg: ConfigOf<S>) => X; check?: (cfg: ConfigOf<S> & X, add: (env: string, problem: string) => void) => void },
): ConfigOf<S> & X {
  const problems: Problem[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(schema)) {
    const given = env[f.env];
    const raw = given !== undefined && given !== '' ? given : f.default;
    if (raw === undefined) {
      if (f.required) problems.push({ env: f.env, value: undefined, problem: `is required: ${f.doc}` });
      else out[key] = f.parse('');
      continue;
    }
    const v = f.parse(raw);
    if (isProblem(v)) problems.push({ env: f.env, value: raw, problem: v.problem });
    else out[key] = v;
  }
  let cfg = out as ConfigOf<S> & X;
  if (problems.length === 0) {
    cfg = { ...out, ...(opts.derive?.(out as ConfigOf<S>) ?? {}) } as ConfigOf<S> & X;
    opts.check?.(cfg, (envName, problem) => problems.push({ env: envName, value: env[envName], problem }));
  }
  if (problems.length > 0) {
    const lines = problems.map((p) => `  - ${p.env}${p.value !== undefined ? `=${JSON.stringify(p.value)}` : ''}: ${p.problem}`);
    throw new ConfigInvalidError(`${opts.app}: ${problems.length} configuration problem${problems.length > 1 ? 's' : ''}:\n${lines.join('\n')}`, { details: { problems } });
  }
  return deepFreeze(cfg);
}

/** Rows for the documentation table. */
export function describeSchema(schema: Schema): Array<{ env: string; type: string; default: string; doc: string }> {
  return Object.values(schema).map((f) => ({ env: f.env, type: f.type, default: f.required ? '(required)' : f.default ?? '', doc: f.doc }));
}
