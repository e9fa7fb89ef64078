/**
 * HTTP/1.1 CONNECT client: opens a TCP connection to a proxy, asks it for a tunnel and hands back
 * the raw socket once the proxy answered 200. Used by vpn-shoot to reach its vpn-seed-server through
 * the seed's shared entry point (sni-proxy on 8443/8132), where the route is chosen by an extra
 * header (`X-Gardener-Destination` or the legacy `Reversed-VPN`) and the request-line target is ignored.
 */
import net from 'node:net';
import { HeadScanner } from './connect-head.js';
import { ProxyDialError, ProxyProtocolError, ProxyStatusError, ProxyTimeoutError } from './errors.js';

export interface ConnectDialOptions {
  proxyHost: string;
  proxyPort: number;
  /** Request-line authority, e.g. `vpn-seed-server:1194`. */
  target: string;
  /** Extra request headers, e.g. `{ 'X-Gardener-Destination': 'outbound|1194||vpn-seed-server.ns.svc.cluster.local' }`. */
  headers?: Record<string, string>;
  /** Whole dial budget (TCP connect + CONNECT answer). Default 10 s. */
  timeoutMs?: number;
  /** Largest response head accepted. Default 16 KiB. */
  maxHeadBytes?: number;
  signal?: AbortSignal;
}

export interface ConnectDialResult {
  socket: net.Socket;
  status: number;
}

/**
 * Dials through the proxy. Resolves with a socket positioned after the proxy's response head
 * (bytes the proxy sent past it are pushed back into the socket). Rejects with a coded error;
 * the socket is destroyed on every failure.
 */
export function dialViaConnect(opts: ConnectDialOptions): Promise<ConnectDialResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxHead = opts.maxHeadBytes ?? 16 * 1024;
  return new Promise<ConnectDialResult>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason ?? new Error('aborted'));
      return;
    }
    const socket = net.connect({ host: opts.proxyHost, port: opts.proxyPort });
    socket.setNoDelay(true);
    // linear in the bytes received, however the proxy splits its answer
    const chunks: Buffer[] = [];
    const scanner = new HeadScanner({ probe: false });
    let size = 0;
    let connected = false;
    let settled = false;
    const where = `${opts.proxyHost}:${opts.proxyPort}`;

    const finish = (err: Error | undefined, status = 0, rest?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err) {
        socket.destroy();
        reject(err);
        return;
      }
      socket.pause();
      if (rest && rest.length > 0) socket.unshift(rest);
      resolve({ socket, status });
    };
    const onAbort = () => finish(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
    const onError = (err: Error) =>
      finish(connected
        ? new ProxyProtocolError(`connection to proxy ${where} failed during CONNECT: ${err.message}`, { cause: err })
        : new ProxyDialError(`cannot reach proxy ${where}: ${err.message}`, { cause: err, details: { proxy: where } }));
    const onClose = () => finish(new ProxyProtocolError(`proxy ${where} closed the connection before answering the CONNECT`, { details: { proxy: where } }));
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      const headEnd = scanner.push(chunk);
      if (headEnd === undefined) {
        if (size > maxHead) finish(new ProxyProtocolError(`proxy ${where} sent a response head over ${maxHead} bytes`));
        return;
      }
      const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      const end = headEnd - 4;
      const head = buf.subarray(0, end).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?/.exec(head);
      if (!m) {
        finish(new ProxyProtocolError(`proxy ${where} did not answer with HTTP/1.x: ${JSON.stringify(head.slice(0, 80))}`));
        return;
      }
      const status = Number(m[1]);
      if (status !== 200) {
        const reason = m[2] ?? '';
        const bodyHint = buf.subarray(end + 4, end + 4 + 200).toString('utf8').trim();
        finish(new ProxyStatusError(`proxy ${where} refused CONNECT ${opts.target}: ${status} ${reason}${bodyHint ? ` (${bodyHint})` : ''}`, {
          details: { proxy: where, status, reason, body: bodyHint },
        }));
        return;
      }
      finish(undefined, status, buf.subarray(end + 4));
    };
    const timer = setTimeout(() => finish(new ProxyTimeoutError(`proxy ${where} did not answer the CONNECT within ${timeoutMs} ms`, { details: { proxy: where } })), timeoutMs);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('data', onData);
    socket.once('connect', () => {
      connected = true;
      const lines = [`CONNECT ${opts.target} HTTP/1.1`, `Host: ${opts.target}`];
      for (const [k, v] of Object.entries(opts.headers ?? {})) {
        if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) {
          finish(new ProxyProtocolError(`header ${JSON.stringify(k)} contains a line break`));
          return;
        }
        lines.push(`${k}: ${v}`);
      }
      socket.write(lines.join('\r\n') + '\r\n\r\n');
    });
  });
}
