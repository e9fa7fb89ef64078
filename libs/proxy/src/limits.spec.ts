import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConnectionLimits, sourceKey, type Admission } from './limits.js';

const opts = { maxConnections: 10, maxPerSource: 4, maxPerRoute: 3, maxPending: 6, maxPendingPerSource: 2 };

describe('sourceKey', () => {
  it('normalises IPv4-mapped IPv6 to IPv4 and counts IPv6 per /64', () => {
    expect(sourceKey('203.0.113.9')).toBe('203.0.113.9');
    expect(sourceKey('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(sourceKey('::ffff:cb00:7109')).toBe('203.0.113.9');
    expect(sourceKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(sourceKey(undefined)).toBe('unknown');
    expect(sourceKey('not an address')).toBe('unknown');
  });
});

describe('ConnectionLimits', () => {
  it('caps pending per source, then per source, then in total; release gives the slots back', () => {
    const l = new ConnectionLimits(opts);
    const a = [l.admit('1.1.1.1'), l.admit('1.1.1.1')] as Admission[];
    expect(l.admit('1.1.1.1')).toBe('pending_per_source');
    a[0]!.route('r1');
    a[1]!.route('r1');
    a.push(l.admit('1.1.1.1') as Admission, l.admit('1.1.1.1') as Admission);
    expect(l.admit('1.1.1.1')).toBe('per_source'); // 4 open
    for (let i = 0; i < 4; i++) expect(typeof l.admit(`2.2.2.${i}`)).toBe('object'); // pending: 2 + 4 = 6
    expect(l.admit('3.3.3.3')).toBe('pending');
    expect(l.pending).toBe(6);
    for (const x of a) x.release();
    expect(l.connectionsOf('1.1.1.1')).toBe(0);
    expect(l.trackedSources).toBe(4);
    expect(l.pending).toBe(4);
  });

  it('caps per route and across everything', () => {
    const l = new ConnectionLimits({ ...opts, maxPending: 10, maxPendingPerSource: 10, maxPerSource: 10 });
    const all = Array.from({ length: 10 }, (_, i) => l.admit(`10.0.0.${i}`) as Admission);
    expect(l.admit('10.0.1.1')).toBe('max_connections');
    expect(all.slice(0, 4).map((x) => x.route('r'))).toEqual([undefined, undefined, undefined, 'per_route']);
    all[0]!.release();
    expect(all[3]!.route('r')).toBeUndefined();
    expect(l.trackedRoutes).toBe(1);
  });

  it('counts a connection admitted without a source once a trusted header names it', () => {
    const l = new ConnectionLimits(opts);
    const a = l.admit() as Admission;
    const b = l.admit() as Admission;
    const c = l.admit() as Admission;
    expect(a.setSource('9.9.9.9')).toBeUndefined();
    expect(b.setSource('9.9.9.9')).toBeUndefined();
    expect(c.setSource('9.9.9.9')).toBe('pending_per_source');
    c.release();
    expect(l.connectionsOf('9.9.9.9')).toBe(2);
  });

  it('any sequence of operations keeps the counts consistent and ends at zero (fast-check)', () => {
    const op = fc.oneof(
      fc.record({ op: fc.constant('admit' as const), src: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }) }),
      fc.record({ op: fc.constantFrom('route' as const, 'release' as const, 'setSource' as const), i: fc.nat(), key: fc.integer({ min: 0, max: 2 }) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const l = new ConnectionLimits(opts);
      const live: Admission[] = [];
      for (const o of ops) {
        if (o.op === 'admit') {
          const a = l.admit(o.src === undefined ? undefined : `s${o.src}`);
          if (typeof a !== 'string') live.push(a);
        } else if (live.length > 0) {
          const a = live[o.i % live.length]!;
          if (o.op === 'route') a.route(`r${o.key}`);
          else if (o.op === 'setSource') a.setSource(`s${o.key}`);
          else {
            a.release();
            live.splice(live.indexOf(a), 1);
          }
        }
        expect(l.connections).toBe(live.length);
        expect(l.connections).toBeLessThanOrEqual(opts.maxConnections);
        expect(l.pending).toBeLessThanOrEqual(opts.maxPending);
        expect(l.pending).toBe(live.filter((a) => a.routeKey === undefined).length);
        for (let s = 0; s < 4; s++) expect(l.connectionsOf(`s${s}`)).toBe(live.filter((a) => a.source === `s${s}`).length);
      }
      for (const a of live) a.release();
      expect([l.connections, l.pending, l.trackedSources, l.trackedRoutes]).toEqual([0, 0, 0, 0]);
    }), { numRuns: 300 });
  });
});
