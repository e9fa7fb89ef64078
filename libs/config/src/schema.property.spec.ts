/**
 * Property tests of the config value parsers (fast-check): an arbitrary string never makes a parser
 * throw (a bad value is a listed problem, never a crash at start-up), and values written the way the
 * docs show them come back as what they say.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cidr, formatIp, parseIp } from './net.js';
import { t, type Field, type HostPort } from './schema.js';

const isProblem = (v: unknown): v is { problem: string } => typeof v === 'object' && v !== null && 'problem' in v && typeof (v as { problem: unknown }).problem === 'string';
const spec = { env: 'X', doc: 'x' };
const fields: Array<[string, Field<unknown>]> = [
  ['duration', t.duration({ ...spec, min: 0 })],
  ['int', t.int({ ...spec, min: 0, max: 100 })],
  ['bool', t.bool(spec)],
  ['port', t.port(spec)],
  ['cidr', t.cidr(spec)],
  ['cidrList', t.cidrList(spec)],
  ['hostPort', t.hostPort({ ...spec, defaultPort: 1194 })],
  ['hostPortList', t.hostPortList({ ...spec, defaultPort: 1194 })],
  ['stringList', t.stringList(spec)],
  ['regexList', t.regexList(spec)],
  ['enumOf', t.enumOf(['a', 'b'] as const, spec)],
];
/** Strings of every kind, and strings made of the characters these formats use. */
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.,/[]% -msh\n;'.split('')), maxLength: 80 }),
);

const v4 = fc.ipV4();
const v6 = fc.ipV6();
const cidrArb = fc.oneof(
  fc.tuple(v4, fc.integer({ min: 0, max: 32 })).map(([a, p]) => Cidr.of(parseIp(a)!, p)),
  fc.tuple(v6, fc.integer({ min: 0, max: 128 })).map(([a, p]) => Cidr.of(parseIp(a)!, p)),
);
const hostArb = fc.oneof(
  v4,
  v6.map((a) => `[${a}]`),
  fc.domain(),
);

describe('config value parsers', () => {
  it('never throw on an arbitrary string', () => {
    fc.assert(
      fc.property(anyString, (raw) => {
        for (const [name, f] of fields) {
          let v: unknown;
          expect(() => (v = f.parse(raw)), name).not.toThrow();
          if (isProblem(v)) expect(v.problem.length, name).toBeGreaterThan(0);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('durations: a bare number is milliseconds; ms, s, m and h scale it', () => {
    const d = t.duration(spec);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e9 }), (n) => {
        expect(d.parse(String(n))).toBe(n);
        expect(d.parse(`${n}ms`)).toBe(n);
        expect(d.parse(`${n}s`)).toBe(n * 1000);
        expect(d.parse(` ${n}m `)).toBe(n * 60_000);
        expect(d.parse(`${n}h`)).toBe(n * 3_600_000);
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 0, max: 1e6 }), (lo, n) => {
        const bounded = t.duration({ ...spec, min: lo });
        const r = bounded.parse(`${n}ms`);
        expect(n < lo ? isProblem(r) : r === n).toBe(true);
      }),
    );
  });

  it('CIDRs: the canonical form round-trips, alone and in lists', () => {
    fc.assert(
      fc.property(fc.array(cidrArb, { maxLength: 6 }), fc.constantFrom(',', ', ', ' , '), (list, sep) => {
        const text = list.map(String).join(sep);
        const parsed = t.cidrList(spec).parse(text);
        expect(isProblem(parsed)).toBe(false);
        expect((parsed as Cidr[]).map(String)).toEqual(list.map(String));
        for (const c of list) expect(String(t.cidr(spec).parse(String(c)))).toBe(String(c));
      }),
    );
  });

  it('IP addresses: formatIp(parseIp(x)) is x in canonical form, and parsing it again changes nothing', () => {
    fc.assert(
      fc.property(fc.oneof(v4, v6), (a) => {
        const ip = parseIp(a)!;
        const text = formatIp(ip);
        expect(parseIp(text)).toEqual(ip);
        expect(formatIp(parseIp(text)!)).toBe(text);
      }),
    );
  });

  it('host:port lists round-trip; a missing port takes the default', () => {
    const unbracket = (h: string) => (h.startsWith('[') ? h.slice(1, -1) : h);
    fc.assert(
      fc.property(fc.array(fc.tuple(hostArb, fc.option(fc.integer({ min: 1, max: 65535 }))), { minLength: 1, maxLength: 5 }), (items) => {
        const text = items.map(([h, p]) => (p === null ? h : `${h}:${p}`)).join(',');
        const parsed = t.hostPortList({ ...spec, defaultPort: 1194 }).parse(text);
        expect(isProblem(parsed)).toBe(false);
        expect(parsed as HostPort[]).toEqual(items.map(([h, p]) => ({ host: unbracket(h), port: p ?? 1194 })));
        const [h, p] = items[0]!;
        expect(t.hostPort({ ...spec, defaultPort: 1194 }).parse(p === null ? h : `${h}:${p}`)).toEqual({ host: unbracket(h), port: p ?? 1194 });
      }),
    );
  });

  it('host:port lists refuse ports out of range', () => {
    fc.assert(
      fc.property(hostArb, fc.oneof(fc.constant(0), fc.integer({ min: 65536, max: 99999 })), (h, p) => {
        expect(isProblem(t.hostPortList(spec).parse(`${h}:${p}`))).toBe(true);
      }),
    );
  });
});
