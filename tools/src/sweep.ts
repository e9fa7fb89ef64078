#!/usr/bin/env node
/** `pnpm sweep [--force]`: removes namespaces and processes that killed lab runs left behind. */
import { sweep } from './lab/topology.js';

const force = process.argv.includes('--force');
sweep({ force, log: (l) => console.log(l) }).then((removed) => {
  console.log(`sweep: ${removed.length} lab(s) removed`);
}, (err) => {
  console.error(`sweep failed: ${(err as Error).message}`);
  process.exit(1);
});
