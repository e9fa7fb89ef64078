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

/** The apps that run as one bundled module (esbuild.apps.mjs); the operator runs its dist/main.js. */
export const BUNDLED_APPS = ['vpn-seed-server', 'vpn-shoot', 'sni-proxy', 'path-controller'] as const;
export type BundledApp = (typeof BUNDLED_APPS)[number];

/** The file an app's image starts, relative to the app's directory (/app in the image). */
export const APP_ENTRY = 'dist/main.bundle.js';

/** argv that starts an app the way its image does: its bundle, with APP_NODE_ARGS. */
export function appArgv(app: BundledApp): string[] {
  return [process.execPath, ...APP_NODE_ARGS, join(REPO_ROOT, 'apps', app, APP_ENTRY)];
}
