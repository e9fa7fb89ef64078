#!/usr/bin/env node
/**
 * `nx run <app>:image`: builds a container image of one app, or — where no container engine runs, as on
 * these machines — prepares and checks everything short of it:
 *   1. `pnpm deploy --prod` of the app into dist/image/<app>/app (the runtime tree the Dockerfile copies);
 *   2. runs the entrypoint from that tree with an empty environment: it must start, find every module
 *      (and the native TUN addon where the app uses it) and stop with exit 2 and RVPN_ERR_CONFIG_INVALID;
 *   3. `docker build -f apps/<app>/Dockerfile` when `docker info` answers; otherwise says plainly that
 *      the image itself was not built.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './lab/stack.js';
import { run } from './lab/sh.js';

const APPS = ['vpn-seed-server', 'vpn-shoot', 'sni-proxy', 'path-controller', 'operator'];

async function main(): Promise<number> {
  const app = process.argv[2] ?? '';
  if (!APPS.includes(app)) {
    console.error(`usage: image <${APPS.join('|')}>`);
    return 2;
  }
  const out = join(REPO_ROOT, 'dist', 'image', app);
  const tree = join(out, 'app');
  rmSync(out, { recursive: true, force: true });
  console.log(`image ${app}: pnpm deploy --prod → ${tree}`);
  await run(['pnpm', '--filter', `@rvpn/${app}`, 'deploy', '--prod', '--legacy', tree], { timeoutMs: 300_000, env: { ...process.env, CI: 'true' } });
  const main = join(tree, 'dist', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing from the deployed tree`);
  const r = await run([process.execPath, main], { allowFail: true, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  if (r.code !== 2 || !r.stderr.includes('RVPN_ERR_CONFIG_INVALID')) {
    throw new Error(`the entrypoint did not start cleanly (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  }
  console.log(`image ${app}: entrypoint starts and refuses an empty configuration (exit 2, RVPN_ERR_CONFIG_INVALID)`);
  const addon = join(tree, 'node_modules', '@rvpn', 'tunnel', 'native', 'build', 'Release', 'rvpn_tun.node');
  if (existsSync(addon)) {
    const a = await run([process.execPath, '-e', `const m = require(${JSON.stringify(addon)}); if (typeof m.TunDevice !== 'function') process.exit(3)`], { allowFail: true });
    if (a.code !== 0) throw new Error(`the native TUN addon in the deployed tree does not load: ${a.stderr}`);
    console.log(`image ${app}: native TUN addon loads from the deployed tree`);
  }
  const docker = await run(['docker', 'info'], { allowFail: true, timeoutMs: 15_000 }).catch(() => ({ code: 127, stdout: '', stderr: '' }));
  if (docker.code !== 0) {
    console.log(`image ${app}: no container engine answers here (docker info failed): the image was NOT built; the build context and entrypoint were checked`);
    return 0;
  }
  await run(['docker', 'build', '-f', join(REPO_ROOT, 'apps', app, 'Dockerfile'), '-t', `reversed-vpn/${app}:dev`, REPO_ROOT], { timeoutMs: 1_800_000 });
  console.log(`image ${app}: built reversed-vpn/${app}:dev`);
  return 0;
}

main().then((c) => process.exit(c), (err) => {
  console.error(`image failed: ${(err as Error).message}`);
  process.exit(1);
});
