import { fileURLToPath } from 'node:url';

/** The repository root (this file is tools/src/lab or tools/dist/lab). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The node options every app runs with. The images' ENTRYPOINT (Dockerfile) says the same; the lab's
 * processes start through appArgv so that what is measured here is what ships.
 */
export const APP_NODE_ARGS: readonly string[] = [];

/** argv that starts an app's main.js the way its image does. */
export function appArgv(main: string): string[] {
  return [process.execPath, ...APP_NODE_ARGS, main];
}
