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
