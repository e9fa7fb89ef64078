/**
 * @rvpn/envtest: a real kube-apiserver + etcd for tests (controller-runtime's envtest idea), from the
 * binaries the test bed builds (`bash tools/testbed/build-binaries.sh`). Loopback only, its own ports,
 * temp dir and PKI; RBAC on; ServiceAccount tokens that really expire; an optional audit log.
 *
 *   import { startEnvtest } from '@rvpn/envtest';
 *   let env: Envtest;
 *   beforeAll(async () => { env = await startEnvtest({ audit: true }); });
 *   afterAll(async () => { await env?.stop(); });
 *   // KubeConfig.loadFromFile(env.kubeconfigPath), or as a ServiceAccount:
 *   const kc = await env.serviceAccountKubeconfig({ namespace: 'ops', name: 'operator' });
 */
export { startEnvtest, findBinaries, defaultBinDir, BINARIES, DEFAULT_AUDIT_POLICY } from './envtest.js';
export type { Envtest, EnvtestOptions, AuditEvent, ServiceAccountRef, TokenOptions, RequestResult } from './envtest.js';
export { EnvtestBinariesMissingError, EnvtestStartError, EnvtestRequestError } from './errors.js';
