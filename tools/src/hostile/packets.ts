/**
 * Forged packets for the shoot side of the tunnel, and the injector that writes them into a TUN or
 * TAP device: the packets leave through the device's reader (vpn-shoot), exactly as if the shoot's
 * kernel had routed them there, so they reach the seed through the tunnel.
 *
 * Every forged IP packet carries the marker TTL / hop limit 77, so a counting nft rule on the far
 * side (`ip ttl 77`, `ip6 hoplimit 77`) tells exactly how many got through.
 *
 * Injection uses an AF_PACKET socket (SOCK_DGRAM on a TUN, SOCK_RAW with Ethernet frames on a TAP)
 * from a short python3 program: Node has no packet sockets, and python3 is on every machine that
 * builds the native TUN addon (node-gyp needs it).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseIp } from '@rvpn/config';

export const MARK_TTL = 77;

function addrBytes(a: string): Buffer {
  const ip = parseIp(a);
  if (!ip) throw new RangeError(`not an IP address: ${a}`);
  const n = ip.family === 4 ? 4 : 16;
  const out = Buffer.alloc(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function sum16(parts: Buffer[]): number {
  let s = 0;
  for (const p of parts) for (let i = 0; i < p.length; i += 2) s += (p[i]! << 8) | (i + 1 < p.length ? p[i + 1]! : 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

function pseudo(src: string, dst: string, proto: number, len: number): Buffer {
  const s = addrBytes(src);
  const d = addrBytes(dst);
  if (s.length === 4) {
    const p = Buffer.alloc(12);
    s.copy(p, 0);
    d.copy(p, 4);
    p[9] = proto;
    p.writeUInt16BE(len, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  s.copy(p, 0);
  d.copy(p, 16);
  p.writeUInt32BE(len, 32);
  p[39] = proto;
  return p;
}

export function tcpSegment(src: string, dst: string, sport: number, dport: number, flags: 'syn' | 'ack' | 'rst' = 'syn', data: Buffer = Buffer.alloc(0)): Buffer {
  const t = Buffer.alloc(20 + data.length);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(randomBytes(4).readUInt32BE(0), 4);
  t.writeUInt32BE(flags === 'syn' ? 0 : randomBytes(4).readUInt32BE(0), 8);
  t[12] = 5 << 4;
  t[13] = flags === 'syn' ? 0x02 : flags === 'rst' ? 0x04 : 0x10;
  t.writeUInt16BE(64240, 14);
  data.copy(t, 20);
  t.writeUInt16BE(sum16([pseudo(src, dst, 6, t.length), t]), 16);
  return t;
}

export function udpDatagram(src: string, dst: string, sport: number, dport: number, data: Buffer): Buffer {
  const u = Buffer.alloc(8 + data.length);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(u.length, 4);
  data.copy(u, 8);
  u.writeUInt16BE(sum16([pseudo(src, dst, 17, u.length), u]) || 0xffff, 6);
  return u;
}

export interface V4Options {
  src: string;
  dst: string;
  proto: number;
  payload: Buffer;
  id?: number;
  /** Fragment offset in bytes (a multiple of 8). */
  fragOffset?: number;
  moreFragments?: boolean;
  dontFragment?: boolean;
  ttl?: number;
  /** Total length field written regardless of the real length (lying headers). */
  totalLengthOverride?: number;
}

export function ipv4(o: V4Options): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(o.totalLengthOverride ?? 20 + o.payload.length, 2);
  h.writeUInt16BE(o.id ?? randomBytes(2).readUInt16BE(0), 4);
  h.writeUInt16BE(((o.dontFragment ? 0x4000 : 0) | (o.moreFragments ? 0x2000 : 0) | ((o.fragOffset ?? 0) >> 3)) & 0xffff, 6);
  h[8] = o.ttl ?? MARK_TTL;
  h[9] = o.proto;
  addrBytes(o.src).copy(h, 12);
  addrBytes(o.dst).copy(h, 16);
  h.writeUInt16BE(sum16([h]), 10);
  return Buffer.concat([h, o.payload]);
}

export function icmp4(type: number, code: number, rest: number, data: Buffer): Buffer {
  const m = Buffer.alloc(8 + data.length);
  m[0] = type;
  m[1] = code;
  m.writeUInt32BE(rest >>> 0, 4);
  data.copy(m, 8);
  m.writeUInt16BE(sum16([m]), 2);
  return m;
}

