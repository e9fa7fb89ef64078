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

/** A minimal IPv6 packet (next header 59 = no next header) with the given addresses. */
export function ipv6Packet(src: Uint8Array, dst: Uint8Array, payload: Uint8Array = new Uint8Array()): Buffer {
  const p = Buffer.alloc(40 + payload.length);
  p[0] = 0x60;
  p.writeUInt16BE(payload.length, 4);
  p[6] = 59;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  p.set(payload, 40);
  return p;
}
