/**
 * The images the test clusters run, none pulled (no registry is reachable): the project's app images
 * (`pnpm images`), the shoot control plane's image and the pause sandbox (from the binaries built by
 * build-binaries.sh), and the workload image. They move into each node's containerd with
 * `podman save | ctr images import` under their versioned tags (pods use imagePullPolicy IfNotPresent).
 */
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { APPS, DEBIAN_IMAGE, NODE_IMAGE, buildAppImage, ensureDebianBase, ensureNodeImage, imageRef } from '../images/build.js';
import { imageExists, podmanEnv, runStreaming } from '../images/podman.js';
import { REPO_ROOT } from '../lab/paths.js';
import { run } from '../lab/sh.js';
import { BIN_DIR, IMAGES, containerdSock, type NodeSpec } from './config.js';

type Log = (line: string) => void;

async function buildFromContext(ref: string, containerfile: string, files: Record<string, string>, log: Log, args: Record<string, string> = {}): Promise<void> {
  const ctx = mkdtempSync(join(tmpdir(), 'rvtb-image-'));
  try {
    for (const [name, src] of Object.entries(files)) {
      mkdirSync(join(ctx, name, '..'), { recursive: true });
      try {
        linkSync(src, join(ctx, name)); // the binaries are large: no copy where a hard link will do
      } catch {
        copyFileSync(src, join(ctx, name));
      }
    }
    log(`building ${ref}`);
    await runStreaming(['podman', 'build', '--layers', '-f', join(REPO_ROOT, 'tools', 'testbed', containerfile),
      ...Object.entries(args).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]), '-t', ref, ctx], { prefix: `  ${ref}: `, env: podmanEnv(), quiet: true, timeoutMs: 900_000 });
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

/** Builds what is missing: the app images (unless `rebuildApps` is false and they exist) and the test bed's own. */
export async function ensureTestbedImages(log: Log, opts: { rebuildApps?: boolean } = {}): Promise<void> {
  await ensureDebianBase(log);
  await ensureNodeImage(log);
  for (const app of APPS) {
    if (opts.rebuildApps || !(await imageExists(imageRef(app)))) await buildAppImage(app, log, { quiet: true });
  }
  if (!(await imageExists(IMAGES.kubernetes))) {
    await buildFromContext(IMAGES.kubernetes, 'kubernetes.Containerfile', Object.fromEntries(['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd'].map((b) => [b, join(BIN_DIR, b)])), log, { DEBIAN_IMAGE });
  }
  if (!(await imageExists(IMAGES.pause))) await buildFromContext(IMAGES.pause, 'pause.Containerfile', { pause: join(BIN_DIR, 'pause') }, log);
  // the workload changes with the tools: rebuilt every time (small, cached layers below it)
  const ctxFiles = { 'testbed/workload.js': join(REPO_ROOT, 'tools', 'dist', 'testbed', 'workload.js'), 'fixtures/pattern.js': join(REPO_ROOT, 'tools', 'dist', 'fixtures', 'pattern.js') };
  const pkg = join(tmpdir(), `rvtb-workload-package-${process.pid}.json`);
  writeFileSync(pkg, '{"type":"module"}\n');
  try {
    await buildFromContext(IMAGES.workload, 'workload.Containerfile', { ...ctxFiles, 'package.json': pkg }, log, { NODE_IMAGE, DEBIAN_IMAGE });
  } finally {
    rmSync(pkg, { force: true });
  }
}

/** Moves images from podman into a node's containerd (k8s.io namespace). */
export async function importImages(n: NodeSpec, refs: string[], log: Log): Promise<void> {
  const tar = join(tmpdir(), `rvtb-images-${n.name}-${process.pid}.tar`);
  try {
    log(`importing ${refs.length} images into ${n.name}'s containerd`);
    await run(['podman', 'save', '--multi-image-archive', '--format', 'docker-archive', '-o', tar, ...refs], { env: podmanEnv(), timeoutMs: 900_000 });
    await run(['ctr', '--address', containerdSock(n.name), '--namespace', 'k8s.io', 'images', 'import', tar], { timeoutMs: 900_000 });
  } finally {
    rmSync(tar, { force: true });
  }
}

export const seedImages = () => [IMAGES.pause, IMAGES.kubernetes, ...APPS.map((a) => imageRef(a))];
export const shootImages = () => [IMAGES.pause, IMAGES.workload, imageRef('vpn-shoot')];
