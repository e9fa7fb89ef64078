import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOperatorConfig } from '../index.js';
import { configProblems } from '../testing/index.js';

const dir = mkdtempSync(join(tmpdir(), 'rvpn-cfg-op-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const specFile = join(dir, 'shoot.json');
writeFileSync(specFile, '{}');
const kubeconfig = join(dir, 'kubeconfig');
writeFileSync(kubeconfig, '{}');
const inCluster = { KUBERNETES_SERVICE_HOST: '10.0.0.1' };


describe('operator config', () => {
  it('pins the defaults; no API server URL is needed (kubeconfig or in-cluster)', () => {
    const c = loadOperatorConfig(inCluster);
    expect(c).toMatchObject({
      command: 'run', kubeconfig: '', featureGates: 'ReversedVPN=true', gates: { ReversedVPN: true }, sniProxyNamespace: 'rvpn-system',
      sniProxyRoutesConfigMap: 'sni-proxy-routes', monitoring: false, certValidityDays: 90, caValidityDays: 3650, resyncMs: 60_000,
      fieldManager: 'reversed-vpn-operator', podNamespace: '', podName: '', leaderElect: true, leaseName: 'reversed-vpn-operator',
      leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, statusListen: { host: '0.0.0.0', port: 15000 }, logLevel: 'info',
      namespace: '', shootSpecFile: undefined, kubeApiserverDeployment: 'kube-apiserver', shootKubeconfigFile: undefined,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('lists every problem: gates, leader-election timings that do not nest', () => {
    const p = configProblems(() => loadOperatorConfig({ ...inCluster, FEATURE_GATES: 'ReversedVPN=yes,Other=true', LEADER_ELECTION_LEASE_DURATION: '5s', LEADER_ELECTION_RENEW_DEADLINE: '5s', LEADER_ELECTION_RETRY_PERIOD: '6s' }));
    expect(p.map((x) => x.env).sort()).toEqual(['FEATURE_GATES', 'FEATURE_GATES', 'LEADER_ELECTION_RENEW_DEADLINE', 'LEADER_ELECTION_RETRY_PERIOD']);
    // without leader election the timings do not matter
    expect(loadOperatorConfig({ ...inCluster, LEADER_ELECT: 'false', LEADER_ELECTION_RENEW_DEADLINE: '20s' }).leaderElect).toBe(false);
  });

  it('needs credentials: a readable KUBECONFIG, ~/.kube/config, or a pod', () => {
    expect(configProblems(() => loadOperatorConfig({ HOME: dir }))).toEqual([expect.objectContaining({ env: 'KUBECONFIG', problem: expect.stringMatching(/no credentials/) })]);
    expect(configProblems(() => loadOperatorConfig({ KUBECONFIG: `${kubeconfig}:${join(dir, 'nope')}` }))).toEqual([expect.objectContaining({ env: 'KUBECONFIG', problem: expect.stringMatching(/nope does not exist/) })]);
    expect(loadOperatorConfig({ KUBECONFIG: kubeconfig }).kubeconfig).toBe(kubeconfig);
  });

  it('the one-shot commands need NAMESPACE and SHOOT_SPEC_FILE; "-" or "" turn the apiserver wiring off', () => {
    const p = configProblems(() => loadOperatorConfig(inCluster, { command: 'shoot-setup' }));
    expect(p.map((x) => x.env).sort()).toEqual(['NAMESPACE', 'SHOOT_SPEC_FILE']);
    expect(configProblems(() => loadOperatorConfig({ ...inCluster, NAMESPACE: 'shoot--a--b', SHOOT_SPEC_FILE: join(dir, 'missing.json') }, { command: 'shoot-teardown' }))[0]).toMatchObject({ env: 'SHOOT_SPEC_FILE', problem: expect.stringMatching(/does not exist/) });
    const c = loadOperatorConfig({ ...inCluster, NAMESPACE: 'shoot--a--b', SHOOT_SPEC_FILE: specFile, KUBE_APISERVER_DEPLOYMENT: '-' }, { command: 'shoot-setup' });
    expect(c).toMatchObject({ command: 'shoot-setup', namespace: 'shoot--a--b', shootSpecFile: specFile, kubeApiserverDeployment: '' });
    expect(loadOperatorConfig({ ...inCluster, NAMESPACE: 'n', SHOOT_SPEC_FILE: specFile, KUBE_APISERVER_DEPLOYMENT: '' }, { command: 'shoot-setup' }).kubeApiserverDeployment).toBe('');
    expect(loadOperatorConfig({ ...inCluster, NAMESPACE: 'n', SHOOT_SPEC_FILE: specFile, KUBE_APISERVER_DEPLOYMENT: 'apiserver' }, { command: 'shoot-setup' }).kubeApiserverDeployment).toBe('apiserver');
  });
});