/** An IPv6 extension header: next header, length in 8-byte units beyond the first 8, body. */
export interface ExtHeader {
  type: number;
  body: Buffer;
}

export function ipv6(o: { src: string; dst: string; next: number; payload: Buffer; ext?: ExtHeader[]; hopLimit?: number }): Buffer {
  const exts = o.ext ?? [];
  const chain: Buffer[] = [];
  for (let i = 0; i < exts.length; i++) {
    const e = exts[i]!;
    const nxt = i + 1 < exts.length ? exts[i + 1]!.type : o.next;
    if (e.type === 44) {
      const f = Buffer.alloc(8);
      f[0] = nxt;
      e.body.copy(f, 2, 0, 6);
      chain.push(f);
      continue;
    }
    const total = Math.ceil((2 + e.body.length) / 8) * 8;
    const b = Buffer.alloc(total);
    b[0] = nxt;
    b[1] = total / 8 - 1;
    e.body.copy(b, 2);
    chain.push(b);
  }
  const rest = Buffer.concat([...chain, o.payload]);
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(rest.length, 4);
  h[6] = exts.length ? exts[0]!.type : o.next;
  h[7] = o.hopLimit ?? MARK_TTL;
  addrBytes(o.src).copy(h, 8);
  addrBytes(o.dst).copy(h, 24);
  return Buffer.concat([h, rest]);
}

export function icmp6(src: string, dst: string, type: number, code: number, body: Buffer): Buffer {
  const m = Buffer.alloc(4 + body.length);
  m[0] = type;
  m[1] = code;
  body.copy(m, 4);
  m.writeUInt16BE(sum16([pseudo(src, dst, 58, m.length), m]), 2);
  return m;
}

/** Fragment header body (6 bytes after next header and reserved): offset (bytes, multiple of 8), M flag, id. */
export function fragBody(offset: number, more: boolean, id: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt16BE(((offset >> 3) << 3) | (more ? 1 : 0), 0);
  b.writeUInt32BE(id >>> 0, 2);
  return b;
}

/** The addresses the forged packets use: the seed's own, the shoot's, and outsiders. */
export interface ForgeContext {
  /** Seed addresses that must never appear as a source from the tunnel (the seed server's pod, the tunnel's seed end). */
  seedOwn: { v4: string[]; v6: string[] };
  /** The seed server's listening ports (status, proxy, tunnel). */
  seedPorts: number[];
  /** The seed server's pod address (IPv4) and tunnel address (IPv6): the destinations of replies. */
  seedDst: { v4: string; v6: string };
  /** Legitimate shoot sources (a pod, the shoot end of the tunnel). */
  shootSrc: { v4: string; v6: string };
  /** A real flow of the seed that does not go through the tunnel (e.g. its tunnel connection from sni-proxy): seed → elsewhere. */
  otherFlow?: { src: string; sport: number; dst: string; dport: number };
}

export const LAB_FORGE_CONTEXT: ForgeContext = {
  seedOwn: { v4: ['10.1.0.20', '10.1.0.30', '127.0.0.1'], v6: ['fd8f:6d53:b97a:1::1', '::1'] },
  seedPorts: [15000, 9443, 1194],
  seedDst: { v4: '10.1.0.20', v6: 'fd8f:6d53:b97a:1::1' },
  shootSrc: { v4: '100.96.1.10', v6: 'fd8f:6d53:b97a:1::2' },
};

const rnd = (n: number) => Math.floor(Math.random() * n);
const ephemeral = () => 32768 + rnd(28000);

/** Packets quoting a seed → shoot TCP flow in an ICMP error (the first 28/48 bytes of the offending packet). */
function quotedV4(src: string, sport: number, dst: string, dport: number): Buffer {
  return ipv4({ src, dst, proto: 6, payload: tcpSegment(src, dst, sport, dport, 'ack').subarray(0, 8), ttl: 63, totalLengthOverride: 1500 });
}

function quotedV6(src: string, sport: number, dst: string, dport: number): Buffer {
  return ipv6({ src, dst, next: 6, payload: tcpSegment(src, dst, sport, dport, 'ack').subarray(0, 8), hopLimit: 63 });
}

export const IP_KINDS = ['control', 'spoofed-source', 'seed-own-source', 'to-seed-ports', 'icmp-errors-no-flow', 'icmp-errors-other-flow', 'fragments', 'ipv6-extension-headers'] as const;
export type IpKind = (typeof IP_KINDS)[number];

