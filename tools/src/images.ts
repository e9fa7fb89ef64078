#!/usr/bin/env node
/**
 * `pnpm images [app ...]`: builds the container image of every app (or the ones named) with podman,
 * on a machine without a registry (see images/build.ts), and reports each image's size; the figures
 * also go to bench-out/images.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { APPS, DEBIAN_IMAGE, NODE_IMAGE, buildAppImage, ensureDebianBase, ensureNodeImage, pruneOldAppImages, type BuiltImage, type ImageApp } from './images/build.js';
import { podmanAvailable } from './images/podman.js';
import { REPO_ROOT } from './lab/paths.js';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const quiet = args.includes('--quiet');
  const wanted = args.filter((a) => !a.startsWith('--'));
  const unknown = wanted.filter((a) => !(APPS as readonly string[]).includes(a));
  if (unknown.length > 0) {
    console.error(`images: unknown app(s) ${unknown.join(', ')}; apps: ${APPS.join(', ')}`);
    return 2;
  }
  const apps = (wanted.length > 0 ? wanted : APPS) as ImageApp[];
  const engine = await podmanAvailable();
  if (!engine.ok) {
    console.error(`images: ${engine.why}`);
    return 1;
  }
  const log = (l: string) => console.log(`images: ${l}`);
  const t0 = Date.now();
  await ensureDebianBase(log);
  await ensureNodeImage(log);
  const built: BuiltImage[] = [];
  for (const app of apps) built.push(await buildAppImage(app, log, { quiet }));
  await pruneOldAppImages();
  const mib = (b: number) => (b / 1048576).toFixed(1);
  console.log('\nimage                                              size MiB  user');
  for (const b of built) console.log(`${b.ref.padEnd(50)} ${mib(b.sizeBytes).padStart(8)}  ${b.user}`);
  console.log(`\nimages: ${built.length} built in ${((Date.now() - t0) / 1000).toFixed(0)} s (bases: ${DEBIAN_IMAGE}, ${NODE_IMAGE})`);
  mkdirSync(join(REPO_ROOT, 'bench-out'), { recursive: true });
  writeFileSync(join(REPO_ROOT, 'bench-out', 'images.json'), `${JSON.stringify({
    built_at: new Date().toISOString(),
    bases: { runtime: DEBIAN_IMAGE, build: NODE_IMAGE },
    images: Object.fromEntries(built.map((b) => [b.app, { ref: b.ref, id: b.id, size_mib: Number(mib(b.sizeBytes)), user: b.user, revision: b.revision }])),
  }, null, 2)}\n`);
  return 0;
}

main().then((c) => process.exit(c), (err: Error) => {
  console.error(`images failed: ${err.message}`);
  process.exit(1);
});
