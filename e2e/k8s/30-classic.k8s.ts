/**
 * The classic direction on the test bed: the seed server dials vpn-shoot's LoadBalancer in the shoot.
 * It opens exactly one inbound path into the shoot (that address, port 4314), which the reversed VPN
 * does not need at all; the 9443 proxy gets a server certificate of its own (finding 6).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODES, SHOOT } from '@rvpn/tools/testbed';
import { check, getJson, k, podName, shootLogs, timeUntil, recordTests, helmTest } from './harness.js';
import { SEED_RELEASE, apiserverWiring, installSeedSide, installShootSide, inventory, setEntryRoutes, uninstallAll } from './install.js';
import { E2E_NS, deployWorkloads } from './workloads.js';
import { seedCanOpen, shootInboundOpenings } from './faults.js';

const SUITE = 'classic';
const NS = SHOOT.namespace;
const logsWork = async () => (await shootLogs(await podName('shoot', E2E_NS, 'app.kubernetes.io/name=logger'), E2E_NS, 1)).code === 0;

describe('classic VPN (the seed dials the shoot), Helm install', () => {
  recordTests(SUITE);
  let before: { seed: string[]; shoot: string[] };
  let lb = '';

  beforeAll(async () => {
    before = { seed: await inventory('seed', NS), shoot: await inventory('shoot', 'kube-system') };
    await deployWorkloads();
    expect(await shootInboundOpenings()).toEqual([]);
  });
  afterAll(async () => {
    await uninstallAll();
  });

  it('installs the shoot side first (its LoadBalancer), then the seed side dialing it', async () => {
    const t0 = Date.now();
    await check(SUITE, 'helm install (classic)', async () => {
      await setEntryRoutes('none');
      await installShootSide('classic');
      lb = await timeUntil('vpn-shoot LoadBalancer address', async () => {
        const s = await getJson<{ status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } } }>('shoot', ['svc', '-n', 'kube-system', 'vpn-shoot']);
        return !!s?.status?.loadBalancer?.ingress?.[0]?.ip;
      }, 60_000, 500).then(async () => (await getJson<{ status: { loadBalancer: { ingress: Array<{ ip: string }> } } }>('shoot', ['svc', '-n', 'kube-system', 'vpn-shoot']))!.status.loadBalancer.ingress[0]!.ip);
      await installSeedSide('classic', `${lb}:4314`);
    });
    await check(SUITE, 'tunnel ready (kubectl logs works)', async () => timeUntil('logs through the classic tunnel', logsWork, 300_000, 500), () => ({ install_to_logs_ms: Date.now() - t0 }));
    expect((await apiserverWiring()).flag).toBe(true);
  });

  it('opens exactly one inbound path into the shoot: its LoadBalancer address, port 4314', async () => {
    await check(SUITE, 'exactly one inbound path (LB:4314)', async () => {
      await timeUntil('the firewall opening', async () => (await shootInboundOpenings()).length === 1, 30_000, 500);
      expect(await shootInboundOpenings()).toEqual([`${lb}:4314`]);
      expect(await seedCanOpen(lb, 4314)).toBe(true);
      expect(await seedCanOpen(NODES.shoot.wanIp, 10250)).toBe(false);
      expect(await seedCanOpen(lb, 10250)).toBe(false);
    });
  });

  it('the 9443 proxy serves its own server certificate: helm test and kubectl exec work', async () => {
    await check(SUITE, 'helm test (classic proxy certificate)', async () => {
      const r = await helmTest('seed', SEED_RELEASE, NS);
      expect(r.stdout).toMatch(/Phase:\s+Succeeded/);
    });
    await check(SUITE, 'kubectl exec through the classic tunnel', async () => {
      const pod = await podName('shoot', E2E_NS, 'app.kubernetes.io/name=logger');
      expect((await k('shoot', ['exec', '-n', E2E_NS, pod, '--', 'sh', '-c', 'echo classic-ok'])).stdout.trim()).toBe('classic-ok');
    });
  });

  it('uninstall closes the path and leaves nothing', async () => {
    await check(SUITE, 'helm uninstall (classic) leaves nothing and closes the inbound path', async () => {
      await uninstallAll();
      await timeUntil('the firewall to close', async () => (await shootInboundOpenings()).length === 0, 30_000, 500);
      await timeUntil('the seed namespace to be as before', async () => JSON.stringify(await inventory('seed', NS)) === JSON.stringify(before.seed), 120_000, 1000);
      // the shoot's pods go after their Deployment, by the garbage collector's cascade: wait, then compare
      await timeUntil('the shoot\'s kube-system to be as before', async () => JSON.stringify(await inventory('shoot', 'kube-system')) === JSON.stringify(before.shoot), 120_000, 1000).catch(() => undefined);
      expect(await inventory('shoot', 'kube-system')).toEqual(before.shoot);
      expect((await apiserverWiring()).flag).toBe(false);
    });
  });
});
