import { describe, expect, it } from 'vitest';
import { decodeHello, encodeFrame, encodeHello, FrameParser, FrameType, MAX_FRAME_PAYLOAD, PROTOCOL_MAJOR, PROTOCOL_MINOR } from './protocol.js';

const hello = { role: 'shoot' as const, identity: 'vpn-shoot/x', keepaliveIntervalMs: 250, keepaliveTimeoutMs: 1000, vpnNetwork: 'fd8f:6d53:b97a:1::/96', mtu: 1500 };

describe('FrameParser', () => {
  const frames = [
    encodeFrame(FrameType.DATA, Buffer.from('first packet')),
    encodeFrame(FrameType.PING, Buffer.alloc(12, 7)),
    encodeFrame(FrameType.CLOSE, Buffer.alloc(0)),
    encodeFrame(FrameType.DATA_BATCH, Buffer.alloc(5000, 0xab)),
  ];
  const wire = Buffer.concat(frames);

  it('reassembles frames split at every byte boundary', () => {
    for (let cut = 1; cut < wire.length; cut += cut < 64 ? 1 : 97) {
      const got: Array<[number, string]> = [];
      const p = new FrameParser((t, pl) => got.push([t, pl.toString('hex')]), (r) => { throw new Error(r); });
      p.push(wire.subarray(0, cut));
      p.push(wire.subarray(cut));
      expect(got.map((g) => g[0])).toEqual([FrameType.DATA, FrameType.PING, FrameType.CLOSE, FrameType.DATA_BATCH]);
      expect(got[3]![1]).toBe(Buffer.alloc(5000, 0xab).toString('hex'));
    }
  });

  it('handles one byte at a time', () => {
    const got: number[] = [];
    const p = new FrameParser((t) => got.push(t), (r) => { throw new Error(r); });
    for (const b of wire) p.push(Buffer.from([b]));
    expect(got).toHaveLength(4);
  });

  it('refuses oversized frames', () => {
    const errors: string[] = [];
    const p = new FrameParser(() => undefined, (r) => errors.push(r));
    const h = Buffer.from([FrameType.DATA, 0xff, 0xff, 0xff]);
    p.push(h);
    expect(errors[0]).toMatch(new RegExp(`exceeds the ${MAX_FRAME_PAYLOAD}-byte limit`));
  });
});

describe('HELLO', () => {
  it('round-trips and validates', () => {
    const f = encodeHello(hello);
    const decoded = decodeHello(f.subarray(4));
    expect(decoded).toMatchObject({ ...hello, major: PROTOCOL_MAJOR, minor: PROTOCOL_MINOR });
    expect(decodeHello(Buffer.from('nope'))).toMatch(/magic/);
    expect(decodeHello(encodeHello({ ...hello, role: 'seed' }).subarray(4))).toMatch(/assignment/);
  });
  it('carries the mapping fingerprint, a short string or nothing', () => {
    expect(decodeHello(encodeHello({ ...hello, mapping: '0123456789abcdef' }).subarray(4))).toMatchObject({ mapping: '0123456789abcdef' });
    expect(decodeHello(encodeHello({ ...hello, mapping: 'f'.repeat(65) }).subarray(4))).toMatch(/mapping must be a short string/);
    expect(decodeHello(encodeHello({ ...hello, mapping: 7 } as never).subarray(4))).toMatch(/mapping must be a short string/);
  });
  it('lets a foreign major through for the version check', () => {
    const d = decodeHello(encodeHello({ role: 'x' } as never, 2, 0).subarray(4));
    expect(d).toMatchObject({ major: 2, minor: 0 });
  });
});
