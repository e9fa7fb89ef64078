/**
 * The operator path on the test bed: the seed-wide release gains the operator (and the CRD); a ShootVpn
 * with shoot access makes it render and apply the seed side, issue the certificates, publish the
 * sni-proxy route, wire the kube-apiserver and apply the shoot side INTO the shoot; kubectl logs works;
 * an idle minute shows no write by the operator in the seed's audit log (its Lease aside); changing the
 * shoot's networks remaps both ends (the test bed's overlapping ranges map from the start); deleting the
 * ShootVpn leaves nothing (its finalizer cleans the seed side, the route, the wiring and the shoot side).
 */
import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '@rvpn/tools';
import { SEED_AUDIT_LOG, SHOOT, SNI_PROXY } from '@rvpn/tools/testbed';
import { applyObjects, check, getJson, helm, k, podName, shootLogs, timeUntil, recordTests } from './harness.js';
import { CHART, apiserverWiring, inventory, testbedNetworks } from './install.js';
import { E2E_NS, deployWorkloads } from './workloads.js';

const SUITE = 'operator';
const NS = SHOOT.namespace;
const logsWork = async () => (await shootLogs(await podName('shoot', E2E_NS, 'app.kubernetes.io/name=logger'), E2E_NS, 1)).code === 0;

const shootVpn = {
  apiVersion: 'vpn.reversed-vpn.dev/v1alpha1', kind: 'ShootVpn', metadata: { name: SHOOT.name, namespace: NS },
  spec: {
    shoot: { name: SHOOT.name, project: SHOOT.project }, namespace: NS, endpoint: SHOOT.apiHost,
    highAvailability: { failureTolerance: 'none' }, annotations: {},
    networks: testbedNetworks(),
    images: { vpnSeedServer: 'localhost/reversed-vpn/vpn-seed-server:0.1.0', vpnShoot: 'localhost/reversed-vpn/vpn-shoot:0.1.0', pathController: 'localhost/reversed-vpn/path-controller:0.1.0' },
    shootAccess: { kubeconfigSecretRef: { name: 'shoot-access-admin' } },
  },
};

interface AuditEvent { verb: string; user: { username: string }; objectRef?: { resource?: string; name?: string; namespace?: string }; stageTimestamp: string }

function auditWrites(sinceBytes: number, user: string): AuditEvent[] {
  const text = readFileSync(SEED_AUDIT_LOG, 'utf8').slice(sinceBytes);
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent).filter((e) => e.user.username === user);
}

