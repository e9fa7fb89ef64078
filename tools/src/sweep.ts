#!/usr/bin/env node
/**
 * `pnpm sweep [--force]`: removes what killed lab runs left behind: their containers (by the label
 * rvpn.lab.prefix, first), the processes in their namespaces, the namespaces, their work directories.
 * A run whose owner process is alive is left alone unless --force.
 */
import { sweep } from './lab/topology.js';

const force = process.argv.includes('--force');
sweep({ force, log: (l) => console.log(l) }).then((removed) => {
  console.log(`sweep: ${removed.length} lab(s) removed`);
}, (err) => {
  console.error(`sweep failed: ${(err as Error).message}`);
  process.exit(1);
});
