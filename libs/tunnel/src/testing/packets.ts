/** Tiny packet builders for tests: IPv4/IPv6 headers, ICMP echo, UDP. Checksums are real. */

function checksum(buf: Uint8Array, start = 0, end = buf.length, initial = 0): number {
  let sum = initial;
  for (let i = start; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if ((end - start) % 2 === 1) sum += buf[end - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const v4 = (s: string) => s.split('.').map(Number);

/** An IPv4 packet with the given protocol and payload. */
export function ipv4Packet(src: string, dst: string, protocol: number, payload: Uint8Array, ttl = 64): Buffer {
  const p = Buffer.alloc(20 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(0x4000, 6); // DF
  p[8] = ttl;
  p[9] = protocol;
  p.set(v4(src), 12);
  p.set(v4(dst), 16);
  p.writeUInt16BE(checksum(p, 0, 20), 10);
  p.set(payload, 20);
  return p;
}

/** ICMP echo request (type 8) or reply (type 0) inside IPv4. */
export function icmpEcho(src: string, dst: string, id: number, seq: number, opts: { reply?: boolean; data?: Uint8Array } = {}): Buffer {
  const data = opts.data ?? Buffer.from('rvpn-test-payload');
  const icmp = Buffer.alloc(8 + data.length);
  icmp[0] = opts.reply ? 0 : 8;
  icmp.writeUInt16BE(id, 4);
  icmp.writeUInt16BE(seq, 6);
  icmp.set(data, 8);
  icmp.writeUInt16BE(checksum(icmp), 2);
  return ipv4Packet(src, dst, 1, icmp);
}

/** Parses an IPv4 ICMP echo packet; undefined when it is not one. */
export function parseIcmpEcho(pkt: Uint8Array): { src: string; dst: string; type: number; id: number; seq: number } | undefined {
  if (pkt.length < 28 || pkt[0]! >> 4 !== 4 || pkt[9] !== 1) return undefined;
  const ihl = (pkt[0]! & 0xf) * 4;
  const b = Buffer.from(pkt.buffer, pkt.byteOffset, pkt.length);
  return {
    src: [...pkt.subarray(12, 16)].join('.'),
    dst: [...pkt.subarray(16, 20)].join('.'),
    type: pkt[ihl]!,
    id: b.readUInt16BE(ihl + 4),
    seq: b.readUInt16BE(ihl + 6),
  };
}

/** A minimal IPv6 packet (next header 59 = no next header by default) with the given addresses. */
export function ipv6Packet(src: Uint8Array, dst: Uint8Array, payload: Uint8Array = new Uint8Array(), nextHeader = 59): Buffer {
  const p = Buffer.alloc(40 + payload.length);
  p[0] = 0x60;
  p.writeUInt16BE(payload.length, 4);
  p[6] = nextHeader;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  p.set(payload, 40);
  return p;
}

/** An IPv6 address as 16 bytes (tests; full or :: notation). */
export function v6Bytes(text: string): Uint8Array {
  const [l, r] = text.split('::') as [string, string | undefined];
  const left = l ? l.split(':') : [];
  const right = r === undefined ? [] : r ? r.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right].map((g) => parseInt(g, 16));
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

/**
 * An ICMPv4 error (type 3 destination unreachable by default; code 4 with `mtu` is "fragmentation
 * needed") from `src` to `dst`, quoting `quoted` (an IPv4 packet) as routers do: its header and 8 bytes.
 */
export function icmp4Error(src: string, dst: string, quoted: Uint8Array, opts: { type?: number; code?: number; mtu?: number; fragment?: { offset8: number; more: boolean } } = {}): Buffer {
  const q = quoted.subarray(0, Math.min(quoted.length, ((quoted[0]! & 0xf) * 4) + 8));
  const icmp = Buffer.alloc(8 + q.length);
  icmp[0] = opts.type ?? 3;
  icmp[1] = opts.code ?? (opts.mtu !== undefined ? 4 : 1);
  if (opts.mtu !== undefined) icmp.writeUInt16BE(opts.mtu, 6);
  icmp.set(q, 8);
  icmp.writeUInt16BE(checksum(icmp), 2);
  const p = ipv4Packet(src, dst, 1, icmp);
  if (opts.fragment) {
    p.writeUInt16BE((opts.fragment.more ? 0x2000 : 0) | opts.fragment.offset8, 6);
    p.writeUInt16BE(0, 10);
    p.writeUInt16BE(checksum(p, 0, 20), 10);
  }
  return p;
}

/** A TCP segment header (20 bytes, no checksum) inside IPv4: enough to be quoted or filtered. */
export function tcp4(src: string, dst: string, sport: number, dport: number, flags = 0x02): Buffer {
  const t = Buffer.alloc(20);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t[12] = 5 << 4;
  t[13] = flags;
  t.writeUInt16BE(65535, 14);
  return ipv4Packet(src, dst, 6, t);
}

/** IPv6 extension headers chained in front of an upper-layer payload: [next header type, body]. */
export function ipv6WithHeaders(src: Uint8Array, dst: Uint8Array, headers: Array<{ type: number; body?: Uint8Array }>, upper: { type: number; payload: Uint8Array }): Buffer {
  const parts: Buffer[] = [];
  headers.forEach((h, i) => {
    const next = i + 1 < headers.length ? headers[i + 1]!.type : upper.type;
    if (h.type === 44) {
      const f = Buffer.alloc(8);
      f[0] = next;
      f.set((h.body ?? new Uint8Array(6)).subarray(0, 6), 2);
      parts.push(f);
      return;
    }
    const body = h.body ?? new Uint8Array(6);
    const size = Math.ceil((body.length + 2) / 8) * 8;
    const e = Buffer.alloc(size);
    e[0] = next;
    e[1] = size / 8 - 1;
    e.set(body, 2);
    parts.push(e);
  });
  return ipv6Packet(src, dst, Buffer.concat([...parts, Buffer.from(upper.payload)]), headers[0]?.type ?? upper.type);
}

/** An ICMPv6 message (type, code, 4 bytes of header data, body); the checksum is left 0. */
export function icmp6(type: number, code: number, body: Uint8Array = new Uint8Array(), word = 0): Buffer {
  const m = Buffer.alloc(8 + body.length);
  m[0] = type;
  m[1] = code;
  m.writeUInt32BE(word >>> 0, 4);
  m.set(body, 8);
  return m;
}

/** A virtio_net_hdr (10 bytes, little-endian fields as the TUN is set up: TUNSETVNETLE). */
export function vnetHeader(h: { flags?: number; gsoType?: number; hdrLen?: number; gsoSize?: number; csumStart?: number; csumOffset?: number } = {}): Buffer {
  const b = Buffer.alloc(10);
  b[0] = h.flags ?? 0;
  b[1] = h.gsoType ?? 0;
  b.writeUInt16LE(h.hdrLen ?? 0, 2);
  b.writeUInt16LE(h.gsoSize ?? 0, 4);
  b.writeUInt16LE(h.csumStart ?? 0, 6);
  b.writeUInt16LE(h.csumOffset ?? 0, 8);
  return b;
}

/**
 * A TCP super-packet as a TUN with TSO hands it over: one IPv4 (or IPv6) TCP packet with `payload`
 * bytes and its virtio_net_hdr (GSO TCPV4/TCPV6, segment size `mss`, checksum left to the kernel).
 * Returns the entry: header + packet.
 */
export function tcpSuperPacket(src: string, dst: string, payload: number, mss = 1400, v6?: { src: Uint8Array; dst: Uint8Array }): Buffer {
  const tcp = Buffer.alloc(20 + payload);
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(5201, 2);
  tcp[12] = 5 << 4;
  tcp[13] = 0x18; // PSH ACK
  tcp.writeUInt16BE(65535, 14);
  for (let i = 20; i < tcp.length; i++) tcp[i] = i & 0xff;
  const pkt = v6 ? ipv6Packet(v6.src, v6.dst, tcp, 6) : ipv4Packet(src, dst, 6, tcp);
  const l4 = v6 ? 40 : 20;
  return Buffer.concat([vnetHeader({ flags: 1, gsoType: v6 ? 4 : 1, hdrLen: l4 + 20, gsoSize: mss, csumStart: l4, csumOffset: 16 }), pkt]);
}

/** One's-complement sum (folded) of the concatenated parts, for the checksums below. */
function onesSum(...parts: Uint8Array[]): number {
  let sum = 0;
  const all = Buffer.concat(parts);
  for (let i = 0; i < all.length; i += 2) sum += (all[i]! << 8) + (i + 1 < all.length ? all[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * An Ethernet frame with one TCP data segment as a kernel sends it (ACK, checksums complete), over
 * IPv6 when the addresses have 16 bytes and IPv4 when they have 4 (DF set, ID `id`).
 */
export function tcpFrame(o: { dstMac: Uint8Array; srcMac: Uint8Array; src: Uint8Array; dst: Uint8Array; sport?: number; dport?: number; seq: number; payload: number; id?: number; flags?: number }): Buffer {
  const v6 = o.src.length === 16;
  const payload = Buffer.alloc(o.payload, o.seq & 0xff);
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(o.sport ?? 40000, 0);
  tcp.writeUInt16BE(o.dport ?? 5201, 2);
  tcp.writeUInt32BE(o.seq >>> 0, 4);
  tcp.writeUInt32BE(1, 8);
  tcp[12] = 5 << 4;
  tcp[13] = o.flags ?? 0x10;
  tcp.writeUInt16BE(1000, 14);
  const len = tcp.length + payload.length;
  const ip = v6 ? ipv6Packet(o.src, o.dst, Buffer.concat([tcp, payload]), 6) : ipv4Packet(`${o.src.join('.')}`, `${o.dst.join('.')}`, 6, Buffer.concat([tcp, payload]));
  if (!v6) {
    ip.writeUInt16BE(o.id ?? 1, 4);
    ip.writeUInt16BE(0x4000, 6);
    ip.writeUInt16BE(0, 10);
    ip.writeUInt16BE(0xffff - onesSum(ip.subarray(0, 20)), 10);
  }
  const l4 = v6 ? 40 : 20;
  const pseudo = Buffer.concat([Buffer.from(o.src), Buffer.from(o.dst), Buffer.from([0, 0, len >> 8, len & 0xff, 0, 0, 0, 6])]);
  ip.writeUInt16BE(0, l4 + 16);
  ip.writeUInt16BE(0xffff - onesSum(pseudo, ip.subarray(l4)), l4 + 16);
  const eth = Buffer.alloc(14);
  Buffer.from(o.dstMac).copy(eth, 0);
  Buffer.from(o.srcMac).copy(eth, 6);
  eth.writeUInt16BE(v6 ? 0x86dd : 0x0800, 12);
  return Buffer.concat([eth, ip]);
}