describe('the operator: a ShootVpn end to end', () => {
  recordTests(SUITE);
  let before: { seed: string[]; shoot: string[] };
  let operatorUser = '';

  beforeAll(async () => {
    before = { seed: await inventory('seed', NS), shoot: await inventory('shoot', 'kube-system') };
    await deployWorkloads();
  });
  afterAll(async () => {
    await k('seed', ['delete', 'shootvpn', '-n', NS, SHOOT.name, '--ignore-not-found', '--timeout=120s'], { allowFail: true });
  });

  it('installs the operator (and the CRD) into the seed-wide release', async () => {
    await check(SUITE, 'helm upgrade: operator enabled', async () => {
      await helm('seed', ['upgrade', SNI_PROXY.release, CHART, '-n', SNI_PROXY.namespace, '--reuse-values', '--set', 'operator.enabled=true', '--wait', '--timeout', '5m']);
      await k('seed', ['wait', '--for=condition=Established', 'crd/shootvpns.vpn.reversed-vpn.dev', '--timeout=60s']);
    });
    const list = await getJson<{ items: Array<{ spec: { template: { spec: { serviceAccountName: string } } } }> }>('seed', ['deployments', '-n', SNI_PROXY.namespace, '-l', 'app.kubernetes.io/component=operator']);
    operatorUser = `system:serviceaccount:${SNI_PROXY.namespace}:${list?.items[0]?.spec.template.spec.serviceAccountName ?? ''}`;
    expect(operatorUser).toMatch(/:[a-z0-9-]+$/);
  });

  it('a ShootVpn becomes Ready and the tunnel works (shoot side applied into the shoot by the operator)', async () => {
    const t0 = Date.now();
    await applyObjects('seed', [shootVpn]);
    await check(SUITE, 'ShootVpn Ready', async () => timeUntil('ShootVpn Ready', async () => {
      const cr = await getJson<{ status?: { conditions?: Array<{ type: string; status: string }> } }>('seed', ['shootvpn', '-n', NS, SHOOT.name]);
      return cr?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    }, 180_000, 1000), (ms) => ({ ready_ms: ms }));
    await check(SUITE, 'operator path: kubectl logs works', async () => {
      await k('seed', ['rollout', 'status', '-n', NS, 'deployment/kube-apiserver', '--timeout=300s'], { timeoutMs: 320_000 });
      await timeUntil('logs through the operator-made tunnel', logsWork, 300_000, 500);
      expect((await apiserverWiring()).flag).toBe(true);
      return Date.now() - t0;
    }, (ms) => ({ apply_to_logs_ms: ms }));
    await check(SUITE, 'TunnelConnected condition', async () => timeUntil('TunnelConnected=True', async () => {
      const cr = await getJson<{ status?: { conditions?: Array<{ type: string; status: string }> } }>('seed', ['shootvpn', '-n', NS, SHOOT.name]);
      return cr?.status?.conditions?.some((c) => c.type === 'TunnelConnected' && c.status === 'True') ?? false;
    }, 120_000, 1000));
  });

  it('an idle operator writes nothing (its Lease aside) over a minute, by the seed\'s audit log', async () => {
    await sleep(15_000); // let the dust of the install settle (pods becoming ready, status)
    const from = statSync(SEED_AUDIT_LOG).size;
    await check(SUITE, 'idle minute: zero writes by the operator', async () => {
      await sleep(60_000);
      expect(operatorUser).toMatch(/:[a-z0-9-]+$/);
      const all = auditWrites(from, operatorUser);
      // the leader renews its Lease: proof that this is the operator's user and that the log is read
      expect(all.filter((e) => e.objectRef?.resource === 'leases').length).toBeGreaterThan(0);
      expect(all.filter((e) => e.objectRef?.resource !== 'leases').map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name}`)).toEqual([]);
      return all.length;
    }, (leaseWrites) => ({ lease_writes: leaseWrites }));
  });

  it('changing a live ShootVpn\'s networks remaps both ends: the kubelet moves in the mapped range, kubectl logs keeps working', async () => {
    // the test bed runs Gardener's default ranges on both clusters, so the mapping is on from the start
    const mappedNodes = async () => {
      const cr = await getJson<{ status?: { conditions?: Array<{ type: string; reason?: string }>; networkMapping?: { families: Array<{ networks: string[] }> } } }>('seed', ['shootvpn', '-n', NS, SHOOT.name]);
      return { reason: cr?.status?.conditions?.find((c) => c.type === 'NetworksValid')?.reason, nodes: (cr?.status?.networkMapping?.families ?? []).flatMap((f) => f.networks).filter((n) => n.startsWith('shootNodes ')) };
    };
    expect(await mappedNodes()).toEqual({ reason: 'Mapped', nodes: ['shootNodes 10.250.0.0/16 -> 242.0.0.0/16'] });
    const podsBefore = { seed: await podName('seed', NS, 'app.kubernetes.io/name=vpn-seed-server'), shoot: await podName('shoot', 'kube-system', 'app.kubernetes.io/name=vpn-shoot') };
    // a larger node network, listed first, is packed first: 10.250.0.0/16 moves from 242.0.0.0/16 to 242.16.0.0/16
    const nodes = ['172.16.0.0/12', ...testbedNetworks().nodes];
    const t0 = Date.now();
    await k('seed', ['patch', 'shootvpn', '-n', NS, SHOOT.name, '--type=merge', '-p', JSON.stringify({ spec: { networks: { nodes } } })]);
    await check(SUITE, 'live remap: status shows the new mapping', async () => timeUntil('status.networkMapping to move the node network', async () =>
      JSON.stringify((await mappedNodes()).nodes) === JSON.stringify(['shootNodes 172.16.0.0/12 -> 242.0.0.0/12', 'shootNodes 10.250.0.0/16 -> 242.16.0.0/16']), 60_000, 500));
    await check(SUITE, 'live remap: both ends rolled, kubectl logs through the new mapping', async () => {
      // the pods of the old mapping are gone (with them, logs would work without any remap)
      await timeUntil('the seed server and vpn-shoot pods of the old mapping to be gone', async () =>
        (await getJson('seed', ['pod', '-n', NS, podsBefore.seed])) === undefined && (await getJson('shoot', ['pod', '-n', 'kube-system', podsBefore.shoot])) === undefined, 180_000, 1000);
      // the kubelet (10.250.0.10) is now reached as 242.16.0.10: logs work only when both ends translate alike
      await timeUntil('logs through the remapped tunnel', logsWork, 180_000, 500);
      return Date.now() - t0;
    }, (ms) => ({ patch_to_logs_ms: ms }));
  });

  it('deleting the ShootVpn leaves nothing: seed side, route, wiring and shoot side are gone', async () => {
    await check(SUITE, 'ShootVpn deleted: nothing left', async () => {
      await k('seed', ['delete', 'shootvpn', '-n', NS, SHOOT.name, '--timeout=180s'], { timeoutMs: 200_000 });
      await timeUntil('the seed namespace to be as before', async () => JSON.stringify(await inventory('seed', NS)) === JSON.stringify(before.seed), 120_000, 1000);
      await timeUntil('the shoot side to be gone', async () => JSON.stringify(await inventory('shoot', 'kube-system')) === JSON.stringify(before.shoot), 60_000, 1000);
      expect(await apiserverWiring()).toMatchObject({ flag: false, label: false, sidecar: false });
      const routes = await getJson<{ items: Array<{ metadata: { name: string }; data?: Record<string, string> }> }>('seed', ['configmaps', '-n', SNI_PROXY.namespace]);
      const all = JSON.stringify(routes?.items.filter((c) => c.metadata.name.includes('operator-routes')).map((c) => c.data) ?? []);
      expect(all).not.toContain(`vpn-seed-server.${NS}`);
    });
  });
});
