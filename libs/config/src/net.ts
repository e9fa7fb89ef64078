/**
 * IP addresses and CIDR prefixes as numbers, for validation (config), destination checks
 * (the CONNECT proxy) and per-packet source checks (anti-spoofing on the tunnel). The packet
 * path calls `CidrSet.matchV4`/`matchV6` with raw header bytes, so nothing is parsed to strings there.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  /** The address as an unsigned integer (32 or 128 bits). */
  value: bigint;
}

export function parseIp(text: string): IpAddress | undefined {
  const s = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (isIPv4(s)) {
    const parts = s.split('.').map(Number);
    let v = 0n;
    for (const p of parts) v = (v << 8n) | BigInt(p);
    return { family: 4, value: v };
  }
  if (isIPv6(s) && !s.includes('%')) {
    let head = s;
    let tailV4: number[] | undefined;
    const lastColon = s.lastIndexOf(':');
    if (s.slice(lastColon + 1).includes('.')) {
      tailV4 = s.slice(lastColon + 1).split('.').map(Number);
      head = s.slice(0, lastColon + 1) + '0:0';
    }
    const [l, r] = head.split('::') as [string, string | undefined];
    const left = l ? l.split(':') : [];
    const right = r === undefined ? [] : r ? r.split(':') : [];
    const fill = r === undefined ? 0 : 8 - left.length - right.length;
    const groups = [...left, ...Array(fill).fill('0'), ...right].map((g) => parseInt(g, 16));
    let v = 0n;
    for (const g of groups) v = (v << 16n) | BigInt(g);
    if (tailV4) v = (v & ~0xffffffffn) | (BigInt(tailV4[0]!) << 24n) | (BigInt(tailV4[1]!) << 16n) | (BigInt(tailV4[2]!) << 8n) | BigInt(tailV4[3]!);
    return { family: 6, value: v };
  }
  return undefined;
}

export function formatIp(addr: IpAddress): string {
  if (addr.family === 4) {
    const v = Number(addr.value);
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((addr.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

const bits = (f: IpFamily) => (f === 4 ? 32 : 128);

export class Cidr {
  readonly family: IpFamily;
  readonly network: bigint;
  readonly prefix: number;
  readonly mask: bigint;
  private constructor(family: IpFamily, network: bigint, prefix: number) {
    this.family = family;
    this.prefix = prefix;
    const width = BigInt(bits(family));
    this.mask = prefix === 0 ? 0n : ((1n << width) - 1n) ^ ((1n << (width - BigInt(prefix))) - 1n);
    this.network = network & this.mask;
  }

  /** Parses `a.b.c.d/n` or `x::y/n`; returns a reason string instead of throwing. */
  static tryParse(text: string): Cidr | string {
    const t = text.trim();
    const slash = t.indexOf('/');
    if (slash < 0) return `"${t}" is not a CIDR (missing /prefix)`;
    const addr = parseIp(t.slice(0, slash));
    if (!addr) return `"${t}" is not a CIDR (bad address)`;
    const p = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits(addr.family)) return `"${t}" is not a CIDR (prefix must be 0-${bits(addr.family)})`;
    const c = new Cidr(addr.family, addr.value, Number(p));
    if (c.network !== addr.value) return `"${t}" has host bits set (did you mean ${c.toString()}?)`;
    return c;
  }

  static parse(text: string): Cidr {
    const r = Cidr.tryParse(text);
    if (typeof r === 'string') throw new TypeError(r);
    return r;
  }

  static of(addr: IpAddress, prefix: number): Cidr {
    return new Cidr(addr.family, addr.value, prefix);
  }

  contains(addr: IpAddress | string): boolean {
    const a = typeof addr === 'string' ? parseIp(addr) : addr;
    return !!a && a.family === this.family && (a.value & this.mask) === this.network;
  }

  /** Whether two prefixes share any address. */
  overlaps(other: Cidr): boolean {
    if (other.family !== this.family) return false;
    const m = this.prefix < other.prefix ? this.mask : other.mask;
    return (this.network & m) === (other.network & m);
  }

  /** The n-th address of the prefix (0 = the network address). */
  address(n: number | bigint): IpAddress {
    const v = this.network + BigInt(n);
    if ((v & this.mask) !== this.network) throw new RangeError(`${n} is outside ${this.toString()}`);
    return { family: this.family, value: v };
  }

  get size(): bigint {
    return 1n << BigInt(bits(this.family) - this.prefix);
  }

  toString(): string {
    return `${formatIp({ family: this.family, value: this.network })}/${this.prefix}`;
  }
}

/**
 * A set of prefixes with allocation-free matchers for packet headers.
 * IPv4 entries are kept as (network, mask) uint32 pairs; IPv6 ones as four uint32 words each.
 */
export class CidrSet {
  readonly cidrs: readonly Cidr[];
  private readonly v4: Uint32Array;
  private readonly v6: Uint32Array;
  constructor(cidrs: Iterable<Cidr>) {
    this.cidrs = [...cidrs];
    const v4 = this.cidrs.filter((c) => c.family === 4);
    const v6 = this.cidrs.filter((c) => c.family === 6);
    this.v4 = new Uint32Array(v4.length * 2);
    v4.forEach((c, i) => { this.v4[2 * i] = Number(c.network); this.v4[2 * i + 1] = Number(c.mask); });
    this.v6 = new Uint32Array(v6.length * 8);
    v6.forEach((c, i) => {
      for (let w = 0; w < 4; w++) {
        const shift = BigInt(96 - 32 * w);
        this.v6[8 * i + w] = Number((c.network >> shift) & 0xffffffffn);
        this.v6[8 * i + 4 + w] = Number((c.mask >> shift) & 0xffffffffn);
      }
    });
  }

  contains(addr: IpAddress | string): boolean {
    return this.cidrs.some((c) => c.contains(addr));
  }

  /** Matches the IPv4 address stored big-endian at buf[off..off+4]. */
  matchV4(buf: Uint8Array, off: number): boolean {
    const a = ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
    const t = this.v4;
    for (let i = 0; i < t.length; i += 2) if (((a & t[i + 1]!) >>> 0) === t[i]) return true;
    return false;
  }

  /** Matches the IPv6 address stored at buf[off..off+16]. */
  matchV6(buf: Uint8Array, off: number): boolean {
    const t = this.v6;
    outer: for (let i = 0; i < t.length; i += 8) {
      for (let w = 0; w < 4; w++) {
        const o = off + 4 * w;
        const word = ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
        if (((word & t[i + 4 + w]!) >>> 0) !== t[i + w]) continue outer;
      }
      return true;
    }
    return false;
  }

  get isEmpty(): boolean {
    return this.cidrs.length === 0;
  }
}
