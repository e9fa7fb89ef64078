/** An HTTP CONNECT on an already open stream (plain or TLS): writes the request, reads the status line. */
import type { Duplex } from 'node:stream';

export function proxyConnectTo(s: Duplex, authority: string, timeoutMs: number, headers: string[] = []): Promise<number> {
  s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`);
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const done = (code: number) => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      s.pause();
      resolve(code);
    };
    const onData = (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 8192) done(0);
        return;
      }
      const rest = buf.subarray(end + 4);
      if (rest.length) s.unshift(rest);
      done(Number(/^HTTP\/1\.[01] (\d{3})/.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? 0));
    };
    const onClose = () => done(0);
    const timer = setTimeout(() => done(0), timeoutMs);
    s.on('data', onData);
    s.once('close', onClose);
  });
}