/**
 * A set of forged IP packets of one kind (each call draws fresh ports and ids):
 * - control: plausible replies (shoot pod → seed, to an ephemeral port): what the seed must let in.
 * - spoofed-source: sources outside every shoot network (documentation ranges) to the seed.
 * - seed-own-source: the seed's own addresses as sources (its pod IP, the tunnel's seed end ::1, loopback).
 * - to-seed-ports: new connections from shoot sources to the seed server's own listening ports.
 * - icmp-errors-no-flow: fragmentation needed (MTU 552 and 68), port/host unreachable, packet too big
 *   (IPv6, MTU 1280), each quoting a flow that does not exist.
 * - icmp-errors-other-flow: the same quoting `ctx.otherFlow`, a real connection of the seed that does
 *   not go through the tunnel (the kernel takes the error as RELATED to it and lowers that path's MTU).
 * - fragments: a tiny first fragment, overlapping fragments, a fragment ending past 64 KiB, a lone
 *   non-first fragment, IPv6 fragments (atomic and overlapping).
 * - ipv6-extension-headers: hop-by-hop (router alert, jumbo), routing header type 0 via the seed,
 *   a chain of 8 destination-options headers, an unknown next header.
 */
export function forgeIp(kind: IpKind, ctx: ForgeContext = LAB_FORGE_CONTEXT): Buffer[] {
  const s4 = ctx.shootSrc.v4;
  const s6 = ctx.shootSrc.v6;
  const d4 = ctx.seedDst.v4;
  const d6 = ctx.seedDst.v6;
  switch (kind) {
    case 'control':
      return [
        ipv4({ src: s4, dst: d4, proto: 6, payload: tcpSegment(s4, d4, 8080, ephemeral(), 'ack') }),
        ipv6({ src: s6, dst: d6, next: 6, payload: tcpSegment(s6, d6, 8080, ephemeral(), 'ack') }),
      ];
    case 'spoofed-source': {
      const v4 = [`198.51.100.${1 + rnd(250)}`, `203.0.113.${1 + rnd(250)}`, '8.8.8.8', '10.1.0.99'];
      const v6 = [`2001:db8::${(1 + rnd(0xfffe)).toString(16)}`, 'fd00:dead::1'];
      return [
        ...v4.map((src) => ipv4({ src, dst: d4, proto: 6, payload: tcpSegment(src, d4, ephemeral(), 15000) })),
        ...v6.map((src) => ipv6({ src, dst: d6, next: 6, payload: tcpSegment(src, d6, ephemeral(), 15000) })),
      ];
    }
    case 'seed-own-source':
      return [
        ...ctx.seedOwn.v4.map((src) => ipv4({ src, dst: d4, proto: 6, payload: tcpSegment(src, d4, ephemeral(), ctx.seedPorts[rnd(ctx.seedPorts.length)]!) })),
        ...ctx.seedOwn.v6.map((src) => ipv6({ src, dst: d6, next: 6, payload: tcpSegment(src, d6, ephemeral(), ctx.seedPorts[rnd(ctx.seedPorts.length)]!) })),
      ];
    case 'to-seed-ports':
      return ctx.seedPorts.flatMap((port) => [
        ipv4({ src: s4, dst: d4, proto: 6, payload: tcpSegment(s4, d4, ephemeral(), port) }),
        ipv6({ src: s6, dst: d6, next: 6, payload: tcpSegment(s6, d6, ephemeral(), port) }),
        ipv4({ src: s4, dst: d4, proto: 17, payload: udpDatagram(s4, d4, ephemeral(), port, Buffer.from('x')) }),
      ]);
    case 'icmp-errors-no-flow':
    case 'icmp-errors-other-flow': {
      const other = kind === 'icmp-errors-other-flow';
      // no flow: a seed → shoot packet that was never sent; other flow: a packet the seed sent elsewhere (IPv6: to an outside address)
      const f = other && ctx.otherFlow ? ctx.otherFlow : { src: d4, sport: ephemeral(), dst: s4, dport: 8080 };
      const q4 = quotedV4(f.src, f.sport, f.dst, f.dport);
      const q6 = quotedV6(d6, ephemeral(), other ? '2001:db8::1' : s6, other ? 443 : 8080);
      return [
        ipv4({ src: s4, dst: f.src, proto: 1, payload: icmp4(3, 4, 552, q4) }),
        ipv4({ src: '100.96.1.1', dst: f.src, proto: 1, payload: icmp4(3, 4, 68, q4) }),
        ipv4({ src: s4, dst: f.src, proto: 1, payload: icmp4(3, 3, 0, q4) }),
        ipv4({ src: s4, dst: f.src, proto: 1, payload: icmp4(3, 1, 0, q4) }),
        ipv6({ src: s6, dst: d6, next: 58, payload: icmp6(s6, d6, 2, 0, Buffer.concat([Buffer.from([0, 0, 5, 0]), q6])) }),
        ipv6({ src: s6, dst: d6, next: 58, payload: icmp6(s6, d6, 1, 4, Buffer.concat([Buffer.alloc(4), q6])) }),
      ];
    }
    case 'fragments': {
      const id = rnd(0xffff);
      const syn = tcpSegment(s4, d4, ephemeral(), 15000, 'syn', Buffer.alloc(64));
      const id6 = rnd(0xffffffff);
      const syn6 = tcpSegment(s6, d6, ephemeral(), 15000, 'syn', Buffer.alloc(64));
      return [
        // tiny first fragment: 8 bytes of TCP header, the flags come later
        ipv4({ src: s4, dst: d4, proto: 6, payload: syn.subarray(0, 8), id, moreFragments: true }),
        ipv4({ src: s4, dst: d4, proto: 6, payload: syn.subarray(8), id, fragOffset: 8 }),
        // overlapping: the second fragment rewrites the ports
        ipv4({ src: s4, dst: d4, proto: 6, payload: syn.subarray(0, 24), id: id + 1, moreFragments: true }),
        ipv4({ src: s4, dst: d4, proto: 6, payload: Buffer.concat([Buffer.from([0x3a, 0x98, 0x24, 0xcb]), syn.subarray(4, 40)]), id: id + 1, fragOffset: 0 }),
        // ends past 65535 bytes once reassembled
        ipv4({ src: s4, dst: d4, proto: 17, payload: Buffer.alloc(64), id: id + 2, fragOffset: 65528 - 8 }),
        // a lone non-first fragment
        ipv4({ src: s4, dst: d4, proto: 6, payload: Buffer.alloc(32), id: id + 3, fragOffset: 1480, moreFragments: true }),
        // IPv6: an atomic fragment, then overlapping fragments
        ipv6({ src: s6, dst: d6, next: 6, payload: syn6, ext: [{ type: 44, body: fragBody(0, false, id6) }] }),
        ipv6({ src: s6, dst: d6, next: 6, payload: syn6.subarray(0, 16), ext: [{ type: 44, body: fragBody(0, true, id6 + 1) }] }),
        ipv6({ src: s6, dst: d6, next: 6, payload: syn6.subarray(8), ext: [{ type: 44, body: fragBody(8, false, id6 + 1) }] }),
      ];
    }
    case 'ipv6-extension-headers': {
      const syn6 = () => tcpSegment(s6, d6, ephemeral(), 15000);
      const routerAlert = Buffer.from([5, 2, 0, 0, 1, 0]); // option 5, length 2, MLD
      const jumbo = Buffer.from([0xc2, 4, 0, 1, 0, 0]); // jumbo payload option in a normal packet
      const rh0 = Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 0]), addrBytes(d6)]); // routing type 0, 1 segment left
      return [
        ipv6({ src: s6, dst: d6, next: 6, payload: syn6(), ext: [{ type: 0, body: routerAlert }] }),
        ipv6({ src: s6, dst: d6, next: 6, payload: syn6(), ext: [{ type: 0, body: jumbo }] }),
        ipv6({ src: s6, dst: ctx.shootSrc.v6, next: 6, payload: syn6(), ext: [{ type: 43, body: rh0 }] }),
        ipv6({ src: s6, dst: d6, next: 6, payload: syn6(), ext: Array.from({ length: 8 }, () => ({ type: 60, body: Buffer.from([1, 4, 0, 0, 0, 0]) })) }),
        ipv6({ src: s6, dst: d6, next: 253, payload: randomBytes(32) }),
      ];
    }
  }
}

