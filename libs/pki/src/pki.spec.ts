import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { certificateInfo, createCa, createShootPki, issueCertificate, shootIdentityUri, writePkiFiles, type CertKeyPair } from './index.js';

function handshake(server: CertKeyPair, client: CertKeyPair, ca: string, clientCa = ca): Promise<{ ok: boolean; protocol?: string | null; cn?: string }> {
  return new Promise((resolve) => {
    const srv = tls.createServer({ cert: server.certPem, key: server.keyPem, ca, requestCert: true, rejectUnauthorized: true }, (s) => {
      const cn = s.getPeerCertificate().subject?.CN as string | undefined;
      s.end();
      srv.close();
      resolve({ ok: true, protocol: s.getProtocol(), ...(cn ? { cn } : {}) });
    });
    srv.on('tlsClientError', () => { srv.close(); resolve({ ok: false }); });
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      const c = tls.connect({ host: '127.0.0.1', port, ca: clientCa, cert: client.certPem, key: client.keyPem, servername: 'vpn-seed-server' });
      c.on('error', () => undefined);
      c.on('data', () => undefined);
    });
  });
}

describe('pki', () => {
  it('issues a shoot PKI that Node TLS accepts with TLS 1.3 and client authentication', async () => {
    const pki = await createShootPki({ namespace: 'shoot--a--b', haServers: 2, haClients: 2 });
    const r = await handshake(pki.server, pki.shootClient, pki.ca.certPem);
    expect(r).toEqual({ ok: true, protocol: 'TLSv1.3', cn: 'vpn-shoot-client' });
    const info = certificateInfo(pki.server.certPem);
    expect(info.commonName).toBe('vpn-seed-server');
    expect(info.dnsNames).toContain('vpn-seed-server.shoot--a--b.svc.cluster.local');
    expect(info.dnsNames).toContain('vpn-seed-server-1.shoot--a--b.svc');
    expect(certificateInfo(pki.shootClient.certPem).uris).toEqual([shootIdentityUri('shoot--a--b')]);
    expect(pki.shootClients.map((c) => certificateInfo(c.certPem).commonName)).toEqual(['vpn-shoot-client-0', 'vpn-shoot-client-1']);
    expect(certificateInfo(pki.proxyClient.certPem).commonName).toBe('kube-apiserver-http-proxy-client');
    expect(certificateInfo(pki.ca.certPem).isCa).toBe(true);
    expect(certificateInfo(pki.server.certPem).isCa).toBe(false);
  });

  it('rejects a client certificate from another CA', async () => {
    const a = await createShootPki({ namespace: 'shoot--a--one' });
    const b = await createShootPki({ namespace: 'shoot--a--two' });
    expect((await handshake(a.server, b.shootClient, a.ca.certPem)).ok).toBe(false);
  });

  it('honours extended key usage: a client certificate cannot serve', async () => {
    const ca = await createCa({ commonName: 'ca' });
    const client = await issueCertificate(ca, { commonName: 'c', usage: 'client' });
    const r = await new Promise<boolean>((resolve) => {
      const srv = tls.createServer({ cert: client.certPem, key: client.keyPem });
      srv.listen(0, '127.0.0.1', () => {
        const port = (srv.address() as net.AddressInfo).port;
        const c = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'c', checkServerIdentity: () => undefined });
        c.once('secureConnect', () => { c.destroy(); srv.close(); resolve(true); });
        c.once('error', () => { srv.close(); resolve(false); });
      });
    });
    expect(r).toBe(false);
  });

  it('validates input with codes', async () => {
    const ca = await createCa({ commonName: 'ca' });
    await expect(issueCertificate(ca, { commonName: '', usage: 'client' })).rejects.toMatchObject({ code: 'RVPN_ERR_PKI_INVALID_INPUT' });
    await expect(issueCertificate(ca, { commonName: 'x', usage: 'server', ipAddresses: ['not-an-ip'] })).rejects.toMatchObject({ code: 'RVPN_ERR_PKI_INVALID_INPUT' });
    await expect(issueCertificate({ certPem: 'garbage', keyPem: ca.keyPem }, { commonName: 'x', usage: 'client' })).rejects.toMatchObject({ code: 'RVPN_ERR_PKI_PARSE' });
    expect(() => certificateInfo('nope')).toThrow(expect.objectContaining({ code: 'RVPN_ERR_PKI_PARSE' }));
  });

  it('writes files atomically with private modes for keys', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'rvpn-pki-')), 'certs');
    try {
      await writePkiFiles(dir, { 'ca.crt': 'CERT', 'tls.key': 'KEY' });
      expect(await readFile(join(dir, 'tls.key'), 'utf8')).toBe('KEY');
      expect((await stat(join(dir, 'tls.key'))).mode & 0o777).toBe(0o600);
      expect((await stat(join(dir, 'ca.crt'))).mode & 0o777).toBe(0o644);
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      await expect(writePkiFiles(dir, { '../x': 'y' })).rejects.toMatchObject({ code: 'RVPN_ERR_PKI_INVALID_INPUT' });
    } finally {
      await rm(join(dir, '..'), { recursive: true, force: true });
    }
  });
});
