// The last step of each long-running app's build (vpn-seed-server, vpn-shoot, sni-proxy, path-controller):
// dist/main.js and everything it imports, workspace libraries and npm packages alike, in ONE module,
// dist/main.bundle.js. Run from the app's directory: `node ../../esbuild.apps.mjs`.
//
// Why: what a process loads stays in its heap. Every module is a source string, a module record and
// its functions' metadata, and the libraries' barrels load modules an app never calls (the operator's
// configuration in the shoot client, the seed server's switch in the path-controller). One module
// with only what main.js reaches is 1.1-1.9 MiB less anonymous memory per process on Node 24
// (`pnpm bench:memory`; the target is 20 MiB per app). The images and the lab start this file.
//
// What is left outside: Node's builtins, and the native TUN addon (a .node file cannot be bundled),
// which libs/tunnel loads from its package beside the app (node_modules/@rvpn/tunnel), as before.
// Not minified: stack traces keep the functions' and classes' names; a line number is the bundle's.
//
// ASCII only: V8 keeps a module's source in its heap, as one byte per character only while every
// character fits in Latin-1. esbuild escapes code to ASCII but copies the doc comments it keeps, and
// three of ours with '…' or '≤' made each bundle's whole source two bytes per character (0.8-0.9 MiB
// of large-object space per process). What is left outside ASCII after esbuild is escaped as \uXXXX:
// inside a comment it is only text, inside code (esbuild leaves none) it would mean the same.
import { build } from 'esbuild';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
  write: false,
});
for (const out of result.outputFiles) {
  writeFileSync(out.path, out.text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}
const inputs = Object.keys(result.metafile.inputs).length;
const bytes = result.outputFiles.reduce((a, o) => a + o.contents.length, 0);
console.log(`${pkg.name}: dist/main.bundle.js, ${inputs} modules, ${(bytes / 1024).toFixed(0)} KiB`);