/** Ethernet framing for a TAP. */
export function ethernet(dst: Buffer, src: Buffer, etherType: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  dst.copy(h, 0);
  src.copy(h, 6);
  h.writeUInt16BE(etherType, 12);
  return Buffer.concat([h, payload]);
}

export const macBytes = (mac: string) => Buffer.from(mac.replace(/:/g, ''), 'hex');
const ALL_NODES = macBytes('33:33:00:00:00:01');
const BROADCAST = Buffer.alloc(6, 0xff);

/** A link-local address from a MAC (EUI-64), as a router would send from. */
export function linkLocal(mac: Buffer): string {
  const e = Buffer.from([mac[0]! ^ 2, mac[1]!, mac[2]!, 0xff, 0xfe, mac[3]!, mac[4]!, mac[5]!]);
  return `fe80::${[0, 2, 4, 6].map((i) => e.readUInt16BE(i).toString(16)).join(':')}`;
}

export const L2_KINDS = ['router-advertisement', 'redirect-v6', 'redirect-v4', 'arp-spoof', 'nd-spoof', 'neighbour-flood', 'spoofed-source-v4', 'broadcast-storm'] as const;
export type L2Kind = (typeof L2_KINDS)[number];

/** The HA bond network as the forged frames see it. */
export interface L2Context {
  /** This (attacking) shoot pod's bond MAC: frames from any other source are dropped by the switch's pinning. */
  ownMac: string;
  ownV4: string;
  /** A victim's bond addresses (a kube-apiserver endpoint) and the other shoot pod, whose addresses we claim. */
  victimV4: string;
  victimV6: string;
  otherShootV4: string;
  otherShootV6: string;
  /** A shoot destination the victims route through a shoot pod (the redirect's subject). */
  shootDstV4: string;
  shootDstV6: string;
  /** Rogue prefix announced in router advertisements. */
  roguePrefix: string;
}

