/**
 * The reversed VPN installed with Helm (no operator) on the test bed, and used through the shoot's real
 * kube-apiserver (in the seed): kubectl logs, exec over SPDY and WebSocket, port-forward with a 100 MB
 * checksum, an admission webhook served in the shoot, helm test — each working only through the tunnel
 * (and failing with it down); then faults (kill -9, forced pod deletions) with the time until
 * `kubectl logs` works again; then the uninstall, after which nothing of it is left.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, KUBECTL, NODES, SHOOT } from '@rvpn/tools/testbed';
import { sleep } from '@rvpn/tools';
import { applyObjects, check, getJson, k, podName, portForwardDownload, replacementReady, shootLogs, timeUntil, recordTests, helmTest } from './harness.js';
import { SEED_RELEASE, apiserverRolledOut, apiserverWiring, installSeedSide, installShootSide, inventory, setEntryRoutes, uninstallAll } from './install.js';
import { E2E_NS, deployWorkloads, webhookConfiguration, webhookProbe } from './workloads.js';
import { killMainProcess, podMetric, restartCount, seedCanOpen, shootInboundOpenings } from './faults.js';

const SUITE = 'reversed';
const NS = SHOOT.namespace;
const logsWork = async () => (await shootLogs(await podName('shoot', E2E_NS, 'app.kubernetes.io/name=logger'), E2E_NS, 1)).code === 0;

describe('reversed VPN, Helm install without the operator', () => {
  recordTests(SUITE);
  let before: { seed: string[]; shoot: string[] };
  let webhookCa = '';

  beforeAll(async () => {
    before = { seed: await inventory('seed', NS), shoot: await inventory('shoot', 'kube-system') };
    ({ webhookCa } = await deployWorkloads());
  });
  afterAll(async () => {
    await k('shoot', ['delete', 'validatingwebhookconfiguration', 'rvtb-e2e', '--ignore-not-found'], { allowFail: true });
    await uninstallAll();
  });

  it('without the VPN the shoot\'s API server cannot reach its kubelet', async () => {
    await check(SUITE, 'logs fail without the VPN', async () => {
      const r = await shootLogs(await podName('shoot', E2E_NS, 'app.kubernetes.io/name=logger'), E2E_NS);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/10250|unreachable|proxy|dial/);
    });
  });

  it('installs: entry route, seed side (certificates and kube-apiserver wiring by the setup hook), shoot side; the tunnel comes up', async () => {
    const t0 = Date.now();
    await check(SUITE, 'helm install', async () => {
      await setEntryRoutes('reversed');
      await installSeedSide('reversed');
      await installShootSide('reversed');
    });
    const wired = await check(SUITE, 'kube-apiserver wired by the setup hook', async () => {
      const w = await apiserverWiring();
      expect(w).toMatchObject({ flag: true, label: true, sidecar: false });
      await apiserverRolledOut();
      return w;
    });
    expect(wired.flag).toBe(true);
    await check(SUITE, 'tunnel ready (kubectl logs works)', async () => timeUntil('kubectl logs through the tunnel', logsWork, 300_000, 500), (ms) => ({ install_to_logs_ms: Date.now() - t0, after_rollout_ms: ms }));
  });

  it('maps: the test bed\'s seed and shoot both use Gardener\'s default ranges, so the seed server carries the shoot mapped', async () => {
    await check(SUITE, 'mapping active (seed server start log)', async () => {
      const pod = await podName('seed', NS, 'app.kubernetes.io/name=vpn-seed-server');
      const r = await k('seed', ['logs', '-n', NS, pod, '-c', 'vpn-seed-server']);
      const started = r.stdout.split('\n').filter((l) => l.includes('"vpn-seed-server started"')).map((l) => JSON.parse(l) as { mapping?: { families: Array<{ family: number; active: boolean; networks: string[] }> } });
      expect(started).toHaveLength(1);
      expect(started[0]!.mapping?.families).toEqual([{ family: 4, active: true, reason: 'overlap', networks: [
        'seedPods 100.96.0.0/11 -> 241.0.0.0/11', 'shootNodes 10.250.0.0/16 -> 242.0.0.0/16', 'shootServices 100.64.0.0/13 -> 243.0.0.0/13', 'shootPods 100.96.0.0/11 -> 244.0.0.0/11'] }]);
    });
  });

  it('kubectl logs, exec (SPDY and WebSocket), port-forward 100 MB, all through the tunnel', async () => {
    const pod = await podName('shoot', E2E_NS, 'app.kubernetes.io/name=logger');
    await check(SUITE, 'kubectl logs', async () => {
      const r = await shootLogs(pod, E2E_NS, 3);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/rvtb-log line \d+/);
    });
    await check(SUITE, 'kubectl exec over WebSocket', async () => {
      const r = await k('shoot', ['exec', '-n', E2E_NS, pod, '--', 'sh', '-c', 'echo ws-$((6*7))'], { env: { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'true' } });
      expect(r.stdout.trim()).toBe('ws-42');
    });
    await check(SUITE, 'kubectl exec over SPDY', async () => {
      const r = await k('shoot', ['exec', '-n', E2E_NS, pod, '--', 'sh', '-c', 'echo spdy-$((6*7))'], { env: { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' } });
      expect(r.stdout.trim()).toBe('spdy-42');
    });
    await check(SUITE, 'kubectl port-forward 100 MB (sha256 compared)', async () => portForwardDownload(E2E_NS, await podName('shoot', E2E_NS, 'app.kubernetes.io/name=http'), 100 * 1024 * 1024), (r) => ({ mbit_per_s: Math.round(r.mbps), ms: r.ms }));
  });

  it('an admission webhook served in the shoot (registered by Service) is called through the tunnel', async () => {
    await applyObjects('shoot', [webhookConfiguration(webhookCa)]);
    await check(SUITE, 'webhook allows and denies through the tunnel', async () => {
      await timeUntil('the webhook answers', async () => {
        const r = await webhookProbe('allowed', false);
        if (r.code !== 0) throw new Error(r.stderr.trim());
        return true;
      }, 60_000, 1000);
      const denied = await webhookProbe('denied', true);
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toContain('denied by the rvtb webhook in the shoot');
    });
  });

  it('helm test CONNECTs through 9443 into the shoot', async () => {
    await check(SUITE, 'helm test', async () => {
      const r = await helmTest('seed', SEED_RELEASE, NS);
      expect(r.stdout).toMatch(/Phase:\s+Succeeded/);
    });
  });

  it('opens no inbound path into the shoot, and the seed cannot reach shoot addresses except through the tunnel', async () => {
    await check(SUITE, 'no inbound path into the shoot', async () => {
      expect(await shootInboundOpenings()).toEqual([]);
      expect(await seedCanOpen(NODES.shoot.wanIp, 10250)).toBe(false);
      expect(await seedCanOpen(NODES.shoot.nodeIp, 10250)).toBe(false);
    });
  });

  it('no tunnel reconnects while nothing is injected', async () => {
    await check(SUITE, 'zero reconnects outside injected faults', async () => {
      const pod = await podName('seed', NS, 'app.kubernetes.io/name=vpn-seed-server');
      const sessions = await podMetric('seed', NS, pod, 'rvpn_seed_server_tunnel_sessions_total');
      expect(sessions).toBe(1);
      return sessions;
    }, (s) => ({ sessions: s }));
  });

  it('with the tunnel down, logs and the webhook fail; they work again once it is back', async () => {
    await k('shoot', ['scale', '-n', 'kube-system', 'deployment/vpn-shoot', '--replicas=0']);
    await k('shoot', ['wait', '-n', 'kube-system', '--for=delete', 'pod', '-l', 'app.kubernetes.io/name=vpn-shoot', '--timeout=60s'], { allowFail: true });
    await check(SUITE, 'logs and webhook fail with the tunnel down', async () => {
      await timeUntil('logs to fail', async () => !(await logsWork()), 60_000, 1000);
      expect((await webhookProbe('down', false)).code).not.toBe(0);
    });
    await k('shoot', ['scale', '-n', 'kube-system', 'deployment/vpn-shoot', '--replicas=1']);
    await check(SUITE, 'tunnel back after scaling vpn-shoot up', async () => timeUntil('logs after the tunnel is back', logsWork, 180_000, 250), (ms) => ({ recovery_ms: ms }));
  });

  it('kill -9 of the main processes and forced pod deletions: the time until kubectl logs works again', async () => {
    for (const [cluster, ns, name] of [['seed', NS, 'vpn-seed-server'], ['shoot', 'kube-system', 'vpn-shoot']] as const) {
      const pod = await podName(cluster, ns, `app.kubernetes.io/name=${name}`);
      const restarts = await killMainProcess(cluster, ns, pod, name);
      await check(SUITE, `kill -9 ${name}: kubectl logs works again`, async () => {
        await timeUntil(`${name} restarted`, async () => (await restartCount(cluster, ns, pod, name)) > restarts, 60_000, 200);
        return timeUntil('logs', logsWork, 180_000, 250);
      }, (ms) => ({ recovery_after_restart_ms: ms }));
    }
    for (const [cluster, ns, name] of [['seed', NS, 'vpn-seed-server'], ['shoot', 'kube-system', 'vpn-shoot']] as const) {
      const pod = await podName(cluster, ns, `app.kubernetes.io/name=${name}`);
      const t0 = Date.now();
      await k(cluster, ['delete', 'pod', '-n', ns, pod, '--force', '--grace-period=0']);
      await check(SUITE, `kubectl delete pod --force ${name}: kubectl logs works again`, async () => {
        await sleep(500);
        // through the replacement: a force-deleted pod's containers run on for a few seconds, and logs
        // that still pass through them say nothing about the recovery (the next test's logs -f would
        // start on a tunnel about to move)
        await timeUntil(`a Ready replacement of ${pod}`, () => replacementReady(cluster, ns, `app.kubernetes.io/name=${name}`, pod), 240_000, 250);
        await timeUntil('logs', logsWork, 240_000, 250);
        return Date.now() - t0;
      }, (ms) => ({ recovery_ms: ms }));
    }
  });

  it('a live kubectl logs -f survives certificate reloads of the seed server', async () => {
    const pod = await podName('shoot', E2E_NS, 'app.kubernetes.io/name=logger');
    const follow = spawn(KUBECTL, [`--kubeconfig=${kubeconfigPath('shoot')}`, 'logs', '-f', '-n', E2E_NS, pod, '--tail=1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = 0;
    let ended = false;
    follow.stdout.on('data', (c: Buffer) => (lines += c.toString().split('\n').filter(Boolean).length));
    follow.on('exit', () => (ended = true));
    try {
      await timeUntil('logs -f streaming', async () => lines > 2, 30_000, 200);
      await check(SUITE, 'seed server certificate renewed under a live kubectl logs -f', async () => {
        const server = await podName('seed', NS, 'app.kubernetes.io/name=vpn-seed-server');
        const reloads = await podMetric('seed', NS, server, 'rvpn_seed_server_tls_reloads_total');
        await renewSeedServerCertificate();
        await timeUntil('the seed server to reload its certificate', async () => (await podMetric('seed', NS, server, 'rvpn_seed_server_tls_reloads_total')) > reloads, 120_000, 1000);
        const at = lines;
        await timeUntil('logs -f to keep streaming', async () => lines > at + 10, 30_000, 200);
        expect(ended).toBe(false);
        return { lines };
      }, (v) => v);
    } finally {
      follow.kill('SIGTERM');
    }
  });

  it('a full CA rotation through its phases: kubectl logs works after each, gaps reported', async () => {
    const token = `e2e-${Date.now().toString(36)}`;
    const caBefore = await secretKey('ca-vpn', 'ca.crt');
    // phase 1: a new CA; every bundle trusts both; every leaf re-issued by the new CA (the shoot's too,
    // through the shoot access Secret); the kube-apiserver restarts for its new proxy client certificate
    await k('seed', ['annotate', 'secret', '-n', NS, 'ca-vpn', '--overwrite', `vpn.reversed-vpn.dev/rotate-ca=${token}`]);
    await check(SUITE, 'CA rotation phase 1 (new CA, both trusted, leaves re-issued): kubectl logs works', async () => {
      const t0 = Date.now();
      await runSetupJob();
      const caNew = await secretKey('ca-vpn', 'ca.crt');
      expect(caNew).not.toBe(caBefore);
      expect(await secretKey('vpn-seed-server-tls', 'ca.crt')).toBe(`${caBefore}${caNew}`);
      await apiserverRolledOut();
      await timeUntil('logs after phase 1', logsWork, 180_000, 250);
      return Date.now() - t0;
    }, (ms) => ({ phase_ms: ms }));
    // phase 2: the old CA leaves every bundle
    await k('seed', ['annotate', 'secret', '-n', NS, 'ca-vpn', '--overwrite', `vpn.reversed-vpn.dev/finish-ca-rotation=${token}`]);
    await check(SUITE, 'CA rotation phase 2 (old CA dropped): kubectl logs works', async () => {
      const t0 = Date.now();
      await runSetupJob();
      const caNew = await secretKey('ca-vpn', 'ca.crt');
      expect(await secretKey('vpn-seed-server-tls', 'ca.crt')).toBe(caNew);
      await apiserverRolledOut();
      await timeUntil('logs after phase 2', logsWork, 180_000, 250);
      // the shoot side got the new bundle too (applied into the shoot by the setup run)
      const shootSecret = await getJson<{ data: Record<string, string> }>('shoot', ['secret', '-n', 'kube-system', 'vpn-shoot-client']);
      expect(Buffer.from(shootSecret!.data['ca.crt']!, 'base64').toString()).toBe(caNew);
      return Date.now() - t0;
    }, (ms) => ({ phase_ms: ms }));
  });

  it('uninstall leaves nothing behind and unwires the kube-apiserver', async () => {
    await check(SUITE, 'helm uninstall leaves nothing', async () => {
      await k('shoot', ['delete', 'validatingwebhookconfiguration', 'rvtb-e2e', '--ignore-not-found']);
      await uninstallAll();
      await setEntryRoutes('none');
      await timeUntil('the seed namespace to be as before', async () => JSON.stringify(await inventory('seed', NS)) === JSON.stringify(before.seed), 120_000, 1000);
      // the shoot's pods go after their Deployment, by the garbage collector's cascade: wait, then compare
      await timeUntil('the shoot\'s kube-system to be as before', async () => JSON.stringify(await inventory('shoot', 'kube-system')) === JSON.stringify(before.shoot), 120_000, 1000).catch(() => undefined);
      expect(await inventory('shoot', 'kube-system')).toEqual(before.shoot);
      expect(await apiserverWiring()).toMatchObject({ flag: false, label: false, sidecar: false });
      await apiserverRolledOut();
    });
  });
});

/** One run of the setup CronJob (what it does daily), now. */
async function runSetupJob(): Promise<void> {
  const job = `setup-${Date.now().toString(36)}`;
  await k('seed', ['create', 'job', '-n', NS, job, '--from=cronjob/vpn-shoot-setup']);
  await k('seed', ['wait', '-n', NS, `job/${job}`, '--for=condition=Complete', '--timeout=120s'], { timeoutMs: 130_000 });
  await k('seed', ['delete', 'job', '-n', NS, job, '--wait=false']);
}

/**
 * Renews the seed server's tunnel/proxy certificate the way the setup CronJob does when it is due: the
 * run is asked for this one certificate with the renewal annotation on Secret vpn-certificates.
 */
async function renewSeedServerCertificate(): Promise<void> {
  await k('seed', ['annotate', 'secret', '-n', NS, 'vpn-certificates', '--overwrite', `vpn.reversed-vpn.dev/renew=vpn-seed-server-tls@${Date.now().toString(36)}`]);
  await runSetupJob();
}

async function secretKey(name: string, key: string): Promise<string> {
  const s = await getJson<{ data: Record<string, string> }>('seed', ['secret', '-n', NS, name]);
  return Buffer.from(s?.data[key] ?? '', 'base64').toString('utf8');
}
