/** The classic direction from the same code: the seed server dials vpn-shoot's LoadBalancer on 4314. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDR, Stack, run, runChecks, sweep } from '@rvpn/tools';

import { requireRoot } from './harness.js';

describe('classic direction (seed dials the shoot)', () => {
  let stack: Stack;
  beforeAll(async () => {
    requireRoot();
    await sweep();
    stack = new Stack({ direction: 'classic' });
    await stack.start();
  });
  afterAll(async () => {
    await stack?.down();
  });

  it('reaches pod, service and node through the same proxy and data path', async () => {
    const results = await runChecks(stack);
    for (const r of results) expect(r, `${r.name}: ${r.detail}`).toMatchObject({ ok: true });
    const ping = await run(['ping', '-c', '3', '-i', '0.2', '-W', '2', ADDR.pod], { ns: stack.topo.ns.srv, allowFail: true });
    expect(ping.stdout).toMatch(/3 received/);
  });

  it('the shoot listener accepts only the seed (not the sni-proxy path, not other identities)', async () => {
    const log = (await run(['cat', stack.logFile('vpn-shoot')])).stdout;
    expect(log).toContain('tunnel to the seed is up');
  });
});
