/** `pnpm certs` (tools/dist/certs.js): the Secret lists it writes hold private keys and end up 0600, whatever was there before. */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './lab/paths.js';

const CERTS = join(REPO_ROOT, 'tools/dist/certs.js');
let dir: string | undefined;
afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));

describe('pnpm certs', () => {
  it('writes the Secret lists 0600 even over files that existed world-readable', () => {
    dir = mkdtempSync(join(tmpdir(), 'rvpn-certs-'));
    const files = ['seed-secrets.json', 'shoot-secrets.json'].map((f) => join(dir!, f));
    for (const f of files) {
      writeFileSync(f, 'old');
      chmodSync(f, 0o666);
    }
    const old = process.umask(0);
    try {
      execFileSync(process.execPath, [CERTS, '--namespace', 'shoot--t--certs', '--out', dir], { stdio: 'pipe' });
    } finally {
      process.umask(old);
    }
    for (const f of files) {
      expect((statSync(f).mode & 0o777).toString(8), f).toBe('600');
      const list = JSON.parse(readFileSync(f, 'utf8')) as { kind: string; items: Array<{ kind: string }> };
      expect(list.kind).toBe('List');
      expect(list.items.length).toBeGreaterThan(0);
    }
  });
});
