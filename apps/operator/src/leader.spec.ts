/**
 * The Lease elector, step by step against a real API server with a fake clock: it creates a free
 * Lease, keeps out of one that is held, judges expiry by its own clock (never the holder's
 * renewTime), takes over an expired one with a transition, loses a race by conflict, and releases on stop.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Envtest } from '@rvpn/envtest';
import { LeaderElector } from './leader.js';
import { OPERATOR_NS, operatorKubeConfig, silentLogger, startSeed } from './testing/harness.js';

let env: Envtest;
let kc: KubeConfig;
beforeAll(async () => {
  env = await startSeed();
  kc = await operatorKubeConfig(env);
});
afterAll(async () => {
  await env?.stop();
});

const LEASE = `/apis/coordination.k8s.io/v1/namespaces/${OPERATOR_NS}/leases/reversed-vpn-operator`;
interface LeaseBody {
  metadata: { resourceVersion: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string; acquireTime?: string; leaseTransitions?: number };
}
const lease = async () => (await env.request<LeaseBody>('GET', LEASE)).body;

function elector(identity: string, clock: { t: number }) {
  const e = new LeaderElector(kc, {
    namespace: OPERATOR_NS, name: 'reversed-vpn-operator', identity, leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000,
    logger: silentLogger(), onStartedLeading: () => undefined, onStoppedLeading: () => undefined, now: () => clock.t,
  });
  return { e, step: () => (e as unknown as { tryAcquireOrRenew(): Promise<boolean> }).tryAcquireOrRenew() };
}

describe('leader election on a Lease', () => {
  beforeEach(async () => {
    await env.request('DELETE', LEASE);
  });

  it('creates a free Lease and renews it; a second candidate stays out while the holder renews', async () => {
    const clock = { t: Date.now() };
    const a = elector('a', clock);
    const b = elector('b', clock);
    expect(await a.step()).toBe(true);
    expect((await lease()).spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 0 });
    expect((await lease()).spec.renewTime).toMatch(/\.\d{6}Z$/); // MicroTime: microseconds, as the API server wants
    for (let i = 0; i < 3; i++) {
      clock.t += 10_000; // each renewal is a change b observes, so b's 15 s never run out
      expect(await b.step()).toBe(false);
      expect(await a.step()).toBe(true);
    }
    expect((await lease()).spec.holderIdentity).toBe('a');
  });

  it('judges expiry by its own clock since it last saw the record change, not by the holder\'s renewTime', async () => {
    const clock = { t: Date.now() };
    // a holder whose clock is an hour behind: its renewTime looks long expired
    const r = await env.request('POST', `/apis/coordination.k8s.io/v1/namespaces/${OPERATOR_NS}/leases`, {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'reversed-vpn-operator' },
      spec: { holderIdentity: 'skewed', leaseDurationSeconds: 15, renewTime: new Date(clock.t - 3_600_000).toISOString().replace('Z', '000Z'), leaseTransitions: 4 },
    });
    expect(r.status).toBe(201);
    const b = elector('b', clock);
    expect(await b.step()).toBe(false); // first sight: the record is fresh to b
    clock.t += 14_000;
    expect(await b.step()).toBe(false);
    clock.t += 2_000; // 16 s without a change on b's clock: expired
    expect(await b.step()).toBe(true);
    expect((await lease()).spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 5 });
  });

  it('of two candidates writing from the same read, only one wins (409 Conflict for the other)', async () => {
    const clock = { t: Date.now() };
    const a = elector('a', clock);
    expect(await a.step()).toBe(true);
    await a.e.stop(); // a is not leading in its own state; the Lease still says a
    await env.request('PATCH', LEASE, { spec: { holderIdentity: '' } }, { contentType: 'application/merge-patch+json' });
    const [x, y] = [elector('x', clock), elector('y', clock)];
    const results = await Promise.all([x.step(), y.step()]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(['x', 'y']).toContain((await lease()).spec.holderIdentity);
  });

  it('stop() releases the Lease so a standby need not wait for it to expire', async () => {
    let leading = 0;
    const a = new LeaderElector(kc, {
      namespace: OPERATOR_NS, name: 'reversed-vpn-operator', identity: 'a', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 200,
      logger: silentLogger(), onStartedLeading: () => void leading++, onStoppedLeading: () => void leading--,
    });
    a.start();
    for (let i = 0; i < 100 && !a.isLeader; i++) await new Promise((r) => setTimeout(r, 50));
    expect(a.isLeader).toBe(true);
    expect(leading).toBe(1);
    await a.stop();
    expect(leading).toBe(0);
    expect((await lease()).spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    const clock = { t: Date.now() };
    expect(await elector('b', clock).step()).toBe(true); // no expiry wait for a released Lease
  });
});
