#!/usr/bin/env node
/** `pnpm gen-docs`: writes docs/configuration.md and docs/errors.md from the code (see docs.ts). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOCS } from './docs.js';
import { REPO_ROOT } from './lab/stack.js';

for (const [file, render] of Object.entries(DOCS)) {
  writeFileSync(join(REPO_ROOT, file), render());
  console.log(`wrote ${file}`);
}
