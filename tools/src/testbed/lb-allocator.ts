#!/usr/bin/env node
/**
 * The test bed's LoadBalancer implementation (a daemon, `node lb-allocator.js`): for every Service of
 * type LoadBalancer in the seed and the shoot it writes status.loadBalancer.ingress with an address from
 * that cluster's pool in 198.18.0.0/24 (the lab's "internet"; each pool is routed to its node, where
 * kube-proxy takes the traffic). In the shoot it also opens exactly those address:port pairs in the
 * node's inbound firewall, so a shoot with no LoadBalancer (reversed VPN) accepts nothing from outside
 * and classic mode opens one path (vpn-shoot's 4314). Polls each API server once a second.
 */
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { NODES, kubeconfigPath, type NodeName } from './config.js';
import { setShootOpenings } from './network.js';

interface Kubeconfig {
  clusters: Array<{ cluster: { server: string; 'certificate-authority-data': string; 'tls-server-name'?: string } }>;
  users: Array<{ user: { 'client-certificate-data': string; 'client-key-data': string } }>;
}

interface Service {
  metadata: { namespace: string; name: string };
  spec: { type?: string; ports?: Array<{ port: number; protocol?: string }> };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } };
}

function client(cluster: NodeName) {
  const kc = JSON.parse(readFileSync(kubeconfigPath(cluster), 'utf8')) as Kubeconfig;
  const c = kc.clusters[0]!.cluster;
  const u = kc.users[0]!.user;
  const b = (s: string) => Buffer.from(s, 'base64');
  const url = new URL(c.server);
  const agent = new https.Agent({ ca: b(c['certificate-authority-data']), cert: b(u['client-certificate-data']), key: b(u['client-key-data']), ...(c['tls-server-name'] ? { servername: c['tls-server-name'] } : {}), keepAlive: true });
  return (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = https.request({ host: url.hostname, port: url.port || 443, path, method, agent, timeout: 5000, headers: { accept: 'application/json', ...(data ? { 'content-type': 'application/merge-patch+json', 'content-length': data.length } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (x: Buffer) => chunks.push(x));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') });
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

/** The addresses of a pool (a /26 and such), network and broadcast left out. */
export function poolAddresses(cidr: string): string[] {
  const [base, len] = cidr.split('/') as [string, string];
  const n = base.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
  const size = 2 ** (32 - Number(len));
  return Array.from({ length: size - 2 }, (_, i) => {
    const v = n + 1 + i;
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
  });
}

/** Chooses the address of each LoadBalancer Service: keeps a valid current one, else the lowest free one. */
export function allocate(services: Service[], pool: string[]): Map<string, string> {
  const lbs = services.filter((s) => s.spec.type === 'LoadBalancer').sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  const out = new Map<string, string>();
  const used = new Set<string>();
  for (const s of lbs) {
    const cur = s.status?.loadBalancer?.ingress?.[0]?.ip;
    if (cur && pool.includes(cur) && !used.has(cur)) {
      out.set(`${s.metadata.namespace}/${s.metadata.name}`, cur);
      used.add(cur);
    }
  }
  for (const s of lbs) {
    const key = `${s.metadata.namespace}/${s.metadata.name}`;
    if (out.has(key)) continue;
    const ip = pool.find((a) => !used.has(a));
    if (!ip) continue; // pool exhausted: stays pending, as with a real cloud
    out.set(key, ip);
    used.add(ip);
  }
  return out;
}

async function loop(): Promise<void> {
  const clients = new Map<NodeName, ReturnType<typeof client>>();
  let openings = '';
  const lastError = new Map<NodeName, string>();
  for (;;) {
    for (const cluster of ['seed', 'shoot'] as NodeName[]) {
      try {
        if (!clients.has(cluster)) clients.set(cluster, client(cluster));
        const call = clients.get(cluster)!;
        const r = await call('GET', '/api/v1/services');
        if (r.status !== 200) throw new Error(`list services: ${r.status}`);
        const services = (r.json as { items: Service[] }).items;
        const chosen = allocate(services, poolAddresses(NODES[cluster].lbPool));
        for (const s of services) {
          const ip = chosen.get(`${s.metadata.namespace}/${s.metadata.name}`);
          if (!ip || s.status?.loadBalancer?.ingress?.[0]?.ip === ip) continue;
          const p = await call('PATCH', `/api/v1/namespaces/${s.metadata.namespace}/services/${s.metadata.name}/status`, { status: { loadBalancer: { ingress: [{ ip, ipMode: 'VIP' }] } } });
          process.stdout.write(`${new Date().toISOString()} ${cluster} ${s.metadata.namespace}/${s.metadata.name} -> ${ip} (${p.status})\n`);
        }
        if (cluster === 'shoot') {
          const open = services.filter((s) => chosen.has(`${s.metadata.namespace}/${s.metadata.name}`))
            .flatMap((s) => (s.spec.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP').map((p) => ({ ip: chosen.get(`${s.metadata.namespace}/${s.metadata.name}`)!, port: p.port })));
          const key = JSON.stringify(open);
          if (key !== openings) {
            await setShootOpenings(open);
            openings = key;
            process.stdout.write(`${new Date().toISOString()} shoot firewall: inbound open to ${open.length ? open.map((o) => `${o.ip}:${o.port}`).join(', ') : 'nothing'}\n`);
          }
        }
        lastError.delete(cluster);
      } catch (err) {
        clients.delete(cluster); // the kubeconfig may be written later (the shoot comes up after the seed)
        const msg = (err as Error).message;
        if (lastError.get(cluster) !== msg) process.stdout.write(`${new Date().toISOString()} ${cluster}: ${msg.split('\n')[0]} (retrying every second)\n`);
        lastError.set(cluster, msg);
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

if (process.argv[1]?.endsWith('lb-allocator.js')) {
  process.on('SIGTERM', () => process.exit(0));
  void loop();
}
