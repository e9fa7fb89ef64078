/**
 * Attacks through the kube-apiserver's CONNECT proxy (the seed server's 9443): slow readers that ask
 * the shoot for a large download through the tunnel and never read it. The seed server must hold each
 * to a per-connection buffer, not buffer the shoot's answer in memory.
 */
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { sleep, type AttackResult, type HostPort } from './common.js';
import { proxyConnectTo } from './proxy-connect.js';

export async function slowReaders(opts: { proxy: HostPort; ca: string; cert: string; key: string; servername?: string; url: { host: string; port: number; path: string }; readers: number; durationMs: number }): Promise<AttackResult> {
  const sockets: tls.TLSSocket[] = [];
  const outcomes: Record<string, number> = {};
  const note = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);
  await Promise.all(Array.from({ length: opts.readers }, async () => {
    const s = tls.connect({ host: opts.proxy.host, port: opts.proxy.port, ca: readFileSync(opts.ca), cert: readFileSync(opts.cert), key: readFileSync(opts.key), servername: opts.servername ?? 'vpn-seed-server', minVersion: 'TLSv1.3' });
    s.on('error', () => undefined);
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('secureConnect', () => resolve());
        s.once('error', reject);
      });
      const code = await proxyConnectTo(s, `${opts.url.host}:${opts.url.port}`, 10_000);
      note(`connect-${code}`);
      if (code !== 200) {
        s.destroy();
        return;
      }
      s.write(`GET ${opts.url.path} HTTP/1.1\r\nHost: ${opts.url.host}\r\n\r\n`);
      // read one chunk (the answer started), then never again
      await new Promise<void>((resolve) => {
        s.once('data', () => resolve());
        setTimeout(resolve, 3000);
        s.resume();
      });
      s.pause();
      sockets.push(s);
    } catch (err) {
      note(`error-${(err as NodeJS.ErrnoException).code ?? 'tls'}`);
      s.destroy();
    }
  }));
  await sleep(opts.durationMs);
  const stillOpen = sockets.filter((s) => !s.destroyed).length;
  for (const s of sockets) s.destroy();
  return { attack: 'slow-reader', target: `${opts.proxy.host}:${opts.proxy.port}`, rate: opts.readers, rateUnit: 'concurrent readers', durationMs: opts.durationMs, url: `http://${opts.url.host}:${opts.url.port}${opts.url.path}`, outcomes, stillOpen };
}
