import { describe, expect, it } from 'vitest';
import { Cidr, CidrSet, formatIp, parseIp } from './net.js';

describe('parseIp / formatIp', () => {
  it.each(['10.0.0.1', '255.255.255.255', '0.0.0.0', '::', '::1', 'fd8f:6d53:b97a:1::b:0', '2001:db8::1:0:0:1', '::ffff:10.1.2.3'])(
    'round-trips %s',
    (s) => {
      const a = parseIp(s)!;
      expect(a).toBeDefined();
      expect(parseIp(formatIp(a))).toEqual(a);
    },
  );
  it('rejects garbage', () => {
    for (const s of ['', '1.2.3', '1.2.3.256', 'fe80::1%eth0', 'host.example', ':::']) expect(parseIp(s)).toBeUndefined();
  });
  it('compresses the longest zero run', () => {
    expect(formatIp(parseIp('fd8f:6d53:b97a:1:0:0:0:1')!)).toBe('fd8f:6d53:b97a:1::1');
    expect(formatIp(parseIp('1:0:0:2:0:0:0:3')!)).toBe('1:0:0:2::3');
  });
});

describe('Cidr', () => {
  it('parses and matches', () => {
    const c = Cidr.parse('100.96.0.0/11');
    expect(c.contains('100.96.1.10')).toBe(true);
    expect(c.contains('100.128.0.1')).toBe(false);
    expect(c.contains('::1')).toBe(false);
    expect(c.address(1).value).toBe(parseIp('100.96.0.1')!.value);
  });
  it('explains bad input', () => {
    expect(Cidr.tryParse('10.0.0.1/8')).toMatch(/host bits set \(did you mean 10.0.0.0\/8\?\)/);
    expect(Cidr.tryParse('10.0.0.0')).toMatch(/missing \/prefix/);
    expect(Cidr.tryParse('10.0.0.0/33')).toMatch(/prefix must be 0-32/);
    expect(Cidr.tryParse('x/8')).toMatch(/bad address/);
  });
  it('detects overlap', () => {
    expect(Cidr.parse('10.0.0.0/8').overlaps(Cidr.parse('10.1.0.0/16'))).toBe(true);
    expect(Cidr.parse('10.0.0.0/16').overlaps(Cidr.parse('10.1.0.0/16'))).toBe(false);
  });
});

describe('CidrSet packet matchers', () => {
  const set = new CidrSet(['100.64.0.0/13', '10.250.0.0/16', 'fd8f:6d53:b97a:1::/96', '2001:db8:1::/48'].map((s) => Cidr.parse(s)));
  const v4 = (s: string) => Buffer.from(s.split('.').map(Number));
  const v6 = (s: string) => {
    const v = parseIp(s)!.value;
    const b = Buffer.alloc(16);
    for (let i = 0; i < 16; i++) b[i] = Number((v >> BigInt(120 - 8 * i)) & 0xffn);
    return b;
  };
  it('matches IPv4 headers', () => {
    expect(set.matchV4(v4('100.71.255.255'), 0)).toBe(true);
    expect(set.matchV4(v4('100.72.0.0'), 0)).toBe(false);
    expect(set.matchV4(v4('10.250.3.4'), 0)).toBe(true);
    expect(set.matchV4(v4('255.255.255.255'), 0)).toBe(false);
  });
  it('matches IPv6 headers', () => {
    expect(set.matchV6(v6('fd8f:6d53:b97a:1::2'), 0)).toBe(true);
    expect(set.matchV6(v6('fd8f:6d53:b97a:2::2'), 0)).toBe(false);
    expect(set.matchV6(v6('2001:db8:1:ffff::1'), 0)).toBe(true);
  });
});
