/**
 * Reads from a socket until a scanner says how many bytes make up the prefix (a request head, a
 * ClientHello, a PROXY header), with a byte limit and a timeout. What follows the prefix is returned as
 * `rest` and must be forwarded by the caller (`bytes` is both, in one buffer). The socket is left paused.
 *
 * The work is linear in the bytes received: each chunk is given to the scanner once (a scanner keeps
 * its own small state and never looks at earlier chunks again) and the chunks are joined once, at the
 * end. A client trickling one byte per TCP segment costs O(1) per segment, not O(bytes so far).
 */
import type { Duplex } from 'node:stream';
import { HeadTimeoutError, HeadTooLargeError } from './errors.js';

/**
 * An incremental parser of one prefix. `push` gets the bytes in order, each byte once; it returns the
 * prefix length counted from the first byte ever pushed once the prefix is complete (it may be less
 * than the bytes pushed so far), undefined while more bytes are needed, and throws a coded error on
 * bytes that can never form the prefix. Its work and state must be bounded by the bytes pushed.
 */
export interface PrefixScanner {
  push(chunk: Buffer): number | undefined;
}

export interface ReadPrefixOptions {
  maxBytes: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Names the prefix in error messages. */
  what: string;
  /** Bytes already read from the socket (they come first). */
  initial?: Buffer;
}

export function readPrefix(socket: Duplex, scanner: PrefixScanner, opts: ReadPrefixOptions): Promise<{ prefix: Buffer; rest: Buffer; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    /** Bytes given to the scanner (never more than maxBytes). */
    let scanned = 0;
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
      if (err) {
        chunks.length = 0;
        reject(err);
        return;
      }
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
      resolve({ prefix: all.subarray(0, n), rest: all.subarray(n!), bytes: all });
    };
    const tooLarge = () => finish(new HeadTooLargeError(`${opts.what} exceeds ${opts.maxBytes} bytes`));
    const take = (chunk: Buffer) => {
      if (chunk.length === 0) return;
      chunks.push(chunk);
      total += chunk.length;
      // the scanner never sees more than maxBytes: what it holds is bounded whatever the peer sends
      const room = opts.maxBytes - scanned;
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      scanned += part.length;
      let n: number | undefined;
      try {
        n = scanner.push(part);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (n !== undefined) {
        if (n > opts.maxBytes) tooLarge();
        else finish(undefined, n);
      } else if (scanned >= opts.maxBytes) tooLarge();
    };
    const onData = (chunk: Buffer) => take(chunk);
    const onEnd = () => finish(new HeadTimeoutError(`connection closed before a complete ${opts.what}`));
    const onError = (err: Error) => finish(err);
    const onAbort = () => finish(new HeadTimeoutError('aborted'));
    const timer = setTimeout(() => finish(new HeadTimeoutError(`no complete ${opts.what} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    if (opts.initial && !done) take(opts.initial);
    if (!done) socket.resume();
  });
}
