/**
 * The toolkit's builders speak the protocols exactly as wrong as they claim (no root needed): the
 * post-quantum ClientHello is a real TLS 1.3 hello (a TLS server answers it, even in 1-byte records)
 * that our parser routes; the malformed ones are refused by it; address spellings are one address;
 * forged packets carry valid checksums (else they would test the kernel's checksum check instead).
 */
import net from 'node:net';
import tls from 'node:tls';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseIp } from '@rvpn/config';
import { createCa, issueCertificate } from '@rvpn/pki';
import { readClientHello } from '@rvpn/proxy';
import { FrameType, MAX_FRAME_PAYLOAD } from '@rvpn/tunnel';
import { clientHello, clientHelloMessage, malformedHellos, toRecords } from './clienthello.js';
import { addressSpellings, badFrames } from './tunnel-attacks.js';
import { forgeIp, forgeL2, IP_KINDS, L2_KINDS, MARK_TTL, type L2Context } from './packets.js';
import { ConnLedger, classifyAnswer, paced, parseDuration, parseHostPort, percentile } from './common.js';

/** The internet checksum over buffers; 0 when the embedded checksum is right. */
function sum16(parts: Buffer[]): number {
  let s = 0;
  for (const p of parts) for (let i = 0; i < p.length; i += 2) s += (p[i]! << 8) | (i + 1 < p.length ? p[i + 1]! : 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

describe('ClientHellos', () => {
  it('the post-quantum-size hello is about 1.5 KB and a TLS 1.3 server answers it, also cut into 1-byte records', async () => {
    const ca = await createCa({ commonName: 'test' });
    const leaf = await issueCertificate(ca, { commonName: 'api', usage: 'server', dnsNames: ['api.example'] });
    const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem, minVersion: 'TLSv1.3' });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const hs = clientHelloMessage({ serverName: 'api.example', postQuantum: true });
      expect(hs.length).toBeGreaterThan(1300);
      for (const wire of [clientHello({ serverName: 'api.example', postQuantum: true }), Buffer.concat(toRecords(hs, 1))]) {
        const s = net.connect(port, '127.0.0.1');
        const first = new Promise<Buffer>((resolve) => s.once('data', resolve));
        s.write(wire);
        expect(classifyAnswer(await first)).toBe('tls-server-hello');
        s.destroy();
      }
    } finally {
      server.close();
    }
  });

  it('our ClientHello parser routes the hello by its SNI, in 1-byte records too; the malformed ones are refused or wait', async () => {
    const read = async (bytes: Buffer, timeoutMs = 200) => {
      const s = new PassThrough();
      s.end(bytes);
      return readClientHello(s, { maxBytes: 16 * 1024 + 5, timeoutMs });
    };
    expect((await read(Buffer.concat(toRecords(clientHelloMessage({ serverName: 'api.example', postQuantum: true }), 1)))).serverName).toBe('api.example');
    // the trickle attack's padded hello: in 1-byte records just under the 16 KiB limit
    const padded = Buffer.concat(toRecords(clientHelloMessage({ serverName: 'api.example', postQuantum: true, padTo: 2600 }), 1));
    expect(padded.length).toBeLessThan(16 * 1024 + 5);
    expect((await read(padded)).serverName).toBe('api.example');
    for (const v of malformedHellos('api.example')) {
      const outcome = await read(v.bytes).then((r) => `routed:${r.serverName ?? ''}`, (err: { code?: string }) => `refused:${err.code}`);
      if (v.name === 'unknown-sni') expect(outcome, v.name).toBe('routed:no-route.invalid.example');
      else if (v.name === 'no-sni') expect(outcome, v.name).toBe('routed:');
      else expect(outcome, v.name).toMatch(/^refused:RVPN_ERR_PROXY_/);
    }
  });
});

