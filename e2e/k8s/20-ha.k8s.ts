/**
 * The HA VPN on the test bed: two seed servers (a userspace switch each), two vpn-shoot pods bonded to
 * both, two kube-apiservers each with the path-controller the wiring adds beside it. kubectl logs, exec
 * and port-forward through it; a seed server lost under a live `kubectl logs -f` (which must not break)
 * and a shoot pod lost, with the gaps measured; the uninstall leaves nothing and unwires the apiservers.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KUBECTL, SHOOT, kubeconfigPath } from '@rvpn/tools/testbed';
import { sleep } from '@rvpn/tools';
import { check, k, podName, portForwardDownload, shootLogs, timeUntil, recordTests } from './harness.js';
import { apiserverRolledOut, apiserverWiring, installSeedSide, installShootSide, inventory, setEntryRoutes, uninstallAll } from './install.js';
import { E2E_NS, deployWorkloads } from './workloads.js';

const SUITE = 'ha';
const NS = SHOOT.namespace;
const logsWork = async () => (await shootLogs(await podName('shoot', E2E_NS, 'app.kubernetes.io/name=logger'), E2E_NS, 1)).code === 0;

/** Polls `kubectl logs` every 200 ms while `during` runs; returns the longest stretch of failures. */
async function longestLogsGap(during: () => Promise<void>, settleMs = 8000): Promise<{ gapMs: number; failures: number }> {
  let running = true;
  let gap = 0;
  let failures = 0;
  let failingSince: number | undefined;
  const poll = (async () => {
    while (running) {
      const ok = await logsWork().catch(() => false);
      const now = Date.now();
      if (!ok) {
        failures++;
        failingSince ??= now;
        gap = Math.max(gap, now - failingSince);
      } else failingSince = undefined;
      await sleep(200);
    }
  })();
  await during();
  await sleep(settleMs);
  running = false;
  await poll;
  return { gapMs: gap, failures };
}

