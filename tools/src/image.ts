#!/usr/bin/env node
/**
 * `nx run <app>:image`: builds that app's container image with podman (see images/build.ts) and checks
 * it: the entrypoint starts inside the image and refuses an empty configuration (exit 2,
 * RVPN_ERR_CONFIG_INVALID), and the native addon loads there where the app uses it (the TUN apps, and
 * sni-proxy for its relay socket options).
 *
 * Where no container engine answers (or with --tree-only) it does the closest thing and says so: it
 * deploys the app's runtime tree (`pnpm deploy --prod`, what the Dockerfile copies into /app) and runs
 * the same checks against that tree with this machine's Node; the image itself is NOT built then.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { APPS, buildAppImage, ensureDebianBase, ensureNodeImage, imageRef, type ImageApp } from './images/build.js';
import { podman, podmanAvailable } from './images/podman.js';
import { APP_ENTRY, BUNDLED_APPS, REPO_ROOT } from './lab/paths.js';
import { run, type RunResult } from './lab/sh.js';

/** Apps that load the native addon: the TUN (tunnel apps) or its setsockopt (sni-proxy's relay buffer caps). */
const usesTun = (app: ImageApp) => app !== 'operator';
/** The file the image's ENTRYPOINT starts (relative to /app): the bundle, or the operator's main.js. */
const entryOf = (app: ImageApp) => ((BUNDLED_APPS as readonly string[]).includes(app) ? APP_ENTRY : 'dist/main.js');

function checkEntrypoint(app: ImageApp, r: RunResult, where: string): void {
  if (r.code !== 2 || !r.stderr.includes('RVPN_ERR_CONFIG_INVALID')) {
    throw new Error(`${where}: the entrypoint did not start cleanly (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  }
  console.log(`image ${app}: ${where}: entrypoint starts and refuses an empty configuration (exit 2, RVPN_ERR_CONFIG_INVALID)`);
}

/** Loads the addon as the app's bundle finds it (libs/tunnel addon.ts): @rvpn/tunnel's export, resolved from the entry file. */
const addonCheck = (entry: string) =>
  `const r = require('node:module').createRequire(${JSON.stringify(entry)}); const m = r(r.resolve('@rvpn/tunnel/native/rvpn_tun.node')); if (typeof m.TunDevice !== 'function') process.exit(3)`;

async function inImage(app: ImageApp): Promise<void> {
  const log = (l: string) => console.log(`image ${app}: ${l}`);
  await ensureDebianBase(log);
  await ensureNodeImage(log);
  const built = await buildAppImage(app, log);
  const ref = imageRef(app);
  checkEntrypoint(app, await podman(['run', '--rm', '--network', 'none', ref], { allowFail: true }), ref);
  if (usesTun(app)) {
    const a = await podman(['run', '--rm', '--network', 'none', '--entrypoint', 'node', ref, '-e', addonCheck(`/app/${entryOf(app)}`)], { allowFail: true });
    if (a.code !== 0) throw new Error(`the native TUN addon does not load in ${ref}: ${a.stderr}`);
    log('native TUN addon loads in the image');
  }
  log(`built ${ref}: ${(built.sizeBytes / 1048576).toFixed(1)} MiB, user ${built.user}, revision ${built.revision}`);
}

async function treeOnly(app: ImageApp, why: string): Promise<void> {
  const tree = join(REPO_ROOT, 'dist', 'image', app, 'app');
  rmSync(join(REPO_ROOT, 'dist', 'image', app), { recursive: true, force: true });
  console.log(`image ${app}: ${why}: checking the runtime tree only (pnpm deploy --prod → ${tree})`);
  await run(['pnpm', '--filter', `@rvpn/${app}`, 'deploy', '--prod', '--legacy', tree], { timeoutMs: 300_000, env: { ...process.env, CI: 'true' } });
  const main = join(tree, entryOf(app));
  if (!existsSync(main)) throw new Error(`${main} is missing from the deployed tree`);
  checkEntrypoint(app, await run([process.execPath, main], { allowFail: true, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }), 'deployed tree');
  if (usesTun(app)) {
    const a = await run([process.execPath, '-e', addonCheck(join(tree, entryOf(app)))], { allowFail: true });
    if (a.code !== 0) throw new Error(`the native TUN addon in the deployed tree does not load: ${a.stderr}`);
    console.log(`image ${app}: native TUN addon loads from the deployed tree`);
  }
  console.log(`image ${app}: the image itself was NOT built (${why})`);
}

async function main(): Promise<number> {
  const app = process.argv[2] as ImageApp;
  if (!(APPS as readonly string[]).includes(app)) {
    console.error(`usage: image <${APPS.join('|')}> [--tree-only]`);
    return 2;
  }
  if (process.argv.includes('--tree-only')) {
    await treeOnly(app, '--tree-only');
    return 0;
  }
  const engine = await podmanAvailable();
  if (!engine.ok) await treeOnly(app, `no container engine: ${engine.why}`);
  else await inImage(app);
  return 0;
}

main().then((c) => process.exit(c), (err) => {
  console.error(`image failed: ${(err as Error).message}`);
  process.exit(1);
});
