import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { registeredErrors } from '@rvpn/config';
import { DOCS } from './docs.js';
import { REPO_ROOT } from './lab/stack.js';

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.spec.ts')) out.push(p);
  }
  return out;
}

describe('generated docs', () => {
  for (const [file, render] of Object.entries(DOCS)) {
    it(`${file} matches the code (run \`pnpm docs\` after changing a schema or an error)`, () => {
      expect(readFileSync(join(REPO_ROOT, file), 'utf8')).toBe(render());
    });
  }

  it('every RVPN_ERR_ code used in the sources is registered (and so documented)', () => {
    const registered = new Set(registeredErrors().map((e) => e.code));
    const used = new Set<string>();
    for (const root of ['libs', 'apps']) {
      for (const f of sources(join(REPO_ROOT, root))) {
        for (const m of readFileSync(f, 'utf8').matchAll(/RVPN_ERR_[A-Z0-9_]+/g)) used.add(m[0]);
      }
    }
    expect(used.size).toBeGreaterThan(20);
    const missing = [...used].filter((c) => !registered.has(c) && !c.endsWith('_'));
    expect(missing).toEqual([]);
  });
});
