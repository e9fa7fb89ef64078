import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './lab/stack.js';
import { APP_ENTRY, APP_ENV, APP_NODE_ARGS, BUNDLED_APPS } from './lab/paths.js';
import { run } from './lab/sh.js';

// What `nx run <app>:image` checks where no container engine runs (--tree-only): the deployed runtime
// tree of each app holds every module (and the native addon) its entrypoint needs. The images
// themselves are built and run by e2e/src/images.spec.ts.
describe('image build contexts (--tree-only)', () => {
  for (const app of ['vpn-seed-server', 'vpn-shoot', 'sni-proxy', 'path-controller', 'operator']) {
    it(`${app}: the deployed tree's entrypoint starts and refuses an empty configuration`, async () => {
      const r = await run([process.execPath, join(REPO_ROOT, 'tools', 'dist', 'image.js'), app, '--tree-only'], { allowFail: true, timeoutMs: 300_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('entrypoint starts and refuses an empty configuration');
      expect(r.stdout).toContain('the image itself was NOT built (--tree-only)');
      if (app !== 'operator') expect(r.stdout).toContain('native TUN addon loads');
    }, 300_000);
  }
});

describe('app bundles (esbuild.apps.mjs)', () => {
  for (const app of BUNDLED_APPS) {
    it(`${app}: ASCII only (V8 keeps a source with one wider character at two bytes per character), and nothing but Node's builtins left to require at run time`, () => {
      const text = readFileSync(join(REPO_ROOT, 'apps', app, APP_ENTRY), 'latin1');
      expect(text.match(/[^\x00-\x7f]/g) ?? []).toEqual([]);
      const required = new Set([...text.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]!));
      expect([...required].filter((m) => !builtinModules.includes(m.replace(/^node:/, '')))).toEqual([]);
      expect(text).not.toMatch(/from ['"](?!node:)[^'"]+['"]/);
    });
  }
});

describe('Dockerfile', () => {
  it('starts every app with the node options and the file the lab starts it with (APP_NODE_ARGS, the bundle), so the lab measures what ships', () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const entrypoints = Object.fromEntries([...dockerfile.matchAll(/^FROM \S+ AS (\S+)\n(?:(?!FROM ).*\n)*?ENTRYPOINT (.*)$/gm)].map((m) => [m[1]!, JSON.parse(m[2]!) as string[]]));
    expect(Object.keys(entrypoints).sort()).toEqual([...BUNDLED_APPS, 'operator'].sort());
    for (const app of BUNDLED_APPS) expect(entrypoints[app], app).toEqual(['node', ...APP_NODE_ARGS, `/app/${APP_ENTRY}`]);
    expect(entrypoints.operator).toEqual(['node', ...APP_NODE_ARGS, '/app/dist/main.js']);
  });

  it('gives every app the environment the lab gives it (APP_ENV), in the runtime stage all app images start from', () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const runtime = /^FROM \S+ AS runtime\n((?:(?!FROM ).*\n)*)/m.exec(dockerfile)?.[1] ?? '';
    const env = Object.fromEntries([...runtime.matchAll(/^ENV (.*)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/).map((kv) => kv.split('=') as [string, string])));
    for (const [k, v] of Object.entries(APP_ENV)) expect(env[k], k).toBe(v);
    for (const stage of [...BUNDLED_APPS, 'operator']) expect(dockerfile).toMatch(new RegExp(`^FROM labelled(-net)? AS ${stage}$`, 'm'));
  });
});