function arp(op: 1 | 2, senderMac: Buffer, senderIp: string, targetMac: Buffer, targetIp: string): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(op, 6);
  senderMac.copy(a, 8);
  addrBytes(senderIp).copy(a, 14);
  targetMac.copy(a, 18);
  addrBytes(targetIp).copy(a, 24);
  return Buffer.concat([a, Buffer.alloc(18)]);
}

/**
 * Ethernet frames of one kind, written into a shoot pod's bond TAP (HA): what a compromised shoot
 * pod can send to the kube-apiserver endpoints on the same switch.
 * - router-advertisement: a default router with a rogue autoconfiguration prefix.
 * - redirect-v6 / redirect-v4: "reach the shoot pod address via another hop".
 * - arp-spoof / nd-spoof: claim the other shoot pod's addresses with our MAC.
 * - neighbour-flood: ARP requests for the victim from random senders in the bond network (the
 *   victim's kernel learns every sender).
 * - spoofed-source-v4: IPv4 from sources outside every shoot network (a seed address, another endpoint).
 * - broadcast-storm: broadcast ARP requests (flooded to every port).
 */
export function forgeL2(kind: L2Kind, c: L2Context): Buffer[] {
  const own = macBytes(c.ownMac);
  const ll = linkLocal(own);
  switch (kind) {
    case 'router-advertisement': {
      const [prefix] = c.roguePrefix.split('/');
      const ra = Buffer.alloc(12 + 32 + 8);
      ra[0] = 64; // cur hop limit
      ra[1] = 0; // flags
      ra.writeUInt16BE(1800, 2); // router lifetime: a default router
      // prefix information: type 3, length 4, prefix length 64, L+A flags, lifetimes
      const pi = ra.subarray(12, 44);
      pi[0] = 3;
      pi[1] = 4;
      pi[2] = 64;
      pi[3] = 0xc0;
      pi.writeUInt32BE(86400, 4);
      pi.writeUInt32BE(14400, 8);
      addrBytes(prefix!).copy(pi, 16);
      // source link-layer address option
      const sll = ra.subarray(44);
      sll[0] = 1;
      sll[1] = 1;
      own.copy(sll, 2);
      return [ethernet(ALL_NODES, own, 0x86dd, ipv6({ src: ll, dst: 'ff02::1', next: 58, payload: icmp6(ll, 'ff02::1', 134, 0, ra), hopLimit: 255 }))];
    }
    case 'redirect-v6': {
      // target: a rogue link-local next hop; destination: the shoot address the victim reaches
      const body = Buffer.alloc(4 + 32);
      addrBytes('fe80::bad:1').copy(body, 4);
      addrBytes(c.shootDstV6).copy(body, 20);
      const dstMac = macBytes('33:33:00:00:00:01');
      return [ethernet(dstMac, own, 0x86dd, ipv6({ src: ll, dst: c.victimV6, next: 58, payload: icmp6(ll, c.victimV6, 137, 0, body), hopLimit: 255 }))];
    }
    case 'redirect-v4': {
      const quoted = ipv4({ src: c.victimV4, dst: c.shootDstV4, proto: 6, payload: tcpSegment(c.victimV4, c.shootDstV4, ephemeral(), 8080).subarray(0, 8), ttl: 64 });
      // redirect for host (code 1) to a gateway in the bond network we do not own
      const gw = addrBytes(c.otherShootV4).readUInt32BE(0) + 40;
      return [ethernet(BROADCAST, own, 0x0800, ipv4({ src: c.ownV4, dst: c.victimV4, proto: 1, payload: icmp4(5, 1, gw, quoted) }))];
    }
    case 'arp-spoof':
      return [
        ethernet(BROADCAST, own, 0x0806, arp(2, own, c.otherShootV4, BROADCAST, c.otherShootV4)),
        ethernet(BROADCAST, own, 0x0806, arp(1, own, c.otherShootV4, Buffer.alloc(6), c.victimV4)),
      ];
    case 'nd-spoof': {
      const na = Buffer.alloc(4 + 16 + 8);
      na.writeUInt32BE(0x20000000, 0); // override
      addrBytes(c.otherShootV6).copy(na, 4);
      na[20] = 2;
      na[21] = 1;
      own.copy(na, 22);
      return [ethernet(ALL_NODES, own, 0x86dd, ipv6({ src: c.otherShootV6, dst: 'ff02::1', next: 58, payload: icmp6(c.otherShootV6, 'ff02::1', 136, 0, na), hopLimit: 255 }))];
    }
    case 'neighbour-flood': {
      const base = addrBytes(c.victimV4);
      return Array.from({ length: 16 }, () => {
        const sender = `${base[0]}.${base[1]}.${base[2]}.${100 + rnd(150)}`;
        return ethernet(BROADCAST, own, 0x0806, arp(1, own, sender, Buffer.alloc(6), c.victimV4));
      });
    }
    case 'spoofed-source-v4': {
      const dst = macBytes('ff:ff:ff:ff:ff:ff');
      return ['10.1.0.21', '10.1.0.31', `198.51.100.${1 + rnd(250)}`].map((src) => ethernet(dst, own, 0x0800, ipv4({ src, dst: c.victimV4, proto: 6, payload: tcpSegment(src, c.victimV4, ephemeral(), 9443) })));
    }
    case 'broadcast-storm':
      return [ethernet(BROADCAST, own, 0x0806, arp(1, own, c.ownV4, Buffer.alloc(6), `${c.ownV4.split('.').slice(0, 3).join('.')}.${200 + rnd(50)}`))];
  }
}

