/**
 * Two in-memory Duplex streams joined back to back, for session tests without sockets. The
 * high-water mark is configurable so that backpressure can be exercised; `pause(side)` makes one
 * side stop reading, as a stalled peer would.
 */
import { Duplex } from 'node:stream';

export function createMemoryTransportPair(opts: { highWaterMark?: number } = {}): [Duplex, Duplex] {
  const hwm = opts.highWaterMark ?? 64 * 1024;
  let b!: Duplex;
  const make = (peer: () => Duplex) =>
    new Duplex({
      highWaterMark: hwm,
      read() {},
      write(chunk: Buffer, _enc, cb) {
        const p = peer();
        if (p.destroyed) return cb();
        // Deliver asynchronously, like a socket; complete the write only when the peer's
        // readable side accepted it, so a stalled reader backs up into our writableLength.
        setImmediate(() => {
          if (p.push(Buffer.from(chunk))) cb();
          else p.once('resume', () => cb());
        });
      },
      final(cb) {
        const p = peer();
        if (!p.destroyed) setImmediate(() => p.push(null));
        cb();
      },
      destroy(err, cb) {
        const p = peer();
        setImmediate(() => { if (!p.destroyed) p.destroy(); });
        cb(err);
      },
    });
  const a = make(() => b);
  b = make(() => a);
  return [a, b];
}
