import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './lab/stack.js';
import { run } from './lab/sh.js';

// What `nx run <app>:image` can check without a container engine: the deployed runtime tree of each
// app holds every module (and the native addon) its entrypoint needs.
describe('image build contexts', () => {
  for (const app of ['vpn-seed-server', 'vpn-shoot', 'sni-proxy', 'path-controller', 'operator']) {
    it(`${app}: the deployed tree's entrypoint starts and refuses an empty configuration`, async () => {
      const r = await run([process.execPath, join(REPO_ROOT, 'tools', 'dist', 'image.js'), app], { allowFail: true, timeoutMs: 300_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('entrypoint starts and refuses an empty configuration');
      if (app !== 'sni-proxy' && app !== 'operator') expect(r.stdout).toContain('native TUN addon loads');
    }, 300_000);
  }
});
