import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is tools/src/lab or tools/dist/lab). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The node options every app runs with. The images' ENTRYPOINT (Dockerfile) says the same (a test keeps
 * them equal); the lab's processes start through appArgv so that what is measured here is what ships.
 *
 * --max-semi-space-size=1: V8's young generation at 1 MiB per semi-space. It is what Node already picks
 * in the pods (it sizes the heap from the cgroup limit: 256Mi and 512Mi both give 1 MiB semi-spaces, 1Gi
 * gives 16), so in a pod nothing changes; a process without a memory limit (the lab, `pnpm bench`) grew
 * it to 8-16 MiB while loading its modules and kept it while idle (Node 24's memory reducer did not
 * shrink it): 4-8 MiB of RssAnon per app (`pnpm bench:memory`), and a benchmark unlike the pods.
 */
export const APP_NODE_ARGS: readonly string[] = ['--max-semi-space-size=1'];

/**
 * The environment every app runs with, besides its configuration. The images set the same (Dockerfile,
 * stage `runtime`; image.spec keeps them equal).
 *
 * MALLOC_ARENA_MAX=2: at most two glibc malloc arenas per process. By default every thread that
 * mallocs (V8's compiler and GC workers, libuv's pool) may get an arena of its own, up to 8 per core,
 * and what they free stays mapped there: on Node 24 a connected, idle HA lab's processes grew 2-5 MiB of
 * RssAnon in their first 200 s, in up to three thread arenas and the main heap, while V8's old space
 * stayed at 5.5-6 MiB (a full GC freed 0.3-0.7 MiB of it and no RSS). At 205 s in that lab (MiB,
 * default / 2 / 1): vpn-seed-server-0 26.3-26.6 / 22.3 / 21.9, vpn-shoot 22.6-23.2 / 20.7-21.2 /
 * 19.4-19.8, path-controller 22.0-23.9 / 21.5 / 20.1-20.4. The tunnel bench could not tell the three
 * apart (HA seed server, s/GB: no cap 6.7-9.8 over two runs, 2 arenas 6.5-9.2, 1 arena 7.9-9.5). Two,
 * not one: one arena puts every thread's malloc behind one lock, and two keep most of the saving.
 * README "Idle memory" has the runs.
 */
export const APP_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/** The environment of an app's process in the lab: PATH (for the ip and nft it runs), APP_ENV, then its own. */
export function appProcessEnv(own: Readonly<Record<string, string>>): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...APP_ENV, ...own };
}

/** The apps that run as one bundled module (esbuild.apps.mjs); the operator runs its dist/main.js. */
export const BUNDLED_APPS = ['vpn-seed-server', 'vpn-shoot', 'sni-proxy', 'path-controller'] as const;
export type BundledApp = (typeof BUNDLED_APPS)[number];

/** The file an app's image starts, relative to the app's directory (/app in the image). */
export const APP_ENTRY = 'dist/main.bundle.js';

/** argv that starts an app the way its image does: its bundle, with APP_NODE_ARGS. */
export function appArgv(app: BundledApp): string[] {
  return [process.execPath, ...APP_NODE_ARGS, join(REPO_ROOT, 'apps', app, APP_ENTRY)];
}