describe('tunnel frames and HA addresses', () => {
  it('the bad-frame catalogue covers every frame type with over-limit, zero and short lengths', () => {
    const cases = badFrames('post-hello');
    for (const t of Object.values(FrameType)) {
      const mine = cases.filter((c) => c.bytes[0] === t);
      expect(mine.length, `type 0x${t.toString(16)}`).toBeGreaterThanOrEqual(5);
      expect(mine.some((c) => c.bytes.readUIntBE(1, 3) > MAX_FRAME_PAYLOAD)).toBe(true);
    }
  });

  it('spellings of a bond address are distinct strings of one address', () => {
    const a = 'fd8f:6d53:b97a:1::1078';
    const sp = addressSpellings(a, 120);
    expect(sp).toHaveLength(120);
    expect(new Set(sp).size).toBe(120);
    for (const s of sp) expect(parseIp(s)?.value).toBe(parseIp(a)!.value);
    expect(sp).toContain('fd8f:6d53:b97a:1:0:0:0:1078');
    expect(sp.some((s) => /[A-F]/.test(s))).toBe(true);
  });
});

describe('forged packets', () => {
  it('IPv4 headers, TCP/UDP/ICMP and ICMPv6 checksums are right, and every packet carries the marker TTL', () => {
    for (const kind of IP_KINDS) {
      for (const p of forgeIp(kind)) {
        if (p[0]! >> 4 === 4) {
          expect(p[8], kind).toBe(MARK_TTL);
          expect(sum16([p.subarray(0, 20)]), `${kind}: IPv4 header checksum`).toBe(0);
          const frag = p.readUInt16BE(6);
          if (p[9] === 1 && (frag & 0x3fff) === 0) expect(sum16([p.subarray(20)]), `${kind}: ICMP checksum`).toBe(0);
        } else {
          expect(p[0]! >> 4, kind).toBe(6);
          expect(p[7], kind).toBe(MARK_TTL);
          expect(p.readUInt16BE(4), `${kind}: payload length`).toBe(p.length - 40);
        }
      }
    }
  });

  it('the HA frames come from the attacker\'s own MAC (else the switch drops them before they test anything)', () => {
    const ctx: L2Context = { ownMac: '02:11:22:33:44:55', ownV4: '192.168.123.16', victimV4: '192.168.123.70', victimV6: 'fd8f:6d53:b97a:1::1006', otherShootV4: '192.168.123.17', otherShootV6: 'fd8f:6d53:b97a:1::101', shootDstV4: '100.96.1.10', shootDstV6: 'fd10:96:1::10', roguePrefix: '2001:db8:bad::/64' };
    for (const kind of L2_KINDS) {
      for (const f of forgeL2(kind, ctx)) expect(f.subarray(6, 12).toString('hex'), kind).toBe('021122334455');
    }
    const [ra] = forgeL2('router-advertisement', ctx);
    const ip = ra!.subarray(14);
    const icmp = ip.subarray(40);
    const pseudo = Buffer.alloc(40);
    ip.copy(pseudo, 0, 8, 40);
    pseudo.writeUInt32BE(icmp.length, 32);
    pseudo[39] = 58;
    expect(icmp[0]).toBe(134);
    expect(sum16([pseudo, icmp])).toBe(0);
  });
});

describe('common pieces', () => {
  it('parses targets and durations, computes nearest-rank percentiles', () => {
    expect(parseHostPort('[fd00::10]:8132')).toEqual({ host: 'fd00::10', port: 8132 });
    expect(parseHostPort('10.1.0.20:1194')).toEqual({ host: '10.1.0.20', port: 1194 });
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('250ms')).toBe(250);
    expect(percentile([1, 2, 3, 4, 100], 99)).toBe(100);
    expect(percentile([1, 2, 3, 4, 100], 50)).toBe(3);
    expect(percentile([], 50)).toBeUndefined();
  });

  it('paces calls at the stated rate and the ledger tells the server\'s closes from ours', async () => {
    let n = 0;
    expect(await paced(200, 250, () => n++)).toBe(50);
    expect(n).toBe(50);
    const server = net.createServer((s) => setTimeout(() => s.destroy(), 20));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const ledger = new ConnLedger();
    const a = net.connect(port, '127.0.0.1');
    const b = net.connect(port, '127.0.0.1');
    ledger.track(a);
    ledger.track(b);
    ledger.untrack(b);
    a.resume();
    await ledger.settle(2000);
    const sum = ledger.summary();
    expect(sum.closedByServer).toBe(1);
    expect(sum.stillOpen).toBe(0);
    expect(sum.closedWithin1s).toBe(1);
    server.close();
  });
});
