/**
 * Reads from a socket until `complete(buffer)` says how many bytes make up the prefix (a request
 * head, a ClientHello, a PROXY header), with a byte limit and a timeout. What follows the prefix is
 * returned as `rest` and must be forwarded by the caller. The socket is left paused.
 */
import type { Duplex } from 'node:stream';
import { HeadTimeoutError, HeadTooLargeError } from './errors.js';

/** `complete` returns the prefix length when the buffer holds a full prefix, undefined to read more, or throws. */
export function readPrefix(
  socket: Duplex,
  complete: (buf: Buffer) => number | undefined,
  opts: { maxBytes: number; timeoutMs: number; signal?: AbortSignal; what: string; initial?: Buffer },
): Promise<{ prefix: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = opts.initial ?? Buffer.alloc(0);
    let done = false;
    const finish = (err?: Error, n?: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.pause();
      if (err) reject(err);
      else resolve({ prefix: buf.subarray(0, n), rest: buf.subarray(n!) });
    };
    const check = () => {
      let n: number | undefined;
      try {
        n = complete(buf);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (n !== undefined && n > opts.maxBytes) finish(new HeadTooLargeError(`${opts.what} exceeds ${opts.maxBytes} bytes`));
      else if (n !== undefined) finish(undefined, n);
      else if (buf.length >= opts.maxBytes) finish(new HeadTooLargeError(`${opts.what} exceeds ${opts.maxBytes} bytes`));
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      check();
    };
    const onEnd = () => finish(new HeadTimeoutError(`connection closed before a complete ${opts.what}`));
    const onError = (err: Error) => finish(err);
    const onAbort = () => finish(new HeadTimeoutError('aborted'));
    const timer = setTimeout(() => finish(new HeadTimeoutError(`no complete ${opts.what} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (buf.length > 0) check();
    if (!done) socket.resume();
  });
}