describe('HA VPN, Helm install without the operator', () => {
  recordTests(SUITE);
  let before: { seed: string[]; shoot: string[] };

  beforeAll(async () => {
    before = { seed: await inventory('seed', NS), shoot: await inventory('shoot', 'kube-system') };
    await deployWorkloads();
    // the platform runs two kube-apiservers for a control plane that tolerates failures
    await k('seed', ['scale', '-n', NS, 'deployment/kube-apiserver', '--replicas=2']);
    await apiserverRolledOut();
  });
  afterAll(async () => {
    await uninstallAll();
    await setEntryRoutes('none');
    await k('seed', ['scale', '-n', NS, 'deployment/kube-apiserver', '--replicas=1'], { allowFail: true });
  });

  it('installs and wires a path-controller beside each kube-apiserver; logs, exec, port-forward work', async () => {
    const t0 = Date.now();
    await check(SUITE, 'helm install (HA)', async () => {
      await setEntryRoutes('ha');
      await installSeedSide('ha');
      await installShootSide('ha');
    });
    await check(SUITE, 'kube-apiservers wired with the path-controller', async () => {
      expect(await apiserverWiring()).toMatchObject({ flag: true, label: true, sidecar: true, replicas: 2 });
      await apiserverRolledOut();
    });
    await check(SUITE, 'tunnel ready (kubectl logs works)', async () => timeUntil('logs through the HA tunnel', logsWork, 300_000, 500), () => ({ install_to_logs_ms: Date.now() - t0 }));
    const pod = await podName('shoot', E2E_NS, 'app.kubernetes.io/name=logger');
    // Right after the wiring's rollout a replaced kube-apiserver replica may still get a new
    // connection for a moment and answer it with EOF (seen in 2 of 7 runs, always the first exec after
    // the first working logs). That is the platform settling, not the tunnel: the exec is retried for
    // up to 30 s, and every failed attempt is recorded (details.failed_attempts) and printed.
    await check(SUITE, 'kubectl exec (WebSocket) through HA', async () => {
      const failures: string[] = [];
      await timeUntil('kubectl exec through HA', async () => {
        const r = await k('shoot', ['exec', '-n', E2E_NS, pod, '--', 'sh', '-c', 'echo ha-ok'], { allowFail: true });
        if (r.code === 0 && r.stdout.trim() === 'ha-ok') return true;
        failures.push(`${new Date().toISOString()} code ${r.code}: ${r.stderr.trim().slice(0, 200)}`);
        console.error(`kubectl exec through HA failed (attempt ${failures.length}): ${failures.at(-1)}`);
        return false;
      }, 30_000, 1000);
      return failures;
    }, (failures) => ({ failed_attempts: failures.length, failures }));
    await check(SUITE, 'kubectl port-forward 20 MB through HA', async () => portForwardDownload(E2E_NS, await podName('shoot', E2E_NS, 'app.kubernetes.io/name=http'), 20 * 1024 * 1024), (r) => ({ mbit_per_s: Math.round(r.mbps) }));
  });

  it('a seed server lost: a live kubectl logs -f does not break, new requests keep working', async () => {
    const pod = await podName('shoot', E2E_NS, 'app.kubernetes.io/name=logger');
    // the property under test is that an ESTABLISHED stream survives; a stream that could not start
    // (one apiserver replica's path still settling) is started again, and the attempts are recorded
    let follow: ReturnType<typeof spawn> | undefined;
    let lines = 0;
    let ended = false;
    let stderr = '';
    let starts = 0;
    const start = () => {
      starts++;
      lines = 0;
      ended = false;
      stderr = '';
      follow = spawn(KUBECTL, [`--kubeconfig=${kubeconfigPath('shoot')}`, 'logs', '-f', '-n', E2E_NS, pod, '--tail=1'], { stdio: ['ignore', 'pipe', 'pipe'] });
      follow.stdout!.on('data', (c: Buffer) => (lines += c.toString().split('\n').filter(Boolean).length));
      follow.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      follow.on('exit', () => (ended = true));
    };
    try {
      start();
      await timeUntil('logs -f streaming', async () => {
        if (ended) {
          if (starts >= 5) throw new Error(`kubectl logs -f ended ${starts} times before streaming: ${stderr.trim()}`);
          start();
        }
        return lines > 2;
      }, 60_000, 200);
      const gap = await check(SUITE, 'seed server pod deleted (--force): gap of new kubectl logs', async () => longestLogsGap(async () => {
        await k('seed', ['delete', 'pod', '-n', NS, 'vpn-seed-server-0', '--force', '--grace-period=0']);
      }), (g) => ({ gap_ms: g.gapMs, failed_requests: g.failures }));
      await check(SUITE, 'kubectl logs -f survives the seed server loss', async () => {
        const at = lines;
        await timeUntil('logs -f to keep streaming', async () => lines > at + 10, 30_000, 200);
        expect(ended, stderr).toBe(false);
        return starts;
      }, (n) => ({ stream_starts_needed: n }));
      expect(gap.gapMs).toBeLessThan(10_000);
    } finally {
      follow?.kill('SIGTERM');
    }
  });

  it('a shoot pod lost: the time until new kubectl logs work', async () => {
    await k('seed', ['rollout', 'status', '-n', NS, 'statefulset/vpn-seed-server', '--timeout=180s'], { timeoutMs: 200_000 });
    await check(SUITE, 'vpn-shoot pod deleted (--force): gap of new kubectl logs', async () => longestLogsGap(async () => {
      await k('shoot', ['delete', 'pod', '-n', 'kube-system', 'vpn-shoot-0', '--force', '--grace-period=0']);
    }), (g) => ({ gap_ms: g.gapMs, failed_requests: g.failures }));
  });

  it('uninstall leaves nothing and unwires both kube-apiservers', async () => {
    await check(SUITE, 'helm uninstall (HA) leaves nothing', async () => {
      await uninstallAll();
      await setEntryRoutes('none');
      await timeUntil('the seed namespace to be as before', async () => JSON.stringify(await inventory('seed', NS)) === JSON.stringify(before.seed), 120_000, 1000);
      // the shoot's pods go after their Deployment, by the garbage collector's cascade: wait, then compare
      await timeUntil('the shoot\'s kube-system to be as before', async () => JSON.stringify(await inventory('shoot', 'kube-system')) === JSON.stringify(before.shoot), 120_000, 1000).catch(() => undefined);
      expect(await inventory('shoot', 'kube-system')).toEqual(before.shoot);
      expect(await apiserverWiring()).toMatchObject({ flag: false, label: false, sidecar: false });
    });
  });
});
