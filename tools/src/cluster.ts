#!/usr/bin/env node
/**
 * `pnpm cluster up|down|status`: a seed and a shoot cluster of real upstream Kubernetes on this
 * machine (see testbed/config.ts for the layout). `up --rebuild-images` rebuilds the app images first;
 * `load-images` moves the current images (after `pnpm images`) into both nodes.
 */
import { kubeconfigPath } from './testbed/config.js';
import { down, loadImages, status, up } from './testbed/cluster.js';

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  const log = (l: string) => console.log(`cluster: ${l}`);
  switch (cmd) {
    case 'up':
      await up(log, { rebuildImages: rest.includes('--rebuild-images') });
      return 0;
    case 'down':
      await down(log);
      return 0;
    case 'load-images':
      await loadImages(log);
      return 0;
    case 'status': {
      const s = await status();
      if (rest.includes('--json')) {
        console.log(JSON.stringify(s, null, 2));
        return s.up ? 0 : 1;
      }
      if (s.daemons.length === 0) {
        console.log('cluster: down (nothing of the test bed runs)');
        return 1;
      }
      for (const d of s.daemons) console.log(`${d.alive ? 'running' : 'DEAD   '}  ${d.name.padEnd(30)} pid ${String(d.pid).padEnd(8)} ${d.log}`);
      for (const [c, st] of Object.entries(s.nodes)) console.log(`node of ${c}: ${st}   KUBECONFIG=${kubeconfigPath(c as 'seed' | 'shoot')}`);
      if (s.entryPoint) console.log(`entry point (sni-proxy LoadBalancer): ${s.entryPoint}`);
      for (const [k, v] of Object.entries(s.facts).filter(([k]) => k.endsWith('_seconds'))) console.log(`${k}: ${v}`);
      return s.up ? 0 : 1;
    }
    default:
      console.error('usage: pnpm cluster up [--rebuild-images] | down | status [--json] | load-images');
      return 2;
  }
}

main().then((c) => process.exit(c), (err: Error) => {
  console.error(`cluster: ${err.message}`);
  process.exit(1);
});
