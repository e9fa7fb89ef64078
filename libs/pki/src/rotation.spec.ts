import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { caBundle, certificateInfo, createCa, issueCertificate, renewalDue, writeSecretVolume } from './index.js';

describe('renewal and rotation helpers', () => {
  it('says a certificate is due at 80 % of its validity', async () => {
    const ca = await createCa({ commonName: 'ca-vpn', validityDays: 10 });
    const leaf = await issueCertificate(ca, { commonName: 'vpn-shoot-client', usage: 'client', validityDays: 10 });
    const { notBefore } = certificateInfo(leaf.certPem);
    const day = 86_400_000;
    expect(renewalDue(leaf.certPem, new Date(notBefore.getTime() + 7.9 * day))).toBe(false);
    expect(renewalDue(leaf.certPem, new Date(notBefore.getTime() + 8.01 * day))).toBe(true);
  });

  it('writes Secret volumes as the kubelet does: ..data symlink swap, old generation removed', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'rvpn-secret-')), 'vol');
    try {
      const a = await createCa({ commonName: 'old' });
      const b = await createCa({ commonName: 'new' });
      await writeSecretVolume(dir, { 'ca.crt': a.certPem });
      expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(a.certPem);
      await writeSecretVolume(dir, { 'ca.crt': caBundle(a.certPem, b.certPem) });
      expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(a.certPem + b.certPem);
      const generations = (await readdir(dir)).filter((n) => n.startsWith('..') && n !== '..data');
      expect(generations).toHaveLength(1);
    } finally {
      await rm(join(dir, '..'), { recursive: true, force: true });
    }
  });
});
