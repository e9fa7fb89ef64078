/**
 * Property tests of the MAC_ANNOUNCE codec (fast-check): any list of up to MAX_ANNOUNCED_MACS MACs
 * round-trips; any bytes from a peer decode to at most MAX_ANNOUNCED_MACS MACs or fail with
 * RVPN_ERR_PROTO_MALFORMED, nothing else.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeMacAnnouncement, encodeMacAnnouncement, MAX_ANNOUNCED_MACS } from './announce.js';
import { formatMac } from './ethernet.js';

const macArb = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => formatMac(b));

describe('MAC announcement properties', () => {
  it('round-trips any list of MACs up to the limit', () => {
    fc.assert(
      fc.property(fc.array(macArb, { maxLength: 300 }), (macs) => {
        expect(decodeMacAnnouncement(encodeMacAnnouncement(macs))).toEqual(macs);
      }),
    );
    const full = Array.from({ length: MAX_ANNOUNCED_MACS }, (_, i) => formatMac(Buffer.from([2, 0, 0, 0, i >> 8, i & 0xff])));
    expect(decodeMacAnnouncement(encodeMacAnnouncement(full))).toHaveLength(MAX_ANNOUNCED_MACS);
    expect(() => encodeMacAnnouncement([...full, '02:00:00:00:ff:ff'])).toThrow(RangeError);
  });

  it('decodes arbitrary bytes to a bounded list or a coded error only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2 + 6 * 64 }), fc.option(fc.integer({ min: 0, max: 0xffff })), (raw, count) => {
        const b = Buffer.from(raw);
        if (count !== null && b.length >= 2) b.writeUInt16BE(count, 0);
        try {
          const macs = decodeMacAnnouncement(b);
          expect(macs.length).toBeLessThanOrEqual(MAX_ANNOUNCED_MACS);
          expect(b.length).toBe(2 + 6 * macs.length);
          for (const m of macs) expect(m).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
        } catch (err) {
          expect((err as { code?: string }).code).toBe('RVPN_ERR_PROTO_MALFORMED');
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses a count above the limit even when the bytes are there', () => {
    const n = MAX_ANNOUNCED_MACS + 1;
    const b = Buffer.alloc(2 + 6 * n);
    b.writeUInt16BE(n, 0);
    expect(() => decodeMacAnnouncement(b)).toThrow(expect.objectContaining({ code: 'RVPN_ERR_PROTO_MALFORMED' }));
  });
});
