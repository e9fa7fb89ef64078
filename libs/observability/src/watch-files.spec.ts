import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { watchFiles } from './watch-files.js';

describe('watchFiles', () => {
  it('sees a content change (also through a swapped symlink) and ignores rewrites with the same content', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rvpn-watch-'));
    try {
      const f = join(dir, 'tls.crt');
      writeFileSync(f, 'one');
      let changes = 0;
      const w = watchFiles([f], () => changes++, { debounceMs: 20 });
      writeFileSync(f, 'one');
      await new Promise((r) => setTimeout(r, 150));
      expect(changes).toBe(0);
      writeFileSync(join(dir, 'tls.crt.new'), 'two');
      const { renameSync } = await import('node:fs');
      renameSync(join(dir, 'tls.crt.new'), f);
      await new Promise((r) => setTimeout(r, 150));
      expect(changes).toBe(1);
      w.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('watchCertificates', () => {
  it('reloads and logs on a change, and keeps going (logged with its code) when a reload fails', async () => {
    const { watchCertificates } = await import('./watch-files.js');
    const dir = mkdtempSync(join(tmpdir(), 'rvpn-watchcert-'));
    try {
      const f = join(dir, 'tls.crt');
      writeFileSync(f, 'one');
      const lines: string[] = [];
      const log = { info: (_o: object, m: string) => lines.push(`info ${m}`), warn: (_o: object, m: string) => lines.push(`warn ${m}`), error: (o: object, m: string) => lines.push(`error ${m} ${(o as { code?: string }).code}`) };
      let fail = false;
      const w = watchCertificates([f, f], () => {
        if (fail) throw Object.assign(new Error('bad PEM'), { code: 'RVPN_ERR_TEST' });
      }, log);
      writeFileSync(f, 'two');
      await new Promise((r) => setTimeout(r, 400));
      fail = true;
      writeFileSync(f, 'three');
      await new Promise((r) => setTimeout(r, 400));
      w.stop();
      expect(lines).toEqual(['info certificates changed on disk; reloaded for new connections', 'error certificate reload failed; keeping the previous ones RVPN_ERR_TEST']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
