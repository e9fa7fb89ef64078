/**
 * The helm-test probe against a real egress proxy on loopback (the seed server's 9443 component, with
 * certificates made here): 200 and an open connection to the target pass; no tunnel, a target outside
 * the shoot networks, a proxy serving a client-only certificate (classic's old bug) and a foreign
 * client certificate each fail with their reason.
 */
import { execFile } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cidr, CidrSet } from '@rvpn/config';
import { createEgressProxy, PathGate } from '@rvpn/egress';
import { createCa, issueCertificate, type CertKeyPair } from '@rvpn/pki';
import { connectProbe } from './connect-probe.js';

let ca: CertKeyPair, server: CertKeyPair, clientOnly: CertKeyPair, proxyClient: CertKeyPair, foreign: CertKeyPair;
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

beforeAll(async () => {
  ca = await createCa({ commonName: 'ca-vpn' });
  server = await issueCertificate(ca, { commonName: 'kube-apiserver-http-proxy', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  clientOnly = await issueCertificate(ca, { commonName: 'vpn-seed-client', usage: 'client' });
  proxyClient = await issueCertificate(ca, { commonName: 'kube-apiserver-http-proxy-client', usage: 'client' });
  foreign = await issueCertificate(await createCa({ commonName: 'other' }), { commonName: 'kube-apiserver-http-proxy-client', usage: 'client' });
});

async function target(): Promise<number> {
  const srv = net.createServer((s) => s.end());
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as net.AddressInfo).port;
}

async function proxy(opts: { tunnel?: boolean; cert?: CertKeyPair } = {}): Promise<number> {
  const gate = new PathGate();
  gate.set(opts.tunnel ?? true);
  const p = createEgressProxy({
    host: '127.0.0.1', port: 0,
    tls: () => ({ ca: ca.certPem, cert: (opts.cert ?? server).certPem, key: (opts.cert ?? server).keyPem }),
    allowedCommonNames: ['kube-apiserver-http-proxy-client'],
    allowedDestinations: new CidrSet([Cidr.parse('127.0.0.0/8')]),
    gate, holdTimeoutMs: 200, maxPending: 10, dialTimeoutMs: 1000,
  });
  const { port } = await p.start();
  cleanup.push(() => p.stop());
  return port;
}

const probe = (port: number, tgt: string, id: CertKeyPair = proxyClient, host = 'localhost') =>
  connectProbe({ proxy: `https://${host}:${port}`, target: tgt, ca: ca.certPem, cert: id.certPem, key: id.keyPem, timeoutMs: 5000 });

describe('connect-probe', () => {
  it('passes when the proxy answers 200 (its connection to the target is open)', async () => {
    expect(await probe(await proxy(), `127.0.0.1:${await target()}`)).toMatchObject({ ok: true });
  });

  it('fails with 503 and the reason when no tunnel is up', async () => {
    const r = await probe(await proxy({ tunnel: false }), `127.0.0.1:${await target()}`);
    expect(r).toMatchObject({ ok: false, code: 'RVPN_ERR_PROXY_STATUS' });
    expect(!r.ok && r.reason).toMatch(/503.*tunnel to the shoot not connected/);
  });

  it('fails with 502 when nothing listens at the target', async () => {
    const closed = await target();
    cleanup.pop()!();
    await new Promise((r) => setTimeout(r, 50));
    const r = await probe(await proxy(), `127.0.0.1:${closed}`);
    expect(!r.ok && r.reason).toMatch(/50[24]/);
  });

  it('fails with 403 for a target outside the shoot networks', async () => {
    const r = await probe(await proxy(), '10.9.9.9:443');
    expect(!r.ok && r.reason).toMatch(/403/);
  });

  it('fails on TLS when the proxy serves a certificate without its server name (the classic bug of finding 6)', async () => {
    const r = await probe(await proxy({ cert: clientOnly }), `127.0.0.1:${await target()}`);
    expect(r).toMatchObject({ ok: false });
    expect(!r.ok && r.reason).toMatch(/^TLS to https:\/\/localhost:\d+ failed/);
  });

  it('fails on TLS with a client certificate of another CA', async () => {
    const r = await probe(await proxy(), `127.0.0.1:${await target()}`, foreign);
    expect(r).toMatchObject({ ok: false });
    expect(!r.ok && r.reason).toMatch(/TLS|closed|reset/i);
  });

  it('is a CLI: exit 0 with one line on success, 1 with the reason on failure', async () => {
    const dist = fileURLToPath(new URL('../dist/connect-probe.js', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'rvpn-probe-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const files = { ca: ca.certPem, cert: proxyClient.certPem, key: proxyClient.keyPem };
    for (const [k, v] of Object.entries(files)) writeFileSync(join(dir, k), v);
    const run = (port: number, tgt: string) => new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [dist, '--proxy', `https://localhost:${port}`, '--target', tgt, '--ca', join(dir, 'ca'), '--cert', join(dir, 'cert'), '--key', join(dir, 'key')], (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, out: stdout + stderr });
      });
    });
    const ok = await run(await proxy(), `127.0.0.1:${await target()}`);
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.out).toMatch(/200, the connection into the shoot is open/);
    const bad = await run(await proxy({ tunnel: false }), `127.0.0.1:${await target()}`);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/FAILED .*503/);
  });
});
