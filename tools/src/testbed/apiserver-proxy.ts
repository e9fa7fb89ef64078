#!/usr/bin/env node
/**
 * The shoot's apiserver-proxy (Gardener's path for in-cluster clients, which dial the `kubernetes`
 * Service IP and send no SNI): a daemon on the shoot node listening on the address the shoot's
 * kube-apiserver advertises as the `kubernetes` endpoint; each connection is carried to the seed's entry
 * point with `CONNECT` on 8443 and `X-Gardener-Destination: outbound|443||kube-apiserver.<ns>.svc.cluster.local`,
 * and sni-proxy pipes it to that shoot's API server. TLS stays end to end (the API server's certificate
 * names the Service IP).
 *   node apiserver-proxy.js <listen ip:port> <entry ip:port> <namespace>
 */
import net from 'node:net';

export function connectHead(namespace: string): string {
  const dest = `kube-apiserver.${namespace}.svc.cluster.local:443`;
  return `CONNECT ${dest} HTTP/1.1\r\nHost: ${dest}\r\nX-Gardener-Destination: outbound|443||kube-apiserver.${namespace}.svc.cluster.local\r\n\r\n`;
}

export function startApiserverProxy(listen: { host: string; port: number }, entry: { host: string; port: number }, namespace: string): net.Server {
  const server = net.createServer((down) => {
    down.pause();
    const up = net.connect(entry.port, entry.host);
    let head = Buffer.alloc(0);
    const fail = () => {
      down.destroy();
      up.destroy();
    };
    up.setTimeout(10_000, fail);
    down.on('error', fail);
    up.on('error', fail);
    up.once('connect', () => up.write(connectHead(namespace)));
    const onHead = (c: Buffer) => {
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 8192) fail();
        return;
      }
      up.off('data', onHead);
      up.setTimeout(0);
      if (!/^HTTP\/1\.[01] 200/.test(head.subarray(0, end).toString('latin1'))) {
        process.stdout.write(`entry point refused: ${head.subarray(0, end).toString('latin1').split('\r\n')[0]}\n`);
        fail();
        return;
      }
      const rest = head.subarray(end + 4);
      if (rest.length) down.write(rest);
      down.pipe(up);
      up.pipe(down);
      down.resume();
    };
    up.on('data', onHead);
  });
  server.listen(listen.port, listen.host);
  return server;
}

if (process.argv[1]?.endsWith('apiserver-proxy.js')) {
  const [listen, entry, namespace] = process.argv.slice(2);
  const hp = (s: string | undefined) => {
    const [host, port] = (s ?? '').split(':');
    if (!host || !port) throw new Error('usage: apiserver-proxy <listen ip:port> <entry ip:port> <namespace>');
    return { host, port: Number(port) };
  };
  const s = startApiserverProxy(hp(listen), hp(entry), namespace ?? '');
  s.on('listening', () => process.stdout.write(`apiserver-proxy on ${listen} -> ${entry} (${namespace})\n`));
  process.on('SIGTERM', () => process.exit(0));
}
