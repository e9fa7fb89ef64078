// The last step of each long-running app's build (vpn-seed-server, vpn-shoot, sni-proxy, path-controller):
// dist/main.js and everything it imports, workspace libraries and npm packages alike, in ONE module,
// dist/main.bundle.js. Run from the app's directory: `node ../../esbuild.apps.mjs`.
//
// Why: what a process loads stays in its heap. Every module is a source string, a module record and
// its functions' metadata, and the libraries' barrels load modules an app never calls (the operator's
// configuration in the shoot client, the seed server's switch in the path-controller). One module
// with only what main.js reaches is 1.2-1.9 MiB less anonymous memory per process on Node 24
// (`pnpm bench:memory`; the target is 20 MiB per app). The images and the lab start this file.
//
// What is left outside: Node's builtins, and the native TUN addon (a .node file cannot be bundled),
// which libs/tunnel loads from its package beside the app (node_modules/@rvpn/tunnel), as before.
// Not minified: stack traces keep the functions' and classes' names; a line number is the bundle's.
import { build } from 'esbuild';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const appDir = process.cwd();
const pkg = JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8'));
const entry = join(appDir, 'dist', 'main.js');
if (!existsSync(entry)) {
  console.error(`esbuild.apps: ${entry} is missing (tsc runs first)`);
  process.exit(1);
}

const result = await build({
  entryPoints: [entry],
  outfile: join(appDir, 'dist', 'main.bundle.js'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  // package.json engines: the lab and the tests run Node 20, the images Node 24
  target: 'node20',
  // CommonJS packages inside an ES module call require() for Node's builtins
  banner: { js: "import { createRequire as __rvpnCreateRequire } from 'node:module';\nconst require = __rvpnCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});
const inputs = Object.keys(result.metafile.inputs).length;
const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
console.log(`${pkg.name}: dist/main.bundle.js, ${inputs} modules, ${(bytes / 1024).toFixed(0)} KiB`);
