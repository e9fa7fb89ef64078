/**
 * Brings the test bed up for the k8s suites (unless one runs already: then it is used and left up),
 * and afterwards writes bench-out/k8s-e2e.json from every recorded check and takes down what it started
 * (RVTB_KEEP=1 keeps it for a look).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '@rvpn/tools';
import { down, status, up } from '@rvpn/tools/testbed';
import { RESULTS, readResults } from './harness.js';

export default async function setup(): Promise<() => Promise<void>> {
  const log = (l: string) => console.log(`[testbed] ${l}`);
  rmSync(RESULTS, { force: true });
  const before = await status();
  const started = !before.up;
  const t0 = Date.now();
  if (started) await up(log);
  const upMs = Date.now() - t0;
  return async () => {
    const checks = readResults();
    const failed = checks.filter((c) => !c.ok);
    writeFileSync(join(REPO_ROOT, 'bench-out', 'k8s-e2e.json'), `${JSON.stringify({
      finished_at: new Date().toISOString(),
      testbed: { started_by_suite: started, up_seconds: started ? Math.round(upMs / 100) / 10 : null, facts: (await status()).facts },
      passed: checks.length - failed.length,
      failed: failed.length,
      checks,
    }, null, 2)}\n`);
    if (started && process.env.RVTB_KEEP !== '1') await down(log);
  };
}
