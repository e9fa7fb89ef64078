#!/usr/bin/env node
/** `pnpm gen-docs`: writes the generated files (docs/configuration.md, docs/errors.md, the CRD) from the code (see docs.ts). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DOCS } from './docs.js';
import { REPO_ROOT } from './lab/stack.js';

for (const [file, render] of Object.entries(DOCS)) {
  mkdirSync(dirname(join(REPO_ROOT, file)), { recursive: true });
  writeFileSync(join(REPO_ROOT, file), render());
  console.log(`wrote ${file}`);
}
