import { fileURLToPath } from 'node:url';

/** The repository root (this file is tools/src/lab or tools/dist/lab). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