const WRITER = String.raw`
import json, socket, struct, sys, time
ifname, mode, rate, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
data = sys.stdin.buffer.read()
frames, off = [], 0
while off + 4 <= len(data):
    n = struct.unpack_from('>I', data, off)[0]
    frames.append(data[off + 4:off + 4 + n])
    off += 4 + n
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM if mode == 'ip' else socket.SOCK_RAW)
sent = errors = i = 0
start = time.monotonic()
while sent + errors < count:
    due = min(count, int((time.monotonic() - start) * rate) + 1)
    while sent + errors < due:
        f = frames[i % len(frames)]
        i += 1
        try:
            if mode == 'ip':
                s.sendto(f, (ifname, 0x86DD if f[0] >> 4 == 6 else 0x0800))
            else:
                s.sendto(f, (ifname, 0))
            sent += 1
        except OSError:
            errors += 1
    time.sleep(0.002)
print(json.dumps({'sent': sent, 'errors': errors, 'seconds': round(time.monotonic() - start, 3)}))
`;

/**
 * Writes `count` packets (IP for a TUN, Ethernet frames for a TAP), cycling through `packets`, into
 * `ifname` of the current network namespace at `rate` per second.
 */
export function inject(ifname: string, mode: 'ip' | 'ethernet', packets: Buffer[], rate: number, count: number): Promise<{ sent: number; errors: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', WRITER, ifname, mode, String(rate), String(count)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', (e) => reject(new Error(`python3 is needed for packet injection: ${e.message}`)));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`packet writer failed (exit ${code}): ${err.trim()}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!));
      } catch {
        reject(new Error(`packet writer printed no result: ${out}${err}`));
      }
    });
    const chunks: Buffer[] = [];
    for (const p of packets) {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(p.length, 0);
      chunks.push(len, p);
    }
    child.stdin.end(Buffer.concat(chunks));
  });
}
